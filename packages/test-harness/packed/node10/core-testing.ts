// A CommonJS project as `tsc --init` with "module": "commonjs" leaves it: "moduleResolution"
// node10, which reads no `exports` map. Its store's tests run the conformance suite (vitest
// loads the test file as ESM, whatever the project's module setting).
import type { InterlockStore } from "@interlock/core";
import { describeStoreConformance } from "@interlock/core/testing";

declare const MyStore: new (options: { prefix: string }) => InterlockStore & { prefix: string };

describeStoreConformance("my store", {
  create: () => new MyStore({ prefix: "test:" }),
  sibling: (store) => new MyStore({ prefix: store.prefix }),
});
