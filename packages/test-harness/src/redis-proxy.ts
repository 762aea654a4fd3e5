/**
 * A TCP proxy in front of a Redis server, for the failure nothing else produces on demand: a
 * connection lost after the server ran a command but before its reply reached the client. The
 * client (ioredis) then sends the command again on its next connection
 * (`autoResendUnfulfilledCommands`), and what that copy answers is what the caller sees.
 */

import { connect, createServer, type Socket } from "node:net";

const HOST = "127.0.0.1";

export interface RedisProxy {
  /** The port to point a client at (on 127.0.0.1). */
  readonly port: number;
  /**
   * Arms the proxy, once: the next command whose bytes contain `marker` still reaches the
   * server, but instead of passing its reply on, the proxy drops that client's connection.
   * `beforeResend` then runs before anything a client sends afterwards reaches the server (the
   * copy the client resends, first of all): another writer's command in between, at will.
   */
  dropReplyTo(marker: string, beforeResend?: () => Promise<unknown>): void;
  /** How many replies were dropped so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

/** Starts a proxy to the Redis server at `port` (on 127.0.0.1). */
export async function startRedisProxy(port: number, host = HOST): Promise<RedisProxy> {
  const sockets = new Set<Socket>();
  let marker: string | undefined;
  let beforeResend: (() => Promise<unknown>) | undefined;
  let dropped = 0;
  /** What every command sent from now on waits for: `beforeResend`, once a reply was dropped. */
  let gate: Promise<unknown> = Promise.resolve();
  const proxy = createServer((client) => {
    const server = connect(port, host);
    for (const socket of [client, server]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        (socket === client ? server : client).destroy();
      });
    }
    let dropReply = false;
    let sent: Promise<unknown> = Promise.resolve(); // keeps this connection's chunks in order
    client.on("data", (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined;
        dropReply = true;
      }
      const open = gate;
      sent = sent.then(() => open).then(() => server.write(chunk));
    });
    server.on("data", (chunk: Buffer) => {
      if (!dropReply) return void client.write(chunk);
      dropped++;
      const hook = beforeResend;
      beforeResend = undefined;
      // A failed hook still opens the gate: the test sees its error where it awaits the hook's work.
      if (hook !== undefined) gate = hook().catch(() => {});
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, HOST, resolve));
  return {
    port: (proxy.address() as { port: number }).port,
    dropReplyTo(text, hook) {
      marker = text;
      beforeResend = hook;
    },
    get dropped() {
      return dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}
