/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. GitHub signs no
 * timestamp, and its delivery id (`X-GitHub-Delivery`) is not covered by the signature.
 */

import { hmacScheme } from "./hmac.js";

/** GitHub: `X-Hub-Signature-256` over the body; `X-GitHub-Delivery` is the (unsigned) id. */
export const github = hmacScheme({
  name: "github",
  signatureHeader: "x-hub-signature-256",
  prefix: "sha256=",
  timestampHeader: false,
  idHeader: "x-github-delivery",
  template: "{body}",
});
