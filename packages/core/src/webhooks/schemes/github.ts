/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. GitHub signs no
 * timestamp, and its delivery id (`X-GitHub-Delivery`) is not covered by the signature. A
 * webhook set to content type `application/x-www-form-urlencoded` sends `payload=<JSON>`,
 * signed as sent; the payload decoder takes both forms.
 */

import { decodeJsonOrForm } from "./form-body.js";
import { hmacScheme } from "./hmac.js";

/** GitHub: `X-Hub-Signature-256` over the body; `X-GitHub-Delivery` is the (unsigned) id. */
export const github = hmacScheme({
  name: "github",
  signatureHeader: "x-hub-signature-256",
  prefix: "sha256=",
  timestampHeader: false,
  idHeader: "x-github-delivery",
  template: "{body}",
  decodePayload: (body) => decodeJsonOrForm(body, "payload"),
});
