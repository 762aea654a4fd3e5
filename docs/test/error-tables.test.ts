/**
 * The error tables users switch on, checked against the code: every refusal code core can give
 * a webhook delivery has its row, with the status core answers it with. A code added to core,
 * or a status changed, fails here until the tables say so. The tables' prose (the meaning
 * column) is not checked.
 */

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  IdempotencyError,
  StoreUnavailableError,
  WEBHOOK_ERROR_CODES,
  WebhookPayloadError,
  webhookErrorStatus,
} from "../../packages/core/src/errors.js";
import { read, repoRoot, sectionOf, shown, tablesOf } from "./markdown.js";

/** The status core answers a code with, for the codes these tables list. */
function statusOf(code: string): number | undefined {
  if ((WEBHOOK_ERROR_CODES as string[]).includes(code)) return webhookErrorStatus(code as never);
  if (code === "request_in_flight") return new IdempotencyError(code, "").status;
  if (code === "store_unavailable") return new StoreUnavailableError("any", "").status;
  if (code === "payload_not_decodable") return new WebhookPayloadError("any", "").status;
  return undefined;
}

/** The one table under `heading`: its rows as `[code, status, line]`, from its `code` and status columns. */
function errorRows(page: string, heading: string): { code: string; status: number; line: number }[] {
  const tables = tablesOf(sectionOf(read(page), heading));
  expect(tables, `${shown(page)}: one table under "${heading}"`).toHaveLength(1);
  const [table] = tables as [(typeof tables)[0]];
  const column = (name: RegExp) => table.header.findIndex((cell) => name.test(cell));
  const [code, status] = [column(/^`code`$/), column(/^`?status`?$/)];
  expect([code, status], `${shown(page)}: the table has a \`code\` and a status column`).not.toContain(-1);
  return table.rows.map(({ cells, line }) => ({
    code: /^`([a-z_]+)`$/.exec(cells[code] ?? "")?.[1] ?? `(not one code: ${cells[code]})`,
    status: Number(cells[status]),
    line,
  }));
}

const pages = [
  { page: "packages/core/README.md", codes: WEBHOOK_ERROR_CODES },
  // The guide's table also has the two answers a receiver gives a verified delivery it cannot run
  // now, and the error a verified delivery's payload throws when it cannot be decoded.
  {
    page: "docs/webhooks/README.md",
    codes: [...WEBHOOK_ERROR_CODES, "request_in_flight", "store_unavailable", "payload_not_decodable"],
  },
];

describe.each(pages)("the error table of $page", ({ page, codes }) => {
  const rows = errorRows(join(repoRoot, page), "## Errors");

  it("lists every code core gives, once", () => {
    expect(rows.map((row) => row.code).sort()).toEqual([...codes].sort());
  });

  it("gives each code the status core answers it with", () => {
    const wrong = rows
      .filter((row) => statusOf(row.code) !== row.status)
      .map((row) => `${page}:${row.line}: ${row.code} says ${row.status}, core answers ${statusOf(row.code)}`);
    expect(wrong).toEqual([]);
  });
});
