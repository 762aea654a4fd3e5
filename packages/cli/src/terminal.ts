// C0 controls but tab, DEL and C1 controls: what a terminal acts on instead of showing.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

/**
 * `text` with its control characters written as `\xNN`: text from the other side (a server's
 * answer, a sender's headers, through a tunnel from anyone) is shown, and cannot move the
 * cursor, recolour or retitle the terminal or hide what came before it.
 */
export function visible(text: string): string {
  return text.replace(CONTROL, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
