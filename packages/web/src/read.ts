/**
 * The handler's way to read its body: decoded as the wrapper decoded it for the fingerprint
 * (core's `decodeContent`), within the same limit (the payload the wrapper read, when it did, not
 * read again), and a body that is the client's mistake thrown as a `RequestBodyError`, which
 * both wrappers answer as problem+json.
 */
import {
  assertOptionNames,
  BodyError,
  bodyLimitOption,
  brandErrorClass,
  DEFAULT_REQUEST_BODY_LIMIT,
  InterlockError,
  optionNames,
  utf8,
} from "@interlock/core";
import { handedLimit, readHandlerPayload } from "./body.js";

/**
 * Why a request body is the client's mistake: past the limit (`body_too_large`, 413), cut off by
 * a client that went away (`body_incomplete`, 400), sent with a content coding not decoded
 * (`unsupported_content_encoding`, 415) or with data that is not what its coding says
 * (`body_not_decodable`, 400), all as core's `BodyError` names them; or, for `readJson`, empty or
 * not JSON (`body_not_json`, 400).
 */
export type RequestBodyErrorCode =
  | "body_too_large"
  | "body_incomplete"
  | "unsupported_content_encoding"
  | "body_not_decodable"
  | "body_not_json";

const REQUEST_BODY_ERRORS: Record<RequestBodyErrorCode, { status: number; title: string }> = {
  body_too_large: { status: 413, title: "The request body is too large" },
  body_incomplete: { status: 400, title: "The request body ended before it was complete" },
  unsupported_content_encoding: { status: 415, title: "The request body's content coding is not supported" },
  body_not_decodable: { status: 400, title: "The request body is not valid data of its content coding" },
  body_not_json: { status: 400, title: "The request body is not valid JSON" },
};

/**
 * A request body that is the client's mistake, thrown by `readJson` and `readBytes`: `code`
 * says why, `status` is the answer (400, 413 or 415), and `toProblem()` its problem+json body.
 * Thrown out of a handler that `withIdempotency` or `withWebhook` wraps, it is answered as
 * problem+json with that status, and the key (or delivery) released: the corrected retry runs.
 * Catch it in the handler to answer it your own way.
 */
export class RequestBodyError extends InterlockError {
  static {
    brandErrorClass(RequestBodyError, "@interlock/web:RequestBodyError");
  }
  /** The class name, the same in every copy of the package: match on it (or `code`) across copies. */
  override readonly name = "RequestBodyError";
  /** Why the body cannot be used. */
  readonly code: RequestBodyErrorCode;
  /** 413 for `body_too_large`, 415 for `unsupported_content_encoding`, 400 for the rest. */
  readonly status: number;
  readonly title: string;
  /** For `unsupported_content_encoding`: the codings that are decoded, answered as `Accept-Encoding`. */
  readonly acceptEncoding: string | undefined;

  constructor(code: RequestBodyErrorCode, message: string, options?: ErrorOptions & { acceptEncoding?: string }) {
    super(message, options);
    this.code = code;
    this.status = REQUEST_BODY_ERRORS[code].status;
    this.title = REQUEST_BODY_ERRORS[code].title;
    this.acceptEncoding = options?.acceptEncoding;
  }
}

/** What `readJson` and `readBytes` take. */
export interface ReadBodyOptions {
  /**
   * The largest body read, in bytes, sent and decoded alike: a larger one is refused 413
   * `body_too_large`, read no further. Default: for the request a wrapper handed the handler,
   * the wrapper's limit (`withIdempotency`'s `bodyLimit`, `withWebhook`'s `maxBodyBytes`); for
   * any other, `DEFAULT_REQUEST_BODY_LIMIT` (1 MiB). Given, it holds for a body the wrapper
   * read too.
   */
  bodyLimit?: number;
}

const READ_OPTION_NAMES = optionNames<ReadBodyOptions>({ bodyLimit: true });

/**
 * The request's body as bytes, decoded as `withIdempotency` decoded it for the fingerprint: a
 * `Content-Encoding` of gzip, x-gzip, deflate, or br where the runtime's `DecompressionStream`
 * has brotli (core's `decodeContent`), within `bodyLimit` sent and decoded. On the request a
 * wrapper handed the handler, the payload the wrapper already read and decoded, not read nor
 * decoded again (`withWebhook`'s: the verified bytes, a copy of `event.body`). Reads the body (as
 * `request.arrayBuffer()` does; the request's own body then counts as used, `bodyUsed`): a body is
 * read once. Any `Request` (a `NextRequest` too), on any runtime. Throws a `RequestBodyError` for
 * the client's mistakes (413, 415, 400); a `TypeError` for a body already read (the app's bug,
 * not the client's).
 */
export function readBytes(request: Request, options?: ReadBodyOptions): Promise<Uint8Array> {
  return payloadOf("readBytes()", request, options);
}

/** `readBytes`, its options' mistakes named as `what`'s. */
async function payloadOf(what: string, request: Request, options: ReadBodyOptions | undefined): Promise<Uint8Array> {
  assertOptionNames(what, options, READ_OPTION_NAMES);
  const limit = bodyLimitOption(options?.bodyLimit, handedLimit(request) ?? DEFAULT_REQUEST_BODY_LIMIT);
  const payload = await readHandlerPayload(request, limit);
  if (!(payload instanceof BodyError)) return payload;
  if (payload.code === "body_not_raw") {
    throw new TypeError(
      "the request body was already read (request.json(), .text(), a reader, or an earlier readJson() or " +
        "readBytes()): a body can be read once",
    );
  }
  throw new RequestBodyError(payload.code, payload.message, {
    ...(payload.cause !== undefined && { cause: payload.cause }),
    ...(payload.acceptEncoding !== undefined && { acceptEncoding: payload.acceptEncoding }),
  });
}

/**
 * The request's body parsed as JSON, read as `readBytes` reads it (decoded, within
 * `bodyLimit`), as UTF-8 (a byte-order mark dropped, as `request.json()` does). Throws a
 * `RequestBodyError`: 400 `body_not_json` for a body that is empty or not JSON, and as
 * `readBytes` for the rest. The `Content-Type` is not checked, as `request.json()` does not.
 * `T` is what you say the JSON is, unchecked: validate it as you would `request.json()`'s.
 */
export async function readJson<T = unknown>(request: Request, options?: ReadBodyOptions): Promise<T> {
  const text = utf8.decode(await payloadOf("readJson()", request, options));
  if (text === "") throw new RequestBodyError("body_not_json", "the request body is empty: JSON was expected");
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    // The parser's message quotes the body: kept as the cause, out of the answer.
    throw new RequestBodyError("body_not_json", "the request body is not valid JSON", { cause: error });
  }
}
