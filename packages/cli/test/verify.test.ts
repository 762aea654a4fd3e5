/**
 * `interlock verify`, spawned as users run it: a delivery signed by `interlock sign` (its
 * headers saved as `sign` prints them, as its `--json`, or as a raw request head) verifies for
 * every scheme; a changed one fails with core's reason code, exit 1, and a hint for the common
 * causes; a captured old one verifies with `--at`. The library function `verifyDelivery` runs
 * in-process.
 */
import { schemes, signWebhook } from "@interlock/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSecret } from "../src/commands/secret.js";
import { verifyDelivery } from "../src/index.js";
import { SCHEME_NAMES } from "../src/schemes.js";
import { type Finished, interlock, jsonLines, tempDir } from "./helpers.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => dir?.remove());

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A body each scheme's receivers take: Linear's carries its millisecond `webhookTimestamp`. */
const bodyFor = (scheme: string, at = Date.now()): string =>
  `${JSON.stringify(scheme === "linear" ? { action: "create", webhookTimestamp: at } : { id: "evt_1", event_id: "Ev1" }, null, 2)}\n`;

const verify = (args: readonly string[], options: Parameters<typeof interlock>[1] = {}): Promise<Finished> =>
  interlock(["verify", ...args], options);

/** `interlock sign …` run for real; its stdout, which must be the success. */
async function sign(args: readonly string[], options: Parameters<typeof interlock>[1] = {}): Promise<string> {
  const signed = await interlock(["sign", ...args], options);
  expect(signed, signed.stderr).toMatchObject({ code: 0, stderr: "" });
  return signed.stdout;
}

/** `-H` options, one per line `sign` printed. */
const eachHeader = (printed: string): string[] =>
  printed
    .split("\n")
    .filter((line) => line !== "")
    .flatMap((line) => ["-H", line]);

/** The one JSON object `verify --json` prints on stdout. */
function record(result: Finished): Record<string, unknown> {
  const lines = jsonLines(result.stdout);
  expect(lines).toHaveLength(1);
  return lines[0] as Record<string, unknown>;
}

const STRIPE_SECRET = "whsec_verify_test_secret_0123456789";
const STRIPE_BODY = '{\n  "id": "evt_verify_1",\n  "object": "event",\n  "type": "invoice.paid"\n}\n';

describe("round trip: interlock sign > headers.txt, then interlock verify --headers @headers.txt", () => {
  it.each(SCHEME_NAMES)("%s: valid, exit 0, one line naming the scheme", async (name) => {
    const { secret } = makeSecret({ scheme: schemes[name] });
    const body = await dir.file(`${name}-event.json`, bodyFor(name));
    const env = { WEBHOOK_SECRET: secret };
    const headers = await dir.file(
      `${name}-headers.txt`,
      await sign(["--scheme", name, "--secret-env", "WEBHOOK_SECRET", "--body", `@${body}`], { env }),
    );
    const result = await verify(
      ["--scheme", name, "--secret-env", "WEBHOOK_SECRET", "--headers", `@${headers}`, "--body", `@${body}`],
      { env },
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines).toHaveLength(2); // one line, ended
    expect(lines[0]).toMatch(new RegExp(`^valid: ${schemes[name].name}(, |$)`));
    if (schemes[name].timestamp !== "none")
      expect(lines[0]).toMatch(/, signed \d+ \(\d{4}-\d\d-\d\dT[\d:.]+Z, \d+ s ago\)/);
    else expect(lines[0]).not.toContain("signed");
    expect(result.stdout).not.toContain(secret);
  });

  it("stripe, exact: `valid: stripe, id evt_…, signed T (ISO, N s ago)`", async () => {
    const body = await dir.file("stripe-exact.json", STRIPE_BODY);
    const timestamp = nowSeconds() - 42;
    const headers = await sign([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      "--body",
      `@${body}`,
      "--timestamp",
      String(timestamp),
    ]);
    const iso = new Date(timestamp * 1000).toISOString().replace(".000Z", "Z");
    const result = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      ...eachHeader(headers),
      "--body",
      `@${body}`,
    ]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(
      new RegExp(`^valid: stripe, id evt_verify_1, signed ${timestamp} \\(${iso}, 4[2-5] s ago\\)\\n$`),
    );
  });

  it("the body's bytes are exactly the file's: its trailing line break is signed and verified", async () => {
    const body = await dir.file("newline.json", STRIPE_BODY);
    const headers = await sign(["--scheme", "stripe", "--secret", STRIPE_SECRET, "--body", `@${body}`]);
    const ok = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      ...eachHeader(headers),
      "--body",
      `@${body}`,
    ]);
    expect(ok.code).toBe(0);
    // The same text given inline without its line break is other bytes.
    const inline = STRIPE_BODY.trimEnd();
    const refused = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      ...eachHeader(headers),
      "--body",
      inline,
    ]);
    expect(refused.code).toBe(1);
  });
});

describe("a delivery that is not valid: exit 1, core's reason code, a hint", () => {
  let headers: string;
  let bodyFile: string;
  beforeAll(async () => {
    bodyFile = await dir.file("stripe-event.json", STRIPE_BODY);
    headers = await dir.file(
      "stripe-headers.txt",
      await sign(["--scheme", "stripe", "--secret", STRIPE_SECRET, "--body", `@${bodyFile}`]),
    );
  });
  const stripeVerify = (...extra: string[]) =>
    verify(["--scheme", "stripe", "--secret", STRIPE_SECRET, "--headers", `@${headers}`, ...extra]);

  it("a tampered body: no_matching_signature", async () => {
    const tampered = await dir.file("tampered.json", STRIPE_BODY.replace("invoice.paid", "invoice.void"));
    const result = await stripeVerify("--body", `@${tampered}`);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^not valid: stripe, no_matching_signature: no signature matched\n/);
    expect(result.stdout).toMatch(/^hint: /m);
    const json = record(await stripeVerify("--body", `@${tampered}`, "--json"));
    expect(json).toMatchObject({
      type: "verification",
      valid: false,
      code: "no_matching_signature",
      signatureValid: false,
    });
  });

  it("a line break added after signing: the hint says the body without it matches", async () => {
    const signedBody = '{"type":"invoice.paid"}';
    const signed = await sign(["--scheme", "github", "--secret", "gh-secret", "--body", signedBody]);
    const saved = await dir.file("saved-with-newline.json", `${signedBody}\n`);
    const args = ["--scheme", "github", "--secret", "gh-secret", ...eachHeader(signed), "--body", `@${saved}`];
    const result = await verify(args);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^not valid: github, no_matching_signature: /);
    expect(result.stdout).toMatch(/^hint: the body ends with a line break .*without it.* matches/m);
    const json = record(await verify([...args, "--json"]));
    expect(json.hints).toEqual([{ code: "trailing_newline", message: expect.stringContaining("without it") }]);
  });

  it("a line break lost after signing (copied from a log): the body with one matches", async () => {
    const signed = await sign(["--scheme", "github", "--secret", "gh-secret", "--body", '{"a":1}\n']);
    const json = record(
      await verify([
        "--scheme",
        "github",
        "--secret",
        "gh-secret",
        ...eachHeader(signed),
        "--body",
        '{"a":1}',
        "--json",
      ]),
    );
    expect(json.hints).toEqual([{ code: "missing_trailing_newline", message: expect.any(String) }]);
  });

  it("JSON re-formatted after signing (parsed and written again): the hint says which form matches", async () => {
    const compact = '{"id":"evt_2","type":"invoice.paid","data":{"amount":100}}';
    const signed = await sign(["--scheme", "github", "--secret", "gh-secret", "--body", compact]);
    const pretty = JSON.stringify(JSON.parse(compact), null, 2);
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      "gh-secret",
      ...eachHeader(signed),
      "--body",
      pretty,
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^hint: .*written compactly.*re-formatted after it arrived/m);
  });

  it("no hint found: a general one (the secret, or the bytes), never silence", async () => {
    const signed = await sign(["--scheme", "github", "--secret", "gh-secret", "--body", "{}"]);
    const json = record(
      await verify(["--scheme", "github", "--secret", "other-secret", ...eachHeader(signed), "--body", "{}", "--json"]),
    );
    expect(json).toMatchObject({ code: "no_matching_signature", signatureValid: false });
    expect(json.hints).toEqual([{ code: "secret_or_body", message: expect.stringContaining("secret") }]);
  });

  it("stale: timestamp_too_old, and the hint says the signature itself is valid; --at then verifies it", async () => {
    const timestamp = nowSeconds() - 3 * 86_400;
    const old = await dir.file(
      "old-headers.txt",
      await sign([
        "--scheme",
        "stripe",
        "--secret",
        STRIPE_SECRET,
        "--body",
        `@${bodyFile}`,
        "--timestamp",
        String(timestamp),
      ]),
    );
    const args = ["--scheme", "stripe", "--secret", STRIPE_SECRET, "--headers", `@${old}`, "--body", `@${bodyFile}`];
    const stale = await verify(args);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^not valid: stripe, timestamp_too_old: timestamp is more than 300s old\n/);
    expect(stale.stdout).toMatch(
      new RegExp(`^hint: the signature is valid: only the timestamp .*--at ${timestamp}`, "m"),
    );
    const json = record(await verify([...args, "--json"]));
    expect(json).toMatchObject({
      valid: false,
      code: "timestamp_too_old",
      signatureValid: true,
      timestamp,
      toleranceSeconds: 300,
      hints: [{ code: "timestamp_only", message: expect.any(String) }],
    });
    expect(json.ageSeconds).toBeGreaterThanOrEqual(3 * 86_400);

    const at = await verify([...args, "--at", String(timestamp + 60)]);
    expect(at.stderr).toBe("");
    expect(at.code).toBe(0);
    expect(at.stdout).toMatch(/^valid: stripe, id evt_verify_1, signed \d+ \([^,]+, 60 s before --at\)\n$/);
    const iso = await verify([...args, "--at", new Date(timestamp * 1000 + 120_000).toISOString()]);
    expect(iso.code).toBe(0);
    expect(iso.stdout).toContain("2 min before --at");
    const tolerance = await verify([...args, "--tolerance", String(4 * 86_400)]);
    expect(tolerance.code).toBe(0);
    // As of a time before it was signed: in the future, by more than the tolerance.
    const early = record(await verify([...args, "--at", String(timestamp - 3600), "--json"]));
    expect(early).toMatchObject({ code: "timestamp_in_future", signatureValid: true, ageSeconds: -3600 });
  });

  it("stale and tampered: the timestamp is not the only failure, and the hint says so", async () => {
    const timestamp = nowSeconds() - 86_400;
    const signed = await sign([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      "--body",
      "{}",
      "--timestamp",
      String(timestamp),
    ]);
    const json = record(
      await verify(["--scheme", "stripe", "--secret", STRIPE_SECRET, ...eachHeader(signed), "--body", "{ }", "--json"]),
    );
    expect(json).toMatchObject({ code: "timestamp_too_old", signatureValid: false });
    expect((json.hints as Array<{ code: string }>).map((hint) => hint.code)).toContain("signature_too");
  });

  it("linear: a body timestamp too old is refused once the signature matched; --at verifies it", async () => {
    const secret = "lin_wh_secret";
    const signedAt = Date.now() - 86_400_000;
    const body = await dir.file("linear.json", bodyFor("linear", signedAt));
    const signed = await sign(["--scheme", "linear", "--secret", secret, "--body", `@${body}`]);
    const args = ["--scheme", "linear", "--secret", secret, ...eachHeader(signed), "--body", `@${body}`];
    const json = record(await verify([...args, "--json"]));
    expect(json).toMatchObject({ code: "timestamp_too_old", signatureValid: true, timestamp: signedAt / 1000 });
    expect((await verify([...args, "--at", String(Math.floor(signedAt / 1000))])).code).toBe(0);
  });

  it("a signature header missing: missing_header", async () => {
    const result = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      "-H",
      "content-type: application/json",
      "--body",
      `@${bodyFile}`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^not valid: stripe, missing_header: missing stripe-signature header\n/);
  });

  it("the wrong --scheme: missing_header, and the hint names the scheme whose headers these are", async () => {
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      STRIPE_SECRET,
      "--headers",
      `@${headers}`,
      "--body",
      `@${bodyFile}`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^not valid: github, missing_header: missing x-hub-signature-256 header\n/);
    expect(result.stdout).toMatch(/^hint: .*stripe.*--scheme stripe/m);
    const json = record(
      await verify([
        "--scheme",
        "github",
        "--secret",
        STRIPE_SECRET,
        "--headers",
        `@${headers}`,
        "--body",
        `@${bodyFile}`,
        "--json",
      ]),
    );
    expect(json.hints).toEqual([
      { code: "other_scheme", message: expect.stringContaining("verifies as --scheme stripe") },
    ]);
  });

  it("a whsec_ secret given to a scheme that keys with the text as is: the hint says which form matches", async () => {
    // The sender signed with the text after the prefix; the receiver was given the whole whsec_ text.
    const signed = await sign(["--scheme", "github", "--secret", "abc123rawsecret", "--body", "{}"]);
    const json = record(
      await verify([
        "--scheme",
        "github",
        "--secret",
        "whsec_abc123rawsecret",
        ...eachHeader(signed),
        "--body",
        "{}",
        "--json",
      ]),
    );
    expect(json.hints).toEqual([{ code: "secret_format", message: expect.stringContaining("whsec_") }]);
    expect(JSON.stringify(json)).not.toContain("abc123rawsecret");
  });

  it("a Stripe secret without its whsec_ prefix: Stripe keys with the whole text", async () => {
    const signed = await sign(["--scheme", "stripe", "--secret", "whsec_0123456789abcdef", "--body", "{}"]);
    const json = record(
      await verify([
        "--scheme",
        "stripe",
        "--secret",
        "0123456789abcdef",
        ...eachHeader(signed),
        "--body",
        "{}",
        "--json",
      ]),
    );
    expect(json.hints).toEqual([{ code: "secret_format", message: expect.stringContaining("whsec_") }]);
  });
});

describe("rotation: several secrets, any of them verifies", () => {
  it("says which matched, by its place and option, never the secret", async () => {
    const oldSecret = "whsec_old_rotation_secret_abcdef";
    const newSecret = "whsec_new_rotation_secret_123456";
    const signed = await sign(["--scheme", "stripe", "--secret", newSecret, "--body", "{}"]);
    const args = [
      "--scheme",
      "stripe",
      "--secret",
      oldSecret,
      "--secret-env",
      "STRIPE_NEW",
      ...eachHeader(signed),
      "--body",
      "{}",
    ];
    const env = { STRIPE_NEW: newSecret };
    const result = await verify(args, { env });
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(/, with the 2nd of 2 secrets \(--secret-env STRIPE_NEW\)\n$/);
    const json = record(await verify([...args, "--json"], { env }));
    expect(json.secret).toEqual({ position: 2, of: 2, given: "--secret-env STRIPE_NEW" });
    const first = await verify([
      "--scheme",
      "stripe",
      "--secret",
      newSecret,
      "--secret",
      oldSecret,
      ...eachHeader(signed),
      "--body",
      "{}",
    ]);
    expect(first.stdout).toMatch(/, with the 1st of 2 secrets \(--secret "whse…"\)\n$/);
    for (const output of [result.stdout, JSON.stringify(json), first.stdout]) {
      expect(output).not.toContain(newSecret.slice(6));
      expect(output).not.toContain(oldSecret.slice(6));
    }
  });

  it("a scheme that carries one signature (github) still verifies with any of several secrets", async () => {
    const signed = await sign(["--scheme", "github", "--secret", "gh-new", "--body", "{}"]);
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      "gh-old",
      "--secret",
      "gh-new",
      ...eachHeader(signed),
      "--body",
      "{}",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/, with the 2nd of 2 secrets \(--secret\)\n$/); // too short to show any of it
  });
});

describe("--json", () => {
  it("one object: the verdict and everything the line says", async () => {
    const timestamp = nowSeconds() - 10;
    const secret = makeSecret({ scheme: schemes.svix }).secret;
    const signed = await sign([
      "--scheme",
      "svix",
      "--secret",
      secret,
      "--body",
      "{}",
      "--id",
      "msg_json_1",
      "--timestamp",
      String(timestamp),
      "--json",
    ]);
    const headers = await dir.file("sign.json", signed);
    const result = await verify([
      "--scheme",
      "svix",
      "--secret",
      secret,
      "--headers",
      `@${headers}`,
      "--body",
      "{}",
      "--json",
    ]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const json = record(result);
    expect(json).toEqual({
      type: "verification",
      valid: true,
      scheme: "standard-webhooks",
      code: null,
      message: null,
      signatureValid: true,
      id: "msg_json_1",
      timestamp,
      ageSeconds: expect.any(Number),
      at: expect.any(Number),
      toleranceSeconds: 300,
      secret: null,
      hints: [],
    });
    expect(json.at as number).toBe(timestamp + (json.ageSeconds as number));
  });

  it("a scheme that signs no timestamp: timestamp, age and tolerance are null", async () => {
    const signed = await sign(["--scheme", "github", "--secret", "s", "--body", "{}", "--id", "gh-delivery-1"]);
    const json = record(
      await verify([
        "--scheme",
        "github",
        "--secret",
        "s",
        "-H",
        signed.split("\n")[0] as string,
        "-H",
        signed.split("\n")[1] as string,
        "--body",
        "{}",
        "--json",
      ]),
    );
    expect(json).toMatchObject({
      valid: true,
      id: "gh-delivery-1",
      timestamp: null,
      ageSeconds: null,
      toleranceSeconds: null,
    });
  });
});

describe("inputs", () => {
  it("--body -: the body from stdin, byte for byte", async () => {
    const headers = await sign(["--scheme", "stripe", "--secret", STRIPE_SECRET, "--body", STRIPE_BODY]);
    const result = await verify(
      ["--scheme", "stripe", "--secret", STRIPE_SECRET, ...eachHeader(headers), "--body", "-"],
      {
        stdin: STRIPE_BODY,
      },
    );
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const binary = new Uint8Array([0x7b, 0x7d, 0x0a, 0xff, 0xfe, 0x00, 0x0d, 0x0a]);
    const signed = await signWebhook({ scheme: schemes.github, secret: "s", body: binary });
    const raw = await verify(
      [
        "--scheme",
        "github",
        "--secret",
        "s",
        "-H",
        `x-hub-signature-256: ${signed.headers["x-hub-signature-256"]}`,
        "--body",
        "-",
      ],
      { stdin: binary },
    );
    expect(raw.code).toBe(0);
  });

  it("--headers @file: a raw request head (request line, CRLF, other headers, a body after the blank line)", async () => {
    const signed = await signWebhook({ scheme: schemes.stripe, secret: STRIPE_SECRET, body: STRIPE_BODY });
    const dump = [
      "POST /webhooks/stripe?x=1 HTTP/1.1",
      "Host: example.com",
      "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)",
      "Content-Type: application/json; charset=utf-8",
      `Stripe-Signature: ${signed.headers["stripe-signature"]}`,
      "Accept:  */*  ",
      "",
      STRIPE_BODY,
    ].join("\r\n");
    const file = await dir.file("request.http", dump);
    const body = await dir.file("request-body.json", STRIPE_BODY);
    const result = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      "--headers",
      `@${file}`,
      "--body",
      `@${body}`,
    ]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    // curl's form too: -H @file reads a headers file.
    const curlStyle = await verify([
      "--scheme",
      "stripe",
      "--secret",
      STRIPE_SECRET,
      "-H",
      `@${file}`,
      "--body",
      `@${body}`,
    ]);
    expect(curlStyle.code).toBe(0);
  });

  it("--headers @file: HTTP/2 pseudo-headers are skipped; a header folded over two lines is joined with a space", async () => {
    const signed = await signWebhook({ scheme: schemes.github, secret: "s", body: "{}" });
    const file = await dir.file(
      "h2.txt",
      [
        ":method: POST",
        ":path: /hook",
        `x-hub-signature-256: ${signed.headers["x-hub-signature-256"]}`,
        "x-github-delivery: part-one",
        "\tpart-two",
        "",
      ].join("\n"),
    );
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      "s",
      "--headers",
      `@${file}`,
      "--body",
      "{}",
      "--json",
    ]);
    expect(record(result)).toMatchObject({ valid: true, id: "part-one part-two" });
  });

  it("--headers @file: values padded with long runs of spaces inside them are read in time linear in their length", async () => {
    // 128 KiB of spaces and tabs between two characters, on a line, a folded line and in JSON:
    // a pattern trimming /[ \t]+$/ backtracked over the rest of the run from every position in it, some 20 s each.
    const run = " \t".repeat(64 * 1024);
    const signed = await signWebhook({ scheme: schemes.github, secret: "s", body: "{}" });
    const lines = await dir.file(
      "padded.txt",
      [
        `x-hub-signature-256: ${signed.headers["x-hub-signature-256"]}`,
        `x-note: a${run}b`,
        `x-folded: c`,
        `\td${run}e`,
        "",
      ].join("\n"),
    );
    const json = await dir.file(
      "padded.json",
      JSON.stringify({ "x-hub-signature-256": signed.headers["x-hub-signature-256"], "x-note": `f${run}g` }),
    );
    for (const file of [lines, json]) {
      const result = await verify(["--scheme", "github", "--secret", "s", "--headers", `@${file}`, "--body", "{}"]);
      expect(result.code).toBe(0);
    }
  }, 10_000);

  it("-H replaces a header of the same name from --headers (to try a fix)", async () => {
    const signed = await sign(["--scheme", "github", "--secret", "s", "--body", "{}"]);
    const file = await dir.file("wrong-headers.txt", "x-hub-signature-256: sha256=00\n");
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      "s",
      "--headers",
      `@${file}`,
      "-H",
      signed.split("\n")[0] as string,
      "--body",
      "{}",
    ]);
    expect(result.code).toBe(0);
  });

  it("--headers @file: a request head is bytes, read as Latin-1 as Node's HTTP parser reads them", async () => {
    // The sender signed the id "msg_é"; sent as UTF-8, Node's request.headers holds "msg_Ã©"
    // (each byte a character), so the app's verifier refuses it; sent as the Latin-1 byte E9, it
    // holds "msg_é" and verifies. The headers file is those bytes: the verdict must be the app's.
    const secret = makeSecret({ scheme: schemes.svix }).secret;
    const signed = await signWebhook({ scheme: schemes.svix, secret, body: "{}", id: "msg_é" });
    const head = (id: Buffer) =>
      Buffer.concat([
        Buffer.from("POST /hook HTTP/1.1\r\nsvix-id: msg_"),
        id,
        Buffer.from(
          `\r\nsvix-timestamp: ${signed.headers["svix-timestamp"]}\r\nsvix-signature: ${signed.headers["svix-signature"]}\r\n\r\n`,
        ),
      ]);
    const args = (file: string) => ["--scheme", "svix", "--secret", secret, "--headers", `@${file}`, "--body", "{}"];
    const utf8 = await verify([...args(await dir.file("utf8-head.http", head(Buffer.from("é")))), "--json"]);
    expect(record(utf8)).toMatchObject({ valid: false, code: "no_matching_signature", id: null });
    const latin1 = await verify([...args(await dir.file("latin1-head.http", head(Buffer.from([0xe9])))), "--json"]);
    expect(record(latin1)).toMatchObject({ valid: true, id: "msg_é" });
    // A JSON file is text (the app's header strings, exported): UTF-8, as JSON is.
    const json = await dir.file("head.json", JSON.stringify(signed.headers));
    expect((await verify(args(json))).code).toBe(0);
  });

  it('a header given twice is joined with ", ", as Node and fetch join it', async () => {
    const signed = await sign(["--scheme", "github", "--secret", "s", "--body", "{}"]);
    const line = signed.split("\n")[0] as string;
    const json = record(
      await verify(["--scheme", "github", "--secret", "s", "-H", line, "-H", line, "--body", "{}", "--json"]),
    );
    expect(json).toMatchObject({ valid: false, code: "no_matching_signature" });
  });
});

describe("usage errors: exit 2, one line on stderr", () => {
  const base = ["--scheme", "github", "--secret", "s", "--body", "{}"];
  it.each<[string, string[], string]>([
    ["no headers at all", base, 'no headers: give the delivery\'s headers with -H "Name: value" or --headers @file'],
    [
      "--headers not a file",
      [...base, "--headers", "x-a: 1"],
      '--headers takes @file or - (stdin), got "x-a:…"; -H "Name: value" gives one header',
    ],
    ["--headers @", [...base, "--headers", "@"], "--headers @ needs a file name, as in --headers @headers.txt"],
    [
      'several headers in one -H (-H "$(interlock sign …)")',
      [...base, "-H", "x-hub-signature-256: sha256=00\nx-github-delivery: 1"],
      "--header x-hub-signature-256 holds a line break: give one header per -H, or several lines as --headers @file (or --headers - from stdin)",
    ],
    [
      "both from stdin",
      ["--scheme", "github", "--secret", "s", "--body", "-", "--headers", "-"],
      "--body - and --headers - cannot both read stdin: give one of them as @file",
    ],
    [
      "--at that is no time",
      ["--scheme", "stripe", "--secret", "s", "--body", "{}", "-H", "x: 1", "--at", "yesterday"],
      '--at must be Unix seconds or an ISO 8601 date such as 2026-01-01T00:00:00Z, got "yest…"',
    ],
    [
      "--at a date-time without a zone",
      ["--scheme", "stripe", "--secret", "s", "--body", "{}", "-H", "x: 1", "--at", "2026-01-01T10:00:00"],
      "--at 2026-01-01T10:00:00 has no time zone: end it with Z (UTC) or an offset such as +01:00",
    ],
    [
      "--at a day its month does not have (not read as a day of the next month)",
      ["--scheme", "stripe", "--secret", "s", "--body", "{}", "-H", "x: 1", "--at", "2026-02-29T10:00:00Z"],
      "--at 2026-02-29T10:00:00Z is no date: 2026-02 has no day 29",
    ],
    [
      "--at in milliseconds",
      ["--scheme", "stripe", "--secret", "s", "--body", "{}", "-H", "x: 1", "--at", "1767225600000"],
      "--at 1767225600000 is past the year 5000: --at takes Unix seconds, not milliseconds",
    ],
    [
      "--at for a scheme that signs no timestamp",
      [...base, "-H", "x: 1", "--at", "1767225600"],
      "--at does not apply to the github scheme: it signs no timestamp, so no delivery of it is refused for its age",
    ],
    [
      "--tolerance for a scheme that signs no timestamp",
      [...base, "-H", "x: 1", "--tolerance", "60"],
      "--tolerance does not apply to the github scheme: it signs no timestamp, so no delivery of it is refused for its age",
    ],
    [
      "--tolerance out of range",
      ["--scheme", "stripe", "--secret", "s", "--body", "{}", "-H", "x: 1", "--tolerance", "0"],
      '--tolerance must be a whole number from 1 to 31536000, got "0"',
    ],
  ])("%s", async (_, args, line) => {
    const result = await verify(args);
    expect(result).toEqual({
      code: 2,
      stdout: "",
      stderr: `interlock verify: ${line} (see interlock verify --help)\n`,
    });
  });

  it("a headers file line that is not a header: named by its number, shown up to its first space or colon", async () => {
    const file = await dir.file(
      "bad-headers.txt",
      "x-hub-signature-256: sha256=00\nAuthorization Bearer s3cr3t-t0ken\n",
    );
    const result = await verify(["--scheme", "github", "--secret", "s", "--body", "{}", "--headers", `@${file}`]);
    expect(result).toMatchObject({ code: 2, stdout: "" });
    expect(result.stderr).toBe(
      `interlock verify: ${file} line 2 is not "Name: value": "Authorization …" (see interlock verify --help)\n`,
    );
  });

  it("a curl command is not a headers file: the error says what to give instead", async () => {
    const curl = await sign([
      "--scheme",
      "github",
      "--secret",
      "s",
      "--body",
      "{}",
      "--curl",
      "http://127.0.0.1:1/hook",
    ]);
    const file = await dir.file("curl.sh", curl);
    const result = await verify(["--scheme", "github", "--secret", "s", "--body", "{}", "--headers", `@${file}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("is a curl command");
  });

  it("a headers file that does not exist: exit 4, as a body file", async () => {
    const result = await verify([
      "--scheme",
      "github",
      "--secret",
      "s",
      "--body",
      "{}",
      "--headers",
      "@/nonexistent/headers.txt",
    ]);
    expect(result).toEqual({
      code: 4,
      stdout: "",
      stderr: "interlock verify: no such file: /nonexistent/headers.txt\n",
    });
  });
});

describe("bounded work: the search for causes stops at its bounds, and a hint says so", () => {
  it("variants are verified until 1 GiB is hashed (the body once per secret each): many secrets stop it early", async () => {
    const body = new Uint8Array(1024 * 1024).fill(0x61);
    body[body.length - 1] = 0x0a; // a trailing line break: two body variants to try
    const signed = await signWebhook({ scheme: schemes.github, secret: "the sender's", body });
    // whsec_ secrets given to GitHub: two secret forms each to try besides.
    const secrets = Array.from(
      { length: 400 },
      (_, i) => `whsec_${Buffer.from(`not the sender's ${i}`).toString("base64")}`,
    );
    const result = await verifyDelivery({ scheme: schemes.github, secret: secrets, headers: signed.headers, body });
    expect(result).toMatchObject({ valid: false, code: "no_matching_signature", signatureValid: false });
    expect(result.hints.map((hint) => hint.code)).toEqual(["secret_or_body", "search_bounded"]);
    expect(result.hints[1]?.message).toMatch(
      /^not every variant was tried: \d+ of them, past the 1 GiB the search hashes at most \(the body's 1\.00 MiB with each of the 400 secrets\)/,
    );
  });

  it("JSON forms are tried for a body of up to 5 MiB: a larger one's are not, and the hint says so", async () => {
    const value = { items: Array.from({ length: 60_000 }, (_, id) => ({ id, note: "x".repeat(80) })) };
    const compact = JSON.stringify(value);
    const pretty = Buffer.from(JSON.stringify(value, null, 2));
    expect(pretty.length).toBeGreaterThan(5 * 1024 * 1024);
    const signed = await signWebhook({ scheme: schemes.github, secret: "s", body: compact });
    const result = await verifyDelivery({ scheme: schemes.github, secret: "s", headers: signed.headers, body: pretty });
    expect(result.hints.map((hint) => hint.code)).toEqual(["secret_or_body", "search_bounded"]);
    expect(result.hints[1]?.message).toMatch(
      /^not every variant was tried: the JSON forms, tried for a body of up to 5 MiB \(this one is [\d.]+ MiB\)/,
    );
    // Within the bound, the same change is found.
    const small = { items: value.items.slice(0, 100) };
    const smallSigned = await signWebhook({ scheme: schemes.github, secret: "s", body: JSON.stringify(small) });
    const found = await verifyDelivery({
      scheme: schemes.github,
      secret: "s",
      headers: smallSigned.headers,
      body: JSON.stringify(small, null, 2),
    });
    expect(found.hints.map((hint) => hint.code)).toEqual(["json_reformatted"]);
  });
});

describe("verifyDelivery (the library function)", () => {
  it("resolves with the verdict, the hints and which secret matched; never throws for a bad delivery", async () => {
    const signed = await signWebhook({
      scheme: schemes.stripe,
      secret: "whsec_b",
      body: "{}",
      timestamp: 1_767_225_600,
    });
    const valid = await verifyDelivery({
      scheme: schemes.stripe,
      secret: ["whsec_a", "whsec_b"],
      headers: signed.headers,
      body: "{}",
      at: 1_767_225_610,
    });
    expect(valid).toEqual({
      valid: true,
      scheme: "stripe",
      code: undefined,
      message: undefined,
      signatureValid: true,
      id: undefined,
      timestamp: 1_767_225_600,
      ageSeconds: 10,
      at: 1_767_225_610,
      toleranceSeconds: 300,
      secretIndex: 1,
      hints: [],
    });
    const stale = await verifyDelivery({
      scheme: schemes.stripe,
      secret: "whsec_b",
      headers: signed.headers,
      body: "{}",
    });
    expect(stale).toMatchObject({ valid: false, code: "timestamp_too_old", signatureValid: true, secretIndex: 0 });
    expect(stale.hints[0]?.message).toContain("at: 1767225600");
  });

  it("finds quoted header values, a content coding, and reads a Fetch Headers", async () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const signed = await signWebhook({ scheme: schemes.stripe, secret, body: "{}" });
    const quoted = await verifyDelivery({
      scheme: schemes.stripe,
      secret,
      headers: { "Stripe-Signature": `"${signed.headers["stripe-signature"]}"` },
      body: "{}",
    });
    expect(quoted).toMatchObject({ valid: false, code: "invalid_timestamp", signatureValid: undefined });
    expect(quoted.hints).toEqual([
      { code: "quoted_header", message: expect.stringContaining("the delivery verifies") },
    ]);
    const encoded = await verifyDelivery({
      scheme: schemes.stripe,
      secret,
      headers: new Headers({ ...signed.headers, "content-encoding": "gzip" }),
      body: "{}",
    });
    expect(encoded).toMatchObject({ valid: false, code: "unsupported_content_encoding" });
    expect(encoded.hints).toEqual([{ code: "content_encoding", message: expect.stringContaining("verifies") }]);
    const fetchHeaders = await verifyDelivery({
      scheme: schemes.stripe,
      secret,
      headers: new Headers(signed.headers),
      body: "{}",
    });
    expect(fetchHeaders.valid).toBe(true);
  });

  it("refuses an `at` that is no time, and a secret core cannot use, rather than answering not valid", async () => {
    const options = { scheme: schemes.stripe, secret: "whsec_x", headers: {}, body: "{}" };
    await expect(verifyDelivery({ ...options, at: Number.NaN })).rejects.toMatchObject({ code: "usage", exitCode: 2 });
    await expect(
      verifyDelivery({ ...options, scheme: schemes.svix, secret: "whsec_not*base64" }),
    ).rejects.toMatchObject({ code: "invalid_secret" });
  });
});
