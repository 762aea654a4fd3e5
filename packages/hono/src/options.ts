/**
 * Options given as they are, or made on the first request. A Cloudflare Worker without
 * `nodejs_compat` has no Node environment variables: its secrets are bindings on `c.env`, known
 * only once a request comes. The middleware is then built once, from the first request's context.
 */
import type { Context, Env, MiddlewareHandler } from "hono";

/**
 * The options, or a function of the first request's context that returns them. `F`, the type
 * of what the function returns, is inferred so it can be held to `O` exactly (every property
 * `O` does not have typed `never`): an object a function returns gets no excess-property
 * check, so a misspelt option (`tolerence`) would compile and be ignored.
 */
export type OptionsOrFactory<O, F extends O = O> = O | ((c: Context) => F & Record<Exclude<keyof F, keyof O>, never>);

/**
 * The middleware `build` makes from the options: at once when they are given (a bad option
 * throws where the middleware is made), else on the first request, once. A factory that throws
 * fails that request (Hono answers it as any error) and is asked again on the next.
 */
export function builtOnFirstUse<O, E extends Env>(
  options: OptionsOrFactory<O>,
  build: (options: O) => MiddlewareHandler<E>,
): MiddlewareHandler<E> {
  if (typeof options !== "function") return build(options);
  const factory = options as (c: Context) => O;
  let built: MiddlewareHandler<E> | undefined;
  return (c, next) => {
    // Synchronously, before any await: two first requests at the same instant share one build
    // (one receiver or engine, and any store the factory makes), never two.
    built ??= build(factory(c));
    return built(c, next);
  };
}
