/**
 * An answer whose body never ends (or is just very long), spawned: `send` keeps its first MiB
 * and stops reading, and `listen --forward` answers the sender 502 rather than holding the
 * app's answer in memory, each long before the deadline.
 */
import { createServer, type Server } from "node:http";
import { describe, expect, it } from "vitest";
import { githubListen, interlock, jsonLines, Running } from "./helpers.js";

const MIB = 1024 * 1024;
const SEND = ["--scheme", "github", "--secret", "gh-secret", "--body", "{}"];

/**
 * A receiver that answers 200 and streams its body without end, 64 KiB every 5 ms (a bounded
 * rate, so a client that keeps it all grows to tens of MB by the deadline, not gigabytes).
 */
async function endlessReceiver(): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const chunk = Buffer.alloc(64 * 1024, "x");
  const server: Server = createServer((request, response) => {
    request.resume();
    response.writeHead(200, { "content-type": "text/plain" });
    const timer = setInterval(() => {
      response.write(chunk);
      sent += chunk.length;
    }, 5);
    response.once("close", () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe("an answer with a body that never ends", () => {
  it("send keeps its first MiB, stops reading and reports the 2xx (bodyTruncated), well before --timeout", async () => {
    const receiver = await endlessReceiver();
    try {
      const result = await interlock(["send", `${receiver.url}/hook`, ...SEND, "--timeout", "5000", "--json"]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const [attempt] = jsonLines(result.stdout);
      expect(attempt).toMatchObject({ status: 200, acknowledged: true, bodyTruncated: true, error: null });
      const body = attempt?.body as string;
      expect(body.length).toBeGreaterThan(MIB - 64 * 1024);
      expect(body.length).toBeLessThanOrEqual(MIB);
      expect(attempt?.durationMs).toBeLessThan(4000);
      // The connection was closed: the receiver stopped writing soon after the first MiB.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sent = receiver.sent();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(receiver.sent()).toBe(sent);
    } finally {
      await receiver.close();
    }
  }, 15_000);

  it("listen --forward answers the sender 502 forward_failed and reports the app's status, well before --timeout; the app's 200 counts the delivery as processed", async () => {
    const app = await endlessReceiver();
    const listener = new Running(githubListen("--json", "--timeout", "5000", "--forward", `${app.url}/webhooks`));
    try {
      const { url } = JSON.parse(await listener.line(1)) as { url: string };
      const result = await interlock(["send", url, ...SEND, "--id", "big-1", "--json"]);
      expect(result.code).toBe(1);
      const [attempt] = jsonLines(result.stdout);
      expect(attempt).toMatchObject({ status: 502, bodyTruncated: false });
      expect(attempt?.durationMs).toBeLessThan(4000);
      const why = "the app answered 200 with a body over 1 MiB, which is not passed on";
      expect(JSON.parse(attempt?.body as string)).toMatchObject({
        code: "forward_failed",
        status: 502,
        detail: `could not forward the delivery: ${why}`,
      });
      expect(JSON.parse(await listener.line(2))).toMatchObject({
        verdict: "valid",
        status: 502,
        forward: { url: `${app.url}/webhooks`, status: 200, error: why },
      });
      // The app answered 200: it processed the delivery, so the sender's retry is a duplicate, not forwarded again.
      const retry = await interlock(["send", url, ...SEND, "--id", "big-1", "--json"]);
      expect(jsonLines(retry.stdout)[0]).toMatchObject({ status: 200 });
      expect(JSON.parse(await listener.line(3))).toMatchObject({ verdict: "duplicate", id: "big-1" });
    } finally {
      expect(await listener.stop()).toBe(0);
      await app.close();
    }
    expect(listener.stderr).toBe("");
  }, 15_000);
});
