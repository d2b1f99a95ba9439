//! CSV exactly as `psql --csv` prints it.

use super::cell::{hex_keep, hex_len, write_hex_part, write_part, Cursor, Escape};
use super::{cut_point, truncation_marker, ExportOptions, Exporter, OUT_CHUNK};
use crate::decode;
use crate::types::{write_scalar, write_text, Codec, Scalar};
use crate::{Batch, Column, QueryError};

/// RFC 4180, comma-separated, `\n` line ends, a header line. A field is quoted (with `"`
/// doubled) when it holds a comma, a quote, CR or LF, or is exactly `\.` — psql's rule. NULL is
/// an empty field, as in psql (which does not tell it from an empty string). A value cut by
/// [`ExportOptions::max_cell_bytes`] ends with its [`truncation_marker`](super::truncation_marker)
/// inside the field; CSV has no other place to flag it. Text from a `SQL_ASCII` database
/// ([`Codec::RawText`], and a name's [`Column::name_bytes`]) is written as the bytes it is, as
/// `psql --csv` prints it with `client_encoding=SQL_ASCII`.
#[derive(Debug, Default)]
pub struct Csv {
    scratch: Vec<u8>,
    at: Cursor,
    options: ExportOptions,
    cut: Vec<bool>,
}

impl Csv {
    pub fn with_options(options: ExportOptions) -> Csv {
        Csv { options, ..Csv::default() }
    }
}

fn needs_quotes(text: &[u8]) -> bool {
    text.iter().any(|c| matches!(c, b',' | b'"' | b'\r' | b'\n')) || text == b"\\."
}

pub(crate) fn field(out: &mut Vec<u8>, text: &[u8]) {
    if !needs_quotes(text) {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for &c in text {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

impl Exporter for Csv {
    fn begin(&mut self, columns: &[Column], out: &mut Vec<u8>) -> Result<(), QueryError> {
        self.cut = vec![false; columns.len()];
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            field(out, c.name_bytes.as_deref().unwrap_or(c.name.as_bytes()));
        }
        out.push(b'\n');
        Ok(())
    }

    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        // Without columns psql prints the (empty) header line alone, however many rows there are.
        if columns.is_empty() {
            return Ok(false);
        }
        let Csv { scratch, at: cursor, options, cut } = self;
        let mut at = std::mem::take(cursor);
        while at.row < batch.len() {
            while let Some(c) = columns.get(at.col) {
                let fresh = at.offset.is_none();
                if fresh && at.col > 0 {
                    out.push(b',');
                }
                let Some(raw) = batch.value(at.row, at.col) else {
                    at.col += 1;
                    continue;
                };
                let malformed = |m: crate::decode::Malformed| {
                    QueryError::Internal(format!("column {} held a malformed {} value", c.name, m.0))
                };
                if c.codec == Codec::Scalar(Scalar::Bytea) {
                    // Hex digits and `\x` never need quoting; the text is written in pieces
                    // straight from the wire bytes, so a huge value is never rendered whole.
                    let len = hex_len(raw);
                    let keep = hex_keep(len, options.max_cell_bytes);
                    if let Some(next) = write_hex_part(out, raw, at.offset.unwrap_or(0), keep) {
                        at.offset = Some(next);
                        *cursor = at;
                        return Ok(true);
                    }
                    if keep < len {
                        out.extend_from_slice(truncation_marker(len - keep).as_bytes());
                        if let Some(flag) = cut.get_mut(at.col) {
                            *flag = true;
                        }
                    }
                    at.offset = None;
                    at.col += 1;
                    continue;
                }
                let text: &[u8] = match c.codec {
                    Codec::Scalar(s) if s.is_plain() && options.max_cell_bytes.is_none() => {
                        write_scalar(s, raw, out).map_err(malformed)?;
                        at.col += 1;
                        continue;
                    }
                    Codec::ServerText | Codec::RawText { .. } | Codec::Scalar(Scalar::Text | Scalar::Json) => raw,
                    Codec::Scalar(Scalar::Jsonb) => decode::jsonb_text(raw).map_err(malformed)?,
                    codec => {
                        if fresh {
                            scratch.clear();
                            write_text(codec, raw, scratch).map_err(malformed)?;
                        }
                        scratch
                    }
                };
                let keep = options.max_cell_bytes.map_or(text.len(), |cap| cut_point(text, cap));
                let kept = &text[..keep];
                if fresh {
                    at.quoted = needs_quotes(kept);
                    if at.quoted {
                        out.push(b'"');
                    }
                }
                let escape = if at.quoted { Escape::CsvQuoted } else { Escape::Verbatim };
                if let Some(next) = write_part(out, kept, at.offset.unwrap_or(0), escape) {
                    at.offset = Some(next);
                    *cursor = at;
                    return Ok(true);
                }
                if keep < text.len() {
                    out.extend_from_slice(truncation_marker(text.len() - keep).as_bytes());
                    if let Some(flag) = cut.get_mut(at.col) {
                        *flag = true;
                    }
                }
                if at.quoted {
                    out.push(b'"');
                }
                at.offset = None;
                at.col += 1;
            }
            out.push(b'\n');
            at.row += 1;
            at.col = 0;
            if out.len() >= OUT_CHUNK && at.row < batch.len() {
                *cursor = at;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn finish(&mut self, _: &[Column], _: bool, _: &mut Vec<u8>) -> Result<(), QueryError> {
        Ok(())
    }

    fn cut_columns(&self) -> Vec<usize> {
        self.cut.iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quoting_follows_psql() {
        let q = |s: &str| {
            let mut o = Vec::new();
            field(&mut o, s.as_bytes());
            String::from_utf8(o).expect("utf8")
        };
        assert_eq!(q("plain text"), "plain text");
        assert_eq!(q(""), "");
        assert_eq!(q("a,b"), "\"a,b\"");
        assert_eq!(q("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(q("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(q("cr\r"), "\"cr\r\"");
        assert_eq!(q("\\."), "\"\\.\"");
        assert_eq!(q("tab\there \\ back"), "tab\there \\ back");
    }
}
