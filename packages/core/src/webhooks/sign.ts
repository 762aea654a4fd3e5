/**
 * Signing: the exact headers a provider sends, for senders, tests and the CLI. The same
 * scheme code that verifies builds the signed content and formats the headers.
 */

import { crypto } from "#crypto";
import type { ContentParts } from "../crypto/port.js";
import { InterlockConfigError } from "../errors.js";
import { assertOptionNames, optionNames } from "../option-names.js";
import { type RawBody, rawBytes } from "./body.js";
import { importSigningKey, type SigningKey, schemeOption, secretList, type WebhookSecret } from "./keys.js";
import { type DeliveryFields, formatTimestamp, type MadeSignature, type WebhookScheme } from "./scheme.js";

/** What to sign, and with what. */
export interface SignWebhookOptions {
  /** The scheme whose headers to produce. */
  scheme: WebhookScheme;
  /** One secret, or several to sign with each (schemes that carry several signatures). */
  secret: WebhookSecret | readonly WebhookSecret[];
  /** The body to send, exactly: bytes or text. */
  body: RawBody;
  /** The delivery id; a new one in the provider's style when omitted. */
  id?: string;
  /** Seconds since the epoch. Default: now. */
  timestamp?: number;
}

/** A signed delivery: send `body` with `headers`. */
export interface SignedWebhook {
  /** Header names in lower case, values exactly as the provider formats them. */
  headers: Record<string, string>;
  /** The body's bytes, as signed. */
  body: Uint8Array;
  /** The delivery id put in the headers; undefined for schemes whose id is in the body. */
  id: string | undefined;
}

interface Plan {
  scheme: WebhookScheme;
  keys: SigningKey[];
  fields: DeliveryFields;
  body: Uint8Array;
  content: ContentParts;
}

const SIGN_OPTION_NAMES = optionNames<SignWebhookOptions>({
  scheme: true,
  secret: true,
  body: true,
  id: true,
  timestamp: true,
});

/**
 * The id to sign, as given. A blank one is refused: the verifier refuses an empty id header as
 * missing, so the delivery would be signed for nobody (the CLI refuses a blank --id alike).
 */
function idOption(id: string | undefined): string | undefined {
  if (id !== undefined && (typeof id !== "string" || id.trim() === "")) {
    throw new InterlockConfigError("id needs a value: a delivery id cannot be blank");
  }
  return id;
}

/**
 * The timestamp header's text, in the scheme's unit. Refused unless the verifier reads it back
 * exactly: plain digits of a safe integer. `String` writes 1e21 as "1e+21", and past 2^53 the
 * digits are no longer the number given.
 */
function timestampText(scheme: WebhookScheme, timestamp: number): string {
  const unit = scheme.timestampUnit ?? "seconds";
  const text = formatTimestamp(timestamp * 1000, unit);
  if (!Number.isSafeInteger(Number(text))) {
    const max = unit === "seconds" ? Number.MAX_SAFE_INTEGER : Math.floor(Number.MAX_SAFE_INTEGER / 1000);
    throw new InterlockConfigError(
      `timestamp must be seconds since the epoch, at most ${max} for the ${scheme.name} scheme, not ${timestamp}`,
    );
  }
  return text;
}

function plan(options: SignWebhookOptions, what: string): Plan {
  assertOptionNames(what, options, SIGN_OPTION_NAMES);
  const scheme = schemeOption(options.scheme);
  const secrets = secretList(options.secret);
  if (secrets.length > 1 && !scheme.multipleSignatures) {
    throw new InterlockConfigError(`the ${scheme.name} scheme carries one signature: pass one secret`);
  }
  const timestamp = options.timestamp ?? Date.now() / 1000;
  if (!Number.isFinite(timestamp) || timestamp < 0) {
    throw new InterlockConfigError("timestamp must be seconds since the epoch");
  }
  const body = rawBytes(options.body, scheme.name);
  const fields: DeliveryFields = {
    id: idOption(options.id) ?? scheme.newId(crypto.randomBytes(24)),
    timestamp: scheme.timestamp === "header" ? timestampText(scheme, timestamp) : undefined,
  };
  const keys = secrets.map((secret) => importSigningKey(scheme, secret));
  return { scheme, keys, fields, body, content: scheme.signedContent(fields, body) };
}

function signed(p: Plan, signatures: MadeSignature[]): SignedWebhook {
  return { headers: p.scheme.format(p.fields, signatures), body: p.body, id: p.fields.id };
}

/** Signs a delivery: the headers to send with `body`. */
export async function signWebhook(options: SignWebhookOptions): Promise<SignedWebhook> {
  const p = plan(options, "signWebhook()");
  const signatures = await Promise.all(
    p.keys.map(
      async ({ kind, key }): Promise<MadeSignature> => ({
        kind,
        bytes: kind === "hmac" ? await crypto.hmac(key, p.content) : await crypto.ed25519Sign(key, p.content),
      }),
    ),
  );
  return signed(p, signatures);
}

/** Signs synchronously (HMAC schemes on Node); throws `InterlockConfigError` elsewhere. */
export function signWebhookSync(options: SignWebhookOptions): SignedWebhook {
  const p = plan(options, "signWebhookSync()");
  const { hmacSync } = crypto;
  if (!hmacSync) throw new InterlockConfigError(`signWebhookSync needs synchronous crypto; use signWebhook()`);
  const signatures = p.keys.map(({ kind, key }): MadeSignature => {
    if (kind !== "hmac") throw new InterlockConfigError("Ed25519 signing is asynchronous: use signWebhook()");
    return { kind, bytes: hmacSync(key, p.content) };
  });
  return signed(p, signatures);
}
