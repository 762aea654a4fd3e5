/**
 * The built package on the other runtimes it promises: Bun and Deno (installed from npm as
 * dev dependencies) import it, resolve Web Crypto through the `#crypto` conditions, and verify
 * the Standard Webhooks HMAC and Ed25519 vectors and a signed round trip.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const binDir = fileURLToPath(new URL("../../../node_modules/.bin/", import.meta.url));

const PROBE = `
import * as core from "@interlock/core";
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
console.log(JSON.stringify({ runtime: core.cryptoRuntime, ids: [hmac.id, ed25519.id, roundTrip.id], refused }));
`;

const EXPECTED = {
  runtime: "web",
  ids: ["msg_p5jXN8AQM9LWM0D4loKWxJek", "msg_p5jXN8AQM9LWM0D4loKWxJek", "d-1"],
  refused: "no_matching_signature",
};

let workDir: string;

function tool(name: string): string {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(
      `${name} is missing from node_modules/.bin: run \`npx -y pnpm@12.4.2 install\` at the repository root`,
    );
  }
  return path;
}

describe("other runtimes", () => {
  beforeAll(() => {
    if (!existsSync(join(packageDir, "dist/index.js"))) {
      throw new Error("packages/core/dist is missing: run `pnpm build` (the root `pnpm test` does) first");
    }
    // A throwaway app with the packed package installed, exactly the files users get
    // (a symlink would also expose tsconfig.json, whose `paths` Bun honours).
    workDir = mkdtempSync(join(tmpdir(), "interlock-runtimes-"));
    const installed = join(workDir, "node_modules/@interlock/core");
    mkdirSync(installed, { recursive: true });
    const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", workDir], {
      cwd: packageDir,
      encoding: "utf8",
    }).trim();
    execFileSync("tar", ["-xzf", join(workDir, tarball), "-C", installed, "--strip-components=1"]);
    writeFileSync(
      join(workDir, "package.json"),
      JSON.stringify({ type: "module", dependencies: { "@interlock/core": "*" } }),
    );
    writeFileSync(join(workDir, "probe.mjs"), PROBE);
  });
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  const run = (command: string, args: string[]) =>
    JSON.parse(execFileSync(command, args, { cwd: workDir, encoding: "utf8", timeout: 60_000 }));

  it("Bun", () => {
    expect(run(tool("bun"), ["probe.mjs"])).toEqual(EXPECTED);
  });

  it("Deno", () => {
    expect(run(tool("deno"), ["run", "--quiet", "--allow-read", "--allow-env", "probe.mjs"])).toEqual(EXPECTED);
  });
});
