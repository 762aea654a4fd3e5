// Boots the Hono OAuth example against oidc-provider on 127.0.0.1 and drives the whole login
// over HTTP (the same block as the Express example: ../oauth-express/login-suite.ts): on Node,
// then the same app.mjs default export on Bun and on Deno, which proves @interlock/oauth's main
// entry on runtimes without Node's APIs (Web Crypto, fetch).
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describeBffLogin } from "../oauth-express/login-suite.js";
import { start } from "./server.mjs";

describeBffLogin("Hono on Node", start);

// The runtimes the repository installs (root devDependencies): a missing one fails, never skips.
const bin = (name: string) => fileURLToPath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));
const runtimes = {
  Bun: (port: number) => [
    bin("bun"),
    "-e",
    `const { default: app } = await import("./app.mjs");
     const server = Bun.serve({ hostname: "127.0.0.1", port: ${port}, fetch: app.fetch });
     console.log(server.url.href);`,
  ],
  Deno: (port: number) => [
    bin("deno"),
    "eval",
    `const { default: app } = await import("./app.mjs");
     Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen: () => console.log("http://127.0.0.1:${port}") }, app.fetch);`,
  ],
};

for (const [runtime, command] of Object.entries(runtimes)) {
  describeBffLogin(`Hono on ${runtime}`, async (options) => {
    const [program, ...args] = command(options.port);
    const child: ChildProcess = spawn(program!, args, {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      env: {
        ...process.env,
        ISSUER: options.issuer,
        CLIENT_ID: options.clientId,
        CLIENT_SECRET: options.clientSecret,
        TOKEN_KEY: options.encryptionKeys[0]!.key,
        BASE_URL: `http://127.0.0.1:${options.port}`,
        NO_COLOR: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group: deno's npm launcher runs the real binary as a child
    });
    let stderr = "";
    child.stderr!.on("data", (chunk) => {
      stderr += chunk;
    });
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout! }), "line"),
      once(child, "exit").then(([code]) => Promise.reject(new Error(`${runtime} exited with ${code}: ${stderr}`))),
    ])) as [string];
    return {
      url: new URL(line).origin,
      close: async () => {
        if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
      },
    };
  });
}
