// The ESM half of a project with CommonJS files too (express-shared.cts): one program that sees
// both builds' declarations of core and of the adapter. The Zoom guide's route, in each half.
import { answerZoomUrlValidation, memoryStore, zoom } from "@interlock/core";
import { webhook } from "@interlock/express";
import express from "express";

export const app = express();
app.post("/zoom", webhook({ scheme: zoom, secret: "zoom-secret-token", store: memoryStore() }), async (req, res) => {
  const challenge = await answerZoomUrlValidation(req.webhook!);
  res.json(challenge ?? { event: req.webhook!.payload });
});
