/**
 * A client that leaves mid-body while something asynchronous before Interlock's middleware holds
 * its request (an authentication lookup, a rate limiter), for the Node adapters' tests: a gate
 * the adapter's own middleware or hook waits at, and a client that sends part of a body and
 * leaves once the gate has its request. Over HTTP/1.1 it closes the connection; over HTTP/2 it
 * resets the stream with no END_STREAM before it (raw-http2.ts), as a browser that aborts an
 * upload. `reports` keeps what Interlock's `onEvent` and `onError` then see.
 */

import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { connect } from "node:net";
import type { InterlockEvent } from "@interlock/core";
import { RawHttp2Connection } from "./raw-http2.js";

export type Protocol = "HTTP/1.1" | "HTTP/2";

/** The Node request an adapter's middleware or hook holds. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/** Holds the first request until the test lets it go. */
export interface Gate {
  /** Gives the first request once it is held. */
  reached: Promise<NodeRequest>;
  /** Lets the held request go on. */
  release(): void;
  /** What the adapter's middleware or hook awaits: resolves once released. */
  hold(request: NodeRequest): Promise<void>;
}

/** A gate that holds the first request until `release`; later requests pass. */
export function holdFirst(): Gate {
  let reach: (request: NodeRequest) => void = () => {};
  let release: () => void = () => {};
  const reached = new Promise<NodeRequest>((resolve) => {
    reach = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    reached,
    release,
    hold: async (request) => {
      reach(request);
      await released;
    },
  };
}

/** A client that has sent part of a body: `leave` goes away mid-body, `close` lets go of what is left. */
export interface PartialRequest {
  leave(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Sends the head of a POST announcing 100 bytes of body and `part` of them, on a raw connection
 * (HTTP/1.1) or a raw stream (HTTP/2): no client library to end the body for it.
 */
async function sendPart(
  protocol: Protocol,
  url: string,
  path: string,
  headers: Record<string, string>,
  part: string,
): Promise<PartialRequest> {
  const head = { ...headers, "content-length": "100" };
  if (protocol === "HTTP/2") {
    const connection = await RawHttp2Connection.open(url);
    try {
      const stream = await connection.request({ method: "POST", path, headers: head }, Buffer.from(part));
      return { leave: () => connection.reset(stream), close: () => connection.close() };
    } catch (error) {
      await connection.close();
      throw error;
    }
  }
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  const lines = Object.entries({ host: "127.0.0.1", ...head }).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(`POST ${path} HTTP/1.1\r\n${lines.join("")}\r\n${part}`);
  return {
    leave: async () => {
      socket.destroy();
    },
    close: async () => {},
  };
}

/**
 * Sends part of a body (`sendPart`), leaves once `gate` has the request, and releases `gate` once
 * the request has closed: by then the adapter reads a body that will not come. Resolves with the
 * client, whose `close` the test calls when it is done (the HTTP/2 connection stays open until
 * then); closes it itself if leaving fails.
 */
export async function leaveWhileHeld(
  protocol: Protocol,
  url: string,
  gate: Pick<Gate, "reached" | "release">,
  path: string,
  headers: Record<string, string>,
  part: string,
): Promise<PartialRequest> {
  const client = await sendPart(protocol, url, path, headers, part);
  try {
    const request = await gate.reached;
    // Not `events.once`, whose `error` listener would make the request emit its "aborted" error.
    const closed = new Promise((resolve) => request.once("close", resolve));
    await client.leave();
    await closed;
    gate.release();
    return client;
  } catch (error) {
    await client.close();
    throw error;
  }
}

/**
 * What Interlock reports: its events, and each refusal `onError` gets as [status, code]. Hand
 * `onEvent` and `onError` to `webhook()` or `idempotency()`.
 */
export function reports() {
  const events: InterlockEvent[] = [];
  const refusals: Array<[number, string]> = [];
  return {
    events,
    refusals,
    onEvent: (event: InterlockEvent) => void events.push(event),
    onError: (decision: { error: { status: number; code: string } }) =>
      void refusals.push([decision.error.status, decision.error.code]),
  };
}
