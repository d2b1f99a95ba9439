//! Which result columns Sluice decodes from PostgreSQL's binary format, and which it has the
//! server render as text.
//!
//! A column is decoded on the client ([`Codec::Scalar`], [`Codec::Array`]) only when Sluice can
//! reproduce the server's text output exactly under the session's settings (or, for typed
//! outputs such as Arrow, when the binary value is the truth whatever the settings). Everything
//! else — enums, domains, composites, ranges, intervals, network types, money, bit strings,
//! tsvector, xml, extension types, unknown OIDs — is rendered by the server with the type's own
//! output function and travels as text ([`Codec::ServerText`]).

use crate::decode::{self, Malformed};

/// What the output needs from a column: exact text (CSV, JSON) or typed values (Arrow, Parquet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    #[default]
    Text,
    Typed,
}

/// Session settings that decide whether client-side rendering equals the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFormat {
    pub timezone: String,
    pub datestyle: String,
    pub extra_float_digits: i32,
    pub bytea_output: String,
    /// The database's `server_encoding` is `SQL_ASCII`: its text is whatever bytes were stored,
    /// which the server refuses to send a UTF8 client unless they are UTF-8, so text-carrying
    /// columns travel as the bytes themselves ([`Codec::RawText`]).
    pub raw_text: bool,
}

impl SessionFormat {
    fn iso(&self) -> bool {
        self.datestyle.trim_start().to_ascii_uppercase().starts_with("ISO")
    }

    /// Whether the session's TimeZone is UTC by another name (offset zero, no DST).
    fn utc(&self) -> bool {
        let tz = self.timezone.to_ascii_lowercase();
        let tz = tz.strip_prefix("etc/").unwrap_or(&tz);
        matches!(tz, "utc" | "uct" | "gmt" | "gmt0" | "gmt+0" | "gmt-0" | "greenwich" | "universal" | "zulu")
    }
}

/// A scalar type Sluice decodes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name: the bytes are the text.
    Text,
    Json,
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Scalar(Scalar),
    /// An array whose elements are this scalar (any number of dimensions, any bounds).
    Array(Scalar),
    /// The server's own text output for the type.
    ServerText,
    /// The server's own text output as the bytes a `SQL_ASCII` database stores (sent as bytea,
    /// so never checked against the client encoding): maybe not UTF-8. `json` when the column is
    /// json or jsonb (whose syntax is ASCII, so the text stays JSON once decoded).
    RawText {
        json: bool,
    },
}

impl Scalar {
    /// The scalar for a built-in OID, when its rendering can be exact in this session.
    pub fn for_oid(oid: u32, fmt: &SessionFormat, flavor: Flavor) -> Option<Scalar> {
        let typed = flavor == Flavor::Typed;
        let s = match oid {
            16 => Scalar::Bool,
            21 => Scalar::Int2,
            23 => Scalar::Int4,
            20 => Scalar::Int8,
            26 => Scalar::Oid,
            700 | 701 if !typed && fmt.extra_float_digits < 1 => return None,
            700 => Scalar::Float4,
            701 => Scalar::Float8,
            1700 => Scalar::Numeric,
            25 | 1043 | 1042 | 19 => Scalar::Text,
            114 => Scalar::Json,
            3802 => Scalar::Jsonb,
            17 if !typed && fmt.bytea_output != "hex" => return None,
            17 => Scalar::Bytea,
            1082 | 1083 | 1114 if !typed && !fmt.iso() => return None,
            1082 => Scalar::Date,
            1083 => Scalar::Time,
            1114 => Scalar::Timestamp,
            1184 if !(typed || fmt.iso() && fmt.utc()) => return None,
            1184 => Scalar::TimestampTz,
            2950 => Scalar::Uuid,
            _ => return None,
        };
        Some(s)
    }

    /// The element scalar of a built-in array type.
    pub fn element_of(array_oid: u32) -> Option<u32> {
        Some(match array_oid {
            1000 => 16,
            1005 => 21,
            1007 => 23,
            1016 => 20,
            1028 => 26,
            1021 => 700,
            1022 => 701,
            1231 => 1700,
            1009 => 25,
            1015 => 1043,
            1014 => 1042,
            1003 => 19,
            199 => 114,
            3807 => 3802,
            1001 => 17,
            1182 => 1082,
            1183 => 1083,
            1115 => 1114,
            1185 => 1184,
            2951 => 2950,
            _ => return None,
        })
    }

    /// Whether this scalar's text can ever need CSV quoting or JSON string escaping.
    pub fn is_plain(self) -> bool {
        !matches!(self, Scalar::Text | Scalar::Json | Scalar::Jsonb)
    }
}

impl Codec {
    pub fn for_oid(oid: u32, fmt: &SessionFormat, flavor: Flavor) -> Codec {
        let codec = Codec::exact(oid, fmt, flavor);
        match codec {
            // Text, json, jsonb and every server-rendered value carry text, which the server
            // checks against the client encoding even in binary; numbers, dates, bytea and the
            // like do not, and keep their binary decoding.
            Codec::Scalar(s) | Codec::Array(s) if s.is_plain() => codec,
            _ if fmt.raw_text => Codec::RawText { json: matches!(codec, Codec::Scalar(Scalar::Json | Scalar::Jsonb)) },
            _ => codec,
        }
    }

    fn exact(oid: u32, fmt: &SessionFormat, flavor: Flavor) -> Codec {
        if let Some(s) = Scalar::for_oid(oid, fmt, flavor) {
            return Codec::Scalar(s);
        }
        if let Some(s) = Scalar::element_of(oid).and_then(|e| Scalar::for_oid(e, fmt, flavor)) {
            return Codec::Array(s);
        }
        Codec::ServerText
    }

    /// Whether the server renders this column's text in the outer SELECT that reaches the
    /// statement's columns by position.
    pub fn server_rendered(self) -> bool {
        matches!(self, Codec::ServerText | Codec::RawText { .. })
    }
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// As PostgreSQL named it; may repeat (see [`unique_names`]). In a `SQL_ASCII` database, a
    /// name that is not UTF-8 is decoded with U+FFFD for each invalid sequence (see
    /// [`Column::name_bytes`]).
    pub name: String,
    /// The name's bytes as stored, when they are not UTF-8 (a `SQL_ASCII` database): what CSV's
    /// header writes, as psql does.
    pub name_bytes: Option<Vec<u8>>,
    /// `format_type` of the column's type, without modifiers: `integer`, `numeric`, `mood`,
    /// `text[]`, `public.citext`.
    pub type_name: String,
    /// The column's own type (a domain's OID, not its base type's).
    pub type_oid: u32,
    /// The type modifier PostgreSQL reported (-1 when none or when the server rendered text).
    pub typmod: i32,
    pub codec: Codec,
}

/// A column as a response describes it: `{"name", "type", "type_oid", "typmod"}` (the codec is
/// Sluice's own business).
impl serde::Serialize for Column {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Column", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("type", &self.type_name)?;
        st.serialize_field("type_oid", &self.type_oid)?;
        st.serialize_field("typmod", &self.typmod)?;
        st.end()
    }
}

impl Column {
    /// numeric(p, s) as declared (also for numeric(p, s)[]), from the type modifier.
    pub fn numeric_precision_scale(&self) -> Option<(u8, i8)> {
        let numeric = matches!(self.codec, Codec::Scalar(Scalar::Numeric) | Codec::Array(Scalar::Numeric));
        if !numeric || self.typmod < 4 {
            return None;
        }
        let t = self.typmod - 4;
        let precision = (t >> 16) & 0xffff;
        // PostgreSQL 15+ allows a negative scale, stored as 11-bit two's complement.
        let scale = ((t & 0x7ff) ^ 1024) - 1024;
        Some((u8::try_from(precision).ok()?, i8::try_from(scale).ok()?))
    }
}

/// Output names that are unique and non-empty, for formats keyed by name (NDJSON objects, Arrow
/// and Parquet fields): an empty name becomes `column_N` (1-based position); a repeated name gets
/// `_2`, `_3`, … in order of appearance, skipping suffixes that are taken by another column.
pub fn unique_names(columns: &[Column]) -> Vec<String> {
    let mut taken: std::collections::HashSet<String> =
        columns.iter().map(|c| c.name.clone()).filter(|n| !n.is_empty()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let base = if c.name.is_empty() { format!("column_{}", i + 1) } else { c.name.clone() };
        if seen.insert(base.clone()) {
            taken.insert(base.clone());
            out.push(base);
            continue;
        }
        let mut k = 2;
        let name = loop {
            let candidate = format!("{base}_{k}");
            if !taken.contains(&candidate) {
                break candidate;
            }
            k += 1;
        };
        taken.insert(name.clone());
        seen.insert(name.clone());
        out.push(name);
    }
    out
}

/// Appends PostgreSQL's text output for one non-NULL value.
pub fn write_text(codec: Codec, raw: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    match codec {
        Codec::ServerText | Codec::RawText { .. } => {
            out.extend_from_slice(raw);
            Ok(())
        }
        Codec::Scalar(s) => write_scalar(s, raw, out),
        Codec::Array(s) => decode::array(raw)?.write_text(out, |o, e| write_scalar(s, e, o)),
    }
}

pub fn write_scalar(s: Scalar, raw: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    match s {
        Scalar::Bool => out.push(if decode::bool_(raw)? { b't' } else { b'f' }),
        Scalar::Int2 => decode::write_int(out, decode::be_i16(raw)? as i64),
        Scalar::Int4 => decode::write_int(out, decode::be_i32(raw)? as i64),
        Scalar::Int8 => decode::write_int(out, decode::be_i64(raw)?),
        Scalar::Oid => decode::write_int(out, decode::be_u32(raw)? as i64),
        Scalar::Float4 => decode::write_float(out, decode::be_f32(raw)? as f64, true),
        Scalar::Float8 => decode::write_float(out, decode::be_f64(raw)?, false),
        Scalar::Numeric => decode::numeric(raw)?.write_text(out),
        Scalar::Text | Scalar::Json => out.extend_from_slice(raw),
        Scalar::Jsonb => out.extend_from_slice(decode::jsonb_text(raw)?),
        Scalar::Bytea => decode::write_bytea(out, raw),
        Scalar::Date => decode::write_date(out, decode::be_i32(raw)?),
        Scalar::Time => decode::write_time(out, decode::be_i64(raw)?),
        Scalar::Timestamp => decode::write_timestamp(out, decode::be_i64(raw)?, false),
        Scalar::TimestampTz => decode::write_timestamp(out, decode::be_i64(raw)?, true),
        Scalar::Uuid => decode::write_uuid(out, raw)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: "integer".into(),
            type_oid: 23,
            typmod: -1,
            codec: Codec::Scalar(Scalar::Int4),
            name_bytes: None,
        }
    }

    #[test]
    fn unique_names_rules() {
        let cols: Vec<Column> = ["a", "a", "", "a_2", "b", "a"].iter().map(|n| col(n)).collect();
        assert_eq!(unique_names(&cols), vec!["a", "a_3", "column_3", "a_2", "b", "a_4"]);
    }

    #[test]
    fn codec_choice_follows_session_settings() {
        let utc = SessionFormat {
            timezone: "Etc/UTC".into(),
            datestyle: "ISO, MDY".into(),
            extra_float_digits: 1,
            bytea_output: "hex".into(),
            raw_text: false,
        };
        assert_eq!(Codec::for_oid(1184, &utc, Flavor::Text), Codec::Scalar(Scalar::TimestampTz));
        assert_eq!(Codec::for_oid(1185, &utc, Flavor::Text), Codec::Array(Scalar::TimestampTz));
        let paris = SessionFormat { timezone: "Europe/Paris".into(), ..utc.clone() };
        assert_eq!(Codec::for_oid(1184, &paris, Flavor::Text), Codec::ServerText);
        assert_eq!(Codec::for_oid(1185, &paris, Flavor::Text), Codec::ServerText);
        assert_eq!(Codec::for_oid(1184, &paris, Flavor::Typed), Codec::Scalar(Scalar::TimestampTz));
        let german = SessionFormat { datestyle: "German, DMY".into(), ..utc.clone() };
        assert_eq!(Codec::for_oid(1082, &german, Flavor::Text), Codec::ServerText);
        let low = SessionFormat { extra_float_digits: 0, ..utc };
        assert_eq!(Codec::for_oid(701, &low, Flavor::Text), Codec::ServerText);
        assert_eq!(Codec::for_oid(1186, &low, Flavor::Typed), Codec::ServerText);
    }

    #[test]
    fn sql_ascii_sends_every_text_carrying_column_as_bytes() {
        let fmt = SessionFormat {
            timezone: "UTC".into(),
            datestyle: "ISO, MDY".into(),
            extra_float_digits: 1,
            bytea_output: "hex".into(),
            raw_text: true,
        };
        for flavor in [Flavor::Text, Flavor::Typed] {
            // text, varchar, bpchar, name, json, jsonb, text[], jsonb[], interval, an unknown OID.
            for oid in [25, 1043, 1042, 19, 1009, 3807, 1186, 99_999] {
                assert_eq!(Codec::for_oid(oid, &fmt, flavor), Codec::RawText { json: false }, "{oid} {flavor:?}");
            }
            for oid in [114, 3802] {
                assert_eq!(Codec::for_oid(oid, &fmt, flavor), Codec::RawText { json: true }, "{oid} {flavor:?}");
            }
            assert_eq!(Codec::for_oid(23, &fmt, flavor), Codec::Scalar(Scalar::Int4));
            assert_eq!(Codec::for_oid(17, &fmt, flavor), Codec::Scalar(Scalar::Bytea));
            assert_eq!(Codec::for_oid(1007, &fmt, flavor), Codec::Array(Scalar::Int4));
            assert_eq!(Codec::for_oid(2950, &fmt, flavor), Codec::Scalar(Scalar::Uuid));
        }
        assert!(Codec::RawText { json: true }.server_rendered() && Codec::ServerText.server_rendered());
        assert!(!Codec::Scalar(Scalar::Text).server_rendered());
    }

    #[test]
    fn numeric_typmod() {
        let mut c = col("n");
        c.codec = Codec::Scalar(Scalar::Numeric);
        c.typmod = ((12 << 16) | 2) + 4;
        assert_eq!(c.numeric_precision_scale(), Some((12, 2)));
        c.typmod = ((5 << 16) | (0x7ff & -2i32)) + 4;
        assert_eq!(c.numeric_precision_scale(), Some((5, -2)));
        c.typmod = -1;
        assert_eq!(c.numeric_precision_scale(), None);
    }
}
