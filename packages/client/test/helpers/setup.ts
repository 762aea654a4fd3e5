/** What the client tests share: a scripted server per test, a client on a virtual clock, its events. */
import { afterEach } from "vitest";
import { type ClientEvent, type ClientOptions, createClient } from "../../src/index.js";
import { TestClock } from "./clock.js";
import { type Script, type ScriptedServer, startScriptedServer } from "./scripted-server.js";

const servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A scripted server, closed after the test. */
export async function serve(script: Script): Promise<ScriptedServer> {
  const server = await startScriptedServer(script);
  servers.push(server);
  return server;
}

/** The random source tests use: always 0.5, so full jitter picks half the ceiling. */
export const half = () => 0.5;

/** A client on a virtual clock (auto-advancing unless `auto: false`), recording its events. */
export function clientOn(options: ClientOptions = {}, clock = new TestClock()) {
  const events: ClientEvent[] = [];
  const client = createClient({
    random: half,
    now: clock.now,
    sleep: clock.sleep,
    fetch: clock.track((input, init) => fetch(input, init)),
    onEvent: (event) => events.push(event),
    ...options,
  });
  const ofType = <T extends ClientEvent["type"]>(type: T) =>
    events.filter((event): event is Extract<ClientEvent, { type: T }> => event.type === type);
  return { client, clock, events, ofType };
}

/** What a promise settles with, for asserting on errors with their fields. */
export async function settled<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}
