/**
 * `interlock send` beyond the examples: a provider's retries (the loop itself, then spawned
 * against a flaky server and a closed port), concurrency, the progress line, and the library
 * functions `send` and `listen` together in-process.
 */
import { createHmac } from "node:crypto";
import { once } from "node:events";
import type { ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { createWebhookVerifier, github, memoryStore, standardWebhooks, zoom } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { type DeliveryReport, listen } from "../src/commands/listen.js";
import { type AttemptReport, send } from "../src/commands/send.js";
import { CliError } from "../src/errors.js";
import { run } from "../src/main.js";
import { createProgress } from "../src/progress.js";
import { backoffDelay, withRetries } from "../src/retry.js";
import { interlock, jsonLines, memoryIo, Running, recordingServer, refusedPort, sendGithub } from "./helpers.js";

const SECRET = `whsec_${Buffer.from("interlock-cli-send-test-secret!!").toString("base64")}`;

describe("the retry loop", () => {
  const policy = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 300 };

  it("backs off exponentially up to the cap", () => {
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelay(policy, attempt))).toEqual([100, 200, 300, 300, 300]);
  });

  it("retries until acknowledged, sleeping the backoff between attempts", async () => {
    const statuses = [500, 503, 200];
    const slept: number[] = [];
    const heard: Array<[number | undefined, number, number | undefined]> = [];
    const outcome = await withRetries(
      policy,
      async (attempt) => statuses[attempt - 1] as number,
      (status) => status === 200,
      (o, attempt, retryInMs) => heard.push([o.result, attempt, retryInMs]),
      async (ms) => slept.push(ms),
    );
    expect(outcome).toEqual({ result: 200 });
    expect(slept).toEqual([100, 200]);
    expect(heard).toEqual([
      [500, 1, 100],
      [503, 2, 200],
      [200, 3, undefined],
    ]);
  });

  it("retries a network failure, and stops after maxAttempts with the last outcome", async () => {
    const failure = new CliError("unreachable", "cannot reach x: connection refused");
    let attempts = 0;
    const outcome = await withRetries(
      policy,
      async () => {
        attempts++;
        throw failure;
      },
      () => true,
      () => {},
      async () => {},
    );
    expect(attempts).toBe(4);
    expect(outcome).toEqual({ error: failure });
  });

  it("does not retry any other error: it is thrown at once", async () => {
    let attempts = 0;
    const bug = new TypeError("a bug");
    const running = withRetries(
      policy,
      async () => {
        attempts++;
        throw bug;
      },
      () => true,
      () => {},
      async () => {},
    );
    await expect(running).rejects.toBe(bug);
    expect(attempts).toBe(1);
  });
});

describe("send --retry (spawned)", () => {
  it("retries 5xx answers with backoff, re-signing each attempt for the same delivery id", async () => {
    const server = await recordingServer((_, response, index) =>
      index < 2 ? response.writeHead(503).end("try later") : response.writeHead(200).end("ok"),
    );
    try {
      const result = await interlock([
        "send",
        server.url,
        "--scheme",
        "standard-webhooks",
        "--secret",
        SECRET,
        "--body",
        '{"type":"retry.test"}',
        "--retry",
        "--retry-delay",
        "20",
        "--json",
      ]);
      expect(result.code).toBe(0);
      const lines = jsonLines(result.stdout);
      expect(lines.map((l) => [l.type, l.attempt, l.status, l.retryInMs])).toEqual([
        ["attempt", 1, 503, 20],
        ["attempt", 2, 503, 40],
        ["attempt", 3, 200, null],
        ["summary", undefined, undefined, undefined],
      ]);
      expect(lines[3]).toMatchObject({ deliveries: 1, acknowledged: 1, attempts: 3 });
      expect(lines[0]).toMatchObject({ maxAttempts: 5 });
      // One delivery: every attempt carries its id, and each verifies on its own.
      const ids = new Set(server.requests.map((r) => r.headers["webhook-id"]));
      expect(ids.size).toBe(1);
      const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET });
      for (const request of server.requests)
        await expect(verifier.verify(request.headers, request.body)).resolves.toBeDefined();
    } finally {
      await server.close();
    }
  });

  it("signs each attempt at the moment it is sent: a retry a second later carries a later timestamp", async () => {
    const server = await recordingServer((_, response, index) =>
      index === 0 ? response.writeHead(503).end("try later") : response.writeHead(200).end("ok"),
    );
    try {
      const summary = await send({
        url: server.url,
        scheme: standardWebhooks,
        secret: SECRET,
        body: '{"type":"retry.resigned"}',
        retry: { maxAttempts: 2, initialDelayMs: 1_100, maxDelayMs: 1_100 },
      });
      expect(summary).toMatchObject({ acknowledged: 1, attempts: 2 });
      const [first, second] = server.requests.map((r) => r.headers);
      expect(second?.["webhook-id"]).toBe(first?.["webhook-id"]);
      // Signed again, not the first attempt's headers sent twice: a provider's retry is fresh.
      expect(Number(second?.["webhook-timestamp"])).toBeGreaterThan(Number(first?.["webhook-timestamp"]));
      expect(second?.["webhook-signature"]).not.toBe(first?.["webhook-signature"]);
    } finally {
      await server.close();
    }
  });

  it("gives up after --max-attempts when nothing answers: exit 5", async () => {
    const port = await refusedPort();
    const url = `http://127.0.0.1:${port}/hook`;
    const result = await sendGithub(url, "--retry", "--max-attempts", "2", "--retry-delay", "10");
    expect(result.code).toBe(5);
    expect(result.stdout).toBe(
      [
        `#1  no answer: cannot reach ${url}: connection refused  (attempt 1 of 2; retrying in 10 ms)`,
        `#1  no answer: cannot reach ${url}: connection refused  (attempt 2 of 2)`,
        "",
      ].join("\n"),
    );
    expect(result.stderr).toBe(`interlock send: cannot reach ${url}: connection refused\n`);
  });
});

describe("send --concurrency and --progress (spawned)", () => {
  it("keeps N copies in flight, never more, and ends with the progress count on stderr", async () => {
    let inFlight = 0;
    let most = 0;
    let held: ServerResponse[] = [];
    // Answers only when three requests wait at once: a CLI sending fewer at a time would hang.
    const server = await recordingServer((_, response) => {
      inFlight++;
      most = Math.max(most, inFlight);
      held.push(response);
      if (held.length < 3) return;
      for (const r of held) r.writeHead(200).end();
      inFlight -= held.length;
      held = [];
    });
    try {
      const result = await interlock([
        "send",
        server.url,
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body",
        "{}",
        "--repeat",
        "6",
        "--concurrency",
        "3",
        "--progress",
      ]);
      expect(result.code).toBe(0);
      expect(most).toBe(3);
      expect(server.requests).toHaveLength(6);
      const stdout = result.stdout.trimEnd().split("\n");
      expect(stdout).toHaveLength(7);
      expect(stdout.slice(0, 6).every((line) => /^#[1-6] {2}200 OK {2}\d+ ms$/.test(line))).toBe(true);
      expect(stdout[6]).toBe("6 of 6 acknowledged (2xx)");
      // Not a terminal: plain lines, the last one the final count.
      const progress = result.stderr.trimEnd().split("\n");
      expect(progress.at(-1)).toBe("interlock send: 6/6 sent, 6 acknowledged (2xx), 0 not");
      expect(result.stderr).not.toContain("\r");
    } finally {
      await server.close();
    }
  });
});

describe("send --repeat 50, spawned, stopped early", () => {
  /**
   * Runs `f` with a spawned `send --repeat 50` against a server that answers each copy after
   * 100 ms (50 copies one at a time would take five seconds), then checks it stopped early.
   */
  async function stoppedEarly(extra: string[], f: (sending: Running) => Promise<void>): Promise<void> {
    const server = await recordingServer((_, response) => {
      setTimeout(() => response.writeHead(200).end(), 100);
    });
    try {
      const args = ["send", server.url, "--scheme", "github", "--secret", "s", "--body", "{}", "--repeat", "50"];
      await f(new Running([...args, ...extra]));
      expect(server.requests.length).toBeLessThan(10);
    } finally {
      await server.close();
    }
  }

  it("Ctrl+C ends the run at once, as it ends any command but listen", () =>
    stoppedEarly([], async (sending) => {
      await sending.line(1);
      await sending.stop();
      expect(sending.child.signalCode).toBe("SIGINT");
    }));

  it("a closed output pipe (`| head -1`) stops it at once with 141, as SIGPIPE ends a program, no stack trace", () =>
    stoppedEarly(["--json"], async (sending) => {
      const exited = once(sending.child, "exit");
      await sending.line(1);
      sending.child.stdout.destroy(); // the reader is gone: the next line written meets EPIPE
      const [code] = await exited;
      expect(code).toBe(141);
      expect(sending.stderr).toBe("");
    }));
});

describe("send and listen as library functions", () => {
  it("listen answers a delivery even when onDelivery throws, and tells onError", async () => {
    const errors: unknown[] = [];
    const listener = await listen({
      scheme: github,
      secret: "s",
      port: 0,
      onDelivery: () => {
        throw new Error("a bug in the caller's callback");
      },
      onError: (error) => errors.push(error),
    });
    try {
      const summary = await send({ url: listener.url, scheme: github, secret: "s", body: "{}" });
      expect(summary).toMatchObject({ attempts: 1, acknowledged: 1 });
      expect(errors).toMatchObject([{ message: "a bug in the caller's callback" }]);
    } finally {
      await listener.close();
    }
  });

  it("listen answers Zoom's endpoint validation challenge with core's answer", async () => {
    const token = "zoom-secret-token";
    const listener = await listen({ scheme: zoom, secret: token, port: 0 });
    try {
      const reports: AttemptReport[] = [];
      const body = JSON.stringify({
        event: "endpoint.url_validation",
        payload: { plainToken: "qgg8vlvZRS6UYooatFL8Aw" },
      });
      const summary = await send({
        url: listener.url,
        scheme: zoom,
        secret: token,
        body,
        onAttempt: (r) => reports.push(r),
      });
      expect(summary).toMatchObject({ deliveries: 1, acknowledged: 1, attempts: 1 });
      expect(JSON.parse(reports[0]?.body as string)).toEqual({
        plainToken: "qgg8vlvZRS6UYooatFL8Aw",
        encryptedToken: createHmac("sha256", token).update("qgg8vlvZRS6UYooatFL8Aw").digest("hex"),
      });
    } finally {
      await listener.close();
    }
  });

  it("concurrent copies of one delivery: one is processed, the others are in flight or duplicates", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const app = await recordingServer((_, response) => {
      void gate.then(() => response.writeHead(200).end());
    });
    const reports: DeliveryReport[] = [];
    const listener = await listen({
      scheme: github,
      secret: "s",
      port: 0,
      forward: app.url,
      onDelivery: (report) => {
        reports.push(report);
        if (reports.length === 3) release();
      },
    });
    try {
      const attempts: AttemptReport[] = [];
      const summary = await send({
        url: listener.url,
        scheme: github,
        secret: "s",
        body: "{}",
        repeat: 4,
        concurrency: 4,
        onAttempt: (r) => attempts.push(r),
      });
      // Three copies arrive while the first is still with the app: each is answered 409.
      expect(reports.slice(0, 3).map((r) => [r.verdict, r.status])).toEqual([
        ["in_flight", 409],
        ["in_flight", 409],
        ["in_flight", 409],
      ]);
      expect(reports[3]).toMatchObject({ verdict: "valid", status: 200, forward: { status: 200 } });
      expect(app.requests).toHaveLength(1);
      expect(summary).toMatchObject({ deliveries: 4, acknowledged: 1 });
      expect(attempts.filter((a) => a.status === 409)).toHaveLength(3);
    } finally {
      await listener.close();
      await app.close();
    }
  });

  it("a forward that waits past core's 60 s lease still holds the delivery: a copy meanwhile is in flight", async () => {
    let clock = Date.now();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const app = await recordingServer((_, response) => {
      void gate.then(() => response.writeHead(200).end());
    });
    // A forward allowed two minutes (a breakpoint in the app), on a store whose clock the test moves.
    const listener = await listen({
      scheme: github,
      secret: "s",
      port: 0,
      forward: app.url,
      timeoutMs: 120_000,
      store: memoryStore({ now: () => clock }),
    });
    try {
      const first = send({ url: listener.url, scheme: github, secret: "s", body: "{}", id: "guid-slow" });
      first.catch(() => {}); // awaited below: if the test fails first, not an unhandled rejection
      await expect.poll(() => app.requests.length).toBe(1);
      clock += 61_000;
      const attempts: AttemptReport[] = [];
      await send({
        url: listener.url,
        scheme: github,
        secret: "s",
        body: "{}",
        id: "guid-slow",
        timeoutMs: 5_000, // forwarded too, it would wait on the app like the first
        onAttempt: (r) => attempts.push(r),
      });
      expect(attempts[0]?.status).toBe(409);
      expect(app.requests).toHaveLength(1);
      release();
      await expect(first).resolves.toMatchObject({ acknowledged: 1 });
    } finally {
      release();
      await listener.close();
      await app.close();
    }
  });

  it("close() ends a forward still waiting on the app: Ctrl+C does not wait for the forward's timeout", async () => {
    let held: ServerResponse | undefined;
    let appConnectionClosed = false;
    const app = await recordingServer((_, response) => {
      held = response; // never answered
      response.on("close", () => {
        appConnectionClosed = true;
      });
    });
    const listener = await listen({ scheme: github, secret: "s", port: 0, forward: app.url, timeoutMs: 120_000 });
    try {
      const sending = send({ url: listener.url, scheme: github, secret: "s", body: "{}" });
      sending.catch(() => {}); // the listener's connection is closed under it
      await expect.poll(() => held).toBeDefined();
      await listener.close();
      await expect.poll(() => appConnectionClosed, { timeout: 2_000 }).toBe(true);
    } finally {
      await listener.close();
      await app.close();
    }
  });

  it("send refuses a timeoutMs outside the --timeout range as a usage error, before any request", async () => {
    const server = await recordingServer();
    try {
      for (const timeoutMs of [0, -1, Number.NaN, 1.5, 3_600_001, 3_000_000_000]) {
        await expect(
          send({ url: server.url, scheme: github, secret: "s", body: "{}", timeoutMs }),
          String(timeoutMs),
        ).rejects.toMatchObject({ code: "usage", exitCode: 2 });
      }
      expect(server.requests).toEqual([]);
      await send({ url: server.url, scheme: github, secret: "s", body: "{}", timeoutMs: 3_600_000 });
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it("listen refuses a timeoutMs outside the --timeout range as a usage error, before it listens", async () => {
    for (const timeoutMs of [0, -1, Number.NaN, 1.5, 3_600_001]) {
      await expect(
        listen({ scheme: github, secret: "s", port: 0, timeoutMs }),
        String(timeoutMs),
      ).rejects.toMatchObject({
        code: "usage",
        exitCode: 2,
      });
    }
    const listener = await listen({ scheme: github, secret: "s", port: 0, timeoutMs: 3_600_000 });
    await listener.close();
  });

  it("a --header with a signature header's name replaces the signed one (a deliberately wrong header)", async () => {
    const server = await recordingServer();
    try {
      await send({
        url: server.url,
        scheme: github,
        secret: "s",
        body: "{}",
        id: "guid-1",
        headers: [["x-hub-signature-256", "sha256=00"]],
      });
      expect(server.requests[0]?.headers).toMatchObject({
        "x-hub-signature-256": "sha256=00",
        "x-github-delivery": "guid-1",
      });
      // No default content-type when headers are given.
      expect(server.requests[0]?.headers["content-type"]).toBeUndefined();
    } finally {
      await server.close();
    }
  });
});

describe("the answer's body on the attempt line", () => {
  it("is flattened to one line in time linear in its length, however the receiver pads it", async () => {
    // 128 KiB of spaces with no line break after it: the old pattern backtracked over the
    // rest of the run from every position in it: some 20 s.
    const body = `line one\r\n  ok${" ".repeat(128 * 1024)}done`;
    const server = await recordingServer((_, response) => response.writeHead(200).end(body));
    try {
      const io = memoryIo();
      const argv = ["send", server.url, "--scheme", "github", "--secret", "s", "--body", "{}"];
      expect(await run(argv, io)).toBe(0);
      expect(io.out()).toMatch(/^#1 {2}200 OK {2}\d+ ms {2}line one ok {189}…\n$/);
    } finally {
      await server.close();
    }
  }, 10_000);

  it("shows a receiver's control characters as \\xNN, in the body and the reason phrase; --json keeps them", async () => {
    // Escape sequences that would recolour the line, retitle the terminal and ring its bell.
    const body = "ok\x1b[2K\x1b]0;owned\x07\x00done";
    const receiver = createNetServer((socket) => {
      socket.once("data", () =>
        socket.end(
          `HTTP/1.1 200 O\x1b[31mK\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        ),
      );
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    const { port } = receiver.address() as { port: number };
    try {
      const argv = ["send", `http://127.0.0.1:${port}/`, "--scheme", "github", "--secret", "s", "--body", "{}"];
      const text = await interlock(argv);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^#1 {2}200 O\\x1b\[31mK {2}\d+ ms {2}ok\\x1b\[2K\\x1b\]0;owned\\x07\\x00done\n$/);
      const json = await interlock([...argv, "--json"]);
      const [attempt] = jsonLines(json.stdout);
      expect(attempt).toMatchObject({ statusText: "O\x1b[31mK", body });
    } finally {
      receiver.close();
    }
  });
});

describe("the progress line", () => {
  it("on a terminal: one line redrawn in place at most every 100 ms, cleared around other output, ended by the final count", () => {
    let written = "";
    let clock = 0;
    const progress = createProgress({ isTTY: true, write: (text: string) => (written += text) }, 4, () => clock);
    const line = (sent: number, acknowledged: number) =>
      `\r\x1b[2Kinterlock send: ${sent}/4 sent, ${acknowledged} acknowledged (2xx), ${sent - acknowledged} not`;

    progress.update({ sent: 1, acknowledged: 1 });
    clock = 50;
    progress.update({ sent: 2, acknowledged: 1 }); // within 100 ms: not drawn
    expect(written).toBe(line(1, 1));

    written = "";
    progress.around(() => {
      written += "#2  401 Unauthorized\n";
    });
    expect(written).toBe(`\r\x1b[2K#2  401 Unauthorized\n${line(1, 1)}`);

    written = "";
    clock = 200;
    progress.update({ sent: 3, acknowledged: 2 });
    progress.finish({ sent: 4, acknowledged: 3 });
    expect(written).toBe(`${line(3, 2)}${line(4, 3)}\n`);
  });
});
