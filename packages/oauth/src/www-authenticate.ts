/**
 * `WWW-Authenticate` as RFC 9110 §11.6.1 writes it: one or more challenges, comma-separated, each
 * an auth-scheme (case-insensitive) with either a token68 or auth-params (`name=token` or
 * `name="quoted string"`, names case-insensitive) — the commas between params and between
 * challenges are the same comma, so the header is scanned, not split.
 */

/** One challenge: its scheme and auth-params, both lower-cased names. */
export interface Challenge {
  scheme: string;
  params: Map<string, string>;
}

// tchar (RFC 9110 §5.6.2) and token68 (§11.2).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;
const WHITESPACE = /^[ \t]*/;
/** A param's start: a token, optional whitespace, `=` (the lookahead tells it from a token68 ending in `=`). */
const PARAM_START = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=(?!=*[ \t]*(,|$))/;

class Scanner {
  constructor(
    readonly text: string,
    public at = 0,
  ) {}

  get rest(): string {
    return this.text.slice(this.at);
  }

  match(pattern: RegExp): RegExpExecArray | null {
    const found = pattern.exec(this.rest);
    if (found !== null) this.at += found[0].length;
    return found;
  }

  skipWhitespace(): void {
    this.match(WHITESPACE);
  }

  /** Skips whitespace and empty list elements (`#rule` allows `a, , b`). */
  skipSeparators(): void {
    while (this.match(/^[ \t,]+/) !== null);
  }

  get done(): boolean {
    return this.at >= this.text.length;
  }

  /** A quoted-string's value, its quoted-pairs unescaped; null when unterminated. */
  quoted(): string | null {
    let value = "";
    for (let i = this.at + 1; i < this.text.length; i++) {
      const char = this.text[i] as string;
      if (char === '"') {
        this.at = i + 1;
        return value;
      }
      if (char === "\\") i++;
      value += this.text[i] ?? "";
    }
    return null;
  }
}

/** The challenges of a `WWW-Authenticate` value; undefined when it is malformed. */
export function parseChallenges(header: string): Challenge[] | undefined {
  const scanner = new Scanner(header);
  const challenges: Challenge[] = [];
  scanner.skipSeparators();
  while (!scanner.done) {
    const scheme = scanner.match(TOKEN);
    if (scheme === null) return undefined;
    const challenge: Challenge = { scheme: scheme[0].toLowerCase(), params: new Map() };
    challenges.push(challenge);
    const spaced = scanner.match(/^ +/) !== null;
    if (spaced && PARAM_START.exec(scanner.rest) === null && scanner.match(TOKEN68) !== null) {
      scanner.skipWhitespace();
    } else if (spaced && !readParams(scanner, challenge.params)) {
      return undefined;
    }
    scanner.skipWhitespace();
    if (!scanner.done && scanner.match(/^,/) === null) return undefined;
    scanner.skipSeparators();
  }
  return challenges;
}

/** The challenge's auth-params, up to the next challenge or the end; false when one is malformed. */
function readParams(scanner: Scanner, params: Map<string, string>): boolean {
  for (;;) {
    const start = scanner.match(PARAM_START);
    if (start === null) return true; // no params (a scheme alone), or the next challenge
    const name = (start[1] as string).toLowerCase();
    scanner.skipWhitespace();
    const value = scanner.rest.startsWith('"') ? scanner.quoted() : (scanner.match(TOKEN)?.[0] ?? null);
    // A value is required, and a param appears once per challenge (RFC 9110 §11.2).
    if (value === null || params.has(name)) return false;
    params.set(name, value);
    // Another param of this challenge follows a comma; a scheme after it starts the next challenge.
    const mark = scanner.at;
    scanner.skipWhitespace();
    if (scanner.match(/^,/) === null) return true;
    scanner.skipSeparators();
    if (PARAM_START.exec(scanner.rest) === null) {
      scanner.at = mark;
      return true;
    }
  }
}

/**
 * Whether a 401 says the access token itself was not good (RFC 6750 §3.1): its Bearer challenge
 * has `error="invalid_token"`, or no `error` at all (the server saw no valid token). Then a new
 * token may help. Another error (`insufficient_scope`, `invalid_request`) says a new token will
 * not. A header that is missing or malformed is read as no error, as is one without a Bearer
 * challenge: the server named no other cause.
 */
export function accessTokenRefused(header: string | null): boolean {
  if (header === null) return true;
  const challenges = parseChallenges(header);
  if (challenges === undefined) return true;
  return challenges
    .filter((challenge) => challenge.scheme === "bearer")
    .every((challenge) => {
      const error = challenge.params.get("error");
      return error === undefined || error === "invalid_token";
    });
}
