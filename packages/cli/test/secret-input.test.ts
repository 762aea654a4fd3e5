/**
 * Secrets whose text starts or ends with whitespace, spawned: `--secret` and `--secret-env` refuse
 * them with the command line's way in (never a library's `Uint8Array`), and `--secret-hex` gives
 * the secret's exact bytes, which `send` signs with and `listen` verifies with.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { interlock, jsonLines, Running, recordingServer } from "./helpers.js";

// A GitHub secret is whatever text the user typed in the webhook's settings: a trailing space too.
const SPACED = "my webhook secret ";
const SPACED_HEX = Buffer.from(SPACED).toString("hex");

describe("a secret with whitespace at an end", () => {
  it("--secret: exit 3, one line that points to --secret-hex, not to a Uint8Array, and never shows the secret", async () => {
    const result = await interlock([
      "send",
      "http://127.0.0.1:1/hook",
      "--scheme",
      "github",
      "--secret",
      SPACED,
      "--body",
      "{}",
    ]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "interlock send: invalid secret for the github scheme: --secret starts or ends with whitespace " +
        "(a line break from an environment file?): remove it, or, if the whitespace belongs to the secret, give " +
        "the secret's bytes in hex with --secret-hex-env or --secret-hex (printf %s 'SECRET' | od -An -tx1 | tr -d ' \\n' prints them)\n",
    );
    expect(result.stderr).not.toContain("Uint8Array");
    expect(result.stderr).not.toContain("webhook secret");
  });

  it("--secret-env holding a line break: names the variable; --json gives core's code, invalid_secret", async () => {
    const result = await interlock(["listen", "--scheme", "stripe", "--secret-env", "HOOK_SECRET", "--json"], {
      env: { HOOK_SECRET: "whsec_0123456789abcdef\n" },
    });
    expect(result.code).toBe(3);
    const [line] = jsonLines(result.stderr);
    expect(line).toMatchObject({ type: "error", code: "invalid_secret", exitCode: 3 });
    expect(line?.message).toMatch(/^invalid secret for the stripe scheme: the environment variable HOOK_SECRET starts/);
    expect(line?.message).toContain("--secret-hex");
    expect(line?.message).not.toContain("Uint8Array");
    expect(line?.message).not.toContain("0123456789abcdef");
  });

  it("send --secret-hex: signs with exactly those bytes, trailing space included", async () => {
    const app = await recordingServer();
    try {
      const body = '{"action":"opened"}';
      const result = await interlock([
        "send",
        `${app.url}/webhooks/github`,
        "--scheme",
        "github",
        "--secret-hex",
        SPACED_HEX,
        "--body",
        body,
      ]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const expected = `sha256=${createHmac("sha256", SPACED).update(body).digest("hex")}`;
      expect(app.requests[0]?.headers["x-hub-signature-256"]).toBe(expected);
    } finally {
      await app.close();
    }
  });

  it("listen --secret-hex: a delivery signed with those bytes is valid, one signed with the trimmed text is not", async () => {
    const listener = new Running(["listen", "--port", "0", "--scheme", "github", "--secret-hex", SPACED_HEX, "--json"]);
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const deliver = (...secret: string[]) =>
        interlock(["send", url, "--scheme", "github", ...secret, "--body", "{}", "--json"]);
      expect((await deliver("--secret-hex", SPACED_HEX)).code).toBe(0);
      expect((await deliver("--secret", SPACED.trim())).code).toBe(1);
      expect(JSON.parse(await listener.line(2))).toMatchObject({ verdict: "valid" });
      expect(JSON.parse(await listener.line(3))).toMatchObject({ verdict: "tampered" });
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });

  it.each([
    ["not hex digits", "7g"],
    ["an odd number of digits", "733"],
    ["spaces between bytes", "73 33"],
  ])("--secret-hex with %s: exit 3, invalid_secret", async (_, hex) => {
    const result = await interlock(["sign", "--scheme", "github", "--secret-hex", hex, "--body", "{}"]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      "interlock sign: invalid secret for the github scheme: --secret-hex is not hex: give two hex digits (0-9, a-f) per byte of the secret, such as 733363726574\n",
    );
  });

  it("a blank --secret-hex is no secret: exit 3, missing_secret", async () => {
    const result = await interlock(["sign", "--scheme", "github", "--secret-hex", "", "--body", "{}"]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe("interlock sign: --secret-hex is empty\n");
  });
});
