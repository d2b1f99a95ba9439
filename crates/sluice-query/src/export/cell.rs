//! Writing one value's text piece by piece, so a huge value goes to the sink in
//! [`OUT_CHUNK`](super::OUT_CHUNK)-sized pieces instead of being copied whole into the output.

use super::OUT_CHUNK;

/// Where a batch's output stopped when the output buffer filled up.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cursor {
    pub row: usize,
    pub col: usize,
    /// In the middle of a value: how many bytes of its text were written already.
    pub offset: Option<usize>,
    /// CSV: whether the value being written is quoted.
    pub quoted: bool,
    /// JSON: the value being written is not UTF-8 and was decoded (with U+FFFD) into scratch.
    pub decoded: bool,
}

/// How a value's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// As they are.
    Verbatim,
    /// Inside a quoted CSV field: `"` doubled.
    CsvQuoted,
    /// Inside a JSON string literal.
    Json,
}

/// How much of a value is escaped in one go.
const PIECE: usize = 64 << 10;

/// Writes `text[from..]` escaped into `out`, stopping once `out` holds [`OUT_CHUNK`] bytes.
/// Returns where it stopped, or `None` when all of `text` was written.
pub(crate) fn write_part(out: &mut Vec<u8>, text: &[u8], from: usize, escape: Escape) -> Option<usize> {
    let mut at = from.min(text.len());
    while at < text.len() {
        let end = (at + PIECE).min(text.len());
        let piece = &text[at..end];
        match escape {
            Escape::Verbatim => out.extend_from_slice(piece),
            Escape::CsvQuoted => csv_quoted(out, piece),
            Escape::Json => json_escaped(out, piece),
        }
        at = end;
        if out.len() >= OUT_CHUNK && at < text.len() {
            return Some(at);
        }
    }
    None
}

/// Writes bytea's hex text (`\x`, then two lowercase digits a byte, as `bytea_output = hex`
/// prints it) from text offset `from` up to text offset `end`, stopping once `out` holds
/// [`OUT_CHUNK`] bytes, so a huge value is never rendered whole. Returns where it stopped, or
/// `None` when all of it up to `end` was written.
pub(crate) fn write_hex_part(out: &mut Vec<u8>, raw: &[u8], from: usize, end: usize) -> Option<usize> {
    let end = end.min(hex_len(raw));
    let mut at = from;
    while at < end {
        let stop = (at + PIECE).min(end);
        for p in at..stop {
            let digit = match p {
                0 => b'\\',
                1 => b'x',
                p => {
                    let byte = raw.get((p - 2) / 2).copied().unwrap_or(0);
                    let nibble = if p % 2 == 0 { byte >> 4 } else { byte & 15 };
                    crate::decode::HEX[nibble as usize]
                }
            };
            out.push(digit);
        }
        at = stop;
        if out.len() >= OUT_CHUNK && at < end {
            return Some(at);
        }
    }
    None
}

/// The length of bytea's hex text.
pub(crate) fn hex_len(raw: &[u8]) -> usize {
    2 + 2 * raw.len()
}

/// How much of bytea's hex text (`len` bytes long) a cell cap keeps: whole bytes only, that is
/// `\x` and whole pairs of hex digits (an even length), or nothing under a cap of 2.
pub(crate) fn hex_keep(len: usize, cap: Option<usize>) -> usize {
    cap.map_or(len, |cap| cap.min(len) & !1)
}

fn csv_quoted(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &c) in text.iter().enumerate() {
        if c == b'"' {
            out.extend_from_slice(&text[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
    }
    out.extend_from_slice(&text[start..]);
}

/// The inside of a JSON string literal for UTF-8 text (byte-wise, so any split point is fine).
pub(crate) fn json_escaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, &c) in text.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_hex_text_keeps_whole_bytes() {
        let len = hex_len(&[0xab, 0xcd, 0xef]); // `\xabcdef`
        assert_eq!(len, 8);
        assert_eq!(hex_keep(len, None), 8);
        assert_eq!(hex_keep(len, Some(100)), 8);
        assert_eq!(hex_keep(len, Some(8)), 8);
        assert_eq!(hex_keep(len, Some(7)), 6, "`\\xabcd`, not half of `ef`");
        assert_eq!(hex_keep(len, Some(5)), 4);
        assert_eq!(hex_keep(len, Some(3)), 2, "`\\x` alone");
        assert_eq!(hex_keep(len, Some(1)), 0, "never a lone backslash");
        assert_eq!(hex_keep(len, Some(0)), 0);
    }

    #[test]
    fn pieces_join_to_the_whole() {
        let text: Vec<u8> = (0..3 * OUT_CHUNK).map(|i| if i % 7 == 0 { b'"' } else { b'a' }).collect();
        for escape in [Escape::Verbatim, Escape::CsvQuoted, Escape::Json] {
            let mut whole = Vec::new();
            let mut from = Some(0);
            let mut pieces = 0;
            while let Some(at) = from {
                let mut out = Vec::new();
                from = write_part(&mut out, &text, at, escape);
                assert!(out.len() < OUT_CHUNK + 2 * PIECE, "{escape:?}: a piece of {}", out.len());
                whole.extend_from_slice(&out);
                pieces += 1;
            }
            assert!(pieces >= 3, "{escape:?}");
            let mut once = Vec::new();
            match escape {
                Escape::Verbatim => once.extend_from_slice(&text),
                Escape::CsvQuoted => csv_quoted(&mut once, &text),
                Escape::Json => json_escaped(&mut once, &text),
            }
            assert_eq!(whole, once, "{escape:?}");
        }
    }
}
