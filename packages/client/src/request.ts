/**
 * One logical request, read once from fetch's `(input, init)`: where it goes, whether it may be
 * sent again, its `Idempotency-Key`, and the arguments for each attempt.
 */

import { InterlockConfigError, parseIdempotencyKey, untrustedCertificate } from "@interlock/core";
import { isReplayableBody } from "./policy.js";
import { type AttemptAbort, followIn } from "./signals.js";

/** What the client takes as fetch's first argument. */
export type FetchInput = string | URL | Request;

/** What `idempotencyKey.generate` is told about the request. */
export interface KeyRequest {
  /** As fetch sends it (see `normalizeMethod`). */
  method: string;
  /** The request's URL. */
  url: string;
}

export interface RequestSettings {
  /** Methods retried without a key (each as `normalizeMethod` gives it). */
  idempotentMethods: ReadonlySet<string>;
  /** The key header's name. */
  keyHeader: string;
  /** Methods the client adds a key to (as `normalizeMethod` gives them), when the caller did not; empty with `idempotencyKey: false`. */
  keyMethods: ReadonlySet<string>;
  /** A caller's key generator; undefined for `crypto.randomUUID()`. */
  generateKey: ((request: KeyRequest) => string) | undefined;
}

/** Why a request must not be sent twice. */
export type NotReplayable = "not_idempotent" | "body_not_replayable";

export interface PreparedRequest {
  origin: string;
  /** As fetch sends it (see `normalizeMethod`). */
  method: string;
  /** The `Idempotency-Key` the request carries: the caller's, or the one added here. */
  key: string | undefined;
  /** Undefined when the request may be sent again. */
  notReplayable: NotReplayable | undefined;
  /**
   * Whether the method is one of `retryMethods`: sending the request again is safe whatever an
   * attempt got. Otherwise only its key makes it so, as long as the server has not answered it.
   */
  idempotentMethod: boolean;
  /** The caller's signal (`init.signal`, else the Request's). */
  caller: AbortSignal | undefined;
  /** Whether `init` names a dispatcher of the caller's (undici's option): the client does not replace it. */
  ownDispatcher: boolean;
  /** fetch's arguments for one attempt, following its abort handle if it has one; `more` is true when another attempt may follow this one. */
  attempt(abort: AttemptAbort | undefined, more: boolean): [FetchInput, RequestInit | undefined];
  /**
   * Whether an attempt's `error` is fetch refusing the caller's own arguments, or a failure the
   * request meets alike on every attempt (see `failsAlike`), not the network failing.
   */
  refusedWith(error: unknown): boolean;
  /**
   * The call is over. A Request given as input whose attempts all went out as clones has its own
   * body cancelled, as fetch leaves the Request it sends used: not sent again by mistake, and the
   * copy of the body its clones kept is let go.
   */
  finish(): void;
}

export function prepareRequest(
  settings: RequestSettings,
  input: FetchInput,
  initGiven?: RequestInit | null,
): PreparedRequest {
  const request = isRequest(input) ? input : undefined;
  const url = request ? request.url : String(input);
  const origin = originOf(url);
  const init = readInit(url, initGiven);
  if (init !== undefined && isFormData(init.body)) return prepareRequest(settings, ...encodedOnce(input, init));
  const method = normalizeMethod(init?.method ?? request?.method ?? "GET");
  // fetch takes a body from init only when it is neither undefined nor null: else the Request's
  // (read once; a polyfill's Request may have no `body` at all, which is no body to refuse).
  const ownBody = init?.body != null;
  const requestBody = ownBody || request === undefined ? null : request.body;
  if ((method === "GET" || method === "HEAD") && (ownBody || requestBody != null)) refuseBody();
  // As fetch reads it: `signal: undefined` is not given (the Request's applies), `null` is none.
  const caller = (init?.signal === undefined ? request?.signal : init.signal) ?? undefined;

  // The headers each attempt sends, when not `init`'s as given: read into pairs from an iterable
  // (a generator, `map.entries()`), which the first attempt would use up, or with a key added.
  const givenHeaders = init?.headers;
  const listed = givenHeaders === undefined ? undefined : headerList(givenHeaders);
  let headers: HeadersInit | undefined = listed === givenHeaders ? undefined : listed;
  const sent = listed ?? request?.headers;
  let key: string | undefined;
  const given = readHeader(sent, settings.keyHeader);
  if (given === undefined && settings.keyMethods.has(method)) {
    key = newKey(settings, { method, url });
    headers = withHeader(sent, settings.keyHeader, key);
  } else if (given?.trim()) {
    // A blank one is no key (a server may take it for none and run every copy): the caller's
    // header is sent as it is, and the request is not sent twice on its account.
    key = given;
  }

  // A Request's body is a stream; it is sent again through clone(), which tees it.
  const cloneBody = !ownBody && request !== undefined && requestBody !== null;
  const idempotentMethod = settings.idempotentMethods.has(method);
  const idempotent = idempotentMethod || key !== undefined;
  const notReplayable: NotReplayable | undefined = !idempotent
    ? "not_idempotent"
    : ownBody && !isReplayableBody(init?.body)
      ? "body_not_replayable"
      : undefined;

  let clonesSent = false;
  return {
    origin,
    method,
    key,
    notReplayable,
    idempotentMethod,
    caller,
    ownDispatcher: (init as { dispatcher?: unknown } | undefined)?.dispatcher != null,
    attempt(abort, more) {
      // A body that can no longer be read goes to fetch as it is, to be refused with fetch's own error.
      const target = cloneBody && more && bodyUsable(request as Request) ? (request as Request).clone() : input;
      if (target !== input) clonesSent = true;
      if (abort === undefined && headers === undefined) return [target, init];
      // Object.assign, not a spread: V8 copies a caller's object many times faster this way.
      const attemptInit: RequestInit = Object.assign({}, init);
      if (abort !== undefined) followIn(attemptInit, abort);
      if (headers !== undefined) attemptInit.headers = headers;
      return [target, attemptInit];
    },
    // Judged with the headers as read: an iterable the first attempt used up is empty now.
    refusedWith: (error) =>
      failsAlike(error) ||
      !overHttp(url) ||
      refusedByFetch(
        request,
        input,
        listed === givenHeaders ? init : Object.assign({}, init, { headers: listed }),
        error,
      ),
    finish() {
      if (clonesSent && bodyUsable(request as Request)) discardBody(request as Request);
    },
  };
}

/** The methods fetch upper-cases, by their lower-case names; it sends every other method as given. */
const NORMALIZED_METHODS = new Map(
  ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"].map((m) => [m.toLowerCase(), m]),
);

/**
 * A method as fetch sends it (the Fetch standard's "normalize a method"): DELETE, GET, HEAD,
 * OPTIONS, POST and PUT upper-cased in any case they are written, every other method as given.
 * HTTP methods are case-sensitive: `patch` is not `PATCH`, and the client cannot know what it
 * does. Looked up by the lower-case name: `toUpperCase` would also take `poſt` (a long s) for POST.
 */
export function normalizeMethod(method: string): string {
  // Nearly every call names GET or POST as fetch sends it: no lower-cased copy made for those.
  if (method === "GET" || method === "POST") return method;
  return NORMALIZED_METHODS.get(method.toLowerCase()) ?? method;
}

/**
 * undici's words (Node's fetch, undici 6 to 8) for a redirect the request's own settings
 * refuse: `redirect: "error"`, more than 20 redirects, or one to a URL that is not HTTP(S).
 * Its "fetch failed" carries them as its cause's message; they carry no code to match.
 */
const REDIRECT_REFUSALS = new Set([
  "unexpected redirect",
  "redirect count exceeded",
  "URL scheme must be a HTTP(S) scheme",
]);

/**
 * Whether `error` is a failure every attempt of the request would meet again, so says nothing
 * of the origin's health: a redirect its settings refuse, or a TLS certificate the caller does
 * not trust (the caller's CA and host name decide that, not the server's load).
 */
function failsAlike(error: unknown): boolean {
  const cause = (error as { cause?: { message?: unknown } } | null)?.cause;
  return (typeof cause?.message === "string" && REDIRECT_REFUSALS.has(cause.message)) || untrustedCertificate(error);
}

/**
 * Whether `error`, what an attempt's fetch rejected with, is fetch refusing the caller's own
 * arguments (a header value it cannot send, a stream body without `duplex`, a Request whose
 * body was already read; a GET's or a HEAD's body never gets this far: see `refuseBody`): fetch
 * starts by building a Request from them and rejects with what that throws, so building one
 * again throws the same error, where a network error ("fetch failed") is another. Asked only
 * once an attempt has failed: building a Request costs every call something.
 */
function refusedByFetch(
  request: Request | undefined,
  input: FetchInput,
  init: RequestInit | undefined,
  error: unknown,
): boolean {
  const { name, message } = (error ?? {}) as Partial<Error>;
  if (typeof message !== "string") return false;
  // Without any signal: a Request follows it until collected.
  const unsignalled = Object.assign({}, init, { signal: null });
  const copy = request !== undefined && takesBody(request) ? request.clone() : undefined;
  let built: Request | undefined;
  try {
    built = copy ? new Request(copy, unsignalled) : rebuild(request, input, unsignalled);
    return false;
  } catch (thrown) {
    return (thrown as Error)?.name === name && (thrown as Error)?.message === message;
  } finally {
    // The copy's body is one branch of a tee: unread, it would keep every chunk the other reads.
    // Cancelled where it is, in the copy or in the Request built from it.
    if (copy) {
      discardBody(copy);
      if (built !== undefined) discardBody(built);
    }
  }
}

/**
 * Whether building a Request from `request` would take its body, which the next attempt sends:
 * a body that can still be read, of a Request of this realm (another's is not built from).
 */
function takesBody(request: Request): boolean {
  return ofThisRealm(request) && request.body !== null && bodyUsable(request);
}

/**
 * The Request fetch builds from the arguments, where that takes no body: from the input as it
 * is, a body that can no longer be read included (refused, as fetch refused it). Another realm's
 * Request (a polyfill's, another copy of undici's) is not this realm's to build from: its URL and
 * method are.
 */
function rebuild(request: Request | undefined, input: FetchInput, init: RequestInit): Request {
  if (request === undefined || ofThisRealm(request)) return new Request(input, init);
  return new Request(request.url, Object.assign({ method: request.method }, init));
}

/** Whether this realm's Request constructor takes `request` as a Request (another realm's it reads as a URL string). */
function ofThisRealm(request: Request): boolean {
  return request instanceof Request;
}

/** Whether a Request's body can still be sent: not read, nor locked by a reader (fetch refuses either). */
function bodyUsable(request: Request): boolean {
  return !request.bodyUsed && request.body?.locked !== true;
}

/** Cancels a Request's body that nobody will read (one a reader holds is that reader's). */
function discardBody(request: Request): void {
  const body = request.body;
  if (body !== null && !body.locked) body.cancel().catch(() => {});
}

/**
 * The members of `RequestInit`, as the Fetch standard and undici (`dispatcher`) read them: a
 * WebIDL dictionary, each member through [[Get]], inherited ones included.
 */
const INIT_MEMBERS = [
  "body",
  "cache",
  "credentials",
  "dispatcher",
  "duplex",
  "headers",
  "integrity",
  "keepalive",
  "method",
  "mode",
  "priority",
  "redirect",
  "referrer",
  "referrerPolicy",
  "signal",
  "window",
] as const;
const INIT_MEMBER_NAMES: ReadonlySet<string> = new Set(INIT_MEMBERS);

/**
 * `init` as fetch reads it: null is none, and members are read as a WebIDL dictionary's are.
 * An object literal holds them as its own properties and is taken as it is (the path every call
 * takes copies nothing more). Any other object (`Object.create(defaults)`, a class with getters)
 * is read once, member by member, into a plain one: the attempts copy their init from it with
 * Object.assign, which sees own properties alone, and would send a POST's inherited body as a
 * body-less GET. Throws fetch's TypeError for what fetch refuses before sending anything and the
 * client could not read: an init or `headers` that is not an object, a `signal` that is not one.
 */
function readInit(url: string, init: RequestInit | null | undefined): RequestInit | undefined {
  if (init == null) return undefined;
  if (!isObject(init)) return refuseInit(url, init);
  const prototype = Object.getPrototypeOf(init);
  const read = prototype === Object.prototype || prototype === null ? init : membersOf(init);
  const { headers, signal } = read;
  if ((headers !== undefined && !isObject(headers)) || (signal != null && !isSignal(signal))) {
    return refuseInit(url, read);
  }
  return read;
}

/**
 * An init object's members in a plain object: `RequestInit`'s, own or inherited, each read once;
 * then the other own ones as Object.assign copies them (a runtime's own: Workers' `cf`, Next.js's
 * `next`).
 */
function membersOf(init: object): RequestInit {
  const source = init as Record<string, unknown>;
  const read: Record<string, unknown> = {};
  for (const name of INIT_MEMBERS) {
    const value = source[name];
    if (value !== undefined) read[name] = value;
  }
  for (const name of Object.keys(source)) if (!INIT_MEMBER_NAMES.has(name)) read[name] = source[name];
  return read as RequestInit;
}

/**
 * Throws what fetch throws for `init`, by building a Request from it (on the URL: a caller's
 * Request would give up its body to one built from it), or a TypeError of the client's where
 * this platform's fetch would take what the client cannot read.
 */
function refuseInit(url: string, init: unknown): never {
  new Request(url, init as RequestInit);
  throw new TypeError("fetch's init must be an object, its headers an object and its signal an AbortSignal");
}

/**
 * Throws what fetch throws for a body on a GET or a HEAD (the Fetch standard's Request
 * constructor refuses it), in Node's words, before any attempt. Not left to fetch: Bun's Request
 * constructor takes one where its fetch refuses it, so the attempt's error would pass for a
 * network error, retried and charged to the origin's breaker; and Bun's fetch sends an empty one.
 */
function refuseBody(): never {
  throw new TypeError("Request with GET/HEAD method cannot have body.");
}

function isObject(value: unknown): value is object {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

/** An AbortSignal from any realm, as undici knows one: what the client listens to must have these. */
function isSignal(signal: unknown): signal is AbortSignal {
  const candidate = signal as Partial<AbortSignal>;
  return isObject(signal) && typeof candidate.aborted === "boolean" && typeof candidate.addEventListener === "function";
}

function isFormData(body: unknown): boolean {
  return typeof FormData === "function" && body instanceof FormData;
}

/**
 * A FormData body encoded once, as a Request, and `init` without what that Request now holds.
 * fetch encodes a FormData on every call, under a new random multipart boundary: each attempt
 * would send other bytes, and a server that fingerprints the body (an idempotency layer's 422
 * for a key reused with another payload) would take the retry for another request. A Request's
 * body is sent again through clone(), the same bytes each time.
 */
function encodedOnce(input: FetchInput, init: RequestInit): [Request, RequestInit] {
  return [new Request(input, init), Object.assign({}, init, { body: undefined, headers: undefined })];
}

/**
 * A Headers object from any realm (a polyfill's, another copy of undici's), known by its WebIDL
 * tag: a `Map` has `get` too, but compares names as written. (`get` first: a record has none,
 * and is told apart without building the tag's string, on every call that carries headers.)
 */
function isHeaders(headers: HeadersInit): headers is Headers {
  return (
    typeof (headers as Headers).get === "function" && Object.prototype.toString.call(headers) === "[object Headers]"
  );
}

/**
 * `headers` as fetch takes them, a record, pairs or a Headers object, each as it is; any other
 * iterable of pairs (a `Map`, a generator, `map.entries()`) read into pairs, once.
 */
function headerList(headers: HeadersInit): HeadersInit {
  if (Array.isArray(headers) || isHeaders(headers)) return headers;
  const iterable = headers as Partial<Iterable<Iterable<string>>>;
  if (typeof iterable[Symbol.iterator] !== "function") return headers;
  return Array.from(iterable as Iterable<Iterable<string>>, (pair) => Array.from(pair)) as Array<[string, string]>;
}

/** One header of a `HeadersInit` in any of its forms (a Headers, pairs, a record), names compared as HTTP does. */
function readHeader(headers: HeadersInit | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  if (isHeaders(headers)) return headers.get(name) ?? undefined;
  const lower = name.toLowerCase();
  const values: string[] = [];
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers as Record<string, string>);
  for (const [key, value] of pairs as Array<[string, string]>)
    if (key.toLowerCase() === lower) values.push(String(value));
  return values.length === 0 ? undefined : values.join(", ");
}

/**
 * The headers with one more, in the form they came in: fetch copies a record or pairs faster
 * than a Headers object (which it iterates sorted), and a Headers object stays one.
 */
function withHeader(headers: HeadersInit | undefined, name: string, value: string): HeadersInit {
  if (headers === undefined) return { [name]: value };
  if (isHeaders(headers)) {
    const copy = new Headers(headers);
    copy.set(name, value);
    return copy;
  }
  if (Array.isArray(headers)) return [...headers, [name, value]];
  const copy: Record<string, string> = Object.assign({}, headers as Record<string, string>);
  copy[name] = value;
  return copy;
}

function newKey(settings: RequestSettings, request: KeyRequest): string {
  if (settings.generateKey === undefined) return globalThis.crypto.randomUUID();
  const key: unknown = settings.generateKey(request);
  if (typeof key !== "string" || parseIdempotencyKey(key) === undefined) {
    throw new InterlockConfigError(
      "idempotencyKey.generate must return an Idempotency-Key: 1 to 255 printable ASCII characters, not all spaces, bare (without spaces) or as a quoted string",
    );
  }
  return key;
}

/** A Request from any realm (a polyfill's, another copy of undici's), not only this one's. */
function isRequest(input: FetchInput): input is Request {
  return typeof input === "object" && !(input instanceof URL) && typeof (input as Request).clone === "function";
}

/** Origins by the URL text up to its path (`https://api.example.com:8443`), for the URLs a client calls again and again. */
const origins = new Map<string, string>();
const MAX_CACHED_ORIGINS = 256;

/**
 * Whether the origin of an authority (`prefix` from `from`) may be cached by its text: not with
 * credentials (never kept), nor when it is empty once the URL parser drops tabs and line breaks.
 * The parser then reads the host from what follows (`https:///api.example.com`), so that text
 * would stand for every host, and one origin's breaker and budget would answer for another's.
 * A loop, not a regular expression: it runs on every call, and stops at a host's first character.
 */
function cacheable(prefix: string, from: number): boolean {
  if (prefix.includes("@")) return false;
  for (let i = from; i < prefix.length; i++) {
    const code = prefix.charCodeAt(i);
    if (code !== 0x09 && code !== 0x0a && code !== 0x0d) return true;
  }
  return false;
}

/**
 * The URL's origin, relative URLs resolved against the page where there is one; fetch's
 * TypeError otherwise. An absolute http(s) URL's origin is read once per scheme and authority,
 * not parsed on every call.
 */
export function originOf(url: string): string {
  // A client often calls one URL again and again: its origin, from the last call, at the cost of comparing two texts.
  if (url === lastUrl) return lastOrigin;
  const authority = url.startsWith("https://") ? 8 : url.startsWith("http://") ? 7 : -1;
  if (authority < 0) return parseOrigin(url);
  const prefix = url.slice(0, authorityEnd(url, authority));
  if (!cacheable(prefix, authority)) return parseOrigin(url);
  let origin = origins.get(prefix);
  if (origin === undefined) {
    origin = parseOrigin(url);
    if (origins.size >= MAX_CACHED_ORIGINS) origins.clear();
    origins.set(prefix, origin);
  }
  lastUrl = url;
  lastOrigin = origin;
  return origin;
}

/** The last URL whose origin was read through the cache, and that origin. */
let lastUrl: string | undefined;
let lastOrigin = "";

const AUTHORITY_ENDS = ["/", "?", "#", "\\"];

/** Where the authority that starts at `from` ends: at the first `/`, `?`, `#` or `\`, else the URL's end. */
function authorityEnd(url: string, from: number): number {
  let end = url.length;
  for (let i = 0; i < AUTHORITY_ENDS.length; i++) {
    const at = url.indexOf(AUTHORITY_ENDS[i] as string, from);
    if (at >= 0 && at < end) end = at;
  }
  return end;
}

/** The page's URL, which a relative URL is resolved against, where there is one. */
const pageUrl = () => (globalThis as { location?: { href?: string } }).location?.href;

function parseOrigin(url: string): string {
  return new URL(url, pageUrl()).origin;
}

/**
 * Whether fetch sends `url` over the network. Any other scheme (`data:`, `blob:`, `file:`,
 * `ftp:`) is answered, or refused, by fetch itself, alike on every attempt: a failure there
 * says nothing of a server's health and is not retried. Asked only once an attempt has failed.
 */
function overHttp(url: string): boolean {
  try {
    const { protocol } = new URL(url, pageUrl());
    return protocol === "http:" || protocol === "https:";
  } catch {
    return true; // a URL fetch cannot parse: refusedByFetch's to judge
  }
}
