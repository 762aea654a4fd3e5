/**
 * The one list of test projects. Vitest 4 no longer reads this file by itself: the root
 * vitest.config.ts imports it into `test.projects`.
 *
 * Core's suite runs twice, once per crypto port, by pointing `#crypto` at each
 * implementation: Node's `crypto` (what Node resolves) and Web Crypto (what Bun, Deno and
 * Workers resolve). The packaging and examples projects run the built packages, as users get them.
 */
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { configDefaults, type TestProjectConfiguration, type TestProjectInlineConfiguration } from "vitest/config";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

const coreWith = (port: "node" | "web"): TestProjectInlineConfiguration => ({
  resolve: { alias: { "#crypto": here(`./packages/core/src/crypto/${port}.ts`) } },
  test: {
    name: `core (${port} crypto)`,
    root: here("./packages/core"),
    include: ["test/**/*.test.ts"],
    // The memory store's tests (its conformance suite, the core's longest file, mostly leases
    // running out in real time) once, under Node's crypto: the store uses no crypto.
    exclude: [
      "test/packaging.test.ts",
      "test/runtimes.test.ts",
      ...(port === "web" ? ["test/memory-store.test.ts"] : []),
    ],
    env: { INTERLOCK_EXPECTED_CRYPTO: port },
  },
});

// Store packages test against core's source, so a change in core is seen without a build.
const coreSource = [
  { find: /^@interlock\/core\/testing$/, replacement: here("./packages/core/src/testing/index.ts") },
  { find: /^@interlock\/core$/, replacement: here("./packages/core/src/index.ts") },
  { find: /^#crypto$/, replacement: here("./packages/core/src/crypto/node.ts") },
];

/** A store package's tests, with a global setup that starts its throwaway server(s). */
const storeProject = (name: "redis" | "postgres"): TestProjectInlineConfiguration => ({
  resolve: { alias: coreSource },
  test: {
    name,
    root: here(`./packages/${name}`),
    include: ["test/**/*.test.ts"],
    globalSetup: [here(`./packages/${name}/test/global-setup.ts`)],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});

/**
 * A framework adapter's tests: real HTTP on 127.0.0.1, against core's source and the adapter's
 * own (which a test app shared with another runtime imports by the package's name).
 */
const adapterProject = (name: "fastify" | "hono" | "web"): TestProjectInlineConfiguration => ({
  resolve: {
    alias: [
      ...coreSource,
      { find: new RegExp(`^@interlock/${name}$`), replacement: here(`./packages/${name}/src/index.ts`) },
    ],
  },
  test: { name, root: here(`./packages/${name}`), include: ["test/**/*.test.ts"] },
});

/**
 * The Express and Koa adapters' tests, once per framework major their peer ranges claim: the
 * same files, the major chosen by module resolution. An older major is an aliased dev
 * dependency (`express4`, `koa2`) that `express` / `koa` resolve to. An alias rather than a
 * parameterised app factory because the Express adapter imports `express` itself (its body
 * parsers): only resolution gives the adapter and the test apps one framework, as an app on
 * that major has. Each project names the major it expects; a test checks the one that loaded.
 */
const adapterOnMajor = (
  name: "express" | "koa",
  major: number,
  installedAs?: string,
): TestProjectInlineConfiguration => ({
  resolve: {
    alias: installedAs
      ? [...coreSource, { find: new RegExp(`^${name}(/.*)?$`), replacement: `${installedAs}$1` }]
      : coreSource,
  },
  test: {
    name: installedAs ? `${name} ${major}` : name,
    root: here(`./packages/${name}`),
    include: ["test/**/*.test.ts"],
    // NestJS 12 runs on Express 5 only (its own dependency): its tests are not an Express 4 app.
    ...(name === "express" && major < 5 ? { exclude: ["test/nestjs.test.ts"] } : {}),
    env: { INTERLOCK_EXPECTED_FRAMEWORK_MAJOR: String(major) },
  },
});

/**
 * The Hono adapter's tests on the lowest Hono its peer range claims (4.8), installed as the aliased
 * dev dependency `hono48` that `hono` and its subpaths resolve to, as Express 4 and Koa 2 are
 * above. Only the tests that run on Node: Bun, Deno and workerd serve the packed package with
 * the Hono the adapter's package links.
 */
const honoOnLowest: TestProjectInlineConfiguration = {
  resolve: {
    alias: [
      ...coreSource,
      { find: /^@interlock\/hono$/, replacement: here("./packages/hono/src/index.ts") },
      { find: /^hono(\/.*)?$/, replacement: "hono48$1" },
    ],
  },
  test: {
    name: "hono 4.8",
    root: here("./packages/hono"),
    include: ["test/**/*.test.ts"],
    exclude: ["test/bun.test.ts", "test/deno.test.ts", "test/workers.test.ts"],
    env: { INTERLOCK_EXPECTED_HONO: "4.8" },
  },
};

/**
 * The client's tests: real HTTP on 127.0.0.1, and end to end through the Express adapter's
 * idempotency middleware (its source, like core's).
 */
const clientProject: TestProjectInlineConfiguration = {
  resolve: {
    alias: [...coreSource, { find: /^@interlock\/express$/, replacement: here("./packages/express/src/index.ts") }],
  },
  test: { name: "client", root: here("./packages/client"), include: ["test/**/*.test.ts"] },
};

/**
 * A test's and a hook's time limits where its project sets none. Vitest 4's inline projects do
 * not inherit the root config's test options (only from Vitest 5 do they), so the limits are put
 * on each project here: with Vitest's own defaults (5 s a test, 10 s a hook), a test that takes
 * 4 s on a quiet machine failed on a loaded one (seen on CI's Node version runs), and so did a
 * `beforeAll` that packs and installs a package (seen with four test workers on two cores).
 */
const DEFAULT_TEST_TIMEOUT_MS = 30_000;
const DEFAULT_HOOK_TIMEOUT_MS = 60_000;

const withTimeLimits = (project: TestProjectInlineConfiguration): TestProjectInlineConfiguration => ({
  ...project,
  test: { testTimeout: DEFAULT_TEST_TIMEOUT_MS, hookTimeout: DEFAULT_HOOK_TIMEOUT_MS, ...project.test },
});

/**
 * The projects whose test files share a worker's modules (Vitest's `isolate: false`): each file
 * no longer imports the package, Vitest's runner and the frameworks anew, which was a third of
 * these projects' time. Their files leave no state behind that another reads: servers are
 * closed, a replaced global is put back, and what core keeps per process (the warnings'
 * once-only record) is per object. Left isolated: the Hono and web adapters, whose Node server
 * puts its own `Request` and `Response` in place of the global ones for the rest of the process
 * (web's tables check both kinds, one file each), and the examples, whose apps run as they would
 * alone.
 */
const KEEP_ISOLATED = new Set(["hono", "hono 4.8", "web", "examples"]);

const withSharedModules = (project: TestProjectInlineConfiguration): TestProjectInlineConfiguration =>
  KEEP_ISOLATED.has(project.test?.name as string) ? project : { ...project, test: { isolate: false, ...project.test } };

/**
 * Files to leave out, comma-separated in `INTERLOCK_EXCLUDE` (the Node version matrix sets it:
 * node-versions/run.mjs). An entry with a wildcard is a glob matched in every project, from the
 * project's root (the Bun tests, wherever they are); one without is one file, named from the
 * repository's root (`packages/core/test/property.test.ts`, not the client's file of that name),
 * left out of the project that holds it. Vitest's own `--exclude` is not used there: a project
 * that sets its own `exclude` (core's) ignores it.
 */
const EXCLUDED = (process.env.INTERLOCK_EXCLUDE ?? "").split(",").filter((entry) => entry !== "");

/** The `EXCLUDED` entries that apply to the project rooted at `root`, as globs from that root. */
const excludedUnder = (root: string): string[] =>
  EXCLUDED.flatMap((entry) => {
    if (/[*?{}[\]]/.test(entry)) return [entry];
    const path = relative(root, here(`./${entry}`));
    return path.startsWith("..") ? [] : [path];
  });

const withExcluded = (project: TestProjectInlineConfiguration): TestProjectInlineConfiguration => {
  const excluded = excludedUnder(project.test?.root ?? here("./"));
  return excluded.length === 0
    ? project
    : {
        ...project,
        test: { ...project.test, exclude: [...(project.test?.exclude ?? configDefaults.exclude), ...excluded] },
      };
};

export default [
  coreWith("node"),
  coreWith("web"),
  storeProject("redis"),
  storeProject("postgres"),
  adapterOnMajor("express", 5),
  adapterOnMajor("express", 4, "express4"),
  adapterProject("fastify"),
  adapterOnMajor("koa", 3),
  adapterOnMajor("koa", 2, "koa2"),
  adapterProject("hono"),
  honoOnLowest,
  adapterProject("web"),
  clientProject,
  {
    // OAuth flows against a real authorization server (oidc-provider) each test file starts, and
    // the token stores on the servers its global setup starts: Redis (standalone and a 3-master
    // Cluster) and PostgreSQL. The client (the transport to the server) from source, like core,
    // so both share one core.
    resolve: {
      alias: [...coreSource, { find: /^@interlock\/client$/, replacement: here("./packages/client/src/index.ts") }],
    },
    test: {
      name: "oauth",
      root: here("./packages/oauth"),
      include: ["test/**/*.test.ts"],
      globalSetup: [here("./packages/oauth/test/global-setup.ts")],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  },
  {
    // The OpenTelemetry integration against the SDK's in-memory exporters, over real HTTP
    // through the Express adapter, the outbound client and the OAuth client: all from source,
    // like the adapter projects.
    resolve: {
      alias: [
        ...coreSource,
        { find: /^@interlock\/express$/, replacement: here("./packages/express/src/index.ts") },
        { find: /^@interlock\/client$/, replacement: here("./packages/client/src/index.ts") },
        { find: /^@interlock\/oauth$/, replacement: here("./packages/oauth/src/index.ts") },
      ],
    },
    test: { name: "opentelemetry", root: here("./packages/opentelemetry"), include: ["test/**/*.test.ts"] },
  },
  {
    // The test harness's own HTTP/2 clients (frames written by hand, node:http2's fetch), which
    // the adapters' shared suites drive: against real servers on 127.0.0.1.
    resolve: { alias: coreSource },
    test: { name: "test-harness", root: here("./packages/test-harness"), include: ["test/**/*.test.ts"] },
  },
  {
    // The examples import the built packages through their own node_modules. The test harness
    // (Redis and PostgreSQL servers) imports @interlock/core without depending on it, which the
    // store projects alias to core's source: here it gets the same built core as the examples.
    resolve: { alias: [{ find: /^@interlock\/core$/, replacement: here("./packages/core/dist/index.js") }] },
    test: {
      name: "examples",
      root: here("./examples"),
      include: ["*/**/*.test.ts"],
    },
  },
  {
    // The CLI as users run it: tests spawn the built dist/cli.js (the root `pnpm test` builds
    // first) against real servers, the example apps among them; in-process tests use src/.
    test: {
      name: "cli",
      root: here("./packages/cli"),
      include: ["test/**/*.test.ts"],
      testTimeout: 60_000,
      hookTimeout: 60_000,
    },
  },
  {
    // The documentation site and its guides: TypeDoc builds the site (guides + API reference)
    // into a temporary folder, and the tests check every export is documented and every link
    // resolves; the guides' TypeScript compiles; the guide's example store passes the suites.
    resolve: { alias: coreSource },
    test: {
      name: "docs",
      root: here("./docs"),
      include: ["test/**/*.test.ts"],
      testTimeout: 120_000,
      hookTimeout: 180_000,
    },
  },
  {
    // The published packages as users install them: the global setup packs each one and installs
    // the tarballs with npm into a fresh project in the system's temporary folder (needs the npm
    // registry for the peers); the tests load, type-check and run them there.
    test: {
      name: "packed",
      root: here("./packages/test-harness/packed"),
      include: ["*.test.ts"],
      globalSetup: [here("./packages/test-harness/packed/global-setup.ts")],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  },
  {
    test: {
      name: "packaging",
      root: here("./packages/core"),
      include: ["test/packaging.test.ts", "test/runtimes.test.ts"],
    },
  },
].map((project) => withExcluded(withSharedModules(withTimeLimits(project)))) satisfies TestProjectConfiguration[];
