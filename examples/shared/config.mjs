// Start-up for the examples' server.mjs: the environment read strictly (a bad PORT, HOST or URL is
// one clear line, not a RangeError deep in `listen`), and a server that cannot start says why in
// one line and exits 1. runServer is for Node; the rest is plain JavaScript, which the Hono apps'
// default export (Bun, Deno, Workers) uses too. Copy it with the example.

import { bearerToken } from "./bearer.mjs";

/** The environment, or a dependency it names, does not let the server start: said in one line. */
export class StartupError extends Error {
  name = "StartupError";
}

/**
 * `PORT`: a whole number from 0 (any free port) to 65535, or `fallback` when unset. Refused when
 * set but blank: `PORT=` would otherwise listen on a random port, or on all interfaces for HOST.
 */
export function portFrom(env, name = "PORT", fallback = 0) {
  const text = present(env, name);
  if (text === undefined) return fallback;
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port <= 65_535)) throw new StartupError(`${name} must be a port number from 0 to 65535, not ${quoted(text)}`);
  return port;
}

/**
 * `HOST`: the address to listen on, loopback when unset, so a server is reachable from elsewhere
 * only when asked (`HOST=0.0.0.0`). A name that does not resolve fails in `listen`, in one line too.
 */
export function hostFrom(env, name = "HOST", fallback = "127.0.0.1") {
  const text = present(env, name);
  if (text === undefined) return fallback;
  if (/[\s/]/.test(text)) throw new StartupError(`${name} must be a host name or an IP address, not ${quoted(text)}`);
  return text;
}

/** The URL of a server on `host` and `port`, an IPv6 address in brackets: `http://[::1]:3000`. */
export function serverUrl(host, port) {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * An absolute URL whose scheme is one of `protocols` (`["https:", "http:"]`), or `fallback` when
 * unset. The message names the variable, never the value: a database URL holds a password.
 */
export function urlFrom(env, name, protocols, fallback) {
  const text = present(env, name);
  if (text === undefined) return fallback;
  if (!URL.canParse(text) || !protocols.includes(new URL(text).protocol)) {
    throw new StartupError(`${name} must be an absolute URL starting with ${protocols.join(" or ")}`);
  }
  return text;
}

/**
 * An app's public origin (`https://app.example.com`), or undefined when unset: an http(s) URL
 * with no path, query or fragment, returned without a trailing slash. The apps serve their routes
 * at the root, so `${origin}/callback` is the URL they build and the one to register; a path
 * here would name a callback they never send.
 */
export function originFrom(env, name) {
  const text = urlFrom(env, name, ["https:", "http:"]);
  if (text === undefined) return undefined;
  const url = new URL(text);
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new StartupError(
      `${name} must be an origin (scheme, host and port only): the app serves its routes at its root`,
    );
  }
  return url.origin;
}

/**
 * `API_KEYS="sk_test_1:acct_1,sk_test_2:acct_2"` → Map(api key → account id). Every entry must be
 * `key:account`, the key something a client can send as `Authorization: Bearer <key>`, once: an
 * entry without its account, with a second colon or a repeated key would otherwise be a key that
 * silently never authenticates, or an account silently replaced. The message never shows a key.
 */
export function apiKeysFrom(text, name = "API_KEYS") {
  const keys = new Map();
  const entries = (text ?? "").split(",").map((entry) => entry.trim());
  for (const [i, entry] of entries.entries()) {
    if (entry === "" && entries.length > 1) continue; // "a:1," or "a:1, ,b:2": a stray comma
    const [key, account, ...extra] = entry.split(":");
    const where = `${name} entry ${i + 1}`;
    if (!key || !account || extra.length > 0) throw new StartupError(`${where} must be "api key:account id"`);
    if (bearerToken(`Bearer ${key}`) !== key) {
      throw new StartupError(`${where}: an API key is letters, digits and - . _ ~ + / (then = padding)`);
    }
    if (keys.has(key)) throw new StartupError(`${where} repeats an API key given before it`);
    keys.set(key, account);
  }
  return keys;
}

/** A URL without its credentials, path or query, for a message: `redis://cache.internal:6379`. */
export function shown(url) {
  const { protocol, host } = new URL(url);
  return `${protocol}//${host}`;
}

/**
 * Runs `main` (read the environment, start, print the URL). A StartupError, or an error a
 * dependency gives with a code (EADDRINUSE, ENOTFOUND, a database's refusal…), is printed as one
 * line and the process exits 1. Anything else is a bug in the app: thrown as it is, with its stack.
 */
export async function runServer(main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof StartupError) && typeof error?.code !== "string") throw error;
    cannotStart(error.message || error.code);
  }
}

/**
 * `read()`'s value, for the Hono apps' default export as Bun or Deno starts it: a StartupError is
 * said as runServer says it on Node (one line, exit code 1) rather than as the runtime's stack trace.
 */
export function checkedAtStart(read) {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    cannotStart(error.message);
  }
}

function cannotStart(reason) {
  console.error(`Cannot start: ${reason}`);
  process.exit(1);
}

/** The variable's value, or undefined when it is unset. A blank value is refused, not ignored. */
function present(env, name) {
  const text = env[name];
  if (text === undefined) return undefined;
  if (text.trim() === "") throw new StartupError(`${name} is set but empty: unset it, or give it a value`);
  return text;
}

const quoted = (text) => JSON.stringify(text);
