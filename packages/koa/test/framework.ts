/**
 * The Koa major these tests run on: the project's module resolution picks it (see
 * vitest.workspace.ts), so it is read from the package that actually loaded.
 */
import { version } from "koa/package.json";

export const koaMajor = Number(version.split(".")[0]);

/** Koa 3 sends web `ReadableStream`, `Blob` and `Response` bodies; Koa 2 only Node streams, strings, Buffers and JSON. */
export const sendsWebBodies = koaMajor >= 3;
