/**
 * Cancelling a statement at the server: the protocol's CancelRequest, sent on a connection of
 * its own to where the statement's connection went. `pg` keeps the backend's key
 * (`processID`, `secretKey`) on its `Client` but has no public way to send one.
 */

import { connect, type Socket } from "node:net";
import { type PostgresDeadline, timerDelay } from "@interlock/core";

/** What a `pg` `Client` knows of its connection, as far as a cancel needs it. */
interface BackendKey {
  processID?: unknown;
  secretKey?: unknown;
  host?: unknown;
  port?: unknown;
}

/** CancelRequest's code (1234 << 16 | 5678), in place of a protocol version. */
const CANCEL_REQUEST_CODE = 80_877_102;

function cancelRequest(processID: number, secretKey: number): Buffer {
  const message = Buffer.alloc(16);
  message.writeInt32BE(16, 0);
  message.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  message.writeInt32BE(processID, 8);
  message.writeInt32BE(secretKey, 12);
  return message;
}

/** Where `pg` connected: a directory host is a Unix socket's, named by the port as libpq does. */
function serverSocket(host: string, port: number): Socket {
  return host.startsWith("/") ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host);
}

/**
 * Asks the server to cancel what `connection`'s backend runs; the server closes the request's
 * connection once it has signalled the backend. In plain text, as PostgreSQL and PgBouncer take
 * it before any TLS or authentication. A driver that keeps no backend key is left as it is (its
 * statement is bounded as before: the connection is thrown away). Never rejects.
 */
export function cancelStatement(connection: unknown, deadline: PostgresDeadline): Promise<void> {
  const { processID, secretKey, host, port } = (connection ?? {}) as BackendKey;
  if (typeof processID !== "number" || typeof secretKey !== "number") return Promise.resolve();
  if (typeof host !== "string" || typeof port !== "number") return Promise.resolve();
  return new Promise((resolve) => {
    const socket = serverSocket(host, port);
    const timer = setTimeout(() => socket.destroy(), timerDelay(deadline.remaining));
    socket.on("connect", () => socket.end(cancelRequest(processID, secretKey)));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
