//! CSV exactly as `psql --csv` prints it.

use super::Exporter;
use crate::types::{write_scalar, write_text, Codec};
use crate::{Batch, Column, QueryError};

/// RFC 4180, comma-separated, `\n` line ends, a header line. A field is quoted (with `"`
/// doubled) when it holds a comma, a quote, CR or LF, or is exactly `\.` — psql's rule. NULL is
/// an empty field, as in psql (which does not tell it from an empty string).
#[derive(Debug, Default)]
pub struct Csv {
    scratch: Vec<u8>,
}

pub(crate) fn field(out: &mut Vec<u8>, text: &[u8]) {
    let needs = text.iter().any(|c| matches!(c, b',' | b'"' | b'\r' | b'\n')) || text == b"\\.";
    if !needs {
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
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            field(out, c.name.as_bytes());
        }
        out.push(b'\n');
        Ok(())
    }

    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<(), QueryError> {
        for r in 0..batch.len() {
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let Some(raw) = batch.value(r, i) else {
                    continue;
                };
                let malformed = |m: crate::decode::Malformed| {
                    QueryError::Internal(format!("column {} held a malformed {} value", c.name, m.0))
                };
                match c.codec {
                    Codec::Scalar(s) if s.is_plain() => write_scalar(s, raw, out).map_err(malformed)?,
                    codec => {
                        self.scratch.clear();
                        write_text(codec, raw, &mut self.scratch).map_err(malformed)?;
                        field(out, &self.scratch);
                    }
                }
            }
            out.push(b'\n');
        }
        Ok(())
    }

    fn finish(&mut self, _: &[Column], _: bool, _: &mut Vec<u8>) -> Result<(), QueryError> {
        Ok(())
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
