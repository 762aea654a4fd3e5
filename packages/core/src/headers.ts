/**
 * Request headers as the frameworks hand them over: Node's `IncomingHttpHeaders` (lower-case
 * keys, arrays for repeated headers), a Fetch `Headers`, or any plain object in any casing.
 */
export type HeadersInput =
  | {
      /** A Fetch `Headers`' look-up: the value, or null when absent. */
      get(name: string): string | null;
    }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Reads one header by its lower-case name: `undefined` when absent, the values when repeated. */
export type HeaderReader = (lowerCaseName: string) => string | readonly string[] | undefined;

/**
 * A `HeaderReader` over headers as a framework hands them over, reading them as the verifier
 * and the engine do: a Fetch `Headers` through its `get`; a plain object by the lower-case name,
 * else the first key of that name in another casing; repeated values as their list.
 */
export function headerReader(headers: HeadersInput): HeaderReader {
  if (headers === null || typeof headers !== "object") return () => undefined;
  if (typeof (headers as { get?: unknown }).get === "function") {
    const fetchHeaders = headers as { get(name: string): string | null };
    return (name) => {
      const value = fetchHeaders.get(name);
      return typeof value === "string" ? value : undefined;
    };
  }
  const record = headers as Readonly<Record<string, unknown>>;
  return (name) => {
    // Node lower-cases header names, so the direct look-up is the common case.
    let value = Object.hasOwn(record, name) ? record[name] : undefined;
    if (value === undefined) {
      for (const key of Object.keys(record)) {
        if (key.length === name.length && key.toLowerCase() === name) {
          value = record[key];
          break;
        }
      }
    }
    if (typeof value === "string") return value;
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      return value.length === 1 ? (value[0] as string) : (value as string[]);
    }
    return undefined;
  };
}

/**
 * `value` without the spaces and tabs at its ends (HTTP's OWS, RFC 9110 §5.6.3). Not
 * `String.trim`, which also strips a no-break space (0xA0, a byte a header may carry) and
 * other Unicode spaces: `k` followed by one would be taken for the key `k`. A loop, not a
 * regular expression: `/[ \t]+$/` backtracks over every run of spaces inside the value.
 * @internal Shared by Interlock's own packages: not part of the supported API (see the core README's "API stability").
 */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

const isOws = (c: number) => c === 0x20 || c === 0x09;
