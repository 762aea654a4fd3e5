/**
 * The command line itself: `--help` for every command, `--version`, and the usage errors of
 * `parseArgs`-based parsing, each with exit code 2 and one line naming the problem. One run
 * spawns the binary; the rest run `run()` in-process with the same streams.
 */
import { readFileSync } from "node:fs";
import { schemes } from "@interlock/core";
import { describe, expect, it } from "vitest";
import { signDelivery } from "../src/delivery.js";
import { EXIT } from "../src/errors.js";
import { COMMANDS, run, VERSION } from "../src/main.js";
import { interlock, memoryIo } from "./helpers.js";

const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
  bin: Record<string, string>;
};

describe("help", () => {
  it("spawned: interlock send --help prints the usage and every option, exit 0", async () => {
    const result = await interlock(["send", "--help"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(
      /^Usage: interlock send <url> --scheme NAME --secret SECRET --body BODY \[options\]\n/,
    );
    for (const option of [
      "--repeat N",
      "--tamper",
      "--stale",
      "--concurrency N",
      "--retry",
      "--secret-env NAME",
      "-H, --header",
    ]) {
      expect(result.stdout).toContain(option);
    }
  });

  it.each(COMMANDS.map((command) => command.name))(
    "%s: --help, -h and `help %s` print the same help, naming every option",
    async (name) => {
      const texts = await Promise.all(
        [
          [name, "--help"],
          [name, "-h"],
          ["help", name],
        ].map(async (argv) => {
          const io = memoryIo();
          expect(await run(argv, io)).toBe(0);
          expect(io.err()).toBe("");
          return io.out();
        }),
      );
      expect(new Set(texts).size).toBe(1);
      const command = COMMANDS.find((c) => c.name === name);
      expect(texts[0]).toContain(`Usage: interlock ${name} `);
      for (const option of [...Object.keys(command?.options ?? {}), "json", "help"]) {
        expect(texts[0]).toContain(`--${option}`);
      }
    },
  );

  it("interlock --help lists the commands; no command at all is a usage error (help on stderr, exit 2)", async () => {
    const help = memoryIo();
    expect(await run(["--help"], help)).toBe(0);
    for (const command of COMMANDS)
      expect(help.out()).toMatch(new RegExp(`^  ${command.name} +${command.summary}$`, "m"));

    // Every exit code the README documents: EXIT's, and the two a signal ends a command with.
    const exitCodes = help.out().replace(/\s+/g, " ").split("Exit codes: ")[1] ?? "";
    for (const code of [...Object.values(EXIT), 130, 141]) expect(exitCodes).toMatch(new RegExp(`(^| )${code} `));

    const none = memoryIo();
    expect(await run([], none)).toBe(2);
    expect(none.out()).toBe("");
    expect(none.err()).toBe(help.out());
  });

  it("--version prints the package's version", async () => {
    const io = memoryIo();
    expect(await run(["--version"], io)).toBe(0);
    expect(io.out()).toBe(`${packageJson.version}\n`);
    expect(VERSION).toBe(packageJson.version);
    expect(packageJson.bin).toEqual({ interlock: "./dist/cli.js" });
  });
});

describe("usage errors: exit 2, one line", () => {
  const cases: Array<[string[], string]> = [
    [
      ["deploy"],
      'interlock: unknown command "deploy": use one of secret, sign, verify, send, listen (see interlock --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--colour"],
      "interlock sign: unknown option --colour (see interlock sign --help)",
    ],
    [["sign", "--scheme"], "interlock sign: --scheme needs a value (see interlock sign --help)"],
    [["sign", "--tamper=yes"], "interlock sign: unknown option --tamper (see interlock sign --help)"],
    [
      ["secret", "--ed25519=yes", "--scheme", "svix"],
      "interlock secret: --ed25519 takes no value (see interlock secret --help)",
    ],
    [
      ["sign", "--body", "-x"],
      'interlock sign: --body needs a value; for a value that starts with "-" write --body=VALUE (see interlock sign --help)',
    ],
    [
      ["send"],
      "interlock send: missing <url>: usage is interlock send <url> --scheme NAME --secret SECRET --body BODY [options] (see interlock send --help)",
    ],
    [
      ["send", "http://a", "http://b"],
      'interlock send: unexpected argument 2 ("http…"): usage is interlock send <url> --scheme NAME --secret SECRET --body BODY [options] (see interlock send --help)',
    ],
    [
      ["send", "ftp://example.com", "--scheme", "github"],
      'interlock send: <url> must be an http:// or https:// URL, got "ftp:…" (see interlock send --help)',
    ],
    [
      ["send", "http://127.0.0.1:1", "--repeat", "0"],
      'interlock send: --repeat must be a whole number from 1 to 1000000, got "0" (see interlock send --help)',
    ],
    [
      ["send", "http://127.0.0.1:1", "--concurrency", "2.5"],
      'interlock send: --concurrency must be a whole number from 1 to 1000, got "2.5" (see interlock send --help)',
    ],
    [
      ["send", "http://127.0.0.1:1", "--max-attempts", "3"],
      "interlock send: --max-attempts needs --retry (see interlock send --help)",
    ],
    [
      ["sign", "--secret", "s", "--body", "{}"],
      "interlock sign: --scheme is required: one of standard-webhooks, svix, stripe, github, slack, shopify, paddle, linear, zoom, generic (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s"],
      "interlock sign: --body is required: @file, - (stdin) or the body itself (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "@"],
      'interlock sign: --body @ needs a file name, as in --body @event.json ("-" reads stdin) (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "-H", "no colon"],
      'interlock sign: --header "no …" is not "Name: value" (see interlock sign --help)',
    ],
    [
      // A colon forgotten after a credential's name: the credential is not echoed.
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "-H", "Authorization Bearer s3cr3t-t0ken"],
      'interlock sign: --header "Authorization …" is not "Name: value" (see interlock sign --help)',
    ],
    [
      ["send", "http://127.0.0.1:1", "--scheme", "github", "--secret", "s", "--body", "{}", "-H", "x-shop: café €"],
      "interlock send: --header x-shop has a character outside ASCII (U+00E9): a header value is sent as bytes, which receivers read as Latin-1 or as UTF-8; use ASCII (percent-encode the rest, as RFC 8187 does) (see interlock send --help)",
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "-H", "x-shop: 20 €"],
      "interlock sign: --header x-shop has a character outside ASCII (U+20AC): a header value is sent as bytes, which receivers read as Latin-1 or as UTF-8; use ASCII (percent-encode the rest, as RFC 8187 does) (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--id", "évt-1"],
      "interlock sign: --id has a character outside ASCII (U+00E9): a header value is sent as bytes, which receivers read as Latin-1 or as UTF-8; use ASCII (percent-encode the rest, as RFC 8187 does) (see interlock sign --help)",
    ],
    [
      ["send", "http://127.0.0.1:1", "--scheme", "github", "--secret", "s", "--body", "{}", "--id", "guid\n1"],
      "interlock send: --id has a character a header value cannot carry (a line break or a control character) (see interlock send --help)",
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--id", "guid\r\nx-injected: 1"],
      "interlock sign: --id has a character a header value cannot carry (a line break or a control character) (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "stripe", "--secret", "s", "--body", "{}", "--id", "evt_1"],
      "interlock sign: --id does not apply to the stripe scheme: its event id is in the body (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "linear", "--secret", "s", "--body", "{}", "--stale"],
      "interlock sign: --stale does not apply to the linear scheme: its timestamp is in the body (change it there to backdate a delivery) (see interlock sign --help)",
    ],
    [
      ["sign", "--scheme", "linear", "--secret", "s", "--body", '{"action":"create"}'],
      "interlock sign: --body does not suit the linear scheme, whose receivers would refuse it (the body has no numeric webhookTimestamp): the timestamp is in the body, in milliseconds (see interlock sign --help)",
    ],
    [
      ["send", "http://127.0.0.1:1", "--scheme", "linear", "--secret", "s", "--body", "not json"],
      "interlock send: --body does not suit the linear scheme, whose receivers would refuse it (the body has no numeric webhookTimestamp): the timestamp is in the body, in milliseconds (see interlock send --help)",
    ],
    [
      ["sign", "--scheme", "stripe", "--secret", "s", "--body", "{}", "--stale", "--timestamp", "1"],
      "interlock sign: --stale and --timestamp both set the timestamp: use one (see interlock sign --help)",
    ],
    // A blank value (an unset shell variable, a stray quote) is a mistake, whichever option gets it.
    [
      [
        "send",
        "http://127.0.0.1:1",
        "--scheme",
        "svix",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--body",
        "{}",
        "--id",
        "",
      ],
      'interlock send: --id needs a value, got "" (see interlock send --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--id", "  "],
      'interlock sign: --id needs a value, got "  " (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--id="],
      'interlock sign: --id needs a value, got "" (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", " ", "--secret", "s", "--body", "{}"],
      'interlock sign: --scheme needs a value, got " " (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret-env", "", "--body", "{}"],
      'interlock sign: --secret-env needs a value, got "" (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "-H", "x-a: 1", "-H", "\t"],
      'interlock sign: --header needs a value, got "\\t" (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "github", "--secret", "s", "--body", "{}", "--curl", ""],
      'interlock sign: --curl needs a value, got "" (see interlock sign --help)',
    ],
    [
      ["sign", "--scheme", "stripe", "--secret", "s", "--body", "{}", "--timestamp", " "],
      'interlock sign: --timestamp needs a value, got " " (see interlock sign --help)',
    ],
    [
      ["listen", "--scheme", "github", "--secret", "s", "--forward", ""],
      'interlock listen: --forward needs a value, got "" (see interlock listen --help)',
    ],
    [
      ["listen", "--scheme", "github", "--secret", "s", "--host", ""],
      'interlock listen: --host needs a value, got "" (see interlock listen --help)',
    ],
    [
      ["listen", "--scheme", "github", "--secret", "s", "--port", ""],
      'interlock listen: --port needs a value, got "" (see interlock listen --help)',
    ],
    [
      ["listen", "--scheme", "github", "--secret", "s", "--forward", "localhost:4000"],
      // A host and port without http:// reads as a URL of scheme "localhost:"; shown by its start as any other.
      'interlock listen: --forward must be an http:// or https:// URL, got "loca…" (see interlock listen --help)',
    ],
  ];

  it.each(cases)("%j", async (argv, line) => {
    const io = memoryIo();
    expect(await run(argv, io)).toBe(2);
    expect(io.out()).toBe("");
    expect(io.err()).toBe(`${line}\n`);
  });

  it("a blank --secret or --secret-env value is missing_secret (exit 3), as a missing secret is", async () => {
    for (const [argv, line] of [
      [["--secret", " "], "--secret is empty"],
      [["--secret-env", "BLANK"], "the environment variable BLANK (--secret-env) is empty or only whitespace"],
    ] as const) {
      const io = memoryIo({ env: { BLANK: " \t" } });
      expect(await run(["sign", "--scheme", "github", ...argv, "--body", "{}"], io)).toBe(3);
      expect(io.err()).toBe(`interlock sign: ${line}\n`);
    }
  });

  it("an empty --body is still a delivery: signed as empty", async () => {
    const io = memoryIo();
    expect(await run(["sign", "--scheme", "github", "--secret", "s", "--body", ""], io)).toBe(0);
    expect(io.out()).toMatch(/^x-hub-signature-256: sha256=[0-9a-f]{64}$/m);
  });

  it("signDelivery refuses a blank id too, as the usage error the command line gets", async () => {
    for (const id of ["", " "]) {
      await expect(
        signDelivery({ scheme: schemes.github, secret: "s", body: "{}", id }),
        JSON.stringify(id),
      ).rejects.toMatchObject({ code: "usage", exitCode: 2 });
    }
  });

  it("two secrets for a scheme that carries one signature: core's configuration error, exit 2", async () => {
    const io = memoryIo();
    expect(await run(["sign", "--scheme", "github", "--secret", "a", "--secret", "b", "--body", "{}"], io)).toBe(2);
    expect(io.err()).toBe("interlock sign: the github scheme carries one signature: pass one secret\n");
  });

  it("two secrets for a scheme that carries several: both signatures are sent (rotation)", async () => {
    const io = memoryIo();
    const secrets = ["whsec_old", "whsec_new"];
    expect(
      await run(["sign", "--scheme", "stripe", ...secrets.flatMap((s) => ["--secret", s]), "--body", "{}"], io),
    ).toBe(0);
    expect(io.out()).toMatch(/^stripe-signature: t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}\n$/);
  });
});
