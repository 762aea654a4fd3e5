// The app imports @interlock/core from this monorepo (a workspace link) and ../shared: the
// repository root is the project's root for Turbopack and for output tracing. In an app of your
// own, none of this is needed.
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** @type {import("next").NextConfig} */
export default {
  turbopack: { root },
  outputFileTracingRoot: root,
};
