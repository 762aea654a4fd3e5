// Boots the Express OAuth example against oidc-provider on 127.0.0.1 and drives the whole login
// over HTTP (the block in ./login-suite.ts, which the Hono example runs too).
import { describeBffLogin } from "./login-suite.js";
import { start } from "./server.mjs";

describeBffLogin("Express", start);
