/**
 * The built package on the other runtimes it promises: Bun, Deno and Cloudflare's workerd
 * (installed from npm as dev dependencies) import it, resolve Web Crypto through the `#crypto`
 * conditions, and verify the Standard Webhooks HMAC and Ed25519 vectors and a signed round trip.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// By path: the harness depends on core, so core cannot list it as a dependency.
import { createPackedApp, type PackedApp } from "../../test-harness/src/packed-app.js";
import { installedRuntime } from "../../test-harness/src/portability.js";
import { bundleFromApp, startWorkerd } from "../../test-harness/src/workerd.js";

/** Computes `result`: run as a module's top level (Bun, Deno) or in a worker's fetch handler. */
const PROBE = `
const headers = {
  "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
  "webhook-timestamp": "1614265330",
};
const body = '{"test": 2432232314}';
const now = () => 1614265330000;
const hmac = await core
  .createWebhookVerifier({ scheme: core.standardWebhooks, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now })
  .verify({ ...headers, "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" }, body);
const ed25519 = await core
  .createWebhookVerifier({ scheme: core.standardWebhooks, secret: "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=", now })
  .verify({ ...headers, "webhook-signature": "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==" }, body);
const signed = await core.signWebhook({ scheme: core.github, secret: "s", body, id: "d-1" });
const roundTrip = await core.createWebhookVerifier({ scheme: core.github, secret: "s" }).verify(signed.headers, body);
let refused;
try {
  await core.createWebhookVerifier({ scheme: core.github, secret: "s" }).verify(signed.headers, body + " ");
} catch (error) {
  refused = error.code;
}
const result = { runtime: core.cryptoRuntime, ids: [hmac.id, ed25519.id, roundTrip.id], refused };
`;

const SCRIPT = `import * as core from "@interlock/core";\n${PROBE}\nconsole.log(JSON.stringify(result));\n`;

const WORKER = `import * as core from "@interlock/core";
export default {
  async fetch() {
    ${PROBE}
    return Response.json(result);
  },
};
`;

const EXPECTED = {
  runtime: "web",
  ids: ["msg_p5jXN8AQM9LWM0D4loKWxJek", "msg_p5jXN8AQM9LWM0D4loKWxJek", "d-1"],
  refused: "no_matching_signature",
};

let app: PackedApp;
let workDir: string;

describe("other runtimes", () => {
  beforeAll(() => {
    // A throwaway app with the packed package installed, exactly the files users get
    // (a symlink would also expose tsconfig.json, whose `paths` Bun honours).
    app = createPackedApp(["core"]);
    workDir = app.dir;
    writeFileSync(join(workDir, "probe.mjs"), SCRIPT);
    writeFileSync(join(workDir, "probe-worker.mjs"), WORKER);
  });
  afterAll(() => app?.remove());

  const run = (command: string, args: string[]) =>
    JSON.parse(execFileSync(command, args, { cwd: workDir, encoding: "utf8", timeout: 60_000 }));

  it("Bun", () => {
    expect(run(installedRuntime("bun"), ["probe.mjs"])).toEqual(EXPECTED);
  });

  it("Deno", () => {
    expect(run(installedRuntime("deno"), ["run", "--quiet", "--allow-read", "--allow-env", "probe.mjs"])).toEqual(
      EXPECTED,
    );
  });

  // Bundled as Wrangler bundles a worker (the `workerd` condition), served without nodejs_compat.
  it("Cloudflare Workers (workerd)", async () => {
    await bundleFromApp(join(workDir, "probe-worker.mjs"), workDir, workDir);
    const worker = await startWorkerd(workDir);
    try {
      expect(await (await fetch(worker.url)).json()).toEqual(EXPECTED);
    } finally {
      await worker.close();
    }
  });
});
