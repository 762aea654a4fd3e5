// The ESM half of a project with CommonJS files too (fastify-shared.cts): one program that sees
// both builds' declarations of core and of the adapter. The Zoom guide's route, in each half.
import { answerZoomUrlValidation, memoryStore, zoom } from "@interlock/core";
import { interlock, webhook } from "@interlock/fastify";
import Fastify from "fastify";

export const app = Fastify();
void app.register(interlock);
const hooks = webhook({ scheme: zoom, secret: "zoom-secret-token", store: memoryStore() });
app.post("/zoom", { config: { interlock: hooks } }, async (request) => {
  const challenge = await answerZoomUrlValidation(request.webhook!);
  return challenge ?? { event: request.webhook!.payload };
});
