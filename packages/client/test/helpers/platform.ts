/**
 * What the Node running the tests does with an `AttemptSignal`: Node 20 and 22's fetch (undici
 * 6) takes any object shaped like an AbortSignal; Node 24's (undici 7) takes only a real one
 * and refuses the rest with a TypeError, so the client gives its attempts an AbortController
 * there.
 */
export const REQUEST_TAKES_LIGHT_SIGNAL = Number(process.versions.node.split(".")[0]) < 24;
