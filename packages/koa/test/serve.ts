/** Starts a Koa app on 127.0.0.1 and a random port, for tests over real HTTP. */
import type { AddressInfo } from "node:net";
import type Koa from "koa";

export interface Served {
  url: string;
  close(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: any Koa app, whatever its state and context types.
export async function serve(app: Koa<any, any>): Promise<Served> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
