// The Express reference app (examples/express) on Redis: the app itself does not change, only
// the store it is given does, which is the point. server.mjs makes one Redis store that every
// instance shares, so a redelivery or a payment retry is recognised whichever instance it hits.
export { createApp, memoryDb } from "@interlock/example-express/app.mjs";
