/**
 * Each tarball as the registry would hold it, and each entry of its `exports` map loaded the
 * two ways users load it (ESM `import`, CJS `require`) by a `node` child process in the
 * project that installed the tarballs: a file missing from `"files"`, a `workspace:` range
 * left in, a runtime import of a devDependency or a CJS build that throws all fail here. Each
 * tarball's types also go through are-the-types-wrong (`pnpm check` leaves it to this file, which
 * has the tarballs at hand; `pnpm attw` packs and checks them on its own).
 */

import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { type PublishedPackage, publishedPackages } from "./packages.js";
import { packedApp } from "./ready.js";

const run = promisify(execFile);
const app = await packedApp();
const tarballs = inject("tarballs");
const packages = publishedPackages();

/** Names each entry must export: the ones its README's examples import. */
const README_EXPORTS: Record<string, Record<string, string[]>> = {
  "@interlock/core": {
    ".": [
      "createWebhookVerifier",
      "standardWebhooks",
      "WebhookVerificationError",
      "createWebhookReceiver",
      "MemoryStore",
      "memoryStore",
      "stripe",
      "github",
      "schemes",
      "createIdempotency",
      "runIdempotent",
      "hmacScheme",
      "signWebhook",
      "StoreUnavailableError",
    ],
    "./testing": ["describeStoreConformance", "describeIdempotencyBehaviour", "describeWebhookReplayBehaviour"],
  },
  "@interlock/cli": { ".": ["listen", "makeSecret", "send", "signDelivery", "verifyDelivery"] },
  "@interlock/client": { ".": ["CircuitOpenError", "ClientError", "createClient"] },
  "@interlock/express": { ".": ["captureRawBody", "idempotency", "releaseOnError", "webhook", "rawBodyOf"] },
  "@interlock/fastify": { ".": ["idempotency", "interlock", "webhook"] },
  "@interlock/hono": { ".": ["idempotency", "webhook"] },
  "@interlock/koa": { ".": ["idempotency", "webhook"] },
  "@interlock/web": {
    ".": ["readBytes", "readJson", "RequestBodyError", "toResponse", "withIdempotency", "withWebhook"],
  },
  "@interlock/oauth": {
    ".": [
      "createOAuthClient",
      "createLogin",
      "createSessionTokens",
      "LoginError",
      "authorizedFetch",
      "createClientCredentials",
      "createKeyring",
      "generateEncryptionKey",
      "memoryTokenStore",
    ],
    "./redis": ["redisTokenStore"],
    "./postgres": ["migrate", "migrationSql", "postgresTokenStore"],
  },
  "@interlock/opentelemetry": { ".": ["interlockTelemetry"] },
  "@interlock/postgres": { ".": ["migrate", "migrationSql", "postgresStore"] },
  "@interlock/redis": { ".": ["redisStore"] },
};

/**
 * Entries without a CommonJS build. `@interlock/core/testing` imports vitest, which throws when
 * required: its suites are for test files, which vitest loads as ESM.
 */
const ESM_ONLY: Record<string, string[]> = { "@interlock/core": ["./testing"] };

type Conditions = Record<string, unknown>;

interface Manifest {
  name: string;
  bin?: Record<string, string>;
  exports: Record<string, string | Conditions>;
  [field: string]: unknown;
}

const manifestOf = (name: string): Manifest =>
  JSON.parse(readFileSync(join(app, "node_modules", name, "package.json"), "utf8"));

/** The module entries (`.`, `./testing`), not `./package.json`. */
const entriesOf = (manifest: Manifest) => Object.keys(manifest.exports).filter((subpath) => !subpath.endsWith(".json"));

const specifier = (name: string, entry: string) => (entry === "." ? name : `${name}/${entry.slice(2)}`);

/** Every file path the manifest points at: `exports` targets and `bin`. */
function targetsOf(manifest: Manifest): string[] {
  const collect = (value: unknown): string[] =>
    typeof value === "string"
      ? [value]
      : value && typeof value === "object"
        ? Object.values(value).flatMap(collect)
        : [];
  return [...collect(manifest.exports), ...collect(manifest.bin)].map((path) => path.replace(/^\.\//, ""));
}

/** Whether this Node can require() an ES module (22.12 and later): then an ESM-only entry loads. */
const requireModule = (process.features as { require_module?: boolean }).require_module === true;

async function listTarball(name: string): Promise<string[]> {
  const { stdout } = await run("tar", ["-tzf", tarballs[name] as string]);
  return stdout
    .split("\n")
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ""));
}

/** Loads each entry in a child `node` and reports its export names, or the error it threw. */
async function load(
  kind: "esm" | "cjs",
  specifiers: string[],
): Promise<Record<string, { keys: string[] } | { error: string; code?: string }>> {
  const loader = kind === "esm" ? "await import(s)" : "require(s)";
  const script = `
    const out = {};
    for (const s of ${JSON.stringify(specifiers)}) {
      try { out[s] = { keys: Object.keys(${loader}).filter((k) => k !== "default" && k !== "module.exports").sort() }; }
      catch (e) { out[s] = { error: String(e && e.stack || e), code: e && e.code }; }
    }
    console.log(JSON.stringify(out));`;
  const { stdout } = await run(
    process.execPath,
    [
      kind === "esm" ? "--input-type=module" : "--input-type=commonjs",
      "-e",
      kind === "esm" ? script : `(async () => { ${script} })()`,
    ],
    { cwd: app },
  );
  return JSON.parse(stdout);
}

/** are-the-types-wrong's command line, run by the Node at hand. */
const attw = join(
  dirname(createRequire(import.meta.url).resolve("@arethetypeswrong/cli/package.json")),
  "dist/index.js",
);

/**
 * are-the-types-wrong on the tarball: each entry's types resolve, for `import` and `require`,
 * under node10, node16 and bundler resolution, to declarations of the right module kind. Its
 * rules a package turns off are in that package's `.attw.json` (read from the package's folder).
 */
async function typesProblems(pkg: PublishedPackage): Promise<string> {
  const args = [attw, tarballs[pkg.name] as string, "--profile", "node16", "--format", "ascii", "--no-color"];
  return run(process.execPath, args, { cwd: pkg.dir }).then(
    () => "",
    (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? String(error)}`,
  );
}

// One package at a time: each check is a TypeScript program of its own, a core's worth of CPU for
// seconds, and the other test worker's timing-sensitive tests share the machine.
describe.each(packages)("$name", (pkg) => {
  it("has types that resolve for import and require under every resolution (are-the-types-wrong)", async () => {
    expect(await typesProblems(pkg)).toBe("");
  });
});

describe.concurrent.each(packages.map((pkg) => pkg.name))("%s", (name) => {
  it("packs its README and LICENSE, no tests, and no workspace: range", async () => {
    const files = await listTarball(name);
    expect(files).toContain("README.md");
    expect(files).toContain("LICENSE");
    expect(files).toContain("package.json");
    expect(files.filter((file) => /(^|\/)(test|tests|__tests__)\/|\.(test|spec)\.[cm]?[jt]sx?$/.test(file))).toEqual(
      [],
    );
    expect(files.filter((file) => /(^|\/)(src\/|tsconfig|tsup\.config|\.turbo)/.test(file))).toEqual([]);
    const packed = readFileSync(join(app, "node_modules", name, "package.json"), "utf8");
    expect(packed).not.toContain("workspace:");
    expect(packed).not.toContain("link:");
  });

  it("packs every file its exports map and bin point at", async () => {
    const files = new Set(await listTarball(name));
    expect(targetsOf(manifestOf(name)).filter((target) => !files.has(target))).toEqual([]);
  });

  it("ships source maps that stay inside the package and carry their sources", async () => {
    const files = await listTarball(name);
    const root = join(app, "node_modules", name);
    const maps = files.filter((file) => file.endsWith(".map"));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps) {
      const parsed = JSON.parse(readFileSync(join(root, map), "utf8"));
      const base = resolve(root, dirname(map), parsed.sourceRoot ?? "");
      const outside = (parsed.sources as string[]).filter((source) =>
        relative(root, resolve(base, source)).startsWith(".."),
      );
      expect(outside, `${map} points outside the package`).toEqual([]);
      // src/ is not published: a map is only useful with the sources inlined.
      expect(parsed.sourcesContent?.length, `${map} has no sourcesContent`).toBe(parsed.sources.length);
    }
  });

  it("loads every entry with import and with require, with the README's names", async () => {
    const manifest = manifestOf(name);
    const entries = entriesOf(manifest);
    expect(entries.sort()).toEqual(Object.keys(README_EXPORTS[name] ?? {}).sort());
    const specifiers = entries.map((entry) => specifier(name, entry));
    const [esm, cjs] = await Promise.all([load("esm", specifiers), load("cjs", specifiers)]);
    for (const entry of entries) {
      const spec = specifier(name, entry);
      const imported = esm[spec];
      expect(imported, `import("${spec}")`).toHaveProperty("keys");
      const names = (imported as { keys: string[] }).keys;
      expect(names).toEqual(expect.arrayContaining(README_EXPORTS[name]?.[entry] ?? []));
      const required = cjs[spec];
      const target = manifest.exports[entry] as string | Conditions;
      if (typeof target === "object" && "require" in target) {
        // A dual entry: its CJS build loads, with the same names as its ESM build.
        expect(required, `require("${spec}")`).toEqual({ keys: names });
      } else if (ESM_ONLY[name]?.includes(entry)) {
        // An ESM-only entry: require() of it follows Node's rule for ESM, never a crash inside the package.
        if (requireModule) expect(required, `require("${spec}")`).toEqual({ keys: names });
        else expect(required, `require("${spec}")`).toMatchObject({ code: "ERR_REQUIRE_ESM" });
      } else {
        throw new Error(`${spec}: no "require" condition, so no CJS build, and not declared ESM only`);
      }
    }
  });
});

describe("@interlock/cli's bin", () => {
  it("runs as `interlock` from node_modules/.bin", async () => {
    const bin = join(app, "node_modules", ".bin", "interlock");
    const help = await run(bin, ["--help"], { cwd: app });
    expect(help.stdout).toMatch(/^Usage: interlock <command>/);
    expect(help.stdout).toMatch(/^\s+send\s+sign a delivery and POST it/m);
    const secret = await run(bin, ["secret", "--scheme", "stripe"], { cwd: app });
    expect(secret.stdout.trim()).toMatch(/^whsec_[A-Za-z0-9+/=]{20,}$/);
  });
});
