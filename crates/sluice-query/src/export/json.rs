//! JSON document and NDJSON lines (see the module docs of `export` for the value mapping).

use super::Exporter;
use crate::decode::{self, Malformed};
use crate::types::{write_scalar, write_text, Codec, Scalar};
use crate::{unique_names, Batch, Column, QueryError};

#[derive(Debug)]
pub struct Json {
    lines: bool,
    /// NDJSON: each column's key, already escaped, with its colon (`"name":`).
    keys: Vec<Vec<u8>>,
    first_row: bool,
    scratch: Vec<u8>,
}

impl Json {
    /// `{"columns":[…],"rows":[[…],…],"truncated":bool}`.
    pub fn document() -> Json {
        Json { lines: false, keys: Vec::new(), first_row: true, scratch: Vec::new() }
    }

    /// One JSON object per line, keyed by the unique column names.
    pub fn lines() -> Json {
        Json { lines: true, ..Json::document() }
    }
}

/// A JSON string literal for UTF-8 text.
pub(crate) fn string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
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
    out.push(b'"');
}

fn scalar(s: Scalar, raw: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), Malformed> {
    match s {
        Scalar::Bool => out.extend_from_slice(if decode::bool_(raw)? { b"true" } else { b"false" }),
        Scalar::Int2 | Scalar::Int4 | Scalar::Int8 | Scalar::Oid => write_scalar(s, raw, out)?,
        Scalar::Float4 | Scalar::Float8 | Scalar::Numeric => {
            let at = out.len();
            write_scalar(s, raw, out)?;
            // NaN and the infinities are not JSON numbers: quote them.
            if matches!(out.get(at), Some(b'N' | b'I')) || out.get(at..at + 2) == Some(b"-I") {
                out.insert(at, b'"');
                out.push(b'"');
            }
        }
        Scalar::Json => out.extend_from_slice(raw),
        Scalar::Jsonb => out.extend_from_slice(decode::jsonb_text(raw)?),
        Scalar::Text => string(out, raw),
        _ => {
            scratch.clear();
            write_scalar(s, raw, scratch)?;
            string(out, scratch);
        }
    }
    Ok(())
}

fn value(codec: Codec, raw: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), Malformed> {
    match codec {
        Codec::Scalar(s) => scalar(s, raw, out, scratch),
        Codec::ServerText => {
            string(out, raw);
            Ok(())
        }
        Codec::Array(s) => {
            let a = decode::array(raw)?;
            if !a.default_bounds() {
                scratch.clear();
                write_text(codec, raw, scratch)?;
                string(out, scratch);
                return Ok(());
            }
            if a.dims.is_empty() {
                out.extend_from_slice(b"[]");
                return Ok(());
            }
            let mut idx = 0;
            let mut elem_scratch = Vec::new();
            a.nest(0, (b'[', b']'), out, &mut idx, &mut |out, e| match e {
                None => {
                    out.extend_from_slice(b"null");
                    Ok(())
                }
                Some(raw) => scalar(s, raw, out, &mut elem_scratch),
            })
        }
    }
}

impl Exporter for Json {
    fn begin(&mut self, columns: &[Column], out: &mut Vec<u8>) -> Result<(), QueryError> {
        if self.lines {
            self.keys = unique_names(columns)
                .iter()
                .map(|n| {
                    let mut k = Vec::new();
                    string(&mut k, n.as_bytes());
                    k.push(b':');
                    k
                })
                .collect();
            return Ok(());
        }
        out.extend_from_slice(b"{\"columns\":[");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            string(out, c.name.as_bytes());
            out.extend_from_slice(b",\"type\":");
            string(out, c.type_name.as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"rows\":[");
        Ok(())
    }

    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<(), QueryError> {
        for r in 0..batch.len() {
            if self.lines {
                out.push(b'{');
            } else {
                if !self.first_row {
                    out.push(b',');
                }
                out.extend_from_slice(b"\n[");
            }
            self.first_row = false;
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(k) = self.keys.get(i) {
                    out.extend_from_slice(k);
                }
                match batch.value(r, i) {
                    None => out.extend_from_slice(b"null"),
                    Some(raw) => value(c.codec, raw, out, &mut self.scratch).map_err(|m| {
                        QueryError::Internal(format!("column {} held a malformed {} value", c.name, m.0))
                    })?,
                }
            }
            out.extend_from_slice(if self.lines { b"}\n" } else { b"]" });
        }
        Ok(())
    }

    fn finish(&mut self, _: &[Column], truncated: bool, out: &mut Vec<u8>) -> Result<(), QueryError> {
        if !self.lines {
            out.extend_from_slice(if self.first_row { b"]" } else { b"\n]" });
            out.extend_from_slice(if truncated { b",\"truncated\":true}\n" } else { b",\"truncated\":false}\n" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_controls() {
        let mut o = Vec::new();
        string(&mut o, "a\"b\\c\nd\te\u{1}f é".as_bytes());
        assert_eq!(String::from_utf8(o).expect("utf8"), r#""a\"b\\c\nd\te\u0001f é""#);
    }

    #[test]
    fn special_floats_are_strings() {
        let mut o = Vec::new();
        let mut s = Vec::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.5] {
            scalar(Scalar::Float8, &v.to_be_bytes(), &mut o, &mut s).expect("float");
            o.push(b' ');
        }
        assert_eq!(String::from_utf8(o).expect("utf8"), r#""NaN" "Infinity" "-Infinity" -1.5 "#);
    }
}
