/**
 * Options given as they are, or made on the first request. A host that evaluates route modules
 * where the settings are not there (Next's `next build`) or hands them to each request (a
 * Worker's `env`) needs the second: the wrapper is built once, from the first call's arguments.
 */

/**
 * The options, or a function of the first request and what the host passes with it that
 * returns them. `F`, the type of what the function returns, is inferred so it can be held to
 * `O` exactly (every property `O` does not have typed `never`): an object a function returns
 * gets no excess-property check, so a misspelt option (`tolerence`) would compile and be ignored.
 */
export type OptionsOrFactory<O, R extends Request, A extends unknown[], F extends O = O> =
  | O
  | ((request: R, ...rest: A) => F & Record<Exclude<keyof F, keyof O>, never>);

/**
 * The handler `build` makes from the options: at once when they are given (a bad option throws
 * where the wrapper is made), else on the first call, once. A factory that throws fails that
 * call (the host answers 500) and is asked again on the next.
 */
export function builtOnFirstUse<O, R extends Request, A extends unknown[]>(
  options: OptionsOrFactory<O, R, A>,
  build: (options: O) => (request: R, ...rest: A) => Promise<Response>,
): (request: R, ...rest: A) => Promise<Response> {
  if (typeof options !== "function") return build(options);
  const factory = options as (request: R, ...rest: A) => O;
  let built: ((request: R, ...rest: A) => Promise<Response>) | undefined;
  return async (request, ...rest) => {
    // Synchronously, before any await: two first calls at the same instant share one build
    // (and so one engine and any store the factory makes), never two.
    built ??= build(factory(request, ...rest));
    return built(request, ...rest);
  };
}
