/**
 * Whether the middleware whose own mark is `passed` has seen this request already (its
 * framework's per-request object: Express's `req`, Koa's `ctx`, Hono's context); if not, it is
 * marked now, on the object itself: a WeakSet entry would be an ephemeron the garbage collector
 * re-examines. A second pass of the same `idempotency()` or `webhook()` (mounted app-wide and
 * again on the route) must only call `next()`: it would find the claim its first pass made in
 * flight (409), and the first pass would then settle the claim with that 409, stored as the
 * key's answer for its whole lifetime, or a delivery refused on every retry (Fastify's plugin
 * attaches a set's hooks to a route once, for the same reason).
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function passedBefore(request: object, passed: symbol): boolean {
  const marks = request as Record<symbol, true | undefined>;
  if (marks[passed]) return true;
  marks[passed] = true;
  return false;
}
