/**
 * A URL with a user name and password in it (`http://user:pass@host/…`), spawned: the request
 * carries them as Basic auth, as curl sends them, and nothing the CLI prints or answers shows
 * the password (text, --json, errors, the 502 problem+json a sender gets from `listen`).
 */
import { describe, expect, it } from "vitest";
import { githubListen, interlock, jsonLines, Running, recordingServer, refusedPort } from "./helpers.js";

const PASSWORD = "pa55-w0rd";
const basic = (userinfo: string) => `Basic ${Buffer.from(userinfo).toString("base64")}`;
const SEND = ["--scheme", "github", "--secret", "gh-secret", "--body", "{}"];

describe("send to a URL with credentials", () => {
  it("sends them as Basic auth (percent-escapes decoded), as curl does; an authorization header given replaces them", async () => {
    const app = await recordingServer();
    try {
      const { host } = new URL(app.url);
      const result = await interlock(["send", `http://hook-user:p%40ss@${host}/hook`, ...SEND]);
      expect(result.code).toBe(0);
      expect(app.requests[0]?.headers.authorization).toBe(basic("hook-user:p@ss"));
      const own = await interlock([
        "send",
        `http://hook-user:p%40ss@${host}/hook`,
        ...SEND,
        "-H",
        "authorization: Bearer t",
      ]);
      expect(own.code).toBe(0);
      expect(app.requests[1]?.headers.authorization).toBe("Bearer t");
    } finally {
      await app.close();
    }
  });

  it("an error shows the password as ***, in text and in --json", async () => {
    const port = await refusedPort();
    const url = `http://hook-user:${PASSWORD}@127.0.0.1:${port}/hook`;
    const text = await interlock(["send", url, ...SEND]);
    expect(text.code).toBe(5);
    expect(text.stderr).toBe(
      `interlock send: cannot reach http://hook-user:***@127.0.0.1:${port}/hook: connection refused\n`,
    );
    const json = await interlock(["send", url, ...SEND, "--json"]);
    expect(json.code).toBe(5);
    expect(jsonLines(json.stderr)).toEqual([
      {
        type: "error",
        code: "unreachable",
        message: `cannot reach http://hook-user:***@127.0.0.1:${port}/hook: connection refused`,
        exitCode: 5,
      },
    ]);
    expect(json.stdout + text.stdout).not.toContain(PASSWORD);
  });

  it("a user name alone (often a token) is shown as ***; text that is no URL, or another scheme's URL, by its start", async () => {
    const port = await refusedPort();
    const token = await interlock(["send", `http://ghp_t0ken@127.0.0.1:${port}/`, ...SEND]);
    expect(token.stderr).toBe(`interlock send: cannot reach http://***@127.0.0.1:${port}/: connection refused\n`);
    const notUrl = await interlock(["send", `http://hook-user:${PASSWORD}@[::1/`, ...SEND]);
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toBe('interlock send: <url> is not a URL: "http…" (see interlock send --help)\n');
    const ftp = await interlock(["send", `ftp://hook-user:${PASSWORD}@127.0.0.1/`, ...SEND]);
    expect(ftp.stderr).toBe(
      'interlock send: <url> must be an http:// or https:// URL, got "ftp:…" (see interlock send --help)\n',
    );
  });

  it.each([
    // No URL at all, or a URL with the user name for its scheme: shown by its start.
    ["a # in the password", `http://hook-user:${PASSWORD}#x@127.0.0.1:1/x`, "http…"],
    ["a / in the password", `http://hook-user:${PASSWORD}/x@127.0.0.1:1/x`, "http…"],
    ["no scheme", `//hook-user:${PASSWORD}@127.0.0.1:1/`, "//ho…"],
    ["no // either", `hook-user:${PASSWORD}@127.0.0.1:1/`, "hook…"],
  ])("a URL that is refused shows no password (%s)", async (_name, url, shown) => {
    const refused = await interlock(["send", url, ...SEND]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`"${shown}"`);
    expect(refused.stderr).not.toContain(PASSWORD);
  });
});

describe("listen --forward to a URL with credentials", () => {
  it("forwards with them as Basic auth; the listening line shows the password as ***", async () => {
    const app = await recordingServer();
    const { host } = new URL(app.url);
    const listener = new Running(githubListen("--json", "--forward", `http://app-user:${PASSWORD}@${host}/webhooks`));
    try {
      const ready = JSON.parse(await listener.line(1));
      expect(ready.forward).toBe(`http://app-user:***@${host}/webhooks`);
      const result = await interlock(["send", ready.url, ...SEND]);
      expect(result.code).toBe(0);
      expect(app.requests[0]?.headers.authorization).toBe(basic(`app-user:${PASSWORD}`));
      const delivery = JSON.parse(await listener.line(2));
      expect(delivery.forward).toEqual({
        url: `http://app-user:***@${host}/webhooks`,
        status: 204,
        error: null,
        late: false,
      });
    } finally {
      expect(await listener.stop()).toBe(0);
      await app.close();
    }
    expect(listener.lines.join("\n")).not.toContain(PASSWORD);
  });

  it("the URL's credentials win over a sender's own Authorization, which goes on only to a URL without them", async () => {
    const app = await recordingServer();
    const { host } = new URL(app.url);
    const withCredentials = new Running(githubListen("--json", "--forward", `http://app-user:${PASSWORD}@${host}/a`));
    const without = new Running(githubListen("--json", "--forward", `${app.url}/b`));
    try {
      for (const listener of [withCredentials, without]) {
        const { url } = JSON.parse(await listener.line(1)) as { url: string };
        const result = await interlock(["send", url, ...SEND, "-H", "Authorization: Bearer sender-token"]);
        expect(result.code).toBe(0);
      }
      expect(app.requests.map((request) => [request.url, request.headers.authorization])).toEqual([
        ["/a", basic(`app-user:${PASSWORD}`)],
        ["/b", "Bearer sender-token"],
      ]);
    } finally {
      expect(await withCredentials.stop()).toBe(0);
      expect(await without.stop()).toBe(0);
      await app.close();
    }
  });

  it("a failed forward shows the password as *** on the delivery line, and the sender's 502 names no URL", async () => {
    const port = await refusedPort();
    const listener = new Running(githubListen("--forward", `http://app-user:${PASSWORD}@127.0.0.1:${port}/webhooks`));
    try {
      const ready = await listener.line(1);
      expect(ready).toContain(`, forwarding verified ones to http://app-user:***@127.0.0.1:${port}/webhooks (`);
      const url = /listening on (\S+)/.exec(ready)?.[1] as string;
      const result = await interlock(["send", url, ...SEND, "--json"]);
      expect(result.code).toBe(1);
      const [attempt] = jsonLines(result.stdout);
      expect(JSON.parse(attempt?.body as string)).toMatchObject({
        code: "forward_failed",
        // The sender is not told where the app is (nor its user name): the listener's line says.
        detail: "could not forward the delivery: the app cannot be reached",
      });
      expect(await listener.line(2)).toMatch(
        new RegExp(
          `forward failed: cannot reach http://app-user:\\*\\*\\*@127\\.0\\.0\\.1:${port}/webhooks: connection refused$`,
        ),
      );
      expect(result.stdout).not.toContain(PASSWORD);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.lines.join("\n")).not.toContain(PASSWORD);
  });
});
