/** `inTurn`: statements on one single connection take turns; other connections are not held up. */
import { describe, expect, it } from "vitest";
import { inTurn } from "../src/index.js";

/** A call that resolves (or rejects) when told to, recording when it started. */
function gate(log: string[], name: string) {
  let open: (value: string) => void = () => {};
  let fail: (error: Error) => void = () => {};
  const run = () => {
    log.push(`start ${name}`);
    return new Promise<string>((resolve, reject) => {
      open = resolve;
      fail = reject;
    });
  };
  return { run, open: () => open(name), fail: (error: Error) => fail(error) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("inTurn", () => {
  it("runs one call at a time on a connection, in the order they came", async () => {
    const connection = {};
    const log: string[] = [];
    const [a, b, c] = ["a", "b", "c"].map((name) => gate(log, name)) as [
      ReturnType<typeof gate>,
      ReturnType<typeof gate>,
      ReturnType<typeof gate>,
    ];
    const results = [inTurn(connection, a.run), inTurn(connection, b.run), inTurn(connection, c.run)];
    await tick();
    expect(log).toEqual(["start a"]);
    a.open();
    await tick();
    expect(log).toEqual(["start a", "start b"]);
    b.open();
    await tick();
    c.open();
    expect(await Promise.all(results)).toEqual(["a", "b", "c"]);
    expect(log).toEqual(["start a", "start b", "start c"]);
  });

  it("a call that fails settles only itself: the next one runs", async () => {
    const connection = {};
    const log: string[] = [];
    const a = gate(log, "a");
    const b = gate(log, "b");
    const first = inTurn(connection, a.run);
    const second = inTurn(connection, b.run);
    await tick();
    a.fail(new Error("lost"));
    await expect(first).rejects.toThrow("lost");
    await tick();
    b.open();
    expect(await second).toBe("b");
  });

  it("a call that throws at once is a rejection, not a throw", async () => {
    const failing = inTurn({}, () => {
      throw new Error("refused");
    });
    await expect(failing).rejects.toThrow("refused");
  });

  it("calls on other connections do not wait for each other", async () => {
    const log: string[] = [];
    const a = gate(log, "a");
    const b = gate(log, "b");
    void inTurn({}, a.run);
    const second = inTurn({}, b.run);
    await tick();
    expect(log).toEqual(["start a", "start b"]);
    b.open();
    expect(await second).toBe("b");
  });
});
