/**
 * A misspelt option is refused when the store is made, with the name it most likely meant:
 * ignored, it would leave the default in force (an `operationTimeout` of 200 ms that stays
 * 2 s, a `maxRecordByte` bound that stays 1 MiB). Nothing is sent: the store only defines its
 * scripts on the client when it is made.
 */
import { InterlockConfigError } from "@interlock/core";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { type RedisStoreOptions, redisStore } from "../src/index.js";

// Never connected: nothing in these tests sends a command.
const client = new Redis({ lazyConnect: true });
afterAll(() => client.disconnect());

// Options of a shape TypeScript would refuse in a literal, as a config object built elsewhere passes them.
const loose = (options: Record<string, unknown>) => options as RedisStoreOptions;

describe("redisStore", () => {
  it("refuses a misspelt option, naming the option meant", () => {
    expect(() => redisStore(client, loose({ operationTimeout: 200 }))).toThrow(InterlockConfigError);
    expect(() => redisStore(client, loose({ operationTimeout: 200 }))).toThrow(
      'redisStore() has no option "operationTimeout": did you mean "operationTimeoutMs"?',
    );
    expect(() => redisStore(client, loose({ maxRecordByte: 1024 }))).toThrow('did you mean "maxRecordBytes"?');
    // ioredis' own option, which belongs on the client.
    expect(() => redisStore(client, loose({ keyPrefix: "app:" }))).toThrow('redisStore() has no option "keyPrefix"');
  });

  it("takes every option it has, and none", () => {
    const options: Required<RedisStoreOptions> = { prefix: "app:", operationTimeoutMs: 500, maxRecordBytes: 4096 };
    expect(redisStore(client, options)).toMatchObject(options);
    expect(() => redisStore(client)).not.toThrow();
  });
});
