/**
 * AWS Lambda behind API Gateway, without AWS: the proxy events API Gateway hands a function
 * (REST API: payload format 1.0; HTTP API: payload format 2.0), built from a request as a
 * client sent it, and the answer API Gateway makes of what the function returned. The shapes
 * are AWS's documented ones (`aws-lambda`'s types check them); the rules API Gateway applies:
 *
 * - 1.0 keeps each header name as the client cased it: every value in `multiValueHeaders`, the
 *   last one in `headers`.
 * - 2.0 lower-cases header names and joins a repeated header's values with commas; cookies go
 *   to `cookies`, not `headers`.
 * - A body of a binary media type comes base64-encoded (`isBase64Encoded: true`); any other
 *   body comes as text, decoded from UTF-8.
 */
import { MemoryStore } from "@interlock/core";
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from "aws-lambda";

/** `1.0`: a REST API (or an HTTP API set to 1.0); `2.0`: an HTTP API's default. */
export type PayloadVersion = "1.0" | "2.0";

export interface GatewayRequest {
  /** Default POST. */
  method?: string;
  /** The path after the stage, with any query string. */
  path: string;
  /** Header lines as the client sent them: any casing, a name repeated for several values. */
  headers: ReadonlyArray<readonly [string, string]>;
  body?: Uint8Array | string;
  /**
   * Whether API Gateway base64-encodes the body: it does for a binary media type (a REST API's
   * `binaryMediaTypes`; an HTTP API's for any type but text and JSON). Text bodies otherwise.
   */
  base64?: boolean;
}

const ACCOUNT = "123456789012";
const API_ID = "a1b2c3d4e5";
const DOMAIN = `${API_ID}.execute-api.eu-west-1.amazonaws.com`;
const SOURCE_IP = "198.51.100.7";
let requests = 0;

/** The event API Gateway sends the function for `request`. */
export function apiGatewayEvent(version: "1.0", request: GatewayRequest): APIGatewayProxyEvent;
export function apiGatewayEvent(version: "2.0", request: GatewayRequest): APIGatewayProxyEventV2;
export function apiGatewayEvent(
  version: PayloadVersion,
  request: GatewayRequest,
): APIGatewayProxyEvent | APIGatewayProxyEventV2 {
  return version === "1.0" ? restApiEvent(request) : httpApiEvent(request);
}

/** The body as API Gateway passes it: base64, or the text the bytes are in UTF-8. */
function eventBody(request: GatewayRequest): { body: string | null; isBase64Encoded: boolean } {
  const { body, base64 = false } = request;
  if (body === undefined) return { body: null, isBase64Encoded: false };
  const bytes = typeof body === "string" ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.length);
  if (base64) return { body: bytes.toString("base64"), isBase64Encoded: true };
  // Text only: bytes that are not UTF-8 reach a function base64-encoded or not at all.
  return { body: new TextDecoder("utf-8", { fatal: true }).decode(bytes), isBase64Encoded: false };
}

function splitPath(path: string): { pathname: string; query: string } {
  const at = path.indexOf("?");
  return at < 0 ? { pathname: path, query: "" } : { pathname: path.slice(0, at), query: path.slice(at + 1) };
}

function queryParameters(query: string): { single: Record<string, string>; multi: Record<string, string[]> } {
  const single: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (const [name, value] of new URLSearchParams(query)) {
    single[name] = value;
    multi[name] = [...(multi[name] ?? []), value];
  }
  return { single, multi };
}

function requestId(): string {
  return `c6af9ac6-7b61-11e6-9a41-${String(++requests).padStart(12, "0")}`;
}

function restApiEvent(request: GatewayRequest): APIGatewayProxyEvent {
  const method = request.method ?? "POST";
  const { pathname, query } = splitPath(request.path);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [name, value] of request.headers) {
    headers[name] = value;
    multiValueHeaders[name] = [...(multiValueHeaders[name] ?? []), value];
  }
  const { single, multi } = queryParameters(query);
  const now = Date.now();
  return {
    resource: "/{proxy+}",
    path: pathname,
    httpMethod: method,
    headers,
    multiValueHeaders,
    queryStringParameters: query ? single : null,
    multiValueQueryStringParameters: query ? multi : null,
    pathParameters: { proxy: pathname.slice(1) },
    stageVariables: null,
    requestContext: {
      accountId: ACCOUNT,
      apiId: API_ID,
      authorizer: null,
      domainName: DOMAIN,
      domainPrefix: API_ID,
      extendedRequestId: `${requestId()}=`,
      httpMethod: method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: SOURCE_IP,
        user: null,
        userAgent: headerValues(request, "user-agent").at(-1) ?? null,
        userArn: null,
      },
      path: `/prod${pathname}`,
      protocol: "HTTP/1.1",
      requestId: requestId(),
      requestTime: new Date(now).toUTCString(),
      requestTimeEpoch: now,
      resourceId: "abc123",
      resourcePath: "/{proxy+}",
      stage: "prod",
    },
    ...eventBody(request),
  };
}

function httpApiEvent(request: GatewayRequest): APIGatewayProxyEventV2 {
  const method = request.method ?? "POST";
  const { pathname, query } = splitPath(request.path);
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [name, value] of request.headers) {
    const lower = name.toLowerCase();
    if (lower === "cookie") cookies.push(...value.split(/;\s*/));
    else headers[lower] = lower in headers ? `${headers[lower]},${value}` : value;
  }
  const { single } = queryParameters(query);
  const now = Date.now();
  const { body, isBase64Encoded } = eventBody(request);
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: pathname,
    rawQueryString: query,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(query ? { queryStringParameters: single } : {}),
    requestContext: {
      accountId: ACCOUNT,
      apiId: API_ID,
      domainName: DOMAIN,
      domainPrefix: API_ID,
      http: {
        method,
        path: pathname,
        protocol: "HTTP/1.1",
        sourceIp: SOURCE_IP,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: requestId(),
      routeKey: "$default",
      stage: "$default",
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(body === null ? {} : { body }),
    isBase64Encoded,
  };
}

function headerValues(request: GatewayRequest, name: string): string[] {
  return request.headers.filter(([header]) => header.toLowerCase() === name).map(([, value]) => value);
}

/** The answer API Gateway sends the client, from what the function returned. */
export interface GatewayAnswer {
  status: number;
  /** Lower-case names; several values (and 2.0's `cookies` as `set-cookie`) joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
  json(): unknown;
}

/**
 * A function's result in either payload format: `aws-lambda`'s `APIGatewayProxyResult` (1.0) or
 * `APIGatewayProxyStructuredResultV2` (2.0), loosely typed as each library declares its own.
 */
export interface ProxyResult {
  statusCode?: number | undefined;
  headers?: Record<string, unknown> | undefined;
  multiValueHeaders?: Record<string, readonly unknown[]> | undefined;
  cookies?: readonly string[] | undefined;
  body?: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/** What API Gateway makes of a proxy result (either format's). */
export function gatewayAnswer(result: ProxyResult): GatewayAnswer {
  const headers: Record<string, string> = {};
  const add = (name: string, value: unknown) => {
    const lower = name.toLowerCase();
    headers[lower] = lower in headers ? `${headers[lower]}, ${String(value)}` : String(value);
  };
  for (const [name, value] of Object.entries(result.headers ?? {})) add(name, value);
  if ("multiValueHeaders" in result) {
    for (const [name, values] of Object.entries(result.multiValueHeaders ?? {}))
      for (const value of values) add(name, value);
  }
  if ("cookies" in result) for (const cookie of result.cookies ?? []) add("set-cookie", cookie);
  const body = Buffer.from(result.body ?? "", result.isBase64Encoded ? "base64" : "utf8");
  const text = body.toString("utf8");
  return { status: result.statusCode ?? 200, headers, body, text, json: () => JSON.parse(text) };
}

/** The `context` Lambda passes a handler, for one invocation. */
export function lambdaContext(): Context {
  const deadline = Date.now() + 30_000;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: "webhooks",
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:webhooks`,
    memoryLimitInMB: "512",
    awsRequestId: requestId(),
    logGroupName: "/aws/lambda/webhooks",
    logStreamName: "2026/11/30/[$LATEST]0123456789abcdef0123456789abcdef",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

// What the Lambda tests send: bodies a re-serialising or mis-decoding host would change.

/** Formatting a JSON parser would not keep: key order, spacing, escapes, a trailing newline. */
export const AWKWARD_JSON = '{"z":1,  "a":"caf\\u00e9 é",\n "n":1.10e1}\n';

/** Bytes that are not UTF-8: they reach a function only base64-encoded. */
export const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x61, 0x7b, 0x22, 0xc3]);

/** Headers every request carries: repeated ones (API Gateway's multi-value headers) among them. */
export const CLIENT_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ["Host", DOMAIN],
  ["User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"],
  ["Accept", "application/json"],
  ["Accept", "*/*"],
  ["X-Forwarded-For", "203.0.113.9"],
  ["X-Forwarded-For", SOURCE_IP],
];

/** A signed body as API Gateway may pass it: its content type, and whether it comes base64-encoded. */
export interface GatewayBody {
  name: string;
  body: string | Buffer;
  contentType: string;
  base64: boolean;
}

/** One body of each kind a webhook must be verified on byte for byte. */
export const GATEWAY_BODIES: readonly GatewayBody[] = [
  { name: "awkwardly formatted JSON", body: AWKWARD_JSON, contentType: "application/json", base64: false },
  { name: "non-ASCII text", body: "naïve — ✓ ½", contentType: "text/plain; charset=utf-8", base64: false },
  { name: "base64-encoded bytes", body: NOT_UTF8, contentType: "application/octet-stream", base64: true },
];

/** Header names cased as a client may send them (API Gateway 1.0 passes them on so): UPPER, then Title-Case. */
export function recased(headers: Record<string, string>): Array<[string, string]> {
  return Object.entries(headers).map(([name, value], index) => [
    index % 2 === 0 ? name.toUpperCase() : name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase()),
    value,
  ]);
}

/** The bytes with one letter or digit changed: still well-formed, only the signature can tell. */
export function tampered(body: Uint8Array): Buffer {
  const bytes = Buffer.from(body);
  const at = bytes.findIndex((byte) => /[0-9a-z]/i.test(String.fromCharCode(byte)));
  bytes[at] = (bytes[at] ?? 0) ^ 1;
  return bytes;
}

/**
 * A memory store whose `complete` answers late, like one across a network: an answer handed
 * back before the record is written (Lambda may freeze the instance right after) shows as a
 * retry that is not replayed.
 */
export class LateCompletingStore extends MemoryStore {
  constructor(private readonly delayMs = 50) {
    super();
  }
  override async complete(...args: Parameters<MemoryStore["complete"]>) {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return super.complete(...args);
  }
}
