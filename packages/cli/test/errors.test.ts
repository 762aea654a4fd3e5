/**
 * Failures, spawned: each ends with its documented exit code and exactly one line on stderr
 * (or one JSON object with --json), never a stack trace, never the secret.
 */
import { describe, expect, it } from "vitest";
import { type Finished, interlock, jsonLines, recordingServer, refusedPort, sendGithub } from "./helpers.js";

/** The run failed with `code`, wrote nothing to stdout and exactly `line` to stderr. */
function expectFailure(result: Finished, code: number, line: string): void {
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(`${line}\n`);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.code).toBe(code);
}

describe("errors", () => {
  it("a secret not in the scheme's format: exit 3, the reason, not the secret", async () => {
    const secret = "whsec_not*base64*at*all";
    const result = await interlock([
      "send",
      "http://127.0.0.1:1/hook",
      "--scheme",
      "svix",
      "--secret",
      secret,
      "--body",
      "{}",
    ]);
    expectFailure(
      result,
      3,
      "interlock send: invalid secret for the standard-webhooks scheme: the secret is not valid base64",
    );
    expect(result.stderr).not.toContain("not*base64");
  });

  it("--secret-env naming an unset variable: exit 3, the name by its start (it may be the secret)", async () => {
    const result = await interlock(["listen", "--scheme", "stripe", "--secret-env", "INTERLOCK_TEST_UNSET_SECRET"]);
    expectFailure(
      result,
      3,
      'interlock listen: the environment variable "INTE…" (--secret-env) is not set: --secret-env takes the name of the variable that holds the secret, not the secret',
    );
  });

  it("send --id '': exit 2 before anything is sent, not a delivery with an empty id", async () => {
    const app = await recordingServer();
    try {
      const result = await interlock([
        "send",
        `${app.url}/webhooks`,
        "--scheme",
        "svix",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--body",
        "{}",
        "--id",
        "",
      ]);
      expectFailure(result, 2, 'interlock send: --id needs a value, got "" (see interlock send --help)');
      expect(app.requests).toHaveLength(0);
    } finally {
      await app.close();
    }
  });

  it("send -H with a character outside ASCII (é): exit 2 before anything is sent, not one Latin-1 byte", async () => {
    const app = await recordingServer();
    try {
      const argv = ["send", `${app.url}/webhooks`, "--scheme", "github", "--secret", "s", "--body", "{}"];
      const result = await interlock([...argv, "-H", "x-customer: José"]);
      expectFailure(
        result,
        2,
        "interlock send: --header x-customer has a character outside ASCII (U+00E9): a header value is sent as bytes, which receivers read as Latin-1 or as UTF-8; use ASCII (percent-encode the rest, as RFC 8187 does) (see interlock send --help)",
      );
      expect(app.requests).toHaveLength(0);
      // Percent-encoded, it goes as written.
      expect((await interlock([...argv, "-H", "x-customer: Jos%C3%A9"])).code).toBe(0);
      expect(app.requests[0]?.headers["x-customer"]).toBe("Jos%C3%A9");
    } finally {
      await app.close();
    }
  });

  it("a body file that does not exist: exit 4", async () => {
    const result = await interlock([
      "sign",
      "--scheme",
      "github",
      "--secret",
      "s",
      "--body",
      "@/nonexistent/event.json",
    ]);
    expectFailure(result, 4, "interlock sign: no such file: /nonexistent/event.json");
  });

  it("an unreachable URL (a closed port on 127.0.0.1): exit 5", async () => {
    const port = await refusedPort();
    const result = await sendGithub(`http://127.0.0.1:${port}/webhooks`);
    expect(result.code).toBe(5);
    // The attempt is printed like any other, then the one error line.
    expect(result.stdout).toBe(`#1  no answer: cannot reach http://127.0.0.1:${port}/webhooks: connection refused\n`);
    expect(result.stderr).toBe(`interlock send: cannot reach http://127.0.0.1:${port}/webhooks: connection refused\n`);
  });

  it("https:// to a server that speaks plain HTTP (a TLS error, whose message ends in a line break): one line each", async () => {
    const server = await recordingServer((_, response) => response.end("plain"));
    try {
      const result = await sendGithub(`${server.url.replace(/^http:/, "https:")}/webhooks`);
      expect(result.code).toBe(5);
      expect(result.stdout).toMatch(/^#1 {2}no answer: cannot reach https:\/\/127\.0\.0\.1:\d+\/webhooks: [^\n]+\n$/);
      expect(result.stderr).toMatch(/^interlock send: cannot reach https:\/\/127\.0\.0\.1:\d+\/webhooks: [^\n]+\n$/);
    } finally {
      await server.close();
    }
  });

  it("an unknown scheme: exit 2, with the schemes there are", async () => {
    const result = await interlock(["sign", "--scheme", "acme", "--secret", "s", "--body", "{}"]);
    expectFailure(
      result,
      2,
      'interlock sign: unknown scheme "acme" (--scheme): use one of standard-webhooks, svix, stripe, github, slack, shopify, paddle, linear, zoom, generic',
    );
  });

  it("--json: the error is one JSON object with its stable code and exit code", async () => {
    const result = await interlock(["sign", "--scheme", "acme", "--secret", "s", "--body", "{}", "--json"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(jsonLines(result.stderr)).toEqual([
      {
        type: "error",
        code: "unknown_scheme",
        exitCode: 2,
        message:
          'unknown scheme "acme" (--scheme): use one of standard-webhooks, svix, stripe, github, slack, shopify, paddle, linear, zoom, generic',
      },
    ]);
  });

  it("a port in use: exit 5", async () => {
    const busy = await recordingServer();
    try {
      const port = new URL(busy.url).port;
      const result = await interlock(["listen", "--port", port, "--scheme", "github", "--secret", "s"]);
      expectFailure(
        result,
        5,
        `interlock listen: cannot listen on 127.0.0.1:${port}: it is in use (pick another with --port)`,
      );
    } finally {
      await busy.close();
    }
  });
});
