/**
 * The progress line of a long `send --repeat` run, on stderr. On a terminal it is one line
 * redrawn in place (at most ten times a second); elsewhere (`--progress` into a file or a pipe)
 * it is a plain line at most once a second. The final count is always written.
 */

import type { OutputStream } from "./io.js";

export interface ProgressCounts {
  sent: number;
  acknowledged: number;
}

export interface Progress {
  update(counts: ProgressCounts): void;
  /** Runs `write` (output to another stream) without tearing the line on a terminal. */
  around(write: () => void): void;
  /** Writes the final count and leaves the line. */
  finish(counts: ProgressCounts): void;
}

const SILENT: Progress = { update() {}, around: (write) => write(), finish() {} };

export function createProgress(
  stream: OutputStream | undefined,
  total: number,
  now: () => number = Date.now,
): Progress {
  if (!stream) return SILENT;
  const terminal = stream.isTTY === true;
  const interval = terminal ? 100 : 1000;
  let lastDrawn = Number.NEGATIVE_INFINITY;
  let shown: string | undefined;
  const line = ({ sent, acknowledged }: ProgressCounts) =>
    `interlock send: ${sent}/${total} sent, ${acknowledged} acknowledged (2xx), ${sent - acknowledged} not`;

  function draw(text: string): void {
    stream?.write(terminal ? `\r\x1b[2K${text}` : `${text}\n`);
    shown = terminal ? text : undefined;
    lastDrawn = now();
  }

  return {
    update(counts) {
      if (now() - lastDrawn >= interval) draw(line(counts));
    },
    around(write) {
      if (shown === undefined) return write();
      stream?.write("\r\x1b[2K");
      write();
      draw(shown);
    },
    finish(counts) {
      draw(line(counts));
      if (terminal) stream?.write("\n");
      shown = undefined;
    },
  };
}
