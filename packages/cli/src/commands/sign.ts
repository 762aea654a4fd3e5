/** `interlock sign`: the headers a provider would send with a body, or a ready `curl` command. */

import type { Args } from "../args.js";
import type { Command } from "../command.js";
import { curlCommand } from "../curl.js";
import { signDelivery } from "../delivery.js";
import { DELIVERY_OPTIONS, readDeliveryInput, requestHeaders } from "../delivery-options.js";
import { EXIT } from "../errors.js";
import { parseUrl } from "../http.js";
import { type CliIo, Printer } from "../io.js";

export const signCommand: Command = {
  name: "sign",
  summary: "print the signature headers for a body, or a ready curl command",
  usage: "--scheme NAME --secret SECRET --body BODY [options]",
  description: [
    "Signs the body the way the scheme's provider does (with @interlock/core's signWebhook) and",
    'prints the headers, one "name: value" per line, ready for curl -H @file. With --curl URL it',
    "prints a whole curl command instead, with content-type, any --header and the exact body bytes.",
    "A signature with a timestamp is good for the receiver's tolerance (5 minutes by default).",
  ].join("\n"),
  positionals: [],
  options: {
    ...DELIVERY_OPTIONS,
    curl: { type: "string", value: "URL", description: "print a curl command that POSTs the delivery to URL" },
  },
  examples: [
    "interlock sign --scheme stripe --secret-env STRIPE_WEBHOOK_SECRET --body @event.json > headers.txt",
    "interlock sign --scheme github --secret s3cret --body @push.json --curl http://localhost:3000/webhooks/github",
    'echo \'{"type":"invoice.paid"}\' | interlock sign --scheme svix --secret whsec_… --body - --json',
  ],
  async run(args: Args, io: CliIo): Promise<number> {
    const curlUrl = args.string("curl");
    const url = curlUrl === undefined ? undefined : parseUrl(curlUrl, "--curl");
    const input = await readDeliveryInput(args, io);
    const signed = await signDelivery({
      scheme: input.scheme,
      secret: input.secrets,
      body: input.body.bytes,
      stale: input.stale,
      ...(input.id === undefined ? {} : { id: input.id }),
      ...(input.timestamp === undefined ? {} : { timestamp: input.timestamp }),
    });
    const headers = Object.entries(signed.headers);
    const curl = url && curlCommand(url, requestHeaders(input.headers, signed.headers), input.body);
    const { body: _, ...record } = signed;
    new Printer(io.stdout, args.flag("json")).print(
      { type: "signature", ...record, curl },
      () => curl ?? headers.map(([name, value]) => `${name}: ${value}`).join("\n"),
    );
    return EXIT.ok;
  },
};
