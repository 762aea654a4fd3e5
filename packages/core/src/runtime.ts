import { crypto } from "#crypto";

/** Which crypto implementation this runtime resolved: "node" (synchronous) or "web" (Web Crypto). */
export const cryptoRuntime: "node" | "web" = crypto.name;
