/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date in any of the three forms
 * a recipient must accept (§5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms.
 */

/**
 * The wait a `Retry-After` value asks for, in milliseconds from `now` (at most
 * `Number.MAX_SAFE_INTEGER`); a date in the past asks for 0. Undefined when the header is absent or malformed (then it is ignored, as if not sent).
 * A field sent more than once reaches the client as one value, its copies joined by ", ": read
 * as its longest delay-seconds, or as the one value its identical copies repeat.
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const seconds = longestDelayMs(value);
  if (seconds !== undefined) return seconds;
  const text = withoutOws(value);
  const date = parseHttpDate(repeatedMember(text) ?? text, now);
  return date === undefined ? undefined : Math.max(0, date - now);
}

/**
 * The wait, in milliseconds, when every comma-separated member of `value` is delay-seconds: the
 * longest, as a server that asked for it may refuse an earlier retry. Undefined otherwise.
 */
function longestDelayMs(value: string): number | undefined {
  let longest = 0;
  for (const member of value.split(",")) {
    const digits = withoutOws(member);
    if (!/^\d+$/.test(digits)) return undefined;
    // Capped so a server's 400-digit value is still a number (Infinity prints and serialises badly).
    longest = Math.max(longest, Math.min(Number(digits) * 1000, Number.MAX_SAFE_INTEGER));
  }
  return longest;
}

/**
 * The member `text` repeats, when it is two or more identical copies joined by ", "; else
 * undefined. Found by whole copies, not split at each comma: an HTTP-date has one of its own
 * (`Sun, 06 Nov 1994 08:49:37 GMT`).
 */
function repeatedMember(text: string): string | undefined {
  for (let end = text.indexOf(", "); end !== -1; end = text.indexOf(", ", end + 1)) {
    const copy = `${text.slice(0, end)}, `;
    const copies = (text.length + 2) / copy.length;
    if (Number.isInteger(copies) && copy.repeat(copies) === `${text}, `) return text.slice(0, end);
  }
  return undefined;
}

/**
 * `text` without the spaces and tabs around it (RFC 9110's OWS). Not `trim()`: a no-break space
 * or any other whitespace is part of the value (a no-break space is obs-text), which is malformed.
 */
function withoutOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isOws(text.charCodeAt(start))) start++;
  while (end > start && isOws(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/**
 * The wait a response's `Retry-After` asks for, in milliseconds. An HTTP-date is on the server's
 * clock, so it is read against the response's own `Date` when that is a valid HTTP-date (as
 * HTTP caches compute ages from it): a client whose clock is minutes off still waits what the
 * server asked, rather than retrying at once or giving up. Without one, against `now`.
 */
export function retryAfterOf(headers: Headers, now: number): number | undefined {
  const date = headers.get("date");
  const serverNow = date === null ? undefined : parseHttpDate(withoutOws(date), now);
  return parseRetryAfter(headers.get("retry-after"), serverNow ?? now);
}

const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTH = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";

/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC_850 = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` */
const ASCTIME = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Milliseconds since the epoch for an HTTP-date, or undefined. */
export function parseHttpDate(text: string, now: number): number | undefined {
  let match = IMF_FIXDATE.exec(text);
  if (match) return utc(Number(match[3]), match[2], match[1], match.slice(4, 7));
  match = RFC_850.exec(text);
  if (match) return rfc850(Number(match[3]), match[2], match[1], match.slice(4, 7), now);
  match = ASCTIME.exec(text);
  if (match) return utc(Number(match[6]), match[1], match[2], match.slice(3, 6));
  return undefined;
}

/**
 * RFC 9110 §5.6.7: a two-digit year is this century's, unless that puts the timestamp more than
 * 50 years in the future: then it is the most recent past year with those last two digits.
 * Judged by the whole timestamp, not the year alone: on 1 January 2030, 31-Dec-80 is 1980
 * (2080-12-31 is more than 50 years ahead) while 01-Jan-80 is 2080.
 */
function rfc850(
  twoDigits: number,
  month: string | undefined,
  day: string | undefined,
  time: string[],
  now: number,
): number | undefined {
  const current = new Date(now).getUTCFullYear();
  const thisCentury = current - (current % 100) + twoDigits;
  const limit = new Date(now);
  limit.setUTCFullYear(current + 50);
  // Rolled over (31 Feb is 3 March) only to place it: `utc` refuses a date that does not exist.
  const placed = rolledUtc(thisCentury, month, day, time);
  const year = placed !== undefined && placed > limit.getTime() ? thisCentury - 100 : thisCentury;
  return utc(year, month, day, time);
}

function utc(year: number, month: string | undefined, day: string | undefined, time: string[]): number | undefined {
  const date = rolledUtc(year, month, day, time);
  // 31 Feb rolls over into March: a date that does not exist is malformed.
  return date !== undefined && new Date(date).getUTCDate() === Number(day) ? date : undefined;
}

/** The timestamp, a day past its month's end rolled over into the next; undefined for a time out of range. */
function rolledUtc(
  year: number,
  month: string | undefined,
  day: string | undefined,
  time: string[],
): number | undefined {
  const [hours, minutes, seconds] = time.map(Number) as [number, number, number];
  if (hours > 23 || minutes > 59 || seconds > 60) return undefined; // 60: a leap second
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  date.setUTCFullYear(year, MONTHS.indexOf(month ?? ""), Number(day));
  date.setUTCHours(hours, minutes, Math.min(seconds, 59));
  return date.getTime();
}
