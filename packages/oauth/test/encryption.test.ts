import { InterlockConfigError } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { createKeyring, generateEncryptionKey, TokenDecryptionError } from "../src/index.js";

const OLD = { id: "2024", key: generateEncryptionKey() };
const NEW = { id: "2025", key: generateEncryptionKey() };

describe("encryption at rest (AES-256-GCM, versioned)", () => {
  it("seals in the v1 format naming its key, and opens it again", async () => {
    const keyring = createKeyring([NEW]);
    const sealed = await keyring.seal('{"refreshToken":"rt-secret"}', "session:a");
    expect(sealed).toMatch(/^v1\.2025\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain("rt-secret");
    expect(await keyring.open(sealed, "session:a")).toBe('{"refreshToken":"rt-secret"}');
    // A fresh IV every time: the same plaintext never seals the same way twice.
    expect(await keyring.seal("x", "c")).not.toBe(await keyring.seal("x", "c"));
  });

  it("rotates: seals with the first key, opens with any listed one", async () => {
    const before = createKeyring([OLD]);
    const during = createKeyring([NEW, OLD]);
    const after = createKeyring([NEW]);
    const old = await before.seal("kept across the rotation", "k");
    expect(await during.open(old, "k")).toBe("kept across the rotation");
    const resealed = await during.seal("kept across the rotation", "k");
    expect(resealed.split(".")[1]).toBe("2025");
    expect(await after.open(resealed, "k")).toBe("kept across the rotation");
    await expect(after.open(old, "k")).rejects.toMatchObject({ code: "token_decryption_failed" });
  });

  it("refuses a value that was altered, moved to another key, or is not sealed", async () => {
    const keyring = createKeyring([NEW]);
    const sealed = await keyring.seal("secret", "session:a");
    const [v, id, iv, data] = sealed.split(".") as [string, string, string, string];
    const flipped = `${data.slice(0, 5)}${data[5] === "A" ? "B" : "A"}${data.slice(6)}`;
    const refused = [
      [`${v}.${id}.${iv}.${flipped}`, "session:a"],
      [sealed, "session:b"], // moved to another session
      [`v2.${id}.${iv}.${data}`, "session:a"],
      [`${v}.${id}.${iv}`, "session:a"],
      [`${v}.${id}.!!.${data}`, "session:a"],
      ['{"refreshToken":"planted"}', "session:a"],
    ];
    for (const [value, context] of refused) {
      const error = await keyring.open(value!, context!).catch((e: unknown) => e);
      expect(error, value).toBeInstanceOf(TokenDecryptionError);
      expect((error as TokenDecryptionError).status).toBe(500);
      expect((error as Error).message).not.toContain("secret");
    }
  });

  it("takes keys as base64, base64url or bytes, and refuses bad keyrings", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    expect(() => createKeyring([{ id: "raw", key: bytes }])).not.toThrow();
    expect(() => createKeyring([{ id: "b64", key: Buffer.from(bytes).toString("base64") }])).not.toThrow();
    for (const keys of [
      [],
      [{ id: "short", key: generateEncryptionKey().slice(0, 20) }],
      [{ id: "has.dot", key: generateEncryptionKey() }],
      [{ id: "", key: generateEncryptionKey() }],
      [NEW, { id: NEW.id, key: generateEncryptionKey() }],
    ]) {
      expect(() => createKeyring(keys), JSON.stringify(keys)).toThrow(InterlockConfigError);
    }
  });
});
