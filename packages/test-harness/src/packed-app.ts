/**
 * A throwaway app in the system's temporary folder with Interlock packages installed from their
 * packed tarballs: exactly the files users get (a symlink to the workspace would also expose
 * sources and tsconfig.json). Other dependencies (the framework) are linked from the workspace.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGES = fileURLToPath(new URL("../../", import.meta.url));

export interface PackedApp {
  /** The app's folder: `node_modules/` and a `package.json` of `"type": "module"`. */
  dir: string;
  remove(): void;
}

/**
 * Packs and installs `interlock` (package folder names: "core", "hono") and links each of
 * `linked` (a dependency name to the folder it is installed in). A package not built yet fails
 * with the command that builds it.
 */
export function createPackedApp(interlock: string[], linked: Record<string, string> = {}): PackedApp {
  for (const name of interlock) {
    if (!existsSync(join(PACKAGES, name, "dist/index.js"))) {
      throw new Error(`packages/${name}/dist is missing: run \`pnpm build\` (the root \`pnpm test\` does) first`);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "interlock-app-"));
  const dependencies: Record<string, string> = {};
  for (const name of interlock) {
    const installed = join(dir, "node_modules/@interlock", name);
    mkdirSync(installed, { recursive: true });
    const tarball = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], {
      cwd: join(PACKAGES, name),
      encoding: "utf8",
    }).trim();
    execFileSync("tar", ["-xzf", join(dir, tarball), "-C", installed, "--strip-components=1"]);
    dependencies[`@interlock/${name}`] = "*";
  }
  for (const [name, from] of Object.entries(linked)) {
    const target = join(dir, "node_modules", name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(realpathSync(from), target, "dir");
    dependencies[name] = "*";
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", dependencies }));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
