/**
 * The Standard Webhooks secret the harness's suites and the apps they drive share. A module of
 * its own, with no imports, so that an app bundled for another runtime (a worker) can take it.
 */
export const SUITE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
