// PostgreSQL reports an error's position as a 1-based count of characters (code points);
// JavaScript strings index UTF-16 code units. This maps one onto the other.

/** The UTF-16 offset of the character at 1-based code-point `position` in `text` (clamped to its end). */
export function offsetOfPosition(text: string, position: number): number {
  if (!Number.isFinite(position) || position <= 1) return 0;
  let chars = 0;
  let offset = 0;
  while (offset < text.length && chars < position - 1) {
    const code = text.charCodeAt(offset);
    offset += code >= 0xd800 && code <= 0xdbff && offset + 1 < text.length ? 2 : 1;
    chars += 1;
  }
  return offset;
}
