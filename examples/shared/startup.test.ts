// Every example's `node server.mjs` (the NestJS one: its build) as its README runs it, with the environment wrong or a
// dependency missing: one line on stderr that says why, exit code 1, never a stack trace. And the
// Hono apps on each runtime they name (Node, `bun app.mjs`, `deno serve`): loopback by default.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { signWebhook, stripe } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { hostFrom, portFrom, StartupError } from "./config.mjs";

/** Each example's required environment (its own check would refuse before PORT is read). */
const SERVERS: Record<string, Record<string, string>> = {
  express: { STRIPE_WEBHOOK_SECRET: "whsec_x", API_KEYS: "sk_1:acct_1" },
  fastify: { WEBHOOK_SECRET: "whsec_eA==", API_KEYS: "sk_1:acct_1" },
  hono: { GITHUB_WEBHOOK_SECRET: "x", API_KEYS: "sk_1:acct_1" },
  koa: { SHOPIFY_WEBHOOK_SECRET: "x", API_KEYS: "sk_1:acct_1" },
  prometheus: { STRIPE_WEBHOOK_SECRET: "whsec_x" },
  redis: { STRIPE_WEBHOOK_SECRET: "whsec_x", API_KEYS: "sk_1:acct_1" },
  postgres: { DATABASE_URL: "postgres://127.0.0.1:1/none", GITHUB_WEBHOOK_SECRET: "x", API_KEYS: "sk_1:acct_1" },
  "oauth-express": oauthEnvironment(),
  "oauth-hono": { ...oauthEnvironment(), BASE_URL: "http://127.0.0.1:3000" }, // Bun and Deno start with it only
  nestjs: { STRIPE_WEBHOOK_SECRET: "whsec_x", API_KEYS: "sk_1:acct_1" },
};

/** Each example's server: `server.mjs`, or for the TypeScript one (NestJS) its build, as its README runs it. */
const ENTRY: Record<string, string> = { nestjs: "dist/main.js" };
const entryOf = (name: string) => ENTRY[name] ?? "server.mjs";

// The NestJS example is TypeScript: built once, as its README says (`npm run build`), before it runs.
beforeAll(async () => {
  const tsc = spawn(bin("tsc"), ["-p", "tsconfig.build.json"], { cwd: folderOf("nestjs"), stdio: "inherit" });
  const [code] = (await once(tsc, "exit")) as [number | null];
  expect(code, "tsc -p examples/nestjs/tsconfig.build.json").toBe(0);
}, 60_000);

const folderOf = (name: string) => fileURLToPath(new URL(`../${name}/`, import.meta.url));

function oauthEnvironment(): Record<string, string> {
  return { ISSUER: "https://issuer.example", CLIENT_ID: "c", CLIENT_SECRET: "s", TOKEN_KEY: "A".repeat(43) };
}

/** This process's environment without what the examples read (Vitest sets BASE_URL, for one). */
function inherited(): NodeJS.ProcessEnv {
  const {
    PORT: _port,
    HOST: _host,
    REDIS_URL: _redis,
    DATABASE_URL: _database,
    BASE_URL: _base,
    ...rest
  } = process.env;
  return rest;
}

/** Runs `examples/<name>/server.mjs` (or its build) until it exits (10 s at most): its exit code and stderr. */
function boot(name: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return runIn(name, [process.execPath, entryOf(name)], { ...inherited(), ...SERVERS[name], ...env });
}

/** Runs `command` in `examples/<name>` with exactly `env` until it exits (10 s at most): its exit code and stderr. */
async function runIn(
  name: string,
  [command, ...args]: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command!, args, {
    cwd: folderOf(name),
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: deno's npm launcher runs the real binary as a child
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 10_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

const BAD_ENVIRONMENTS: Array<[Record<string, string>, string]> = [
  [{ PORT: "abc" }, 'PORT must be a port number from 0 to 65535, not "abc"'],
  [{ PORT: "65536" }, 'PORT must be a port number from 0 to 65535, not "65536"'],
  [{ PORT: "" }, "PORT is set but empty: unset it, or give it a value"],
  [{ HOST: "a host" }, 'HOST must be a host name or an IP address, not "a host"'],
];

describe("examples/shared/config.mjs: PORT and HOST", () => {
  it.each(BAD_ENVIRONMENTS)("%j: a StartupError that says why", (env, message) => {
    const read = () => (Object.hasOwn(env, "PORT") ? portFrom(env) : hostFrom(env));
    expect(read).toThrow(new StartupError(message)); // its class and its whole message
  });
});

// Every example reads its environment through the shared config (above): each one boots with one
// of the bad values, in turn, to show it says so in one line, as its README runs it.
describe.each(
  Object.keys(SERVERS).map((name, i) => [name, ...BAD_ENVIRONMENTS[i % BAD_ENVIRONMENTS.length]!] as const),
)("examples/%s: node server.mjs (or its build)", (name, env, message) => {
  it(`${JSON.stringify(env)}: one line, exit code 1`, async () => {
    expect(await boot(name, env)).toEqual({ code: 1, stderr: `Cannot start: ${message}\n` });
  });
});

/**
 * Runs `examples/<name>/server.mjs` (or its build) until it prints a line with a URL, which it
 * returns; then stops it. (Nest logs its own lines first.)
 */
async function urlLine(name: string, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [entryOf(name)], {
    cwd: folderOf(name),
    env: { ...inherited(), ...SERVERS[name], ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: child.stdout });
  try {
    return await new Promise<string>((resolve, reject) => {
      lines.on("line", (line) => line.includes("http://") && resolve(line));
      child.once("exit", (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
    });
  } finally {
    lines.close();
    child.kill();
  }
}

// The examples a test can start without a database server (Redis and PostgreSQL build their URL the same way).
describe.each(Object.keys(SERVERS).filter((name) => name !== "redis" && name !== "postgres"))(
  "examples/%s: node server.mjs (or its build) with HOST=::1",
  (name) => {
    it("prints its URL with the address in brackets, as a URL must write it: http://[::1]:PORT", async () => {
      const line = await urlLine(name, { HOST: "::1", PORT: "0" });
      const url = /http:\/\/\S+?:\d+(?=\/)/.exec(line)?.[0];
      expect(url, line).toMatch(/^http:\/\/\[::1\]:\d+$/);
    });
  },
);

describe.each(["express", "fastify", "hono", "koa", "redis", "postgres"])("examples/%s: API_KEYS", (name) => {
  it.each([
    ["sk_1", 'API_KEYS entry 1 must be "api key:account id"'],
    ["sk_1:acct_1,sk_2", 'API_KEYS entry 2 must be "api key:account id"'],
    ["sk_1:acct_1:extra", 'API_KEYS entry 1 must be "api key:account id"'],
    ["sk 1:acct_1", "API_KEYS entry 1: an API key is letters, digits and - . _ ~ + / (then = padding)"],
    ["sk_1:acct_1,sk_1:acct_2", "API_KEYS entry 2 repeats an API key given before it"],
  ])("%j: one line, exit code 1", async (keys, line) => {
    expect(await boot(name, { API_KEYS: keys })).toEqual({ code: 1, stderr: `Cannot start: ${line}\n` });
  });
});

describe.each(["oauth-express", "oauth-hono"])("examples/%s: BASE_URL", (name) => {
  it("a trailing slash is the same origin: the callback it prints is the one it sends", async () => {
    const line = await urlLine(name, { BASE_URL: "http://127.0.0.1:4000/", PORT: "0" });
    expect(line).toContain("(callback http://127.0.0.1:4000/callback)");
  });

  it.each(["https://example.com/myapp", "https://example.com/?x=1"])(
    "%j (a path or a query, which the callback it sends would drop): one line, exit code 1",
    async (base) => {
      expect(await boot(name, { BASE_URL: base })).toEqual({
        code: 1,
        stderr:
          "Cannot start: BASE_URL must be an origin (scheme, host and port only): the app serves its routes at its root\n",
      });
    },
  );
});

describe("a server that cannot start", () => {
  let taken: Server;
  let closedPort: number;
  beforeAll(async () => {
    taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const probe = createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    closedPort = (probe.address() as { port: number }).port;
    await new Promise((done) => probe.close(done));
  });
  afterAll(() => new Promise((done) => taken.close(done)));

  it("Redis down: says so in one line, without the URL's password", async () => {
    const redisUrl = `redis://:hunter2@127.0.0.1:${closedPort}`;
    expect(await boot("redis", { REDIS_URL: redisUrl })).toEqual({
      code: 1,
      stderr: `Cannot start: Redis at redis://127.0.0.1:${closedPort}: connect ECONNREFUSED 127.0.0.1:${closedPort}\n`,
    });
  });

  it("PostgreSQL down: says so in one line, without the URL's password", async () => {
    const { code, stderr } = await boot("postgres", {
      DATABASE_URL: `postgres://app:hunter2@127.0.0.1:${closedPort}/db`,
    });
    expect({ code, stderr }).toEqual({
      code: 1,
      stderr: expect.stringMatching(
        new RegExp(`^Cannot start: PostgreSQL at postgres://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED[^\\n]*\\n$`),
      ),
    });
    expect(stderr).not.toContain("hunter2");
  });

  it.each([
    ["redis", { REDIS_URL: "localhost:6379" }, "REDIS_URL must be an absolute URL starting with redis: or rediss:"],
    [
      "postgres",
      { DATABASE_URL: "db.internal/app" },
      "DATABASE_URL must be an absolute URL starting with postgres: or postgresql:",
    ],
    ["oauth-express", { BASE_URL: "app.example" }, "BASE_URL must be an absolute URL starting with https: or http:"],
    ["oauth-hono", { BASE_URL: "app.example" }, "BASE_URL must be an absolute URL starting with https: or http:"],
  ])("%s, %j: one line, exit code 1", async (name, env, line) => {
    expect(await boot(name, env)).toEqual({ code: 1, stderr: `Cannot start: ${line}\n` });
  });

  it("the port taken: one line, exit code 1", async () => {
    const port = String((taken.address() as { port: number }).port);
    expect(await boot("express", { PORT: port })).toEqual({
      code: 1,
      stderr: `Cannot start: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`,
    });
  });
});

/** The repository's own bun and deno (root dev dependencies), as `pnpm start:bun` finds them. */
const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));

/** How the Hono example and its README start it on each runtime: `node server.mjs` and its package scripts. */
function commands(name: string): Record<string, string[]> {
  const { scripts } = JSON.parse(readFileSync(new URL(`../${name}/package.json`, import.meta.url), "utf8"));
  const [deno, ...denoArgs] = scripts["start:deno"].split(" ");
  const [bun, ...bunArgs] = scripts["start:bun"].split(" ");
  return {
    node: [process.execPath, "server.mjs"],
    bun: [bin(bun), ...bunArgs],
    deno: [bin(deno), ...denoArgs.slice(0, -1), "--port", "0", ...denoArgs.slice(-1)], // before the file
  };
}

describe.each(["hono", "oauth-hono"])("examples/%s: the default export as Bun and Deno start it", (name) => {
  const runtimes = commands(name);
  const settings = Object.keys(SERVERS[name]!);

  it.each(["bun", "deno"])(
    "%s without its settings: the line node server.mjs says, exit code 1, as it starts (not on a request)",
    async (runtime) => {
      const env = { ...inherited(), NO_COLOR: "1", PORT: "0" };
      for (const setting of settings) delete env[setting];
      const node = await runIn(name, runtimes.node!, env);
      expect(node).toEqual({ code: 1, stderr: expect.stringMatching(/^Cannot start: Set [^\n]+\n$/) });
      expect(await runIn(name, runtimes[runtime]!, env)).toEqual(node);
    },
    25_000, // past runIn's 10 s each: a runtime that keeps running (the bug) is killed, not left behind
  );

  it.each([{ PORT: "abc" }, { PORT: "65536" }, { PORT: "" }, { HOST: "a host" }])(
    "bun with %j: the line node server.mjs says, exit code 1",
    async (wrong) => {
      const env = { ...inherited(), ...SERVERS[name], NO_COLOR: "1", ...wrong };
      const node = await runIn(name, runtimes.node!, env);
      expect(node).toEqual({ code: 1, stderr: expect.stringMatching(/^Cannot start: (PORT|HOST) [^\n]+\n$/) });
      expect(await runIn(name, runtimes.bun!, env)).toEqual(node);
    },
    25_000,
  );

  it("on Workers (bindings only with a request): the first request throws the StartupError naming what to set", async () => {
    vi.stubEnv("BASE_URL", undefined); // Vitest's own ("/"), not one a Worker would have
    onTestFinished(() => vi.unstubAllEnvs());
    const { default: served } = await import(`../${name}/app.mjs`);
    const request = new Request("http://127.0.0.1/");
    expect(() => served.fetch(request, {}, {})).toThrow(
      expect.objectContaining({ name: "StartupError", message: expect.stringMatching(/^Set /) }),
    );
  });
});

describe("examples/oauth-hono: the default export without BASE_URL", () => {
  const { BASE_URL: _base, ...settings } = SERVERS["oauth-hono"]!;
  const line =
    "Cannot start: Set BASE_URL to this app's public origin: the login comes back to its /callback (see README.md).\n";

  it.each(["bun", "deno"])(
    "%s: refuses to start, in one line naming BASE_URL, exit code 1 (no request's Host becomes the callback)",
    async (runtime) => {
      const env = { ...inherited(), ...settings, NO_COLOR: "1", PORT: "0" };
      expect(await runIn("oauth-hono", commands("oauth-hono")[runtime]!, env)).toEqual({ code: 1, stderr: line });
    },
    25_000, // past runIn's 10 s: a runtime that keeps running (the bug) is killed, not left behind
  );

  it("on Workers: every request throws the StartupError naming BASE_URL, whatever its Host", async () => {
    vi.stubEnv("BASE_URL", undefined); // Vitest's own ("/"), not one a Worker would have
    onTestFinished(() => vi.unstubAllEnvs());
    const { default: served } = await import("../oauth-hono/app.mjs");
    for (const url of ["http://attacker.example/login", "https://app.example.com/login"]) {
      expect(() => served.fetch(new Request(url), settings, {})).toThrow(
        expect.objectContaining({ name: "StartupError", message: line.slice("Cannot start: ".length, -1) }),
      );
    }
  });
});

/** Resolves once `address:port` takes a connection, false once it refuses it. */
async function accepts(address: string, port: number): Promise<boolean> {
  const socket = connect(port, address);
  try {
    await once(socket, "connect");
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

describe.each(["hono", "oauth-hono"])("examples/%s without HOST", (name) => {
  describe.each(Object.entries(commands(name)))("on %s", (_runtime, [command, ...args]) => {
    let child: ChildProcess;
    afterAll(() => {
      if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
    });

    it("listens on 127.0.0.1 only, as node server.mjs does: another loopback address is refused", async () => {
      child = spawn(command!, args, {
        cwd: folderOf(name),
        env: { ...inherited(), ...SERVERS[name], PORT: "0", NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true, // its own process group: deno's npm launcher runs the real binary as a child
      });
      let output = ""; // Bun and Deno print where they listen, on stdout or stderr
      const listening = new Promise<number>((resolve, reject) => {
        const read = (chunk: Buffer) => {
          output += chunk;
          const port = /http:\/\/[^\s/]+:(\d+)/.exec(output)?.[1];
          if (port !== undefined) resolve(Number(port));
        };
        child.stdout!.on("data", read);
        child.stderr!.on("data", read);
        child.once("exit", (code) => reject(new Error(`${command} exited with ${code}: ${output}`)));
      });
      const port = await listening;
      expect(await accepts("127.0.0.1", port)).toBe(true);
      // Every 127.x address is loopback on Linux: a server on all interfaces would take this one.
      expect(await accepts("127.0.0.2", port)).toBe(false);
    }, 20_000);
  });
});

describe("examples/nestjs, built with tsc and run with node", () => {
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill());

  it("starts, says where, and answers a signed Stripe delivery: tsc's decorators and Nest's injection work", async () => {
    child = spawn(process.execPath, [entryOf("nestjs")], {
      cwd: folderOf("nestjs"),
      env: { ...inherited(), ...SERVERS.nestjs, PORT: "0", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const started = child;
    const url = await new Promise<string>((resolve, reject) => {
      let output = "";
      started.stdout!.on("data", (chunk: Buffer) => {
        output += chunk;
        const found = /Stripe webhooks on (http:\/\/127\.0\.0\.1:\d+)\//.exec(output)?.[1];
        if (found !== undefined) resolve(found);
      });
      started.once("exit", (code) => reject(new Error(`node dist/main.js exited with ${code}: ${output}`)));
    });
    const body = JSON.stringify({ id: "evt_built", object: "event", type: "checkout.session.completed" });
    const signed = await signWebhook({ scheme: stripe, secret: SERVERS.nestjs!.STRIPE_WEBHOOK_SECRET!, body });
    const response = await fetch(`${url}/webhooks/stripe`, {
      method: "POST",
      headers: { ...signed.headers, "content-type": "application/json" },
      body,
    });
    expect([response.status, await response.json()]).toEqual([200, { received: "evt_built" }]);
  }, 20_000);
});
