// Boots the NestJS app: `npm run build && npm start` (PORT, HOST, STRIPE_WEBHOOK_SECRET, API_KEYS).
import "reflect-metadata";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { memoryStore } from "@interlock/core";
import type { LoggerService, LogLevel } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import type { NestExpressApplication } from "@nestjs/platform-express";
import { apiKeysFrom, hostFrom, portFrom, runServer, StartupError, serverUrl } from "../../shared/config.mjs";
import { AppModule } from "./app.module.js";
import { ProblemFilter } from "./problem.js";
import { memoryDb, type Settings } from "./settings.js";

export interface StartOptions extends Omit<Settings, "store" | "db">, Partial<Pick<Settings, "store" | "db">> {
  port?: number;
  host?: string;
  /** Nest's logger: its default when unset, `false` for none. */
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Starts the app and resolves once it listens. `port: 0` (the default without PORT) takes a
 * free port; the URL says which.
 */
export async function start({
  port = portFrom(process.env),
  host = hostFrom(process.env),
  logger,
  store = memoryStore(),
  db = memoryDb(),
  ...settings
}: StartOptions) {
  // rawBody: true keeps the bytes of every body Nest parses (req.rawBody): without them the
  // signature cannot be checked, and webhook() answers 500 body_not_raw saying so.
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot({ ...settings, store, db }), {
    rawBody: true,
    ...(logger === undefined ? {} : { logger }),
  });
  app.disable("x-powered-by");
  // Nest's JSON parser, with `strict: false`: JSON `null` or a number reaches jsonObjectBody,
  // which refuses it in this API's words (strict, the parser calls it "not valid JSON").
  app.useBodyParser("json", { strict: false });
  app.useGlobalFilters(new ProblemFilter());
  await app.listen(port, host);
  const url = serverUrl(host, (app.getHttpServer().address() as AddressInfo).port);
  return { url, close: () => app.close() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runServer(async () => {
    const { STRIPE_WEBHOOK_SECRET, API_KEYS } = process.env;
    if (!STRIPE_WEBHOOK_SECRET || !API_KEYS) {
      throw new StartupError('Set STRIPE_WEBHOOK_SECRET (whsec_…) and API_KEYS ("sk_test_1:acct_1,…"); see README.md.');
    }
    const { url, close } = await start({ stripeSecret: STRIPE_WEBHOOK_SECRET, apiKeys: apiKeysFrom(API_KEYS) });
    console.log(`Stripe webhooks on ${url}/webhooks/stripe, payments on ${url}/payments (memory store)`);
    process.once("SIGINT", close).once("SIGTERM", close);
  });
}
