// Types for config.mjs, for the TypeScript examples (NestJS) that import it.

/** The environment, or a dependency it names, does not let the server start: said in one line. */
export class StartupError extends Error {}

type Environment = Record<string, string | undefined>;

/** `PORT`: a whole number from 0 (any free port) to 65535, or `fallback` when unset. */
export function portFrom(env: Environment, name?: string, fallback?: number): number;

/** `HOST`: the address to listen on, loopback when unset. */
export function hostFrom(env: Environment, name?: string, fallback?: string): string;

/** The URL of a server on `host` and `port`, an IPv6 address in brackets: `http://[::1]:3000`. */
export function serverUrl(host: string, port: number): string;

/** An absolute URL whose scheme is one of `protocols`, or `fallback` when unset. */
export function urlFrom<T extends string | undefined>(
  env: Environment,
  name: string,
  protocols: string[],
  fallback?: T,
): string | T;

/** An app's public origin (an http(s) URL without path, query or fragment, no trailing slash), or undefined when unset. */
export function originFrom(env: Environment, name: string): string | undefined;

/** `API_KEYS="sk_test_1:acct_1,sk_test_2:acct_2"` → Map(api key → account id). */
export function apiKeysFrom(text: string | undefined, name?: string): Map<string, string>;

/** A URL without its credentials, path or query, for a message. */
export function shown(url: string): string;

/** Runs `main`; a StartupError, or an error with a code, is one line on stderr and exit code 1. */
export function runServer(main: () => Promise<void>): Promise<void>;

/** `read()`'s value; a StartupError is said as runServer says it (one line, exit code 1). */
export function checkedAtStart<T>(read: () => T): T;
