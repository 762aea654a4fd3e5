/**
 * A TCP proxy in front of a Redis server, for the failure nothing else produces on demand: a
 * connection lost after the server ran a command but before its reply reached the client. The
 * client (ioredis) then sends the command again on its next connection
 * (`autoResendUnfulfilledCommands`), and what that copy answers is what the caller sees. And a
 * command that reaches the server late, after its caller stopped waiting: held back, then
 * delivered at the test's word.
 */

import { connect, createServer, type Socket } from "node:net";

const HOST = "127.0.0.1";

/** A command the proxy holds back (see `RedisProxy.hold`). */
export interface HeldCommand {
  /** Settles once the command reached the proxy and is held. */
  readonly held: Promise<void>;
  /**
   * Passes the command (and whatever its connection sent after it) on to the server; settles
   * when the server's next reply on that connection went back to the client: the command ran.
   */
  deliver(): Promise<void>;
}

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
  /**
   * Arms the proxy, once: the next command whose bytes contain `marker` stays in the proxy, and
   * its connection's later commands behind it, until `deliver()`. Its reply still reaches the
   * client, after the caller's own timeout if the test waits that long.
   */
  hold(marker: string): HeldCommand;
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
  let holding: { marker: string; reached: () => void; until: Promise<void>; replied: () => void } | undefined;
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
    let onReply: (() => void) | undefined;
    let sent: Promise<unknown> = Promise.resolve(); // keeps this connection's chunks in order
    client.on("data", (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined;
        dropReply = true;
      }
      const open = gate;
      if (holding !== undefined && chunk.includes(holding.marker)) {
        const { reached, until, replied } = holding;
        holding = undefined;
        reached();
        sent = sent
          .then(() => until)
          .then(() => {
            onReply = replied;
          });
      }
      sent = sent.then(() => open).then(() => server.write(chunk));
    });
    server.on("data", (chunk: Buffer) => {
      onReply?.();
      onReply = undefined;
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
    hold(text) {
      let reached = () => {};
      let deliver = () => {};
      let replied = () => {};
      const held = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const until = new Promise<void>((resolve) => {
        deliver = resolve;
      });
      const answered = new Promise<void>((resolve) => {
        replied = resolve;
      });
      holding = { marker: text, reached, until, replied };
      return {
        held,
        deliver: () => {
          deliver();
          return answered;
        },
      };
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
