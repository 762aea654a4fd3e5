/**
 * A retry budget per origin: a token bucket, as gRPC's retry throttling and the AWS SDKs'
 * "standard" retry mode have it. A retry spends tokens; a response the client does not retry
 * puts a fraction of a token back. While an origin answers, the bucket stays full; when most
 * calls fail, the retries drain it and stop, so a client adds at most ~`successRefund /
 * retryCost` retries per successful call instead of multiplying the load on a struggling origin.
 */

export interface RetryBudgetOptions {
  /** Tokens the bucket holds, and starts with. Default 10. */
  capacity?: number;
  /** Tokens a retry spends. Default 1. */
  retryCost?: number;
  /** Tokens put back by each response the client does not retry (a 2xx, a 404). Default 0.1. */
  successRefund?: number;
}

/** The budget's defaults: 10 tokens, 1 per retry, 0.1 back per response not retried. */
export const DEFAULT_RETRY_BUDGET: Required<RetryBudgetOptions> = Object.freeze({
  capacity: 10,
  retryCost: 1,
  successRefund: 0.1,
});

/** Tokens are counted in thousandths, so ten refunds of 0.1 make exactly one token. */
const SCALE = 1000;

/** One origin's retry budget, as `client.budgets.get(url)` returns it: to read; the client drives it. */
export interface RetryBudget {
  /** Tokens the bucket holds at most, and starts with. */
  readonly capacity: number;
  /** Tokens a retry spends. */
  readonly retryCost: number;
  /** Tokens a response not retried puts back. */
  readonly successRefund: number;
  /** Tokens in the bucket now. */
  readonly tokens: number;
}

/**
 * One origin's retry budget, as the client drives it. Users get its `view` alone: with this
 * object they could spend the budget and stop every retry to the origin.
 */
export class OriginBudget {
  /** Tokens the bucket holds at most, and starts with. */
  readonly capacity: number;
  /** Tokens a retry spends. */
  readonly retryCost: number;
  /** Tokens a response not retried puts back. */
  readonly successRefund: number;
  /** What `client.budgets` hands out: the read members alone. */
  readonly view: RetryBudget;
  #milliTokens: number;
  readonly #milliCost: number;
  readonly #milliRefund: number;
  readonly #milliCapacity: number;

  constructor(options: Required<RetryBudgetOptions>) {
    this.capacity = options.capacity;
    this.retryCost = options.retryCost;
    this.successRefund = options.successRefund;
    this.#milliCapacity = Math.round(options.capacity * SCALE);
    this.#milliCost = Math.round(options.retryCost * SCALE);
    this.#milliRefund = Math.round(options.successRefund * SCALE);
    this.#milliTokens = this.#milliCapacity;
    this.view = new BudgetView(this);
  }

  /** Tokens in the bucket now. */
  get tokens(): number {
    return this.#milliTokens / SCALE;
  }

  /** Spends one retry's cost; false (nothing spent) when the bucket holds less. */
  trySpend(): boolean {
    if (this.#milliTokens < this.#milliCost) return false;
    this.#milliTokens -= this.#milliCost;
    return true;
  }

  /** A response the client did not retry: puts `successRefund` back, up to the capacity. */
  refund(): void {
    this.#milliTokens = Math.min(this.#milliCapacity, this.#milliTokens + this.#milliRefund);
  }
}

/** The read members of a budget, and nothing that spends or refunds it. */
class BudgetView implements RetryBudget {
  readonly capacity: number;
  readonly retryCost: number;
  readonly successRefund: number;
  readonly #budget: OriginBudget;

  constructor(budget: OriginBudget) {
    this.capacity = budget.capacity;
    this.retryCost = budget.retryCost;
    this.successRefund = budget.successRefund;
    this.#budget = budget;
  }

  get tokens(): number {
    return this.#budget.tokens;
  }
}
