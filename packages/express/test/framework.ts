/**
 * The Express major these tests run on. The project's module resolution picks it (see
 * vitest.workspace.ts), so it is read from the package that actually loaded; where the majors
 * differ by design, the tests ask here rather than assume one.
 */
import type { RequestHandler } from "express";
import { version } from "express/package.json";

export const expressMajor = Number(version.split(".")[0]);

/**
 * An async route as an app on this major writes it: Express 5 hands a rejection to the error
 * handlers itself; Express 4 ignores the returned promise, so its apps pass the error to `next`.
 */
export function asyncRoute(route: RequestHandler): RequestHandler {
  if (expressMajor >= 5) return route;
  return (req, res, next) => {
    Promise.resolve(route(req, res, next)).catch(next);
  };
}

/**
 * `req.body` after Express's own parsers saw a type none of them takes: body-parser 1 (Express 4)
 * sets `{}`, body-parser 2 (Express 5) leaves it undefined.
 */
export const untouchedBody: unknown = expressMajor >= 5 ? undefined : {};
