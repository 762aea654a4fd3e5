/**
 * `interlock sign` and `interlock secret`: what they print is checked by independent parties.
 * Signatures verify with core's verifier and, for Stripe, with the `stripe` package; the curl
 * command is run by a real shell and curl; each scheme's secret is accepted by core's key parsing
 * for that scheme (and signs deliveries its verifier accepts). A few runs spawn the binary; the
 * per-scheme sweep runs the same command line in-process through `run`.
 */
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { promisify } from "node:util";
import { createWebhookVerifier, schemes, standardWebhooks } from "@interlock/core";
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";
import { SCHEME_NAMES } from "../src/schemes.js";
import { interlock, jsonLines, memoryIo, recordingServer, type TestServer, tempDir } from "./helpers.js";

const exec = promisify(execFile);

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => dir?.remove());

describe("interlock sign (spawned)", () => {
  it("stripe: the headers verify with the stripe package and with core's verifier", async () => {
    const secret = "whsec_sign_test_secret";
    const body = '{\n  "id": "evt_sign_1",\n  "object": "event",\n  "type": "payment_intent.succeeded"\n}\n';
    const file = await dir.file("stripe-event.json", body);
    const result = await interlock(
      ["sign", "--scheme", "stripe", "--secret-env", "SIGNING_SECRET", "--body", `@${file}`],
      {
        env: { SIGNING_SECRET: secret },
      },
    );
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const header = /^stripe-signature: (t=\d+,v1=[0-9a-f]{64})$/.exec(lines[0] as string)?.[1] as string;
    expect(header).toBeDefined();

    const event = Stripe.webhooks.constructEvent(Buffer.from(body), header, secret);
    expect(event.id).toBe("evt_sign_1");
    const verified = await createWebhookVerifier({ scheme: schemes.stripe, secret }).verify(
      { "stripe-signature": header },
      body,
    );
    expect(verified.id).toBe("evt_sign_1");
    // The file's bytes, newlines included, are what was signed: any other bytes fail.
    expect(() => Stripe.webhooks.constructEvent(Buffer.from(body.trimEnd()), header, secret)).toThrow(
      Stripe.errors.StripeSignatureVerificationError,
    );
  });

  it("--json: one object with the scheme, id, timestamp and headers; --id and --timestamp are used as given", async () => {
    const secret = `whsec_${Buffer.from("sign-json-test-key-32-bytes-long").toString("base64")}`;
    const timestamp = Math.floor(Date.now() / 1000) - 30;
    const body = '{"type":"user.created"}';
    const result = await interlock(
      [
        "sign",
        "--scheme",
        "standard-webhooks",
        "--secret",
        secret,
        "--body",
        "-",
        "--id",
        "msg_fixed_1",
        "--timestamp",
        String(timestamp),
        "--json",
      ],
      { stdin: body },
    );
    expect(result.code).toBe(0);
    const [record, ...rest] = jsonLines(result.stdout);
    expect(rest).toEqual([]);
    expect(record).toMatchObject({
      type: "signature",
      scheme: "standard-webhooks",
      id: "msg_fixed_1",
      timestamp,
      curl: null,
    });
    const headers = record?.headers as Record<string, string>;
    expect(headers["webhook-id"]).toBe("msg_fixed_1");
    expect(headers["webhook-timestamp"]).toBe(String(timestamp));
    // The standardwebhooks package agrees.
    expect(new Webhook(secret).verify(body, headers)).toEqual({ type: "user.created" });
  });

  it("--scheme svix: the headers under the names Svix sends, svix-id, svix-timestamp and svix-signature", async () => {
    const secret = `whsec_${Buffer.from("sign-svix-test-key-32-bytes-long").toString("base64")}`;
    const timestamp = Math.floor(Date.now() / 1000) - 30;
    const body = '{"type":"user.created"}';
    const args = ["--secret", secret, "--body", body, "--id", "msg_svix_1", "--timestamp", String(timestamp)];
    const result = await interlock(["sign", "--scheme", "svix", ...args]);
    expect(result.code).toBe(0);
    // A receiver reading Svix's headers by name, as Svix's guide to verifying by hand does.
    expect(result.stdout).toBe(
      [
        "svix-id: msg_svix_1",
        `svix-timestamp: ${timestamp}`,
        `svix-signature: ${new Webhook(secret).sign("msg_svix_1", new Date(timestamp * 1000), body)}`,
        "",
      ].join("\n"),
    );
  });

  describe("--curl: the printed command, run by sh, delivers a delivery that verifies", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await recordingServer((_, response) => response.writeHead(200).end("ok"));
    });
    afterAll(() => server?.close());

    it("a body file (--data-binary @file, quotes and newlines intact)", async () => {
      const body = `{"ref":"refs/heads/main",\n "message":"it's \\"quoted\\" $HOME \`date\`"}\n`;
      const file = await dir.file("it's push.json", body);
      const signed = await interlock([
        "sign",
        "--scheme",
        "github",
        "--secret",
        "gh-curl-secret",
        "--body",
        `@${file}`,
        "-H",
        "x-github-event: push",
        "-H",
        "x-empty:", // sent with no value, as send does (curl drops `-H 'x-empty: '`)
        "--curl",
        `${server.url}/webhooks/github?x=1&y=2`,
      ]);
      expect(signed.code).toBe(0);
      expect(signed.stdout).toContain("--data-binary @");
      const { stdout } = await exec("sh", ["-c", signed.stdout]);
      expect(stdout).toMatch(/^HTTP\/1\.1 200/);

      const received = server.requests.at(-1);
      expect(received?.url).toBe("/webhooks/github?x=1&y=2");
      expect(received?.body.toString()).toBe(body);
      expect(received?.headers).toMatchObject({
        "x-github-event": "push",
        "x-empty": "",
        "content-type": "application/json",
      });
      const verifier = createWebhookVerifier({ scheme: schemes.github, secret: "gh-curl-secret" });
      await expect(verifier.verify(received?.headers ?? {}, received?.body ?? "")).resolves.toBeDefined();
    });

    it("a body file named - (which curl's @- would take for its standard input) is sent as that file", async () => {
      const body = '{"from":"the file named -"}';
      await dir.file("-", body);
      const signed = await interlock(
        ["sign", "--scheme", "github", "--secret", "gh-curl-secret", "--body", "@-", "--curl", `${server.url}/dash`],
        { cwd: dir.path },
      );
      expect(signed.code).toBe(0);
      expect(signed.stdout).toContain("--data-binary @'./-'");
      await exec("sh", ["-c", signed.stdout], { cwd: dir.path });
      expect(server.requests.at(-1)?.body.toString()).toBe(body);
    });

    it("an inline body too long for one shell argument is refused, naming --body @file (a file of it is sent)", async () => {
      // Linux refuses an argument over 128 KiB: the printed command would not run at all.
      const body = JSON.stringify({ text: "x".repeat(128 * 1024) });
      const args = [
        "sign",
        "--scheme",
        "slack",
        "--secret",
        "slack-curl-secret",
        "--curl",
        `${server.url}/slack/events`,
      ];
      const inline = memoryIo();
      expect(await run([...args, "--body", body], inline)).toBe(2);
      expect(inline.out()).toBe("");
      expect(inline.err()).toMatch(
        /--curl cannot put this body on a command line \(131\d+ bytes; .*pass it as --body @file/,
      );

      const file = await dir.file("long.json", body);
      const signed = await interlock([...args, "--body", `@${file}`]);
      expect(signed.code).toBe(0);
      await exec("sh", ["-c", signed.stdout]);
      expect(server.requests.at(-1)?.body.toString()).toBe(body);
    });

    it("an inline body (--data-raw, shell-quoted)", async () => {
      const body = `{"text":"it's $(not run) and 'quoted'"}`;
      const signed = await interlock([
        "sign",
        "--scheme",
        "slack",
        "--secret",
        "slack-curl-secret",
        "--body",
        body,
        "--curl",
        `${server.url}/slack/events`,
      ]);
      expect(signed.code).toBe(0);
      expect(signed.stdout).toContain("--data-raw ");
      await exec("sh", ["-c", signed.stdout]);
      const received = server.requests.at(-1);
      expect(received?.body.toString()).toBe(body);
      const verifier = createWebhookVerifier({ scheme: schemes.slack, secret: "slack-curl-secret" });
      await expect(verifier.verify(received?.headers ?? {}, received?.body ?? "")).resolves.toBeDefined();
    });
  });
});

describe("interlock secret", () => {
  it("spawned: prints one standard-webhooks secret that core and the standardwebhooks package accept", async () => {
    const result = await interlock(["secret", "--scheme", "standard-webhooks"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const secret = result.stdout.trimEnd();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(standardWebhooks.parseSecret(secret)).toMatchObject({ kind: "hmac" });
    expect((standardWebhooks.parseSecret(secret) as { raw: Uint8Array }).raw).toHaveLength(32);
    expect(() => new Webhook(secret)).not.toThrow();
  });

  /** Linear checks a millisecond `webhookTimestamp` in the body; the other schemes take any JSON. */
  const bodyFor = (scheme: string) =>
    JSON.stringify(
      scheme === "linear" ? { action: "create", webhookTimestamp: Date.now() } : { id: "evt_1", event_id: "Ev1" },
    );

  it.each(SCHEME_NAMES)(
    "%s: core's key parsing accepts the secret, and it signs what core's verifier accepts",
    async (name) => {
      const made = memoryIo();
      expect(await run(["secret", "--scheme", name, "--json"], made)).toBe(0);
      const [record] = jsonLines(made.out());
      const secret = record?.secret as string;
      expect(record).toMatchObject({ type: "secret", scheme: schemes[name].name, publicKey: null });
      expect(() => schemes[name].parseSecret(secret)).not.toThrow();
      expect(schemes[name].parseSecret(secret)).toMatchObject({ kind: "hmac" });

      const body = bodyFor(name);
      const signed = memoryIo({ env: { S: secret } });
      expect(await run(["sign", "--scheme", name, "--secret-env", "S", "--body", body, "--json"], signed)).toBe(0);
      const headers = jsonLines(signed.out())[0]?.headers as Record<string, string>;
      await expect(
        createWebhookVerifier({ scheme: schemes[name], secret }).verify(headers, body),
      ).resolves.toBeDefined();
      // Made fresh each time.
      const again = memoryIo();
      await run(["secret", "--scheme", name], again);
      expect(again.out().trimEnd()).not.toBe(secret);
    },
  );

  it("--ed25519: a whsk_ signing key whose signatures verify with the whpk_ public key printed with it", async () => {
    const made = memoryIo();
    expect(await run(["secret", "--scheme", "svix", "--ed25519"], made)).toBe(0);
    const [signingKey, publicKey] = made.out().trimEnd().split("\n") as [string, string];
    expect(signingKey).toMatch(/^whsk_/);
    expect(publicKey).toMatch(/^whpk_/);
    expect(standardWebhooks.parseSecret(signingKey)).toMatchObject({ kind: "ed25519" });

    const signed = memoryIo();
    expect(await run(["sign", "--scheme", "svix", "--secret", signingKey, "--body", "{}", "--json"], signed)).toBe(0);
    const headers = jsonLines(signed.out())[0]?.headers as Record<string, string>;
    expect(headers["svix-signature"]).toMatch(/^v1a,/);
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: publicKey });
    await expect(verifier.verify(headers, "{}")).resolves.toBeDefined();
    const other = createWebhookVerifier({
      scheme: standardWebhooks,
      secret: `whpk_${Buffer.alloc(32, 7).toString("base64")}`,
    });
    await expect(other.verify(headers, "{}")).rejects.toMatchObject({ code: "no_matching_signature" });
  });

  it("--ed25519 with an HMAC scheme is a usage error", async () => {
    const io = memoryIo();
    expect(await run(["secret", "--scheme", "stripe", "--ed25519"], io)).toBe(2);
    expect(io.err()).toBe(
      "interlock secret: --ed25519 is for standard-webhooks (svix) only; stripe signs with HMAC (see interlock secret --help)\n",
    );
  });

  it("slack secrets are 32 hex digits, as Slack shows them; the digest matches an independent HMAC", async () => {
    const made = memoryIo();
    await run(["secret", "--scheme", "slack"], made);
    const secret = made.out().trimEnd();
    expect(secret).toMatch(/^[0-9a-f]{32}$/);
    const signed = memoryIo();
    await run(
      [
        "sign",
        "--scheme",
        "slack",
        "--secret",
        secret,
        "--body",
        "token=x&command=%2Fdeploy",
        "--timestamp",
        "1700000000",
        "--json",
      ],
      signed,
    );
    const headers = jsonLines(signed.out())[0]?.headers as Record<string, string>;
    const expected = createHmac("sha256", secret).update("v0:1700000000:token=x&command=%2Fdeploy").digest("hex");
    expect(headers).toEqual({ "x-slack-signature": `v0=${expected}`, "x-slack-request-timestamp": "1700000000" });
  });
});
