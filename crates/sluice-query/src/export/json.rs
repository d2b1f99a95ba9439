//! JSON document and NDJSON lines (see the module docs of `export` for the value mapping).

use super::cell::{hex_keep, hex_len, json_escaped, write_hex_part, write_part, Cursor, Escape};
use super::{cut_point, truncation_marker, ExportOptions, Exporter, OUT_CHUNK};
use crate::decode::{self, Malformed};
use crate::types::{write_scalar, write_text, Codec, Scalar};
use crate::{unique_names, Batch, Column, QueryError};

/// A value cut by [`ExportOptions::max_cell_bytes`] becomes a JSON string: its text's kept part
/// followed by the [`truncation_marker`](super::truncation_marker) (a json/jsonb value too, since
/// the cut one is no longer JSON). The document then ends with
/// `"truncated_columns":["name",…]` (the columns' names as in `columns`) before `"truncated"`;
/// NDJSON has only the in-band marker. Arrays with default bounds are written whole (as nested
/// JSON arrays) and never cut.
///
/// Text from a `SQL_ASCII` database ([`Codec::RawText`]; json and jsonb are still embedded) that
/// is not UTF-8 is written with U+FFFD for each invalid byte sequence; the document then ends with
/// `"lossy_columns":["name",…]` before `"truncated"` (the columns whose values or name lost bytes
/// so), and NDJSON leaves it to the caller ([`Exporter::lossy_columns`]).
#[derive(Debug)]
pub struct Json {
    lines: bool,
    /// NDJSON: each column's key, already escaped, with its colon (`"name":`).
    keys: Vec<Vec<u8>>,
    first_row: bool,
    scratch: Vec<u8>,
    at: Cursor,
    options: ExportOptions,
    cut: Vec<bool>,
    lossy: Vec<bool>,
}

impl Json {
    /// `{"columns":[…],"rows":[[…],…],"truncated":bool}`.
    pub fn document() -> Json {
        Json {
            lines: false,
            keys: Vec::new(),
            first_row: true,
            scratch: Vec::new(),
            at: Cursor::default(),
            options: ExportOptions::default(),
            cut: Vec::new(),
            lossy: Vec::new(),
        }
    }

    pub fn with_options(self, options: ExportOptions) -> Json {
        Json { options, ..self }
    }

    /// One JSON object per line, keyed by the unique column names.
    pub fn lines() -> Json {
        Json { lines: true, ..Json::document() }
    }
}

/// A JSON string literal for UTF-8 text.
pub(crate) fn string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    json_escaped(out, text);
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
        Codec::RawText { json } => {
            scratch.clear();
            decode::push_utf8_lossy(scratch, raw);
            if json {
                out.extend_from_slice(scratch);
            } else {
                string(out, scratch);
            }
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
        self.cut = vec![false; columns.len()];
        self.lossy = columns.iter().map(|c| c.name_bytes.is_some()).collect();
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

    fn batch(&mut self, columns: &[Column], batch: &Batch, out: &mut Vec<u8>) -> Result<bool, QueryError> {
        let Json { lines, keys, first_row, scratch, at: cursor, options, cut, lossy } = self;
        let mut at = std::mem::take(cursor);
        while at.row < batch.len() {
            if at.col == 0 && at.offset.is_none() {
                if *lines {
                    out.push(b'{');
                } else {
                    if !*first_row {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"\n[");
                }
                *first_row = false;
            }
            while let Some(c) = columns.get(at.col) {
                let fresh = at.offset.is_none();
                if fresh {
                    if at.col > 0 {
                        out.push(b',');
                    }
                    if let Some(k) = keys.get(at.col) {
                        out.extend_from_slice(k);
                    }
                }
                let malformed =
                    |m: Malformed| QueryError::Internal(format!("column {} held a malformed {} value", c.name, m.0));
                let Some(raw) = batch.value(at.row, at.col) else {
                    out.extend_from_slice(b"null");
                    at.col += 1;
                    continue;
                };
                if c.codec == Codec::Scalar(Scalar::Bytea) {
                    // The hex text is written in pieces straight from the wire bytes, as in CSV,
                    // so a huge value is never rendered whole. Only its leading `\` needs
                    // escaping inside a JSON string.
                    let len = hex_len(raw);
                    let keep = hex_keep(len, options.max_cell_bytes);
                    let from = match at.offset {
                        Some(from) => from,
                        None => {
                            out.push(b'"');
                            if keep > 0 {
                                out.extend_from_slice(b"\\\\");
                                1
                            } else {
                                0
                            }
                        }
                    };
                    if let Some(next) = write_hex_part(out, raw, from, keep) {
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
                    out.push(b'"');
                    at.offset = None;
                    at.col += 1;
                    continue;
                }
                // The value's text, and whether it is embedded as it is (JSON) or as a string.
                let (text, embedded): (&[u8], bool) = match c.codec {
                    Codec::ServerText | Codec::Scalar(Scalar::Text) => (raw, false),
                    // Checked once per value: a value written in pieces resumes from where its
                    // first piece put it.
                    Codec::RawText { json } if fresh => {
                        at.decoded = std::str::from_utf8(raw).is_err();
                        if at.decoded {
                            scratch.clear();
                            decode::push_utf8_lossy(scratch, raw);
                            if let Some(flag) = lossy.get_mut(at.col) {
                                *flag = true;
                            }
                        }
                        (if at.decoded { &scratch[..] } else { raw }, json)
                    }
                    Codec::RawText { json } => (if at.decoded { &scratch[..] } else { raw }, json),
                    Codec::Scalar(Scalar::Json) => (raw, true),
                    Codec::Scalar(Scalar::Jsonb) => (decode::jsonb_text(raw).map_err(malformed)?, true),
                    Codec::Scalar(
                        s @ (Scalar::Bool
                        | Scalar::Int2
                        | Scalar::Int4
                        | Scalar::Int8
                        | Scalar::Oid
                        | Scalar::Float4
                        | Scalar::Float8
                        | Scalar::Numeric),
                    ) => {
                        scalar(s, raw, out, scratch).map_err(malformed)?;
                        at.col += 1;
                        continue;
                    }
                    Codec::Array(_) if decode::array(raw).map_err(malformed)?.default_bounds() => {
                        value(c.codec, raw, out, scratch).map_err(malformed)?;
                        at.col += 1;
                        continue;
                    }
                    codec => {
                        if fresh {
                            scratch.clear();
                            write_text(codec, raw, scratch).map_err(malformed)?;
                        }
                        (&scratch[..], false)
                    }
                };
                let keep = options.max_cell_bytes.map_or(text.len(), |cap| cut_point(text, cap));
                let as_string = !embedded || keep < text.len();
                if fresh && as_string {
                    out.push(b'"');
                }
                let escape = if as_string { Escape::Json } else { Escape::Verbatim };
                if let Some(next) = write_part(out, &text[..keep], at.offset.unwrap_or(0), escape) {
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
                if as_string {
                    out.push(b'"');
                }
                at.offset = None;
                at.col += 1;
            }
            out.extend_from_slice(if *lines { b"}\n" } else { b"]" });
            at.row += 1;
            at.col = 0;
            if out.len() >= OUT_CHUNK && at.row < batch.len() {
                *cursor = at;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn cut_columns(&self) -> Vec<usize> {
        self.cut.iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect()
    }

    fn lossy_columns(&self) -> Vec<usize> {
        self.lossy.iter().enumerate().filter(|(_, &l)| l).map(|(i, _)| i).collect()
    }

    fn finish(&mut self, columns: &[Column], truncated: bool, out: &mut Vec<u8>) -> Result<(), QueryError> {
        if !self.lines {
            out.extend_from_slice(if self.first_row { b"]" } else { b"\n]" });
            if self.cut.contains(&true) {
                out.extend_from_slice(b",\"truncated_columns\":[");
                for (n, i) in self.cut_columns().into_iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    string(out, columns.get(i).map_or("", |c| c.name.as_str()).as_bytes());
                }
                out.push(b']');
            }
            if self.lossy.contains(&true) {
                out.extend_from_slice(b",\"lossy_columns\":[");
                for (n, i) in self.lossy_columns().into_iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    string(out, columns.get(i).map_or("", |c| c.name.as_str()).as_bytes());
                }
                out.push(b']');
            }
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
