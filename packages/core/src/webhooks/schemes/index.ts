export { github } from "./github.js";
export { generic, type HmacSchemeOptions, hmacScheme } from "./hmac.js";
export { type LinearSchemeOptions, linear, linearScheme } from "./linear.js";
export { paddle } from "./paddle.js";
export { shopify } from "./shopify.js";
export { slack } from "./slack.js";
export { standardWebhooks, svix } from "./standard-webhooks.js";
export { stripe } from "./stripe.js";
export { answerZoomUrlValidation, type ZoomUrlValidationResponse, zoom } from "./zoom.js";

import { github } from "./github.js";
import { generic } from "./hmac.js";
import { linear } from "./linear.js";
import { paddle } from "./paddle.js";
import { shopify } from "./shopify.js";
import { slack } from "./slack.js";
import { standardWebhooks, svix } from "./standard-webhooks.js";
import { stripe } from "./stripe.js";
import { zoom } from "./zoom.js";

/** Every preset by name, for configuration files and the CLI. `svix` is Standard Webhooks under `svix-*` names. */
export const schemes = {
  /** Standard Webhooks. */
  "standard-webhooks": standardWebhooks,
  /** Svix: Standard Webhooks, signing with Svix's `svix-*` header names. */
  svix,
  /** Stripe. */
  stripe,
  /** GitHub. */
  github,
  /** Slack. */
  slack,
  /** Shopify. */
  shopify,
  /** Paddle Billing. */
  paddle,
  /** Linear. */
  linear,
  /** Zoom. */
  zoom,
  /** `hmacScheme()` with its defaults. */
  generic,
} as const;

/** A preset's name in `schemes`: what the CLI's `--scheme` takes. */
export type SchemeName = keyof typeof schemes;
