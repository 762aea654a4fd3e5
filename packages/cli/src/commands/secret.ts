/**
 * `interlock secret`: a new random secret in the form the scheme's provider shows it, which
 * core's key parsing for that scheme accepts. Only the form is the provider's: the bytes come
 * from the operating system's random generator, and a test secret is never a production one.
 */

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { assertOptionNames, optionNames, standardWebhooks, type WebhookScheme } from "@interlock/core";
import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { EXIT, usageError } from "../errors.js";
import { type CliIo, Printer } from "../io.js";
import { resolveScheme, SCHEME_NAMES } from "../schemes.js";

/** What kind of secret to make. */
export interface MakeSecretOptions {
  /** The scheme whose format the secret takes. */
  scheme: WebhookScheme;
  /** Standard Webhooks only: an Ed25519 key pair (`whsk_…` to sign, `whpk_…` to verify) instead of an HMAC secret. */
  ed25519?: boolean;
}

/** A new secret. */
export interface MadeSecret {
  /** The scheme's name. */
  scheme: string;
  /** The secret both sides share; with `ed25519`, the sender's signing key. */
  secret: string;
  /** With `ed25519`: the public key the receiver verifies with. */
  publicKey: string | undefined;
}

/** How each provider shows a secret. Any other scheme gets 32 random bytes in hex. */
const FORMATS: Record<string, () => string> = {
  // `whsec_` and base64 key bytes, which the scheme decodes (the spec allows 24 to 64 bytes).
  "standard-webhooks": () => `whsec_${randomBytes(32).toString("base64")}`,
  // Stripe keys the HMAC with the whole text; `stripe listen` prints `whsec_` and 64 hex digits.
  stripe: () => `whsec_${randomBytes(32).toString("hex")}`,
  // Slack signing secrets are 32 hex digits.
  slack: () => randomBytes(16).toString("hex"),
};

const MAKE_SECRET_OPTION_NAMES = optionNames<MakeSecretOptions>({ scheme: true, ed25519: true });

/** Makes a new secret for `scheme`. */
export function makeSecret(options: MakeSecretOptions): MadeSecret {
  assertOptionNames("makeSecret()", options, MAKE_SECRET_OPTION_NAMES);
  const { scheme } = options;
  if (options.ed25519) {
    // The Svix preset is Standard Webhooks under Svix's header names: the same keys.
    if (scheme.name !== standardWebhooks.name) {
      throw usageError(`--ed25519 is for standard-webhooks (svix) only; ${scheme.name} signs with HMAC`);
    }
    return { scheme: scheme.name, ...ed25519KeyPair() };
  }
  const secret = (FORMATS[scheme.name] ?? (() => randomBytes(32).toString("hex")))();
  return { scheme: scheme.name, secret, publicKey: undefined };
}

/** A Standard Webhooks Ed25519 pair: `whsk_` + base64(seed ‖ public key), `whpk_` + base64(public key). */
function ed25519KeyPair(): { secret: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d as string, "base64url");
  const publicKey = Buffer.from(jwk.x as string, "base64url");
  return {
    secret: `whsk_${Buffer.concat([seed, publicKey]).toString("base64")}`,
    publicKey: `whpk_${publicKey.toString("base64")}`,
  };
}

export const secretCommand: Command = {
  name: "secret",
  summary: "make a new secret in a scheme's format",
  usage: "--scheme NAME [options]",
  description: [
    "Prints a new random secret in the form the scheme's provider uses (whsec_… for Standard",
    "Webhooks and Stripe, hex otherwise), for the sender (sign, send) and the receiver (listen,",
    "your app) to share. With --ed25519 (standard-webhooks only) it prints an Ed25519 signing",
    "key (whsk_…, for the sender) and, on a second line, its public key (whpk_…, for the receiver).",
  ].join("\n"),
  positionals: [],
  options: {
    scheme: { type: "string", value: "NAME", description: `the scheme: ${SCHEME_NAMES.join(", ")}` },
    ed25519: { type: "boolean", description: "an Ed25519 key pair instead of an HMAC secret (standard-webhooks)" },
  },
  examples: [
    "interlock secret --scheme standard-webhooks",
    "export STRIPE_WEBHOOK_SECRET=$(interlock secret --scheme stripe)",
    "interlock secret --scheme svix --ed25519 --json",
  ],
  async run(args: Args, io: CliIo): Promise<number> {
    const made = makeSecret({ scheme: resolveScheme(args.string("scheme")), ed25519: args.flag("ed25519") });
    new Printer(io.stdout, args.flag("json")).print({ type: "secret", ...made }, () =>
      made.publicKey === undefined ? made.secret : `${made.secret}\n${made.publicKey}`,
    );
    return EXIT.ok;
  },
};
