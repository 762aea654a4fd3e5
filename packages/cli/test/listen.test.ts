/**
 * `interlock listen`, spawned, with `interlock send`, spawned, delivering to it: the verdicts
 * it prints (valid, duplicate, tampered, stale), its `--json` lines, and `--forward` handing the
 * raw body on byte for byte with the original headers.
 */
import { createHmac } from "node:crypto";
import { once } from "node:events";
import { request as httpRequest } from "node:http";
import { connect, createServer as createNetServer } from "node:net";
import { createWebhookVerifier, signWebhook, slack, standardWebhooks } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/main.js";
import {
  githubListen,
  interlock,
  jsonLines,
  memoryIo,
  type Recorded,
  Running,
  recordingServer,
  refusedPort,
  sendToGithubListener,
  type TestServer,
  tempDir,
} from "./helpers.js";

const SECRET = `whsec_${Buffer.from("interlock-cli-listen-test-secret").toString("base64")}`;
// Bytes a re-serialising proxy would change: key order, spacing, escapes, CRLF, a BOM-less UTF-8 mix.
const BODY = Buffer.from('{"type":"invoice.paid",  "data":{"id":"inv_7","note":"h\\u00e9llo ✓"},\r\n "z":1}\n');

describe("listen --json --forward", () => {
  let app: TestServer;
  let listener: Running;
  let url: string;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let bodyFile: string;

  beforeAll(async () => {
    app = await recordingServer((_, response) =>
      response.writeHead(202, { "content-type": "application/json" }).end('{"queued":true}'),
    );
    dir = await tempDir();
    bodyFile = await dir.file("invoice.json", BODY);
    listener = new Running(
      [
        "listen",
        "--port",
        "0",
        "--scheme",
        "svix",
        "--secret-env",
        "LISTEN_SECRET",
        "--json",
        "--forward",
        `${app.url}/hooks/svix`,
      ],
      { LISTEN_SECRET: SECRET },
    );
    const ready = JSON.parse(await listener.line(1));
    expect(ready).toMatchObject({ type: "listening", scheme: "standard-webhooks", forward: `${app.url}/hooks/svix` });
    url = ready.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
  afterAll(async () => {
    await listener?.stop();
    await app?.close();
    await dir?.remove();
  });

  const send = (...extra: string[]) =>
    interlock([
      "send",
      `${url}/webhooks`,
      "--scheme",
      "svix",
      "--secret",
      SECRET,
      "--body",
      `@${bodyFile}`,
      "--json",
      ...extra,
    ]);

  it("valid then duplicate: the first copy is forwarded (raw bytes, original headers), the second is not", async () => {
    const result = await send("--repeat", "2", "-H", "x-request-note: from the test");
    expect(result.code).toBe(0);
    const [first, second] = jsonLines(result.stdout);
    // The app's answer goes back to the sender; the duplicate is answered by the listener.
    expect(first).toMatchObject({ status: 202, body: '{"queued":true}' });
    expect(second).toMatchObject({ status: 200 });
    expect(JSON.parse(second?.body as string)).toEqual({ duplicate: true, id: first?.id });

    await listener.line(3);
    const [valid, duplicate] = jsonLines(listener.lines.slice(1, 3).join("\n"));
    expect(valid).toMatchObject({
      type: "delivery",
      verdict: "valid",
      scheme: "standard-webhooks",
      id: first?.id,
      reason: null,
      method: "POST",
      path: "/webhooks",
      status: 202,
      forward: { url: `${app.url}/hooks/svix`, status: 202, error: null },
    });
    expect(duplicate).toMatchObject({ verdict: "duplicate", id: first?.id, reason: null, status: 200, forward: null });

    expect(app.requests).toHaveLength(1);
    const forwarded = app.requests[0] as Recorded;
    expect(forwarded.url).toBe("/hooks/svix");
    expect(forwarded.body.equals(BODY)).toBe(true);
    expect(forwarded.headers).toMatchObject({
      "svix-id": first?.id,
      "content-type": "application/json",
      "x-request-note": "from the test",
      "user-agent": "interlock-cli",
    });
    // What reached the app is still a valid delivery for the same secret: nothing was re-signed.
    const verifier = createWebhookVerifier({ scheme: standardWebhooks, secret: SECRET });
    await expect(verifier.verify(forwarded.headers, forwarded.body)).resolves.toMatchObject({ id: first?.id });
  });

  it("tampered and stale copies are refused, reported with core's reason, and never forwarded", async () => {
    const tampered = await send("--tamper");
    expect(tampered.code).toBe(1);
    expect(jsonLines(tampered.stdout)[0]).toMatchObject({ status: 401, contentType: "application/problem+json" });
    expect(JSON.parse(await listener.line(4))).toMatchObject({
      type: "delivery",
      verdict: "tampered",
      scheme: "standard-webhooks",
      reason: "no_matching_signature",
      detail: "no signature matched",
      status: 401,
      forward: null,
    });

    const stale = await send("--stale");
    expect(stale.code).toBe(1);
    expect(JSON.parse(jsonLines(stale.stdout)[0]?.body as string)).toMatchObject({ code: "timestamp_too_old" });
    expect(JSON.parse(await listener.line(5))).toMatchObject({
      verdict: "stale",
      reason: "timestamp_too_old",
      status: 401,
      forward: null,
    });
    expect(app.requests).toHaveLength(1);
  });

  it("stops on Ctrl+C with exit code 0", async () => {
    expect(await listener.stop()).toBe(0);
    expect(listener.stderr).toBe("");
  });
});

describe("listen (text output) with an app that cannot be reached", () => {
  it("prints each delivery on a line; a failed forward is answered 502 and released, so a retry is forwarded again", async () => {
    const port = await refusedPort();
    const listener = new Running(githubListen("--forward", `http://127.0.0.1:${port}/webhooks/github`));
    try {
      const ready = await listener.line(1);
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+) for github deliveries, forwarding verified ones to/.exec(
        ready,
      )?.[1];
      expect(url).toBeDefined();

      const result = await interlock([
        "send",
        `${url}/webhooks/github`,
        "--scheme",
        "github",
        "--secret",
        "gh-secret",
        "--body",
        '{"zen":"Design for failure."}',
        "--id",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "--repeat",
        "2",
        "--json",
      ]);
      expect(result.code).toBe(1);
      const attempts = jsonLines(result.stdout).filter((line) => line.type === "attempt");
      expect(attempts.map((a) => a.status)).toEqual([502, 502]);
      expect(JSON.parse(attempts[0]?.body as string)).toMatchObject({ code: "forward_failed", status: 502 });

      const forwardFailed = `forward failed: cannot reach http://127.0.0.1:${port}/webhooks/github: connection refused`;
      for (const n of [2, 3]) {
        const line = await listener.line(n);
        expect(line).toMatch(/^\d\d:\d\d:\d\d {2}valid {6}github {2}72d3162e-cc78-11e3-81ab-4c9367dc0958 {2}/);
        expect(line.endsWith(forwardFailed)).toBe(true);
      }
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });
});

/** The listener carries on: a valid GitHub delivery sent to it is printed valid on its `line`. */
async function expectStillListening(listener: Running, url: string, line: number): Promise<void> {
  const result = await interlock(["send", url, "--scheme", "github", "--secret", "gh-secret", "--body", "{}"]);
  expect(result.code).toBe(0);
  expect(await listener.line(line)).toMatch(/ {2}valid {6}github {2}/);
}

describe("listen: a sender that leaves before its body is complete", () => {
  // Headers GitHub's scheme reads, well formed: only the body could refuse the delivery.
  const SIGNED_HEADS = `X-GitHub-Delivery: d-1\r\nX-Hub-Signature-256: sha256=${"0".repeat(64)}\r\n`;

  /** A real client: the headers and part of the body, then the socket closed, with no answer awaited. */
  async function sendPartBody(url: string, head: string, part: string, close: "end" | "reset"): Promise<void> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname).resume(); // read what comes back, or it never closes
    await once(socket, "connect");
    socket.write(`POST /webhooks/github HTTP/1.1\r\nHost: ${hostname}\r\n${SIGNED_HEADS}${head}\r\n${part}`);
    if (close === "end") socket.end();
    else socket.resetAndDestroy();
    await once(socket, "close");
  }

  it("one line with the verdict incomplete, what arrived, nothing processed; no error; the listener carries on", async () => {
    const listener = new Running(githubListen());
    try {
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await listener.line(1))?.[1] as string;
      await sendPartBody(url, "Content-Length: 100\r\n", '{"a":', "end");
      expect(await listener.line(2)).toMatch(
        /^\d\d:\d\d:\d\d {2}incomplete github {2}- {2}body_incomplete: the sender left after 5 of 100 bytes of the body: nothing processed$/,
      );
      await sendPartBody(url, "Transfer-Encoding: chunked\r\n", '3\r\n{"a', "reset");
      expect(await listener.line(3)).toMatch(
        / {2}incomplete github {2}- {2}body_incomplete: the sender left after 3 bytes of the body: nothing processed$/,
      );
      await expectStillListening(listener, url, 4);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.stderr).toBe("");
  });

  it("--json: a delivery line with verdict incomplete and status null (the sender got no answer)", async () => {
    const listener = new Running(githubListen("--json"));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      await sendPartBody(url, "Content-Length: 10\r\n", "{}", "end");
      expect(JSON.parse(await listener.line(2))).toMatchObject({
        type: "delivery",
        method: "POST",
        path: "/webhooks/github",
        verdict: "incomplete",
        id: null,
        reason: "body_incomplete",
        detail: "the sender left after 2 of 10 bytes of the body: nothing processed",
        status: null,
        forward: null,
      });
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.stderr).toBe("");
  });
});

describe("listen (text output): a delivery id the signature does not cover", () => {
  it("is shown with its control characters escaped: a sender cannot move the cursor, clear or retitle the terminal", async () => {
    const listener = new Running(githubListen());
    try {
      const url = new URL(/listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await listener.line(1))?.[1] as string);
      const body = '{"zen":"Keep it logically awesome."}';
      const signature = createHmac("sha256", "gh-secret").update(body).digest("hex");
      // GitHub signs the body only: a copy of a signed delivery can carry any X-GitHub-Delivery.
      // Node's parser refuses C0 controls in a header, but reads bytes 0x80-0xFF as Latin-1: 0x9B
      // is C1's CSI ("2J" clears the screen), 0x9D OSC ("0;t" retitles the window), 0x9C ST.
      const id = Buffer.from([0x64, 0x9b, 0x32, 0x4a, 0x9d, 0x30, 0x3b, 0x74, 0x9c]);
      const socket = connect(Number(url.port), url.hostname).resume();
      await once(socket, "connect");
      socket.write(
        Buffer.concat([
          Buffer.from(`POST /webhooks/github HTTP/1.1\r\nHost: ${url.host}\r\nX-GitHub-Delivery: `),
          id,
          Buffer.from(
            `\r\nX-Hub-Signature-256: sha256=${signature}\r\nContent-Type: application/json\r\n` +
              `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
          ),
        ]),
      );
      await once(socket, "close");
      const line = await listener.line(2);
      expect(line).toMatch(/ {2}valid {6}github {2}d\\x9b2J\\x9d0;t\\x9c$/);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may reach the terminal
      expect(line).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });
});

describe("listen: a delivery its headers refuse", () => {
  it("is answered before its body is sent, reported as malformed, and the listener carries on", async () => {
    const listener = new Running(githubListen());
    try {
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(await listener.line(1))?.[1] as string;
      const { hostname, port } = new URL(url);
      const socket = connect(Number(port), hostname);
      await once(socket, "connect");
      // No signature, and a body announced but never sent.
      socket.write(`POST /webhooks/github HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: 1000\r\n\r\n`);
      // Answered at once, not after a wait for the announced bytes (bounded, so the old way fails in 5 s).
      const [answer] = (await once(socket, "data", { signal: AbortSignal.timeout(5_000) })) as [Buffer];
      socket.destroy();
      expect(answer.toString("latin1")).toMatch(/^HTTP\/1\.1 400 /);
      expect(await listener.line(2)).toMatch(/ {2}malformed {2}github {2}- {2}missing_header: /);
      await expectStillListening(listener, url, 3);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.stderr).toBe("");
  });
});

describe("listen: the request's query in a report", () => {
  it("shows the parameter names with their values masked, as for the forward URL (a token in a webhook URL)", async () => {
    const listener = new Running(githubListen("--json"));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const result = await interlock([
        "send",
        `${url}/webhooks/github?token=s3cr3t-value&flag`,
        "--scheme",
        "github",
        "--secret",
        "gh-secret",
        "--body",
        "{}",
      ]);
      expect(result.code).toBe(0);
      const line = await listener.line(2);
      expect(JSON.parse(line)).toMatchObject({ type: "delivery", path: "/webhooks/github?token=***&***" });
      expect(line).not.toContain("s3cr3t");
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.stderr).toBe("");
  });
});

describe("listen --scheme slack: Slack's url_verification challenge", () => {
  const signingSecret = "8f742231b10e8888abcd99yyyzzz85a5";
  let listener: Running;
  let url: string;

  beforeAll(async () => {
    listener = new Running(["listen", "--port", "0", "--scheme", "slack", "--secret-env", "SLACK_SECRET", "--json"], {
      SLACK_SECRET: signingSecret,
    });
    url = JSON.parse(await listener.line(1)).url;
  });
  afterAll(async () => {
    await listener?.stop();
  });

  /** Posts a body signed now with `secret`, as Slack sends it. */
  async function deliver(body: string, contentType = "application/json", secret = signingSecret) {
    const signed = await signWebhook({ scheme: slack, secret, body, timestamp: Math.floor(Date.now() / 1000) });
    return fetch(`${url}/slack/events`, {
      method: "POST",
      headers: { ...signed.headers, "content-type": contentType },
      body,
    });
  }

  const challenge = (value: string) =>
    JSON.stringify({ token: "Jhj5dZrVaK7ZwHHjRyZWjbDl", challenge: value, type: "url_verification" });

  it("a verified challenge is answered 200 with {challenge} as JSON", async () => {
    const value = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    const response = await deliver(challenge(value));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ challenge: value });
    expect(JSON.parse(await listener.line(2))).toMatchObject({ verdict: "valid", scheme: "slack", status: 200 });
  });

  it("a challenge signed with another secret is refused 401 and its challenge never echoed", async () => {
    const response = await deliver(challenge("not-for-you"), "application/json", "another-signing-secret-0000000");
    expect(response.status).toBe(401);
    const text = await response.text();
    expect(text).not.toContain("not-for-you");
    expect(JSON.parse(text)).toMatchObject({ code: "no_matching_signature" });
    expect(JSON.parse(await listener.line(3))).toMatchObject({ verdict: "tampered", status: 401 });
  });

  it("events and form-encoded slash commands are acknowledged as usual, not taken for the challenge", async () => {
    const event = JSON.stringify({ type: "event_callback", event_id: "Ev0PV52K21", challenge: "ignored" });
    const eventResponse = await deliver(event);
    expect(eventResponse.status).toBe(200);
    expect(await eventResponse.json()).toEqual({ received: "Ev0PV52K21" });

    const command = "command=%2Fweather&text=94070&trigger_id=13345224609.738474920";
    const commandResponse = await deliver(command, "application/x-www-form-urlencoded");
    expect(commandResponse.status).toBe(200);
    expect(await commandResponse.json()).toEqual({ received: null });
  });
});

describe("listen --tolerance past core's default retention", () => {
  it("starts, remembering ids for the whole window, and takes a delivery an hour old as valid", async () => {
    // A year either way: the memory store must keep ids past twice that, not core's 7 days.
    const listener = new Running(
      ["listen", "--port", "0", "--scheme", "svix", "--secret-env", "S", "--json", "--tolerance", "31536000"],
      { S: SECRET },
    );
    try {
      const ready = JSON.parse(await listener.line(1));
      expect(ready).toMatchObject({ type: "listening" });
      const stale = await interlock([
        "send",
        `${ready.url}/w`,
        "--scheme",
        "svix",
        "--secret",
        SECRET,
        "--body",
        "{}",
        "--stale",
      ]);
      expect(stale.code).toBe(0);
      expect(JSON.parse(await listener.line(2))).toMatchObject({ verdict: "valid", status: 200 });
    } finally {
      await listener.stop();
    }
  });
});

describe("listen --forward: the app's answer goes back as a reverse proxy passes it", () => {
  const APP_BODY = Buffer.from('{"created":"inv_7","note":"h\\u00e9llo ✓"}\n');
  let app: TestServer;
  let listener: Running;
  let url: string;

  beforeAll(async () => {
    // The app answers in two chunks (so chunked, with a trailer) and sets end-to-end headers,
    // two cookies among them, beside hop-by-hop ones a proxy must not pass back.
    app = await recordingServer((_, response) => {
      response.writeHead(201, "Created Here", [
        ["Content-Type", "application/json; charset=utf-8"],
        ["Set-Cookie", "session=abc; Path=/; HttpOnly"],
        ["Location", "/invoices/inv_7"],
        ["Set-Cookie", "theme=dark; Path=/"],
        ["Cache-Control", "no-store"],
        ["X-App-Trace", "trace-42"],
        ["Connection", "keep-alive, X-Hop-Secret"],
        ["X-Hop-Secret", "for the next hop only"],
        ["Keep-Alive", "timeout=99"],
        ["Proxy-Authenticate", 'Basic realm="proxy"'],
        ["Trailer", "X-Checksum"],
      ]);
      response.write(APP_BODY.subarray(0, 10));
      response.addTrailers({ "X-Checksum": "abc" });
      response.end(APP_BODY.subarray(10));
    });
    listener = new Running(
      ["listen", "--port", "0", "--scheme", "svix", "--secret-env", "S", "--json", "--forward", `${app.url}/hooks`],
      { S: SECRET },
    );
    url = JSON.parse(await listener.line(1)).url;
  });
  afterAll(async () => {
    await listener?.stop();
    await app?.close();
  });

  /** POSTs a signed delivery and resolves with the answer as received: status, raw headers, body. */
  async function deliver(): Promise<{ status: number; reason: string; rawHeaders: string[]; body: Buffer }> {
    const signed = await signWebhook({ scheme: standardWebhooks, secret: SECRET, body: "{}" });
    const target = new URL(`${url}/webhooks`);
    return new Promise((resolve, reject) => {
      const request = httpRequest(
        target,
        { method: "POST", agent: false, headers: { ...signed.headers, "content-type": "application/json" } },
        async (response) => {
          const chunks: Buffer[] = [];
          for await (const chunk of response) chunks.push(chunk as Buffer);
          resolve({
            status: response.statusCode ?? 0,
            reason: response.statusMessage ?? "",
            rawHeaders: response.rawHeaders,
            body: Buffer.concat(chunks),
          });
        },
      );
      request.on("error", reject);
      request.end("{}");
    });
  }

  it("status and reason phrase, exact body and end-to-end headers (both Set-Cookie, in order); no hop-by-hop header, re-framed", async () => {
    const answer = await deliver();
    expect([answer.status, answer.reason]).toEqual([201, "Created Here"]);
    expect(answer.body.equals(APP_BODY)).toBe(true);
    const pairs: Array<[string, string]> = [];
    for (let i = 0; i < answer.rawHeaders.length; i += 2)
      pairs.push([(answer.rawHeaders[i] as string).toLowerCase(), answer.rawHeaders[i + 1] as string]);
    const values = (name: string) => pairs.filter(([n]) => n === name).map(([, v]) => v);
    expect(values("set-cookie")).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark; Path=/"]);
    expect(values("content-type")).toEqual(["application/json; charset=utf-8"]);
    expect(values("location")).toEqual(["/invoices/inv_7"]);
    expect(values("cache-control")).toEqual(["no-store"]);
    expect(values("x-app-trace")).toEqual(["trace-42"]);
    // The app's framing and hop-by-hop headers stay on its hop; the listener frames its own answer.
    for (const name of ["x-hop-secret", "proxy-authenticate", "trailer", "transfer-encoding", "x-checksum"])
      expect(values(name), name).toEqual([]);
    expect(values("keep-alive")).not.toContain("timeout=99");
    expect(values("connection")).toEqual(["close"]);
    expect(values("content-length")).toEqual([String(APP_BODY.length)]);
    expect(JSON.parse(await listener.line(2))).toMatchObject({ verdict: "valid", status: 201 });
  });
});

describe("listen: a request it could not answer is reported on stderr, and it carries on", () => {
  /** Runs `listen …argv` in-process with a stdout that fails to write delivery lines (a full disk). */
  async function listenWithFailingOutput(json: boolean): Promise<{ err: string; out: string }> {
    const stop = new AbortController();
    let out = "";
    const io = memoryIo({ signal: stop.signal });
    io.stdout = {
      write: (text: string) => {
        if (text.includes("valid")) throw new Error("ENOSPC: no space left on device, write");
        out += text;
      },
    };
    const argv = githubListen(...(json ? ["--json"] : []));
    const running = run(argv, io);
    while (out === "") await new Promise((resolve) => setTimeout(resolve, 10));
    const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] as string;
    const sent = await interlock(["send", url, "--scheme", "github", "--secret", "gh-secret", "--body", "{}"]);
    expect(sent.code).toBe(0); // the sender is answered all the same
    stop.abort();
    expect(await running).toBe(0);
    return { err: io.err(), out };
  }

  it("--json: one JSON object, as every error with --json is (exitCode null: the listener carries on)", async () => {
    const { err } = await listenWithFailingOutput(true);
    expect(jsonLines(err)).toEqual([
      {
        type: "error",
        code: "internal",
        message:
          "could not answer a request: unexpected error (please report it): ENOSPC: no space left on device, write",
        exitCode: null,
      },
    ]);
  });

  it("text: one line", async () => {
    const { err } = await listenWithFailingOutput(false);
    expect(err).toBe(
      "interlock listen: could not answer a request: unexpected error (please report it): ENOSPC: no space left on device, write\n",
    );
  });
});

describe("listen --scheme zoom: Zoom's endpoint.url_validation challenge", () => {
  it("is answered with the secret given as bytes (--secret-hex): the HMAC key is those bytes", async () => {
    const token = "zoom secret token "; // a trailing space: only --secret-hex can give it
    const hex = Buffer.from(token).toString("hex");
    const listener = new Running(["listen", "--port", "0", "--scheme", "zoom", "--secret-hex", hex, "--json"]);
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const plainToken = "qgg8vlvZRS6UYooatFL8Aw";
      const body = JSON.stringify({ event: "endpoint.url_validation", payload: { plainToken } });
      const result = await interlock(["send", url, "--scheme", "zoom", "--secret-hex", hex, "--body", body, "--json"]);
      expect(result.code).toBe(0);
      const [attempt] = jsonLines(result.stdout);
      expect(JSON.parse(attempt?.body as string)).toEqual({
        plainToken,
        encryptedToken: createHmac("sha256", Buffer.from(token)).update(plainToken).digest("hex"),
      });
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });
  it("with several secrets (rotating), is answered under the one that signed it, either way; another is refused", async () => {
    const [older, newer, unknown] = ["zoom-token-old", "zoom-token-new", "zoom-token-other"];
    const listener = new Running([
      "listen",
      "--port",
      "0",
      "--scheme",
      "zoom",
      "--secret",
      older,
      "--secret",
      newer,
      "--json",
    ]);
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const challenge = async (token: string, plainToken: string) => {
        const body = JSON.stringify({ event: "endpoint.url_validation", payload: { plainToken } });
        const result = await interlock(["send", url, "--scheme", "zoom", "--secret", token, "--body", body, "--json"]);
        const [attempt] = jsonLines(result.stdout);
        return { status: attempt?.status, answer: JSON.parse(attempt?.body as string) as Record<string, unknown> };
      };
      const under = (token: string, plainToken: string) => ({
        status: 200,
        answer: { plainToken, encryptedToken: createHmac("sha256", token).update(plainToken).digest("hex") },
      });
      expect(await challenge(newer, "signed-with-the-second")).toEqual(under(newer, "signed-with-the-second"));
      expect(await challenge(older, "signed-with-the-first")).toEqual(under(older, "signed-with-the-first"));
      expect(await challenge(unknown, "signed-with-neither")).toMatchObject({
        status: 401,
        answer: { code: "no_matching_signature" },
      });
      expect(jsonLines(listener.lines.slice(1).join("\n")).map((line) => line.verdict)).toEqual([
        "valid",
        "valid",
        "tampered",
      ]);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });
});

describe("listen --forward to an app that answers a status no server can write (099)", () => {
  it("answers the sender 502 forward_failed and carries on, instead of ending with a stack trace", async () => {
    const app = createNetServer((socket) =>
      socket.once("data", () => socket.end("HTTP/1.1 099 Odd\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")),
    );
    app.listen(0, "127.0.0.1");
    await once(app, "listening");
    const { port } = app.address() as { port: number };
    const listener = new Running(githubListen("--json", "--forward", `http://127.0.0.1:${port}/webhooks`));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const why = "the app answered 099, which is not an HTTP status (100 to 999)";
      for (const n of [2, 3]) {
        const result = await sendToGithubListener(url, "--body", "{}", "--json");
        expect(result.code).toBe(1);
        const [attempt] = jsonLines(result.stdout);
        expect(attempt?.status).toBe(502);
        expect(JSON.parse(attempt?.body as string)).toMatchObject({
          code: "forward_failed",
          detail: `could not forward the delivery: ${why}`,
        });
        expect(JSON.parse(await listener.line(n))).toMatchObject({ status: 502, forward: { status: 99, error: why } });
      }
    } finally {
      expect(await listener.stop()).toBe(0);
      app.close();
    }
    expect(listener.stderr).toBe("");
  });
});

describe("listen --forward to an app slower than --timeout", () => {
  /** An app that holds each answer until the test gives it: `answer(index, status)`. */
  async function heldApp() {
    const held: Array<(status: number) => void> = [];
    const arrived: Array<() => void> = [];
    const app = await recordingServer((_, response, index) => {
      held[index] = (status) => response.writeHead(status, { "content-type": "text/plain" }).end(`app ${status}`);
      for (const wake of arrived.splice(0)) wake();
    });
    return {
      app,
      answer: (index: number, status: number) => held[index]?.(status),
      received: async (count: number) => {
        while (app.requests.length < count) await new Promise<void>((resolve) => arrived.push(resolve));
      },
    };
  }

  const sendCopy = async (url: string) => {
    const result = await sendToGithubListener(
      url,
      "--body",
      '{"zen":"Keep it logically awesome."}',
      "--id",
      "slow-delivery-1",
      "--json",
    );
    return jsonLines(result.stdout)[0] as { status: number; body: string };
  };

  it("the sender is answered 502 at the timeout, its retry is in flight, and the app's late 2xx counts the delivery as processed: processed once", async () => {
    const { app, answer, received } = await heldApp();
    const listener = new Running(githubListen("--json", "--timeout", "300", "--forward", `${app.url}/webhooks`));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const first = await sendCopy(url);
      expect(first.status).toBe(502);
      expect(JSON.parse(first.body)).toMatchObject({
        code: "forward_failed",
        detail: "could not forward the delivery: the app did not answer in time",
      });
      const why = `no answer from ${app.url}/webhooks within 300 ms (still waiting: its answer settles the delivery)`;
      expect(JSON.parse(await listener.line(2))).toMatchObject({
        verdict: "valid",
        status: 502,
        forward: { status: null, error: why, late: false },
      });
      await received(1);
      expect((await sendCopy(url)).status).toBe(409); // the retry, while the app still works on the first
      expect(JSON.parse(await listener.line(3))).toMatchObject({ verdict: "in_flight", status: 409 });

      answer(0, 200);
      expect(JSON.parse(await listener.line(4))).toMatchObject({
        verdict: "valid",
        id: "slow-delivery-1",
        status: 502,
        forward: { url: `${app.url}/webhooks`, status: 200, error: null, late: true },
      });
      const third = await sendCopy(url);
      expect([third.status, JSON.parse(third.body)]).toEqual([200, { duplicate: true, id: "slow-delivery-1" }]);
      expect(app.requests).toHaveLength(1);
    } finally {
      expect(await listener.stop()).toBe(0);
      await app.close();
    }
    expect(listener.lines.slice(4).map((line) => JSON.parse(line).verdict)).toEqual(["duplicate"]);
  });

  it("a late non-2xx releases the delivery: the next copy is forwarded again, and its answer goes back", async () => {
    const { app, answer, received } = await heldApp();
    const listener = new Running(githubListen("--timeout", "300", "--forward", `${app.url}/webhooks`));
    try {
      const url = /listening on (\S+) /.exec(await listener.line(1))?.[1] as string;
      expect((await sendCopy(url)).status).toBe(502);
      await received(1);
      answer(0, 503);
      expect(await listener.line(3)).toMatch(
        / {2}valid {6}github {2}slow-delivery-1 {2}forwarded, answered late: 503$/,
      );
      const retry = sendCopy(url);
      await received(2);
      answer(1, 200);
      expect((await retry).status).toBe(200);
      expect(await listener.line(4)).toMatch(/ {2}forwarded: 200$/);
      expect(app.requests).toHaveLength(2);
    } finally {
      expect(await listener.stop()).toBe(0);
      await app.close();
    }
  });
});
