/**
 * The built package, as users get it: the `exports` map loads in ESM and CJS, and the
 * `#crypto` conditions pick Node's crypto on Node and Web Crypto for Workers, Deno and Bun.
 * Runs against dist/ (the root `test` script builds first).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

// Verifies a Standard Webhooks vector through the package's public entry point.
const PROBE = `
const core = MODULE;
const verifier = core.createWebhookVerifier({
  scheme: core.standardWebhooks,
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  now: () => 1614265330000,
});
const headers = {
  "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
  "webhook-timestamp": "1614265330",
  "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};
verifier.verify(headers, '{"test": 2432232314}').then(
  (r) => console.log(JSON.stringify({ runtime: core.cryptoRuntime, id: r.id })),
  (e) => { console.error(e); process.exit(1); },
);`;

function probe(kind: "esm" | "cjs", conditions: string[] = []): { runtime: string; id: string } {
  const module = kind === "esm" ? 'await import("@interlock/core")' : 'require("@interlock/core")';
  const code =
    kind === "esm" ? `(async () => { ${PROBE.replace("MODULE", module)} })()` : PROBE.replace("MODULE", module);
  const args = [
    ...conditions.map((c) => `--conditions=${c}`),
    kind === "esm" ? "--input-type=module" : "--input-type=commonjs",
    "-e",
    code,
  ];
  return JSON.parse(execFileSync(process.execPath, args, { cwd: packageDir, encoding: "utf8" }));
}

describe("the built package", () => {
  beforeAll(() => {
    if (!existsSync(`${packageDir}/dist/index.js`)) {
      throw new Error("packages/core/dist is missing: run `pnpm build` (the root `pnpm test` does) first");
    }
  });

  for (const kind of ["esm", "cjs"] as const) {
    it(`${kind}: Node resolves Node's crypto`, () => {
      expect(probe(kind)).toEqual({ runtime: "node", id: "msg_p5jXN8AQM9LWM0D4loKWxJek" });
    });

    for (const condition of ["workerd", "worker", "browser", "deno", "bun"]) {
      it(`${kind}: the "${condition}" condition resolves Web Crypto`, () => {
        expect(probe(kind, [condition])).toEqual({ runtime: "web", id: "msg_p5jXN8AQM9LWM0D4loKWxJek" });
      });
    }
  }
});
