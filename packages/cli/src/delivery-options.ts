/** The options `sign`, `send` and `verify` share: the delivery's scheme, secret and body. */

import type { WebhookScheme, WebhookSecret } from "@interlock/core";
import type { Args, OptionSpec } from "./args.js";
import { checkDeliveryOptions } from "./delivery.js";
import { usageError } from "./errors.js";
import { type BodySource, parseHeaders, readBody, readSecrets, type SecretSources } from "./inputs.js";
import type { CliIo } from "./io.js";
import { resolveScheme, SCHEME_NAMES } from "./schemes.js";

export const SCHEME_OPTION: OptionSpec = {
  type: "string",
  value: "NAME",
  description: `the provider's scheme: ${SCHEME_NAMES.join(", ")}`,
};

export const SECRET_OPTIONS: Record<string, OptionSpec> = {
  // A blank secret is `missing_secret` (exit 3), as a missing one is: `readSecrets` says so.
  secret: { type: "string", multiple: true, value: "SECRET", description: "the webhook secret", blankAllowed: true },
  "secret-hex": {
    type: "string",
    multiple: true,
    value: "HEX",
    description: "the secret's bytes in hex, used exactly as given: for a secret with whitespace at an end",
    blankAllowed: true,
  },
  "secret-env": {
    type: "string",
    multiple: true,
    value: "NAME",
    description: "read the secret from the environment variable NAME (keeps it out of shell history)",
  },
  "secret-hex-env": {
    type: "string",
    multiple: true,
    value: "NAME",
    description: "read the secret's bytes in hex from the environment variable NAME, as --secret-hex takes them",
  },
};

/** The secrets' options as given, for `readSecrets`. */
export const secretSources = (args: Args): SecretSources => ({
  literal: args.strings("secret"),
  hex: args.strings("secret-hex"),
  envNames: args.strings("secret-env"),
  hexEnvNames: args.strings("secret-hex-env"),
});

const BODY_OPTION: OptionSpec = {
  type: "string",
  value: "BODY",
  description: "the body: @file reads a file, - reads stdin, anything else is the body itself",
  // An empty body is a delivery like any other: some providers sign and send one.
  blankAllowed: true,
};

/** `--body`'s value, which every command that takes it requires: read with `readBody`. */
export function bodySpec(args: Args): string {
  const spec = args.string("body");
  if (spec === undefined) throw usageError("--body is required: @file, - (stdin) or the body itself");
  return spec;
}

/** The scheme, the secrets and the body: what `sign` and `send` sign a delivery with, and `verify` checks it with. */
export const SCHEME_SECRET_BODY_OPTIONS: Record<string, OptionSpec> = {
  scheme: SCHEME_OPTION,
  ...SECRET_OPTIONS,
  body: BODY_OPTION,
};

/** `-H "NAME: VALUE"`, repeatable, as curl takes it; what the header is for, in `description`. */
export const headerOption = (description: string): OptionSpec => ({
  type: "string",
  short: "H",
  multiple: true,
  value: '"NAME: VALUE"',
  description,
});

export const DELIVERY_OPTIONS: Record<string, OptionSpec> = {
  ...SCHEME_SECRET_BODY_OPTIONS,
  header: headerOption(
    "another header to send, such as x-github-event: push (content-type defaults to application/json; ASCII values)",
  ),
  id: {
    type: "string",
    value: "ID",
    description: "the delivery id, for schemes with an id header (default: a new one)",
  },
  timestamp: { type: "string", value: "SECONDS", description: "sign with this Unix time instead of now" },
  stale: { type: "boolean", description: "sign with a timestamp an hour old, which a receiver must refuse" },
};

export interface DeliveryInput {
  scheme: WebhookScheme;
  secrets: WebhookSecret[];
  body: BodySource;
  id: string | undefined;
  timestamp: number | undefined;
  stale: boolean;
  /** Headers to send besides the signature's: content-type first, then the `--header` ones. */
  headers: Array<[string, string]>;
}

/** Reads and checks the delivery options, cheapest first: a usage error never waits on stdin. */
export async function readDeliveryInput(args: Args, io: CliIo): Promise<DeliveryInput> {
  const scheme = resolveScheme(args.string("scheme"));
  const id = args.string("id");
  const timestamp = args.optionalInteger("timestamp", { min: 0, max: 99_999_999_999 });
  const stale = args.flag("stale");
  checkDeliveryOptions({
    scheme,
    stale,
    ...(id === undefined ? {} : { id }),
    ...(timestamp === undefined ? {} : { timestamp }),
  });
  const extra = parseHeaders(args.strings("header"));
  const headers: Array<[string, string]> = extra.some(([name]) => name === "content-type")
    ? extra
    : [["content-type", "application/json"], ...extra];
  const secrets = readSecrets(secretSources(args), io.env, scheme.name);
  const body = await readBody(bodySpec(args), io.stdin);
  return { scheme, secrets, body, id, timestamp, stale, headers };
}

/**
 * The headers to send: the extra ones, then the signature's. An extra header with a signature
 * header's name replaces it, so a deliberately wrong header can be tested.
 */
export function requestHeaders(
  extra: ReadonlyArray<readonly [string, string]>,
  signed: Readonly<Record<string, string>>,
): Array<[string, string]> {
  const replaced = new Set(extra.map(([name]) => name.toLowerCase()));
  const kept = Object.entries(signed).filter(([name]) => !replaced.has(name));
  return [...extra.map(([name, value]): [string, string] => [name, value]), ...kept];
}
