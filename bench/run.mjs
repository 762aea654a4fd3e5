/**
 * Verification benchmark: @interlock/core against the raw HMAC floor and the providers' own
 * libraries, on the same signed deliveries. See README.md for how to read the numbers.
 *
 *   node bench/run.mjs            full run (about 70 s on 2 cores), writes results/latest.md
 *   node bench/run.mjs --quick    short smoke run, writes nothing
 *
 * Each scheme × body size runs in its own child process, so the JIT feedback and the heap of
 * one group never leak into another. Inside a group every implementation is warmed, then the
 * implementations are timed in interleaved rounds (one batch of ~12 ms each per round), and
 * the ratio to the floor is the median of the per-round ratios: drift in clock speed hits both
 * sides of each ratio alike. Batches are timed in process CPU time, which leaves out the time
 * other processes on a shared machine take the core.
 */

import { execFileSync } from "node:child_process";

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import {
  createWebhookVerifier,
  github,
  shopify,
  slack,
  standardWebhooks,
  stripe as stripeScheme,
  WebhookVerificationError,
} from "@interlock/core";
import { verify as octokitVerify } from "@octokit/webhooks-methods";
import { Webhook as StandardWebhook } from "standardwebhooks";
import Stripe from "stripe";
import { Webhook as SvixWebhook } from "svix";
import { measuredCommit } from "./provenance.mjs";
import { median } from "./stats.mjs";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const WARMUP_MS = QUICK ? 60 : 300;
const ROUNDS = QUICK ? 6 : 30;
const BATCH_MS = QUICK ? 4 : 12;

const SIZES = [1024, 64 * 1024];
const SCHEME_ORDER = ["standard-webhooks", "stripe", "github", "slack", "shopify"];
const TARGETS = { floor: { 1024: 0.85, 65536: 0.95 }, reject: 0.8 };

// ---------------------------------------------------------------------------------------
// Deliveries

/** A JSON event of exactly `size` bytes (ASCII), shaped like a provider's payload. */
function jsonBody(size) {
  const lines = [];
  const doc = {
    id: "evt_1PbEnChXk2vP9qzLmN0aB1cD",
    object: "event",
    type: "invoice.paid",
    created: 1732870000,
    livemode: false,
    data: { object: { id: "in_1PbEnCh", object: "invoice", currency: "eur", customer: "cus_Q1bench", lines } },
    pad: "",
  };
  for (let i = 0; JSON.stringify(doc).length < size; i++) {
    lines.push({
      id: `il_${String(i).padStart(8, "0")}`,
      amount: 1000 + i * 7,
      quantity: 1 + (i % 5),
      description: "Pro plan, monthly",
      metadata: { order: `ord_${i}` },
    });
  }
  while (JSON.stringify(doc).length > size) lines.pop();
  doc.pad = "x".repeat(size - JSON.stringify(doc).length);
  const text = JSON.stringify(doc);
  if (text.length !== size) throw new Error(`body is ${text.length} bytes, not ${size}`);
  return Buffer.from(text);
}

const hmac = (key, ...parts) => {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(part);
  return mac.digest();
};
const bytes32 = (label) => createHash("sha256").update(label).digest();
/** Signs the wrong-signature deliveries: same length, same encoding, wrong key. */
const WRONG_KEY = bytes32("an attacker's guess");

/**
 * Per scheme: the secret ours is configured with, a good and a bad delivery (headers), the
 * floor, and the peers. `ts` is the current time in seconds: the libraries that read the real
 * clock accept it, and ours and Stripe are handed the same instant as a fixed clock.
 */
const SCHEMES = {
  "standard-webhooks"(body, ts) {
    const key = bytes32("standard-webhooks secret");
    const secret = `whsec_${key.toString("base64")}`;
    const id = "msg_2ZbEnChQ8a7T1vYt3pKxWqRm";
    const sign = (k) => `v1,${hmac(k, `${id}.${ts}.`, body).toString("base64")}`;
    const good = { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": sign(key) };
    const bad = { ...good, "webhook-signature": sign(WRONG_KEY) };
    const svixHeaders = (h) => ({
      "svix-id": h["webhook-id"],
      "svix-timestamp": h["webhook-timestamp"],
      "svix-signature": h["webhook-signature"],
    });
    const text = body.toString();
    const sw = new StandardWebhook(secret);
    const svix = new SvixWebhook(secret);
    return {
      scheme: standardWebhooks,
      secret,
      good,
      bad,
      floor(h, b) {
        const list = h["webhook-signature"];
        const expected = Buffer.from(list.slice(list.indexOf(",") + 1), "base64");
        const mac = createHmac("sha256", key)
          .update(`${h["webhook-id"]}.${h["webhook-timestamp"]}.`)
          .update(b)
          .digest();
        return mac.length === expected.length && timingSafeEqual(mac, expected);
      },
      peers: [
        {
          name: "standardwebhooks `Webhook.verify` (jsonParse: false)",
          input: "string",
          run: (h) => sw.verify(text, h, { jsonParse: false }),
        },
        {
          name: "svix `Webhook.verify` (svix-* headers)",
          input: "Buffer",
          headers: svixHeaders,
          run: (h) => svix.verify(body, h),
        },
      ],
    };
  },

  stripe(body, ts) {
    const secret = "whsec_bEnChStr1pe5ecretK3yF0rTheB3nchmark0";
    const sign = (k) => `t=${ts},v1=${hmac(k, `${ts}.`, body).toString("hex")}`;
    const good = { "stripe-signature": sign(secret) };
    const bad = { "stripe-signature": sign(WRONG_KEY) };
    const client = new Stripe("sk_test_bench_never_used");
    const nowMs = ts * 1000;
    return {
      scheme: stripeScheme,
      secret,
      good,
      bad,
      floor(h, b) {
        const header = h["stripe-signature"];
        const comma = header.indexOf(",");
        const expected = Buffer.from(header.slice(comma + 4), "hex");
        const mac = createHmac("sha256", secret)
          .update(`${header.slice(2, comma)}.`)
          .update(b)
          .digest();
        return mac.length === expected.length && timingSafeEqual(mac, expected);
      },
      peers: [
        {
          name: "stripe `webhooks.constructEvent` (parses the event)",
          input: "Buffer",
          run: (h) => client.webhooks.constructEvent(body, h["stripe-signature"], secret, 300, undefined, nowMs),
        },
        {
          name: "stripe `webhooks.signature.verifyHeader`",
          input: "Buffer",
          run: (h) =>
            client.webhooks.signature.verifyHeader(body, h["stripe-signature"], secret, 300, undefined, nowMs),
        },
      ],
    };
  },

  github(body) {
    const secret = "It's a Secret to Everybody: interlock bench";
    const sign = (k) => `sha256=${hmac(k, body).toString("hex")}`;
    const good = { "x-hub-signature-256": sign(secret), "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958" };
    const bad = { ...good, "x-hub-signature-256": sign(WRONG_KEY) };
    const text = body.toString();
    return {
      scheme: github,
      secret,
      good,
      bad,
      floor(h, b) {
        const expected = Buffer.from(h["x-hub-signature-256"].slice(7), "hex");
        const mac = createHmac("sha256", secret).update(b).digest();
        return mac.length === expected.length && timingSafeEqual(mac, expected);
      },
      peers: [
        {
          name: "@octokit/webhooks-methods `verify` (async, resolves false)",
          input: "string",
          async: true,
          returnsFalse: true,
          run: (h) => octokitVerify(secret, text, h["x-hub-signature-256"]),
        },
      ],
    };
  },

  slack(body, ts) {
    const secret = "8f742231b10e8888abcd99yyyzzz85a5";
    const sign = (k) => `v0=${hmac(k, `v0:${ts}:`, body).toString("hex")}`;
    const good = { "x-slack-request-timestamp": String(ts), "x-slack-signature": sign(secret) };
    const bad = { ...good, "x-slack-signature": sign(WRONG_KEY) };
    return {
      scheme: slack,
      secret,
      good,
      bad,
      floor(h, b) {
        const expected = Buffer.from(h["x-slack-signature"].slice(3), "hex");
        const mac = createHmac("sha256", secret).update(`v0:${h["x-slack-request-timestamp"]}:`).update(b).digest();
        return mac.length === expected.length && timingSafeEqual(mac, expected);
      },
      peers: [],
    };
  },

  shopify(body) {
    const secret = "shpss_bench0123456789abcdef0123456789";
    const sign = (k) => hmac(k, body).toString("base64");
    const good = {
      "x-shopify-hmac-sha256": sign(secret),
      "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    };
    const bad = { ...good, "x-shopify-hmac-sha256": sign(WRONG_KEY) };
    return {
      scheme: shopify,
      secret,
      good,
      bad,
      floor(h, b) {
        const expected = Buffer.from(h["x-shopify-hmac-sha256"], "base64");
        const mac = createHmac("sha256", secret).update(b).digest();
        return mac.length === expected.length && timingSafeEqual(mac, expected);
      },
      peers: [],
    };
  },
};

// ---------------------------------------------------------------------------------------
// Cases: what is timed. Every `fn` returns something, kept in `blackhole`.

const check = (ok, message) => {
  if (!ok) throw new Error(`sanity check failed: ${message}`);
};

async function buildCases(schemeName, size) {
  const body = jsonBody(size);
  const ts = Math.floor(Date.now() / 1000);
  const s = SCHEMES[schemeName](body, ts);
  const nowMs = ts * 1000;
  const verifier = createWebhookVerifier({ scheme: s.scheme, secret: s.secret, now: () => nowMs });
  const { good, bad } = s;

  // Everything must accept the good delivery and refuse the bad one before anything is timed.
  check(s.floor(good, body) === true, "floor accepts");
  check(s.floor(bad, body) === false, "floor rejects");
  check(verifier.verifySync(good, body).body === body, "ours (sync) accepts");
  check((await verifier.verify(good, body)).body === body, "ours (async) accepts");
  const code = (f) => {
    try {
      f();
    } catch (error) {
      return error instanceof WebhookVerificationError ? error.code : String(error);
    }
    return "accepted";
  };
  check(code(() => verifier.verifySync(bad, body)) === "no_matching_signature", "ours (sync) rejects");
  check(verifier.checkSync(bad, body).code === "no_matching_signature", "ours (checkSync) rejects");
  check((await verifier.check(bad, body)).code === "no_matching_signature", "ours (check) rejects");
  check(
    (await verifier.verify(bad, body).then(
      () => "accepted",
      (e) => e.code,
    )) === "no_matching_signature",
    "ours (async) rejects",
  );
  for (const peer of s.peers) {
    const h = peer.headers ?? ((x) => x);
    const goodH = h(good);
    const badH = h(bad);
    const okResult = peer.async ? await peer.run(goodH) : peer.run(goodH);
    check(!peer.returnsFalse || okResult === true, `${peer.name} accepts`);
    let refused = false;
    try {
      const r = peer.async ? await peer.run(badH) : peer.run(badH);
      refused = peer.returnsFalse && r === false;
    } catch {
      refused = !peer.returnsFalse;
    }
    check(refused, `${peer.name} rejects`);
    peer.goodH = goodH;
    peer.badH = badH;
  }

  const accept = [
    { name: "floor: `createHmac` + `timingSafeEqual`", kind: "floor", input: "Buffer", fn: () => s.floor(good, body) },
    { name: "**ours** `verifySync`", kind: "ours", input: "Buffer", fn: () => verifier.verifySync(good, body) },
    {
      name: "**ours** `await verify`",
      kind: "ours-async",
      input: "Buffer",
      async: true,
      fn: () => verifier.verify(good, body),
    },
    ...s.peers.map((p) => ({
      name: p.name,
      kind: "peer",
      input: p.input,
      async: p.async,
      fn: () => p.run(p.goodH),
    })),
  ];

  const reject = [
    {
      name: "floor: `createHmac` + `timingSafeEqual` → false",
      kind: "floor",
      how: "returns false",
      fn: () => s.floor(bad, body),
    },
    {
      name: "**ours** `verifySync`",
      kind: "ours",
      how: "throws `WebhookVerificationError`",
      fn: () => {
        try {
          return verifier.verifySync(bad, body);
        } catch (error) {
          return error;
        }
      },
    },
    {
      name: "**ours** `checkSync`",
      kind: "ours-check",
      how: "returns a `WebhookRefusal`",
      fn: () => verifier.checkSync(bad, body),
    },
    {
      name: "**ours** `await check`",
      kind: "ours-check-async",
      how: "resolves to a `WebhookRefusal`",
      async: true,
      fn: () => verifier.check(bad, body),
    },
    {
      name: "**ours** `await verify`",
      kind: "ours-async",
      how: "rejects with `WebhookVerificationError`",
      async: true,
      fn: async () => {
        try {
          return await verifier.verify(bad, body);
        } catch (error) {
          return error;
        }
      },
    },
    ...s.peers.map((p) => ({
      name: p.name,
      kind: "peer",
      how: p.returnsFalse ? "resolves false" : "throws",
      async: p.async,
      fn: p.async
        ? async () => {
            try {
              return await p.run(p.badH);
            } catch (error) {
              return error;
            }
          }
        : () => {
            try {
              return p.run(p.badH);
            } catch (error) {
              return error;
            }
          },
    })),
  ];
  return { accept, reject };
}

// ---------------------------------------------------------------------------------------
// Timing

/** Every result is written here, so no call can be optimised away. */
const blackhole = { value: undefined };

/**
 * The clock is this process's CPU time (user + system, in ns), not the wall clock: on a shared
 * 2-core machine another process can take the core mid-batch, and only CPU time leaves that out.
 * Wall time is kept too, to report how busy the machine was.
 */
const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};
const clock = { cpu: 0, wall: 0 };

/**
 * A young-generation collection before each batch (outside the timing), so no batch pays for
 * garbage another implementation left behind. Children run with --expose-gc.
 */
const minorGc = globalThis.gc ? () => globalThis.gc({ type: "minor" }) : () => {};

function batchSync(fn, n) {
  minorGc();
  const w0 = performance.now();
  const t0 = cpuNs();
  for (let i = 0; i < n; i++) blackhole.value = fn();
  const ns = cpuNs() - t0;
  clock.wall += (performance.now() - w0) * 1e6;
  clock.cpu += ns;
  return ns;
}

async function batchAsync(fn, n) {
  minorGc();
  const w0 = performance.now();
  const t0 = cpuNs();
  for (let i = 0; i < n; i++) blackhole.value = await fn();
  const ns = cpuNs() - t0;
  clock.wall += (performance.now() - w0) * 1e6;
  clock.cpu += ns;
  return ns;
}

const batch = (c, n) => (c.async ? batchAsync(c.fn, n) : batchSync(c.fn, n));

/** Warms every case (interleaved), sizes its batch, then times interleaved rounds. */
async function measure(cases) {
  const stats = cases.map(() => ({ ops: 0, ns: 0 }));
  for (let pass = 0; pass < 3; pass++) {
    for (const [i, c] of cases.entries()) {
      const until = performance.now() + WARMUP_MS / 3;
      let n = 1;
      while (performance.now() < until) {
        stats[i].ns += await batch(c, n);
        stats[i].ops += n;
        n = Math.min(n * 2, 4096);
      }
    }
  }
  const sizes = stats.map((st) => Math.max(1, Math.round((BATCH_MS * 1e6) / (st.ns / st.ops))));
  const rounds = cases.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + r) % cases.length; // rotate the order, so no case always runs first
      rounds[i].push((sizes[i] * 1e9) / (await batch(cases[i], sizes[i])));
    }
  }
  const floor = rounds[0];
  return cases.map((c, i) => {
    const ops = median(rounds[i]);
    const spread = median(rounds[i].map((x) => Math.abs(x - ops))) / ops; // median absolute deviation
    const ratio = median(rounds[i].map((x, r) => x / floor[r]));
    const { fn: _fn, ...rest } = c;
    return { ...rest, ops, spread, ratio };
  });
}

async function child(schemeName, size) {
  const { accept, reject } = await buildCases(schemeName, size);
  const result = { scheme: schemeName, size, accept: await measure(accept), reject: await measure(reject) };
  result.wallPerCpu = clock.wall / clock.cpu;
  process.stdout.write(JSON.stringify(result));
}

// ---------------------------------------------------------------------------------------
// Report

const fmtOps = (x) => Math.round(x).toLocaleString("en-US");
const fmtPct = (x) => `${(x * 100).toFixed(1)}%`;
const fmtRatio = (x) => x.toFixed(2);
const kib = (size) => `${size / 1024} KiB`;

function report(groups, meta) {
  const out = [];
  out.push("# Webhook verification benchmark", "");
  out.push(
    `Node ${meta.node} · ${meta.platform} · ${meta.cpu} · nproc ${meta.nproc} · ${meta.date} · core ${meta.core}`,
    "",
    `Settings: ${meta.rounds} interleaved rounds of ~${meta.batchMs} ms batches per implementation after ` +
      `${meta.warmupMs} ms of warm-up; one child process per scheme and body size. ops/s is the median round; ` +
      "± is the median absolute deviation of the rounds; *vs floor* is the median of per-round ratios to the " +
      "floor timed in the same round. Ours is configured with a fixed clock (`now`); stripe gets the same instant " +
      "as `receivedAt`; standardwebhooks, svix and octokit read the real clock (the delivery is freshly signed).",
    "",
    `Clock: the process's CPU time. Wall time over CPU time during the timed batches: ${meta.busy} ` +
      "(1.00: the benchmark had a core to itself; higher: other processes competed for the CPU, which CPU " +
      "time leaves out but caches and frequency may still show).",
    "",
  );
  for (const size of SIZES) {
    const rows = groups.filter((g) => g.size === size);
    out.push(`## ${kib(size)} body`, "", "### Valid delivery (accept)", "");
    out.push("| scheme | implementation | body given as | ops/s | ± | vs floor |", "|---|---|---|---:|---:|---:|");
    for (const g of rows) {
      for (const c of g.accept) {
        out.push(
          `| ${g.scheme} | ${c.name} | ${c.input} | ${fmtOps(c.ops)} | ${fmtPct(c.spread)} | ${fmtRatio(c.ratio)} |`,
        );
      }
    }
    out.push("", "### Wrong signature of the right length (reject)", "");
    out.push(
      "| scheme | implementation | how it refuses | ops/s | ± | vs floor reject |",
      "|---|---|---|---:|---:|---:|",
    );
    for (const g of rows) {
      for (const c of g.reject) {
        out.push(
          `| ${g.scheme} | ${c.name} | ${c.how} | ${fmtOps(c.ops)} | ${fmtPct(c.spread)} | ${fmtRatio(c.ratio)} |`,
        );
      }
    }
    out.push("");
  }

  out.push("## Targets", "");
  out.push(
    "Ours against the floor (≥ 0.85 at 1 KiB, ≥ 0.95 at 64 KiB), against the fastest peer on the same scheme " +
      "(≥ 1.00×; ours' ratio over that peer's ratio), and its rejections against the floor's (≥ 0.80); each for `verifySync` and for `await verify`, " +
      "and rejections also for `checkSync` / `await check` (the non-throwing API servers use under a flood of forged deliveries).",
    "",
    "| body | scheme | vs floor, sync | vs floor, async | vs fastest peer, sync | vs fastest peer, async | " +
      "reject, sync | reject, async | reject, checkSync | reject, await check |",
    "|---|---|---|---|---|---|---|---|---|---|",
  );
  const summary = [];
  // Judged on the two decimals shown, so a cell never reads "0.95 ❌" against a 0.95 target.
  const atLeast = (ratio, target) => Number(fmtRatio(ratio)) >= target;
  const cell = (value, ok, suffix = "") => {
    summary.push(ok);
    return `${value}${suffix} ${ok ? "✅" : "❌"}`;
  };
  for (const g of groups) {
    const a = Object.fromEntries(g.accept.map((c) => [c.kind, c]));
    const r = Object.fromEntries(g.reject.map((c) => [c.kind, c]));
    const target = TARGETS.floor[g.size];
    const peers = g.accept.filter((c) => c.kind === "peer");
    const fastest = peers.reduce((best, c) => (best && best.ratio >= c.ratio ? best : c), undefined);
    const vsPeer = (ours) =>
      fastest ? cell(fmtRatio(ours.ratio / fastest.ratio), atLeast(ours.ratio / fastest.ratio, 1), "×") : "no peer";
    out.push(
      [
        "",
        kib(g.size),
        g.scheme,
        cell(fmtRatio(a.ours.ratio), atLeast(a.ours.ratio, target)),
        cell(fmtRatio(a["ours-async"].ratio), atLeast(a["ours-async"].ratio, target)),
        vsPeer(a.ours),
        vsPeer(a["ours-async"]),
        cell(fmtRatio(r.ours.ratio), atLeast(r.ours.ratio, TARGETS.reject)),
        cell(fmtRatio(r["ours-async"].ratio), atLeast(r["ours-async"].ratio, TARGETS.reject)),
        cell(fmtRatio(r["ours-check"].ratio), atLeast(r["ours-check"].ratio, TARGETS.reject)),
        cell(fmtRatio(r["ours-check-async"].ratio), atLeast(r["ours-check-async"].ratio, TARGETS.reject)),
        "",
      ]
        .join(" | ")
        .trim(),
    );
  }
  out.push(
    "",
    `${summary.filter(Boolean).length} of ${summary.length} target checks met.`,
    "",
    "Peers' inputs: standardwebhooks gets the body as a string (its README's `payload`) and `jsonParse: false`, so it " +
      "does no more work than ours; svix gets a Buffer and `svix-*` headers (Svix's Express example); stripe gets " +
      "the Buffer (`express.raw`), `tolerance` 300 and `receivedAt`; octokit requires a string. Converting a Buffer " +
      "body to a string is *not* timed for the peers that take strings. `constructEvent` also `JSON.parse`s the " +
      "event; `verifyHeader` does not. Ours never parses the payload before `.payload` is read.",
    "",
  );
  return out.join("\n");
}

async function main() {
  const self = fileURLToPath(import.meta.url);
  const started = performance.now();
  const groups = [];
  for (const size of SIZES) {
    for (const scheme of SCHEME_ORDER) {
      process.stderr.write(`bench: ${scheme} ${kib(size)}…\n`);
      const json = execFileSync(process.execPath, ["--expose-gc", self, "--child", scheme, String(size), ...args], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
        maxBuffer: 16 * 1024 * 1024,
      });
      groups.push(JSON.parse(json));
    }
  }
  const cpus = os.cpus();
  const meta = {
    core: measuredCommit("packages/core/src"),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpu: `${cpus[0]?.model.trim() ?? "unknown CPU"}`,
    nproc: os.availableParallelism(),
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    rounds: ROUNDS,
    batchMs: BATCH_MS,
    warmupMs: WARMUP_MS,
  };
  const busy = groups.map((g) => g.wallPerCpu);
  meta.busy = `${Math.min(...busy).toFixed(2)}–${Math.max(...busy).toFixed(2)} across groups`;
  const markdown = report(groups, meta);
  process.stdout.write(`${markdown}\n`);
  if (QUICK) {
    process.stderr.write("bench: --quick run, results/latest.md left as it was\n");
  } else {
    const dir = fileURLToPath(new URL("./results/", import.meta.url));
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}latest.md`, markdown);
    process.stderr.write(`bench: wrote bench/results/latest.md\n`);
  }
  process.stderr.write(`bench: done in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}

if (args[0] === "--child") await child(args[1], Number(args[2]));
else await main();
