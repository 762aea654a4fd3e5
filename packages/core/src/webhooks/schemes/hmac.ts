/**
 * A configurable HMAC scheme: one signature header (optionally prefixed, optionally a list),
 * an optional timestamp header and id header, and a template for the signed content. It is
 * the generic scheme for partners' own webhooks, and the engine behind the GitHub, Slack,
 * Shopify, Zoom and Linear presets.
 */

import { decodeBase64, decodeHex, encodeBase64, encodeHex } from "../../encoding.js";
import { InterlockConfigError } from "../../errors.js";
import { assertOptionNames, optionNames } from "../../option-names.js";
import { choiceOption } from "../../store/validate.js";
import {
  base64Secret,
  type HashName,
  type KeyMaterial,
  keySpaceName,
  optionalHeader,
  parseTimestamp,
  refuse,
  requireHeader,
  type SignatureCandidate,
  type TimestampUnit,
  utf8Secret,
  uuidFrom,
  type WebhookScheme,
} from "../scheme.js";

/** How a custom HMAC scheme signs: every option has a default (see `generic`). */
export interface HmacSchemeOptions {
  /**
   * Scheme name in errors, events and de-duplication keys (`wh:<name>:<id>`): two providers need
   * two names, or their delivery ids share one key space on a store. 1 to 64 visible ASCII
   * characters other than `:`. Default "generic".
   */
  name?: string;
  /** Default "x-signature". */
  signatureHeader?: string;
  /** Header carrying the signed timestamp; `false` when none is sent. Default "x-timestamp". */
  timestampHeader?: string | false;
  /**
   * Header carrying the delivery id, if any. Signed only when the template has `{id}`; outside
   * it, the id is unsigned, and a `payloadId` that finds an id in the body outranks it.
   */
  idHeader?: string;
  /** Default "sha256". */
  hash?: HashName;
  /** Default "hex". */
  encoding?: "hex" | "base64";
  /** Text before the encoded signature, such as "sha256=" or "v0=". */
  prefix?: string;
  /** Splits one header into several signatures (sender-side rotation), e.g. "," or " ". */
  separator?: string;
  /**
   * The signed content, with `{id}`, `{ts}` and `{body}` placeholders.
   * Default "{ts}.{body}", or "{body}" when there is no timestamp header.
   */
  template?: string;
  /** Default "seconds". */
  timestampUnit?: TimestampUnit;
  /** How the configured secret text becomes key bytes. Default "utf8". */
  secretEncoding?: "utf8" | "base64" | "hex";
  /**
   * Decodes a verified body; JSON by default. For a body that is not what it decodes, throw a
   * `SyntaxError` (as `JSON.parse` does) or a `WebhookPayloadError`: `payload` throws the latter,
   * answered 400. Anything else it throws is taken for a bug, thrown as it is.
   */
  decodePayload?: (body: Uint8Array) => unknown;
  /**
   * Reads the event id from the decoded payload, which the signature covers: the delivery's id
   * when there is no id header, or when the `idHeader` is outside the template (unsigned) and
   * this finds an id, since a header anyone can rewrite must not name the delivery. An id header
   * in the template (`{id}`) is signed, and is the id.
   */
  payloadId?: (payload: unknown) => string | undefined;
}

type TemplatePart = string | "{id}" | "{ts}" | "{body}";

/** What a signature in another version starts with: `sha1=`, `v1=`. */
const OTHER_VERSION = /^[A-Za-z0-9_-]+=/;

function compileTemplate(template: string): TemplatePart[] {
  const parts = template.split(/(\{id\}|\{ts\}|\{body\})/).filter((p) => p !== "");
  if (parts.filter((p) => p === "{body}").length !== 1) {
    throw new InterlockConfigError(`template "${template}" must contain {body} exactly once`);
  }
  return parts;
}

function configError(message: string): never {
  throw new InterlockConfigError(message);
}

const HMAC_SCHEME_OPTION_NAMES = optionNames<HmacSchemeOptions>({
  name: true,
  signatureHeader: true,
  timestampHeader: true,
  idHeader: true,
  hash: true,
  encoding: true,
  prefix: true,
  separator: true,
  template: true,
  timestampUnit: true,
  secretEncoding: true,
  decodePayload: true,
  payloadId: true,
});

/**
 * Describes an HMAC scheme as data; it then verifies and signs like the presets. Throws
 * `InterlockConfigError` for a `name` that cannot name a key space (see `keySpaceName`), a
 * template without exactly one `{body}`, a `{ts}` or `{id}` without its header, or a timestamp
 * header left out of the template.
 */
export function hmacScheme(options: HmacSchemeOptions = {}): WebhookScheme {
  assertOptionNames("hmacScheme()", options, HMAC_SCHEME_OPTION_NAMES);
  const name = keySpaceName("name", options.name ?? "generic");
  const signatureHeader = (options.signatureHeader ?? "x-signature").toLowerCase();
  const timestampHeader =
    options.timestampHeader === false ? undefined : (options.timestampHeader ?? "x-timestamp").toLowerCase();
  const idHeader = options.idHeader?.toLowerCase();
  const encoding = choiceOption("encoding", options.encoding, ["hex", "base64"], "hex");
  const hash = choiceOption("hash", options.hash, ["sha256", "sha512"], "sha256");
  choiceOption("secretEncoding", options.secretEncoding, ["utf8", "base64", "hex"], "utf8");
  const prefix = options.prefix ?? "";
  const unit = choiceOption("timestampUnit", options.timestampUnit, ["seconds", "milliseconds"], "seconds");
  const template = compileTemplate(options.template ?? (timestampHeader ? "{ts}.{body}" : "{body}"));
  if (template.includes("{ts}") && !timestampHeader) configError("template uses {ts} but there is no timestamp header");
  if (template.includes("{id}") && !idHeader) configError("template uses {id} but there is no id header");
  if (timestampHeader && !template.includes("{ts}")) {
    // An unsigned timestamp protects nothing: an attacker replays the body with a fresh one.
    configError("the timestamp header must be part of the signed template ({ts})");
  }
  const decode = encoding === "hex" ? decodeHex : decodeBase64;
  const encode = encoding === "hex" ? encodeHex : encodeBase64;
  const idRequired = template.includes("{id}");

  /** Refuses a header that lists no signature with the prefix: only other versions, or nothing this scheme reads. */
  function refuseUnsigned(otherVersions: number): never {
    if (otherVersions > 0) {
      refuse(name, "unsupported_version", `${signatureHeader} holds only versions other than "${prefix}"`);
    }
    const what = prefix === "" ? "no signature" : `no signature starting with "${prefix}"`;
    refuse(name, "malformed_header", `${signatureHeader} holds ${what}`);
  }

  function parseSecret(secret: string | Uint8Array): KeyMaterial {
    if (typeof secret !== "string" || options.secretEncoding === undefined || options.secretEncoding === "utf8") {
      return utf8Secret(name, secret);
    }
    const raw = options.secretEncoding === "base64" ? base64Secret(name, secret) : decodeHex(secret);
    if (raw === undefined || raw.length === 0) refuse(name, "invalid_secret", "the secret does not decode");
    return { kind: "hmac", raw };
  }

  const scheme: WebhookScheme = {
    name,
    hash,
    idCovered: idRequired,
    timestamp: timestampHeader ? "header" : "none",
    timestampUnit: unit,
    multipleSignatures: options.separator !== undefined,
    parseSecret,
    parsesHeadersOnly: true,
    idHeaders: idHeader === undefined ? [] : [idHeader],
    parse(read) {
      const id = idHeader
        ? idRequired
          ? requireHeader(name, read, idHeader)
          : optionalHeader(name, read, idHeader)
        : undefined;
      let timestamp: string | undefined;
      let timestampMs: number | undefined;
      if (timestampHeader) {
        timestamp = requireHeader(name, read, timestampHeader);
        timestampMs = parseTimestamp(name, timestamp, unit);
      }
      const header = requireHeader(name, read, signatureHeader);
      const signatures: SignatureCandidate[] = [];
      let otherVersions = 0;
      // One signature is the common case: no split, no filter, no map, each trimmed once.
      for (const item of options.separator === undefined ? [header] : header.split(options.separator)) {
        const text = item.trim();
        if (text === "") continue;
        // An item without the prefix is no signature of this scheme: skipped, as the presets skip
        // what their providers' libraries skip, so one valid signature verifies whatever else is
        // listed. One that does not decode is a candidate that cannot match.
        if (text.startsWith(prefix)) signatures.push({ kind: "hmac", bytes: decode(text.slice(prefix.length).trim()) });
        else if (OTHER_VERSION.test(text)) otherVersions++;
      }
      if (signatures.length === 0) refuseUnsigned(otherVersions);
      return { id, timestamp, timestampMs, signatures };
    },
    signedContent({ id, timestamp }, body) {
      return template.map((part) =>
        part === "{body}" ? body : part === "{ts}" ? (timestamp as string) : part === "{id}" ? (id as string) : part,
      );
    },
    format({ id, timestamp }, signatures) {
      const headers: Record<string, string> = {
        [signatureHeader]: signatures.map((s) => prefix + encode(s.bytes)).join(options.separator ?? ""),
      };
      if (timestampHeader && timestamp !== undefined) headers[timestampHeader] = timestamp;
      if (idHeader && id !== undefined) headers[idHeader] = id;
      return headers;
    },
    newId: (random) => (idHeader ? uuidFrom(random) : undefined),
  };
  if (options.decodePayload) scheme.decodePayload = options.decodePayload;
  if (options.payloadId) scheme.payloadId = options.payloadId;
  return scheme;
}

/** The generic scheme with its defaults: `x-signature` (hex) over `{ts}.{body}`, `x-timestamp`. */
export const generic: WebhookScheme = hmacScheme();
