/**
 * Nothing the CLI prints carries a secret given in the wrong place, or in a URL's query: an
 * error shows only the start of the offending value (an argument, a scheme, a number, a URL or
 * a text of another scheme such as `abc:SECRET`, an unset variable's NAME however it is written,
 * an unknown option, a host), and every URL it prints or reports
 * shows its query's values as `***`. And `--secret-hex-env` gives a secret's bytes without
 * putting them on the command line. In-process (`run` from src), so each check sees the source.
 */
import { createHmac } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { github } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { type DeliveryReport, listen } from "../src/commands/listen.js";
import { send } from "../src/commands/send.js";
import { signDelivery } from "../src/delivery.js";
import { run } from "../src/main.js";
import { interlock, jsonLines, memoryIo, recordingServer, refusedPort } from "./helpers.js";

const MARKER = "CLISECRETmarker0123";
const SEND = ["--scheme", "github", "--secret", "gh-secret", "--body", "{}"];

describe("a URL's query in what the CLI prints", () => {
  it("send: an unreachable URL is shown with its query's values as *** (text, --json and the attempt line)", async () => {
    const port = await refusedPort();
    const url = `http://127.0.0.1:${port}/hook?token=${MARKER}&page=2&${MARKER}#part`;
    const shown = `http://127.0.0.1:${port}/hook?token=***&page=***&***#part`;
    const text = memoryIo();
    expect(await run(["send", url, ...SEND], text)).toBe(5);
    expect(text.err()).toBe(`interlock send: cannot reach ${shown}: connection refused\n`);
    expect(text.out()).toBe(`#1  no answer: cannot reach ${shown}: connection refused\n`);
    const json = memoryIo();
    expect(await run(["send", url, ...SEND, "--json"], json)).toBe(5);
    expect(jsonLines(json.err())[0]?.message).toBe(`cannot reach ${shown}: connection refused`);
    expect(text.out() + text.err() + json.out() + json.err()).not.toContain(MARKER);
  });

  it("send: a URL that is not http(s) is refused by its start, without its query", async () => {
    const io = memoryIo();
    expect(await run(["send", `ftp://127.0.0.1/hook?token=${MARKER}`, ...SEND], io)).toBe(2);
    expect(io.err()).toBe(
      'interlock send: <url> must be an http:// or https:// URL, got "ftp:…" (see interlock send --help)\n',
    );
  });

  it("listen --forward: the listening line and each forward's report show the query's values as ***", async () => {
    const app = await recordingServer((_, response) => response.writeHead(200).end("ok"));
    const stop = new AbortController();
    const io = memoryIo({ signal: stop.signal });
    const forward = `${app.url}/webhooks?key=${MARKER}`;
    const running = run(["listen", "--port", "0", "--scheme", "github", "--secret", "s", "--forward", forward], io);
    const reports: DeliveryReport[] = [];
    const listener = await listen({
      scheme: github,
      secret: "s",
      port: 0,
      forward,
      onDelivery: (r) => reports.push(r),
    });
    try {
      await send({ url: listener.url, scheme: github, secret: "s", body: "{}" });
      expect(app.requests[0]?.url).toBe(`/webhooks?key=${MARKER}`); // sent as given
      expect(reports[0]?.forward?.url).toBe(`${app.url}/webhooks?key=***`);
      await expect.poll(() => io.out()).toContain(`forwarding verified ones to ${app.url}/webhooks?key=***`);
      expect(io.out() + io.err()).not.toContain(MARKER);
    } finally {
      stop.abort();
      await running;
      await listener.close();
      await app.close();
    }
  });
});

describe("a usage error shows no more than the start of the value", () => {
  it("an argument too many (a secret without its option) is named by its place", async () => {
    const sign = memoryIo();
    expect(await run(["sign", "--scheme", "stripe", MARKER, "--body", "{}"], sign)).toBe(2);
    expect(sign.err()).toBe(
      `interlock sign: unexpected argument 1 ("CLIS…"): usage is interlock sign --scheme NAME --secret SECRET --body BODY [options] (see interlock sign --help)\n`,
    );
    const send = memoryIo();
    expect(await run(["send", "http://127.0.0.1:1/", MARKER, ...SEND, "--json"], send)).toBe(2);
    expect(jsonLines(send.err())[0]?.message).toMatch(
      /^unexpected argument 2 \("CLIS…"\): usage is interlock send <url> /,
    );
    expect(sign.err() + send.err()).not.toContain(MARKER);
  });

  it("an unknown command (a secret pasted as the first word) is shown by its start; a word, whole", async () => {
    const io = memoryIo();
    expect(await run([MARKER, "--body", "{}"], io)).toBe(2);
    expect(io.err()).toMatch(/^interlock: unknown command "CLIS…": use one of /);
    expect(io.err()).not.toContain(MARKER);
    const typo = memoryIo();
    expect(await run(["lisen"], typo)).toBe(2);
    expect(typo.err()).toMatch(/^interlock: unknown command "lisen": /);
  });

  it("an unknown scheme (a secret given to --scheme) is shown by its first four characters", async () => {
    const io = memoryIo();
    expect(await run(["sign", "--scheme", MARKER, "--secret", "s", "--body", "{}"], io)).toBe(2);
    expect(io.err()).toMatch(/^interlock sign: unknown scheme "CLIS…" \(--scheme\): use one of standard-webhooks, /);
    expect(io.err()).not.toContain(MARKER);
    const short = memoryIo();
    expect(await run(["sign", "--scheme", "acme", "--secret", "s", "--body", "{}"], short)).toBe(2);
    expect(short.err()).toMatch(/^interlock sign: unknown scheme "acme" \(--scheme\): /);
  });

  it("a number option given something else (a secret in the wrong place) shows its first four characters", async () => {
    const io = memoryIo();
    expect(await run(["send", "http://127.0.0.1:1/", ...SEND, "--timeout", MARKER], io)).toBe(2);
    expect(io.err()).toMatch(/^interlock send: --timeout must be a whole number from \d+ to \d+, got "CLIS…" /);
    expect(io.err()).not.toContain(MARKER);
    const outOfRange = memoryIo();
    expect(await run(["send", "http://127.0.0.1:1/", ...SEND, "--timeout", "99999999"], outOfRange)).toBe(2);
    expect(outOfRange.err()).toMatch(/ got "99999999" /); // a number is shown whole
  });
});

describe("a secret given where a variable name or a URL belongs", () => {
  const SECRET = "whsec_5f0c3e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1";
  it.each([
    ["--secret-env given the value", ["sign", "--scheme", "stripe", "--secret-env", SECRET, "--body", "{}"]],
    ["--secret-hex-env given the value", ["sign", "--scheme", "stripe", "--secret-hex-env", SECRET, "--body", "{}"]],
    ["listen --secret-env given the value", ["listen", "--scheme", "stripe", "--secret-env", SECRET, "--json"]],
    ["send: the secret where <url> goes", ["send", SECRET, "--scheme", "stripe", "--secret", "x", "--body", "{}"]],
    ["send --json: the secret where <url> goes", ["send", SECRET, "--scheme", "stripe", "--secret", "x", "--json"]],
    ["sign --curl given the secret", ["sign", "--scheme", "stripe", "--secret", "x", "--body", "{}", "--curl", SECRET]],
    ["listen --forward given the secret", ["listen", "--scheme", "stripe", "--secret", "x", "--forward", SECRET]],
    ["-H given the secret alone", ["sign", "--scheme", "stripe", "--secret", "x", "--body", "{}", "-H", SECRET]],
  ])("%s: shown by its first four characters", async (_, argv) => {
    const io = memoryIo({ env: {} });
    expect(await run(argv, io)).not.toBe(0);
    expect(io.err()).toContain("whse…");
    expect(io.out() + io.err()).not.toContain(SECRET.slice(6));
  });

  it("the NAME of an unset variable is shown by its start, with a hint (the secret given instead?)", async () => {
    const io = memoryIo({ env: {} });
    expect(await run(["sign", "--scheme", "stripe", "--secret-env", SECRET, "--body", "{}", "--json"], io)).toBe(3);
    expect(jsonLines(io.err())[0]).toMatchObject({
      code: "missing_secret",
      message:
        'the environment variable "whse…" (--secret-env) is not set: --secret-env takes the name of the variable that holds the secret, not the secret',
    });
  });

  it("a URL that does not parse is shown by its first four characters", async () => {
    const io = memoryIo();
    expect(await run(["send", SECRET, ...SEND], io)).toBe(2);
    expect(io.err()).toBe('interlock send: <url> is not a URL: "whse…" (see interlock send --help)\n');
  });
});

describe("--secret-hex-env NAME", () => {
  const secret = "my webhook secret "; // a trailing space: only hex can give it
  const hex = Buffer.from(secret).toString("hex");
  const signature = (body: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

  it("signs with the bytes the variable holds in hex, as --secret-hex does, and is not on the command line", async () => {
    const io = memoryIo({ env: { GH_SECRET_HEX: hex } });
    const argv = ["sign", "--scheme", "github", "--secret-hex-env", "GH_SECRET_HEX", "--body", "{}", "--json"];
    expect(await run(argv, io)).toBe(0);
    const headers = jsonLines(io.out())[0]?.headers as Record<string, string>;
    expect(headers["x-hub-signature-256"]).toBe(signature("{}"));
  });

  it("an unset variable is missing_secret (exit 3); one that is not hex is invalid_secret, named, its value not shown", async () => {
    const unset = memoryIo();
    expect(await run(["sign", "--scheme", "github", "--secret-hex-env", "NOPE", "--body", "{}"], unset)).toBe(3);
    expect(unset.err()).toBe(
      'interlock sign: the environment variable "NOPE" (--secret-hex-env) is not set: --secret-hex-env takes the name of the variable that holds the secret, not the secret\n',
    );
    const notHex = memoryIo({ env: { GH_SECRET_HEX: MARKER } });
    expect(await run(["sign", "--scheme", "github", "--secret-hex-env", "GH_SECRET_HEX", "--body", "{}"], notHex)).toBe(
      3,
    );
    expect(notHex.err()).toMatch(
      /^interlock sign: invalid secret for the github scheme: the environment variable GH_SECRET_HEX is not hex: /,
    );
    expect(notHex.err()).not.toContain(MARKER);
  });
});

describe("a value that is not an http(s) URL is refused by its start, wherever a URL goes", () => {
  const VALUE = `abc:${MARKER}`; // a secret where the URL belongs, or a URL-like text with scheme abc:
  const refused = (what: string) => `${what} must be an http:// or https:// URL, got "abc:…"`;

  it.each([
    ["send", ["send", VALUE, ...SEND], "<url>"],
    ["sign", ["sign", ...SEND, "--curl", VALUE], "--curl"],
    ["listen", ["listen", "--port", "0", "--scheme", "github", "--secret", "s", "--forward", VALUE], "--forward"],
  ])(
    "spawned: interlock %s given abc:SECRET is a usage error (exit 2) showing abc:…, in text and --json",
    async (command, argv, what) => {
      const text = await interlock(argv);
      expect(text).toEqual({
        code: 2,
        stdout: "",
        stderr: `interlock ${command}: ${refused(what)} (see interlock ${command} --help)\n`,
      });
      const json = await interlock([...argv, "--json"]);
      expect(json.code).toBe(2);
      expect(jsonLines(json.stderr)).toEqual([{ type: "error", code: "usage", message: refused(what), exitCode: 2 }]);
      expect(text.stderr + json.stdout + json.stderr).not.toContain(MARKER);
    },
  );

  it.each([
    ["a host and port without http://", "localhost:4000", "loca…"],
    ["another scheme's URL", `ftp://127.0.0.1/${MARKER}`, "ftp:…"],
    ["another scheme's URL with a password", `ftp://hook-user:${MARKER}@127.0.0.1/`, "ftp:…"],
    ["a user name for its scheme", `hook-user:${MARKER}@127.0.0.1:1/`, "hook…"],
    ["mailto:", `mailto:${MARKER}@example.com`, "mail…"],
    ["file:", `file:///home/${MARKER}`, "file…"],
    ["a secret with a colon", `${MARKER}:${MARKER}`, "CLIS…"],
  ])("%s: shown by its first four characters", async (_, value, shown) => {
    for (const [command, argv, what] of [
      ["send", ["send", value, ...SEND], "<url>"],
      ["sign", ["sign", ...SEND, "--curl", value], "--curl"],
      ["listen", ["listen", "--port", "0", "--scheme", "github", "--secret", "s", "--forward", value], "--forward"],
    ] as const) {
      const io = memoryIo();
      expect(await run(argv, io)).toBe(2);
      expect(io.err()).toBe(
        `interlock ${command}: ${what} must be an http:// or https:// URL, got "${shown}" (see interlock ${command} --help)\n`,
      );
      expect(io.out()).toBe("");
    }
  });

  it("send() and listen() given such a URL object refuse it too, before anything is sent or listened on", async () => {
    const url = new URL(VALUE);
    const sending = send({ url, scheme: github, secret: "s", body: "{}" });
    await expect(sending).rejects.toMatchObject({ code: "usage", exitCode: 2, message: refused("the URL") });
    const listening = listen({ scheme: github, secret: "s", port: 0, forward: url });
    await expect(listening).rejects.toMatchObject({ code: "usage", exitCode: 2, message: refused("--forward") });
  });
});

describe("the NAME of an unset variable is shown by its start, whatever it is written in", () => {
  // A secret made only of capitals, digits and _: written as variable names are.
  const UPPER = "WHSEC_5F0C3E2A9B8D7C6E5F4A3B2C1D0E9F8A7B6C5D4E";
  const unset = (option: string, where = option) =>
    `the environment variable "WHSE…" (${where}) is not set: ${option} takes the name of the variable that holds the secret, not the secret`;

  it.each([
    ["sign", "--secret-env", ["sign", "--scheme", "stripe", "--secret-env", UPPER, "--body", "{}"]],
    ["sign", "--secret-hex-env", ["sign", "--scheme", "stripe", "--secret-hex-env", UPPER, "--body", "{}"]],
    ["listen", "--secret-env", ["listen", "--port", "0", "--scheme", "stripe", "--secret-env", UPPER]],
  ])(
    "spawned: interlock %s %s WHSEC_… (unset): missing_secret (exit 3), the name by its start",
    async (command, option, argv) => {
      const text = await interlock(argv);
      expect(text).toEqual({ code: 3, stdout: "", stderr: `interlock ${command}: ${unset(option)}\n` });
      const json = await interlock([...argv, "--json"]);
      expect(json.code).toBe(3);
      expect(jsonLines(json.stderr)).toEqual([
        { type: "error", code: "missing_secret", message: unset(option), exitCode: 3 },
      ]);
      expect(text.stderr + json.stdout + json.stderr).not.toContain(UPPER.slice(4));
    },
  );

  it("one of several: named by its place among them", async () => {
    const io = memoryIo({ env: { STRIPE_SECRET: "whsec_a" } });
    const argv = ["sign", "--scheme", "stripe", "--secret-env", "STRIPE_SECRET", "--secret-env", UPPER, "--body", "{}"];
    expect(await run(argv, io)).toBe(3);
    expect(io.err()).toBe(`interlock sign: ${unset("--secret-env", "the 2nd --secret-env")}\n`);
  });

  it("a variable that is set but blank is named whole: a name in the environment is no secret", async () => {
    for (const option of ["--secret-env", "--secret-hex-env"]) {
      const io = memoryIo({ env: { BLANK: " \t", EMPTY: "" } });
      expect(await run(["sign", "--scheme", "github", option, "BLANK", "--body", "{}"], io)).toBe(3);
      expect(io.err()).toBe(`interlock sign: the environment variable BLANK (${option}) is empty or only whitespace\n`);
      const empty = memoryIo({ env: { EMPTY: "" } });
      expect(await run(["sign", "--scheme", "github", option, "EMPTY", "--body", "{}"], empty)).toBe(3);
      expect(empty.err()).toBe(
        `interlock sign: the environment variable EMPTY (${option}) is empty or only whitespace\n`,
      );
    }
  });

  it.each(["toString", "__proto__", "constructor"])(
    "%s, a name no variable has but every object does, is unset too (exit 3, not a crash)",
    async (name) => {
      const io = memoryIo({ env: {} });
      expect(await run(["sign", "--scheme", "github", "--secret-env", name, "--body", "{}"], io)).toBe(3);
      expect(io.err()).toMatch(/^interlock sign: the environment variable "[^"]{1,4}…" \(--secret-env\) is not set: /);
    },
  );
});

describe("other values in the wrong place", () => {
  it("a value glued to its option (--secretSECRET) is an unknown option shown without the value", async () => {
    const io = memoryIo();
    expect(await run(["sign", "--scheme", "github", `--secret${MARKER}`, "--body", "{}"], io)).toBe(2);
    expect(io.err()).toBe(
      'interlock sign: unknown option --secret followed by "CLIS…": write --secret VALUE or --secret=VALUE (see interlock sign --help)\n',
    );
    const json = memoryIo();
    expect(
      await run(["send", "http://127.0.0.1:1/", ...SEND, `--timeout=${MARKER}`, `--header${MARKER}`, "--json"], json),
    ).toBe(2);
    expect(jsonLines(json.err())[0]?.message).toBe(
      'unknown option --header followed by "CLIS…": write --header VALUE or --header=VALUE',
    );
    expect(io.err() + json.err()).not.toContain(MARKER);
  });

  it("an unknown option that is no word is shown by its start; a word, whole (a typo)", async () => {
    const io = memoryIo();
    expect(await run(["sign", "--scheme", "github", `--${MARKER}`, "--body", "{}"], io)).toBe(2);
    expect(io.err()).toBe("interlock sign: unknown option --CLIS… (see interlock sign --help)\n");
    const typo = memoryIo();
    expect(await run(["sign", "--scheme", "github", "--secrets", "s", "--body", "{}"], typo)).toBe(2);
    expect(typo.err()).toBe("interlock sign: unknown option --secrets (see interlock sign --help)\n");
  });

  it("listen --host that is no host (a secret given there) is shown by its start", async () => {
    for (const json of [false, true]) {
      const io = memoryIo();
      const argv = ["listen", "--port", "0", "--host", `${MARKER}.invalid`, "--scheme", "github", "--secret", "s"];
      expect(await run(json ? [...argv, "--json"] : argv, io)).toBe(5);
      const message = "cannot listen on CLIS…:0: no such host (check --host)";
      if (json) expect(jsonLines(io.err())).toEqual([{ type: "error", code: "listen_failed", message, exitCode: 5 }]);
      else expect(io.err()).toBe(`interlock listen: ${message}\n`);
      expect(io.out() + io.err()).not.toContain(MARKER);
    }
  });
});

describe("interlock verify never prints a secret whole", () => {
  const LONG = `whsec_${MARKER}`;
  const SHORT = "Zq9"; // shorter than the four characters a value in the wrong place is shown by

  it("which of several secrets matched: by its place and option, a whsec_ one by its provider's prefix only", async () => {
    const signed = await signDelivery({ scheme: github, secret: SHORT, body: "{}" });
    const header = `x-hub-signature-256: ${signed.headers["x-hub-signature-256"]}`;
    for (const json of [false, true]) {
      const io = memoryIo({ env: { OTHER: LONG } });
      const argv = ["verify", "--scheme", "github", "--secret-env", "OTHER", "--secret", SHORT, "-H", header];
      expect(await run([...argv, "--body", "{}", ...(json ? ["--json"] : [])], io)).toBe(0);
      expect(io.out()).toContain(json ? '"given":"--secret"' : "with the 1st of 2 secrets (--secret)");
      expect(io.out() + io.err()).not.toContain(SHORT);
      expect(io.out() + io.err()).not.toContain(MARKER);
    }
    const named = memoryIo();
    const argv = ["verify", "--scheme", "github", "--secret", LONG, "--secret", SHORT, "-H", header, "--body", "{}"];
    expect(await run(argv, named)).toBe(0);
    expect(named.out()).toContain("with the 2nd of 2 secrets (--secret)");
    const whsec = memoryIo();
    const swapped = [
      "verify",
      "--scheme",
      "github",
      "--secret",
      SHORT,
      "--secret",
      LONG,
      "-H",
      header,
      "--body",
      "{ }",
    ];
    expect(await run(swapped, whsec)).toBe(1); // a hint about the body, none about the secrets
    expect(whsec.out() + whsec.err()).not.toContain(MARKER);
    expect(whsec.out() + whsec.err()).not.toContain(SHORT);
  });

  it("a hint about the secret's format names it by its place, not its text", async () => {
    const signed = await signDelivery({ scheme: github, secret: MARKER, body: "{}" });
    const header = `x-hub-signature-256: ${signed.headers["x-hub-signature-256"]}`;
    for (const json of [false, true]) {
      const io = memoryIo();
      const argv = ["verify", "--scheme", "github", "--secret", LONG, "-H", header, "--body", "{}"];
      expect(await run(json ? [...argv, "--json"] : argv, io)).toBe(1);
      expect(io.out()).toContain("whsec_");
      expect(io.out() + io.err()).not.toContain(MARKER);
    }
  });

  it.each([
    ["--at", ["--at", LONG]],
    ["--headers", ["--headers", LONG]],
    ["-H given the secret alone", ["-H", LONG]],
    ["--tolerance", ["--tolerance", LONG]],
    ["an argument too many", [LONG]],
  ])("a secret given to %s: shown by its first four characters, exit 2", async (_, extra) => {
    for (const json of [false, true]) {
      const io = memoryIo();
      const argv = ["verify", "--scheme", "stripe", "--secret", "whsec_x", "--body", "{}", "-H", "x: 1", ...extra];
      expect(await run(json ? [...argv, "--json"] : argv, io)).toBe(2);
      expect(io.err()).toContain("whse…");
      expect(io.out() + io.err()).not.toContain(MARKER);
    }
  });

  it("a headers file line that holds a credential is shown up to its first space or colon", async () => {
    const dir = await mkdtemp(join(tmpdir(), "interlock-hygiene-"));
    try {
      const file = join(dir, "headers.txt");
      await writeFile(file, `x-hub-signature-256: sha256=00\nAuthorization Bearer ${MARKER}\n${MARKER}\n`);
      const io = memoryIo();
      const argv = ["verify", "--scheme", "github", "--secret", "s", "--body", "{}", "--headers", `@${file}`];
      expect(await run(argv, io)).toBe(2);
      expect(io.err()).toContain('line 2 is not "Name: value": "Authorization …"');
      expect(io.out() + io.err()).not.toContain(MARKER);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("spawned: a secret with whitespace at an end is refused as sign refuses it (exit 3), not printed", async () => {
    const result = await interlock([
      "verify",
      "--scheme",
      "stripe",
      "--secret",
      `${LONG}\n`,
      "-H",
      "stripe-signature: t=1,v1=00",
      "--body",
      "{}",
    ]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /^interlock verify: invalid secret for the stripe scheme: --secret starts or ends with whitespace/,
    );
    expect(result.stdout + result.stderr).not.toContain(MARKER);
  });
});
