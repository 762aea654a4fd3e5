/**
 * Outcomes the rest of the suite left open (found by a mutation audit): which answers count as
 * acknowledged and what that does to the exit code, that --timeout is applied and a timeout is
 * retried, that no new copy starts after one got no answer, which content-type is sent, and
 * the exit codes of an unreadable body file and an out-of-range option.
 */
import { describe, expect, it } from "vitest";
import { githubListen, interlock, jsonLines, Running, recordingServer, tempDir } from "./helpers.js";

const SEND = ["--scheme", "github", "--secret", "gh-secret", "--body", "{}"];

describe("send: acknowledged means a 2xx, and the exit code says whether every copy was", () => {
  it("a 300 is not acknowledged: one 200 and one 300 of two copies is exit 1, 1 of 2 acknowledged", async () => {
    const server = await recordingServer((_, response, index) => response.writeHead(index === 0 ? 200 : 300).end());
    try {
      const result = await interlock(["send", server.url, ...SEND, "--repeat", "2", "--json"]);
      expect(result.code).toBe(1);
      const lines = jsonLines(result.stdout);
      expect(lines.map((l) => [l.type, l.status, l.acknowledged])).toEqual([
        ["attempt", 200, true],
        ["attempt", 300, false],
        ["summary", undefined, 1],
      ]);
      expect(lines[2]).toMatchObject({ deliveries: 2, acknowledged: 1, attempts: 2 });
    } finally {
      await server.close();
    }
  });

  it("no new copy starts after one got no answer: exit 5 after one request of --repeat 3", async () => {
    const server = await recordingServer((_, response) => response.socket?.destroy());
    try {
      const result = await interlock(["send", server.url, ...SEND, "--repeat", "3"]);
      expect(result.code).toBe(5);
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});

describe("send --timeout", () => {
  it("is applied to each attempt, and a timeout is retried like a refused connection", async () => {
    // The first attempt is never answered; the second is.
    const server = await recordingServer((_, response, index) => {
      if (index > 0) response.writeHead(200).end("ok");
    });
    try {
      const started = performance.now();
      const result = await interlock([
        "send",
        server.url,
        ...SEND,
        "--timeout",
        "150",
        "--retry",
        "--retry-delay",
        "10",
        "--json",
      ]);
      expect(performance.now() - started).toBeLessThan(4000);
      expect(result.code).toBe(0);
      const attempts = jsonLines(result.stdout).filter((line) => line.type === "attempt");
      expect(attempts.map((a) => [a.status, (a.error as { code?: string } | null)?.code])).toEqual([
        [null, "timeout"],
        [200, undefined],
      ]);
      expect(attempts[0]).toMatchObject({ error: { message: `no answer from ${server.url}/ within 150 ms` } });
    } finally {
      await server.close();
    }
  });
});

describe("send -H content-type", () => {
  it("replaces the default application/json: one content-type is sent, the one given", async () => {
    const server = await recordingServer();
    try {
      const result = await interlock(["send", server.url, ...SEND, "-H", "Content-Type: text/plain"]);
      expect(result.code).toBe(0);
      expect(server.requests[0]?.headers["content-type"]).toBe("text/plain");
    } finally {
      await server.close();
    }
  });
});

describe("listen", () => {
  it("--timeout bounds the wait for the forward's answer: the sender gets a 502 well before the default 10 s", async () => {
    const app = await recordingServer(() => {}); // never answers
    const listener = new Running(githubListen("--forward", `${app.url}/app`, "--timeout", "150", "--json"));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const started = performance.now();
      const result = await interlock(["send", url, ...SEND, "--json"]);
      expect(performance.now() - started).toBeLessThan(4000);
      expect(result.code).toBe(1);
      expect(jsonLines(result.stdout)[0]).toMatchObject({ type: "attempt", status: 502 });
      const delivery = JSON.parse(await listener.line(2)) as { forward: { error: string } };
      expect(delivery.forward.error).toBe(
        `no answer from ${app.url}/app within 150 ms (still waiting: its answer settles the delivery)`,
      );
    } finally {
      expect(await listener.stop()).toBe(0);
      await app.close();
    }
  });

  it("answers a request that is not a POST 405 with Allow: POST, and reports no delivery", async () => {
    const listener = new Running(githubListen("--json"));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const answer = await fetch(`${url}/webhooks`);
      expect(answer.status).toBe(405);
      expect(answer.headers.get("allow")).toBe("POST");
      expect(listener.lines).toHaveLength(1);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });

  it("--port past 65535 is a usage error (exit 2), not a failure to listen", async () => {
    const result = await interlock(["listen", "--port", "65536", "--scheme", "github", "--secret", "s"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--port must be a whole number from 0 to 65535");
  });
});

describe("a body file that cannot be read", () => {
  it("a directory: exit 4, file_unreadable", async () => {
    const dir = await tempDir();
    try {
      const result = await interlock([
        "sign",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body",
        `@${dir.path}`,
        "--json",
      ]);
      expect(result.code).toBe(4);
      expect(JSON.parse(result.stderr)).toMatchObject({ code: "file_unreadable", exitCode: 4 });
    } finally {
      await dir.remove();
    }
  });
});

describe("sign --json and secret: what is printed", () => {
  it("sign --json never prints the secret; a scheme that signs no timestamp reports none (null)", async () => {
    const secret = "gh-secret-never-printed";
    const result = await interlock(["sign", "--scheme", "github", "--secret", secret, "--body", "{}", "--json"]);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(secret);
    const [line] = jsonLines(result.stdout);
    expect(Object.keys(line ?? {}).sort()).toEqual(["curl", "headers", "id", "scheme", "timestamp", "type"]);
    expect(line).toMatchObject({ type: "signature", scheme: "github", timestamp: null, curl: null });
  });

  it("secret --scheme stripe: whsec_ and 64 hex digits, as stripe listen prints", async () => {
    const result = await interlock(["secret", "--scheme", "stripe"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^whsec_[0-9a-f]{64}\n$/);
  });
});
