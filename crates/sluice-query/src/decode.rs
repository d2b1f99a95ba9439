//! PostgreSQL binary wire values → PostgreSQL's own text output, byte for byte.
//!
//! Only the types whose text form Sluice can reproduce exactly for the session's settings are
//! decoded here (see [`crate::types`]); every other type is rendered by the server. Every reader
//! is bounds-checked: a malformed value is an error, never a panic.

use std::io::Write as _;

/// A value that did not have the shape its type promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

pub type Result<T> = std::result::Result<T, Malformed>;

/// Writes one array element (`None` = NULL) while an array is walked.
pub type ElementWriter<'a> = dyn FnMut(&mut Vec<u8>, Option<&[u8]>) -> Result<()> + 'a;

pub const PG_EPOCH_JDATE: i64 = 2_451_545;
pub const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days between 1970-01-01 and 2000-01-01.
pub const UNIX_TO_PG_DAYS: i32 = 10_957;
pub const UNIX_TO_PG_USECS: i64 = UNIX_TO_PG_DAYS as i64 * USECS_PER_DAY;

pub fn be_i16(b: &[u8]) -> Result<i16> {
    b.try_into().map(i16::from_be_bytes).map_err(|_| Malformed("int2"))
}

pub fn be_i32(b: &[u8]) -> Result<i32> {
    b.try_into().map(i32::from_be_bytes).map_err(|_| Malformed("int4"))
}

pub fn be_u32(b: &[u8]) -> Result<u32> {
    b.try_into().map(u32::from_be_bytes).map_err(|_| Malformed("oid"))
}

pub fn be_i64(b: &[u8]) -> Result<i64> {
    b.try_into().map(i64::from_be_bytes).map_err(|_| Malformed("int8"))
}

pub fn be_f32(b: &[u8]) -> Result<f32> {
    b.try_into().map(f32::from_be_bytes).map_err(|_| Malformed("float4"))
}

pub fn be_f64(b: &[u8]) -> Result<f64> {
    b.try_into().map(f64::from_be_bytes).map_err(|_| Malformed("float8"))
}

pub fn bool_(b: &[u8]) -> Result<bool> {
    match b {
        [v] => Ok(*v != 0),
        _ => Err(Malformed("bool")),
    }
}

pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut buf = itoa_buf();
    out.extend_from_slice(format_i64(&mut buf, v));
}

fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

/// Formats `v` into the tail of `buf` and returns that slice (no allocation).
fn format_i64(buf: &mut [u8; 20], v: i64) -> &[u8] {
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// A small stack buffer for `fmt` output (float formatting), so the hot path does not allocate.
struct Stack {
    buf: [u8; 48],
    len: usize,
}

impl std::fmt::Write for Stack {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// float8out/float4out with extra_float_digits > 0: the shortest text that reads back exactly,
/// fixed notation for decimal exponents in [-4, threshold), else `d.ddde±XX`.
pub fn write_float(out: &mut Vec<u8>, v: f64, is_f32: bool) {
    use std::fmt::Write as _;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    // Rust's `{:e}` is the shortest round-trip representation, for f32 when formatting an f32.
    let mut sci = Stack { buf: [0; 48], len: 0 };
    let _ = if is_f32 { write!(sci, "{:e}", v as f32) } else { write!(sci, "{v:e}") };
    let sci = &sci.buf[..sci.len];
    let e_at = sci.iter().position(|&c| c == b'e').unwrap_or(sci.len());
    let (mant, exp) = (&sci[..e_at], sci.get(e_at + 1..).unwrap_or(b"0"));
    let exp: i32 = std::str::from_utf8(exp).ok().and_then(|e| e.parse().ok()).unwrap_or(0);
    let (neg, mant) = match mant.split_first() {
        Some((b'-', m)) => (true, m),
        _ => (false, mant),
    };
    let mut digits = [0u8; 24];
    let mut n = 0;
    for &c in mant {
        if c.is_ascii_digit() && n < digits.len() {
            digits[n] = c;
            n += 1;
        }
    }
    let digits = &digits[..n];
    if neg {
        out.push(b'-');
    }
    let threshold = if is_f32 { 6 } else { 15 };
    if (-4..threshold).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        }
    } else {
        if let Some((first, rest)) = digits.split_first() {
            out.push(*first);
            if !rest.is_empty() {
                out.push(b'.');
                out.extend_from_slice(rest);
            }
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        write_int(out, e as i64);
    }
}

/// `v` as exactly `width` digits, zero-padded (`v` < 10^width).
fn push_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut n = v;
    for i in (0..width.min(10)).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width.min(10)]);
}

/// A decoded numeric in PostgreSQL's base-10000 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numeric<'a> {
    NaN,
    PosInf,
    NegInf,
    Finite { neg: bool, weight: i16, dscale: u16, digits: &'a [u8] },
}

pub fn numeric(b: &[u8]) -> Result<Numeric<'_>> {
    if b.len() < 8 {
        return Err(Malformed("numeric"));
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]);
    let weight = i16::from_be_bytes([b[2], b[3]]);
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]);
    let digits = &b[8..];
    if ndigits < 0 || digits.len() != ndigits as usize * 2 {
        return Err(Malformed("numeric"));
    }
    Ok(match sign {
        0xC000 => Numeric::NaN,
        0xD000 => Numeric::PosInf,
        0xF000 => Numeric::NegInf,
        0x0000 | 0x4000 => Numeric::Finite { neg: sign == 0x4000, weight, dscale, digits },
        _ => return Err(Malformed("numeric")),
    })
}

impl Numeric<'_> {
    fn digit(&self, k: i32) -> i32 {
        match self {
            Numeric::Finite { digits, .. } if k >= 0 => {
                let i = k as usize * 2;
                digits.get(i..i + 2).map(|d| i16::from_be_bytes([d[0], d[1]]) as i32).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// numeric_out.
    pub fn write_text(&self, out: &mut Vec<u8>) {
        let (neg, weight, dscale) = match self {
            Numeric::NaN => return out.extend_from_slice(b"NaN"),
            Numeric::PosInf => return out.extend_from_slice(b"Infinity"),
            Numeric::NegInf => return out.extend_from_slice(b"-Infinity"),
            Numeric::Finite { neg, weight, dscale, .. } => (*neg, *weight as i32, *dscale as i32),
        };
        if neg {
            out.push(b'-');
        }
        if weight < 0 {
            out.push(b'0');
        } else {
            for w in (0..=weight).rev() {
                let d = self.digit(weight - w);
                if w == weight {
                    write_int(out, d as i64);
                } else {
                    push_padded(out, d.unsigned_abs(), 4);
                }
            }
        }
        if dscale > 0 {
            out.push(b'.');
            let mut left = dscale;
            let mut w = -1;
            while left > 0 {
                let d = self.digit(weight - w).unsigned_abs();
                let take = left.min(4) as usize;
                let mut group = Vec::with_capacity(0);
                if take == 4 {
                    push_padded(out, d, 4);
                } else {
                    push_padded(&mut group, d, 4);
                    out.extend_from_slice(group.get(..take).unwrap_or(&[]));
                }
                left -= take as i32;
                w -= 1;
            }
        }
    }

    /// Like [`Numeric::unscaled`] in 128 bits (the common, fast case); `None` when it does not fit.
    pub fn unscaled_i128(&self, scale: i32) -> Option<i128> {
        let Numeric::Finite { neg, weight, .. } = self else {
            return None;
        };
        let frac_groups = (scale.max(0) + 3) / 4;
        let mut acc: i128 = 0;
        for w in ((-frac_groups)..=(*weight as i32)).rev() {
            let d = self.digit(*weight as i32 - w) as i128;
            acc = acc.checked_mul(10_000)?.checked_add(d)?;
        }
        let have = frac_groups * 4;
        for _ in scale..have {
            acc /= 10;
        }
        for _ in have..scale {
            acc = acc.checked_mul(10)?;
        }
        Some(if *neg { -acc } else { acc })
    }

    /// The value as an unscaled integer at `scale` decimal places, for Arrow decimals. `None`
    /// for NaN/±Infinity or when it does not fit in 256 bits (never for a declared precision).
    pub fn unscaled(&self, scale: i32) -> Option<arrow_buffer::i256> {
        let Numeric::Finite { neg, weight, .. } = self else {
            return None;
        };
        let mut acc = arrow_buffer::i256::ZERO;
        let ten_k = arrow_buffer::i256::from_i128(10_000);
        // Groups from weight down to the group holding the last needed fractional digit.
        let frac_groups = (scale.max(0) + 3) / 4;
        let lowest = -frac_groups;
        for w in (lowest..=(*weight as i32)).rev() {
            let d = self.digit(*weight as i32 - w);
            acc = acc.checked_mul(ten_k)?.checked_add(arrow_buffer::i256::from_i128(d as i128))?;
        }
        // acc now has frac_groups*4 fractional digits; bring it to `scale`.
        let have = frac_groups * 4;
        let ten = arrow_buffer::i256::from_i128(10);
        for _ in scale..have {
            acc = acc.checked_div(ten)?;
        }
        for _ in have..scale {
            acc = acc.checked_mul(ten)?;
        }
        Some(if *neg { acc.checked_neg()? } else { acc })
    }
}

/// (year, month, day) for a Julian day number (PostgreSQL's j2date).
pub fn j2date(jd: i64) -> (i64, u32, u32) {
    let mut julian = jd + 32044;
    let mut quad = julian.div_euclid(146_097);
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra.div_euclid(146_097);
    quad = julian.div_euclid(1461);
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    let within = if y != 0 { (julian + 305) % 365 } else { (julian + 306) % 366 };
    julian = within + 123;
    y += quad * 4;
    let year = y - 4800;
    let q = julian * 2141 / 65536;
    let day = julian - 7834 * q / 256;
    let month = (q + 10) % 12 + 1;
    (year, month as u32, day as u32)
}

fn write_ymd(out: &mut Vec<u8>, days_since_pg_epoch: i64) -> bool {
    let (y, m, d) = j2date(days_since_pg_epoch + PG_EPOCH_JDATE);
    let bc = y <= 0;
    let shown = if bc { 1 - y } else { y };
    if shown < 10_000 {
        push_padded(out, shown as u32, 4);
    } else {
        write_int(out, shown);
    }
    out.push(b'-');
    push_padded(out, m, 2);
    out.push(b'-');
    push_padded(out, d, 2);
    bc
}

/// date_out, DateStyle ISO.
pub fn write_date(out: &mut Vec<u8>, days: i32) {
    match days {
        i32::MAX => out.extend_from_slice(b"infinity"),
        i32::MIN => out.extend_from_slice(b"-infinity"),
        d => {
            if write_ymd(out, d as i64) {
                out.extend_from_slice(b" BC");
            }
        }
    }
}

fn write_hms(out: &mut Vec<u8>, usecs_of_day: i64) {
    let secs = usecs_of_day / 1_000_000;
    let mut frac = (usecs_of_day % 1_000_000) as u32;
    push_padded(out, (secs / 3600) as u32, 2);
    out.push(b':');
    push_padded(out, ((secs / 60) % 60) as u32, 2);
    out.push(b':');
    push_padded(out, (secs % 60) as u32, 2);
    if frac != 0 {
        let mut width = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        out.push(b'.');
        push_padded(out, frac, width);
    }
}

/// time_out.
pub fn write_time(out: &mut Vec<u8>, usecs: i64) {
    write_hms(out, usecs);
}

/// timestamp_out / timestamptz_out (in a zero-offset TimeZone), DateStyle ISO.
pub fn write_timestamp(out: &mut Vec<u8>, usecs: i64, utc_suffix: bool) {
    match usecs {
        i64::MAX => return out.extend_from_slice(b"infinity"),
        i64::MIN => return out.extend_from_slice(b"-infinity"),
        _ => {}
    }
    let days = usecs.div_euclid(USECS_PER_DAY);
    let tod = usecs.rem_euclid(USECS_PER_DAY);
    let bc = write_ymd(out, days);
    out.push(b' ');
    write_hms(out, tod);
    if utc_suffix {
        out.extend_from_slice(b"+00");
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

pub fn write_uuid(out: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    if b.len() != 16 {
        return Err(Malformed("uuid"));
    }
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        push_hex(out, *byte);
    }
    Ok(())
}

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, byte: u8) {
    out.push(HEX[(byte >> 4) as usize]);
    out.push(HEX[(byte & 15) as usize]);
}

/// byteaout with bytea_output = hex.
pub fn write_bytea(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(2 + b.len() * 2);
    out.extend_from_slice(b"\\x");
    for byte in b {
        push_hex(out, *byte);
    }
}

/// jsonb binary: a version byte (1) and the text.
pub fn jsonb_text(b: &[u8]) -> Result<&[u8]> {
    match b.split_first() {
        Some((1, rest)) => Ok(rest),
        _ => Err(Malformed("jsonb")),
    }
}

/// A binary array value: dimensions, lower bounds and the raw elements (None = NULL).
#[derive(Debug)]
pub struct Array<'a> {
    pub dims: Vec<(i32, i32)>,
    pub elems: Vec<Option<&'a [u8]>>,
}

/// PostgreSQL's MAXDIM: no array value has more dimensions.
const MAX_ARRAY_DIMS: usize = 6;

/// Parses a binary array (array_send) with `postgres_protocol::types::array_from_sql`: the
/// header, each dimension's length and lower bound, then the element slices in row-major order.
/// It refuses a negative dimension count or length, an element count beyond `i32`, a short value
/// and trailing bytes; more than [`MAX_ARRAY_DIMS`] dimensions is refused here.
pub fn array(b: &[u8]) -> Result<Array<'_>> {
    use fallible_iterator::FallibleIterator as _;
    let bad = |_| Malformed("array");
    let a = postgres_protocol::types::array_from_sql(b).map_err(bad)?;
    let mut dims = Vec::new();
    let mut it = a.dimensions();
    while let Some(d) = it.next().map_err(bad)? {
        if dims.len() == MAX_ARRAY_DIMS {
            return Err(Malformed("array"));
        }
        dims.push((d.len, d.lower_bound));
    }
    let mut values = a.values();
    // The element count comes from the header: never reserve more than the value could hold
    // (each element is at least its 4-byte length).
    let mut elems = Vec::with_capacity(values.size_hint().0.min(b.len() / 4));
    while let Some(e) = values.next().map_err(bad)? {
        elems.push(e);
    }
    Ok(Array { dims, elems })
}

impl Array<'_> {
    pub fn default_bounds(&self) -> bool {
        self.dims.iter().all(|(_, lb)| *lb == 1)
    }

    /// array_out: `[lb:ub]=` prefix for non-default bounds, nested braces, quoting per element.
    pub fn write_text(&self, out: &mut Vec<u8>, mut elem: impl FnMut(&mut Vec<u8>, &[u8]) -> Result<()>) -> Result<()> {
        if self.dims.is_empty() {
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        if !self.default_bounds() {
            for (len, lb) in &self.dims {
                let _ = write!(out, "[{}:{}]", lb, *lb as i64 + *len as i64 - 1);
            }
            out.push(b'=');
        }
        let mut scratch = Vec::new();
        let mut idx = 0usize;
        self.nest(0, (b'{', b'}'), out, &mut idx, &mut |out, e| match e {
            None => {
                out.extend_from_slice(b"NULL");
                Ok(())
            }
            Some(raw) => {
                scratch.clear();
                elem(&mut scratch, raw)?;
                write_array_elem(out, &scratch);
                Ok(())
            }
        })
    }

    /// Walks dimension `dim` and below, bracketing each level with `brackets`.
    pub fn nest(
        &self,
        dim: usize,
        brackets: (u8, u8),
        out: &mut Vec<u8>,
        idx: &mut usize,
        f: &mut ElementWriter<'_>,
    ) -> Result<()> {
        let Some((len, _)) = self.dims.get(dim) else {
            return Ok(());
        };
        out.push(brackets.0);
        for i in 0..*len {
            if i > 0 {
                out.push(b',');
            }
            if dim + 1 == self.dims.len() {
                let e = self.elems.get(*idx).ok_or(Malformed("array"))?;
                *idx += 1;
                f(out, *e)?;
            } else {
                self.nest(dim + 1, brackets, out, idx, f)?;
            }
        }
        out.push(brackets.1);
        Ok(())
    }
}

fn write_array_elem(out: &mut Vec<u8>, text: &[u8]) {
    let needs_quote = text.is_empty()
        || text.eq_ignore_ascii_case(b"NULL")
        || text
            .iter()
            .any(|c| matches!(c, b'"' | b'\\' | b'{' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
    if !needs_quote {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for c in text {
        if matches!(c, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(*c);
    }
    out.push(b'"');
}

/// Appends text bytes as UTF-8 for the outputs that must carry UTF-8 (JSON, NDJSON, Arrow,
/// Parquet): as they are when they are UTF-8, else with each invalid sequence replaced by U+FFFD.
/// Only a `SQL_ASCII` database, which stores whatever bytes it was given, sends such text. True
/// when something was replaced: the caller flags the column as lossy.
pub fn push_utf8_lossy(out: &mut Vec<u8>, raw: &[u8]) -> bool {
    if std::str::from_utf8(raw).is_ok() {
        out.extend_from_slice(raw);
        return false;
    }
    for chunk in raw.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(char::REPLACEMENT_CHARACTER.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_not_utf8_is_replaced_and_reported() {
        let lossy = |raw: &[u8]| {
            let mut o = b"<".to_vec();
            let replaced = push_utf8_lossy(&mut o, raw);
            (String::from_utf8(o).expect("always UTF-8"), replaced)
        };
        assert_eq!(lossy(b"plain"), ("<plain".to_string(), false));
        assert_eq!(lossy("café €".as_bytes()), ("<café €".to_string(), false));
        // Latin-1 `café`, as a SQL_ASCII database holds it.
        assert_eq!(lossy(b"caf\xe9"), ("<caf\u{FFFD}".to_string(), true));
        assert_eq!(lossy(b"\xe9\xe8 x \xff"), ("<\u{FFFD}\u{FFFD} x \u{FFFD}".to_string(), true));
        // A truncated UTF-8 sequence is one invalid sequence, as `String::from_utf8_lossy` has it.
        assert_eq!(lossy(b"a\xe2\x82"), ("<a\u{FFFD}".to_string(), true));
        assert_eq!(lossy(b""), ("<".to_string(), false));
    }

    fn f8(v: f64) -> String {
        let mut o = Vec::new();
        write_float(&mut o, v, false);
        String::from_utf8(o).expect("utf8")
    }

    fn f4(v: f32) -> String {
        let mut o = Vec::new();
        write_float(&mut o, v as f64, true);
        String::from_utf8(o).expect("utf8")
    }

    #[test]
    fn floats_match_postgres_shortest_output() {
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345.0, "123456789012345"),
            (1234567890123456.0, "1.234567890123456e+15"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(f8(v), want, "{v:e}");
        }
        assert_eq!(f4(0.1), "0.1");
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(1234567.0), "1.234567e+06");
        assert_eq!(f4(3.4028235e38), "3.4028235e+38");
    }

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> String {
        let mut b = Vec::new();
        b.extend_from_slice(&ndigits.to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        let mut o = Vec::new();
        numeric(&b).expect("numeric").write_text(&mut o);
        String::from_utf8(o).expect("utf8")
    }

    #[test]
    fn numeric_text() {
        assert_eq!(num(0, 0, 0, 0, &[]), "0");
        assert_eq!(num(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(num(2, 0, 0, 2, &[12, 3400]), "12.34");
        assert_eq!(num(2, 1, 0x4000, 0, &[1, 2]), "-10002");
        assert_eq!(num(1, -2, 0, 6, &[1200]), "0.000012");
        assert_eq!(num(1, -2, 0, 8, &[12]), "0.00000012");
        assert_eq!(num(1, 2, 0, 0, &[5]), "500000000");
        assert_eq!(num(0, 0, 0xC000, 0, &[]), "NaN");
        assert_eq!(num(0, 0, 0xD000, 0, &[]), "Infinity");
        assert_eq!(num(0, 0, 0xF000, 0, &[]), "-Infinity");
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn numeric_unscaled_for_decimals() {
        let mut b = Vec::new();
        for v in [2i16, 0, 0x4000, 2, 12, 3400] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let n = numeric(&b).expect("numeric");
        assert_eq!(n.unscaled(2), Some(arrow_buffer::i256::from_i128(-1234)));
        assert_eq!(n.unscaled(4), Some(arrow_buffer::i256::from_i128(-123400)));
        assert_eq!(n.unscaled_i128(2), Some(-1234));
        assert_eq!(n.unscaled_i128(0), Some(-12));
        assert_eq!(n.unscaled(-1), Some(arrow_buffer::i256::from_i128(-1)));
    }

    #[test]
    fn dates_and_timestamps() {
        let d = |days: i32| {
            let mut o = Vec::new();
            write_date(&mut o, days);
            String::from_utf8(o).expect("utf8")
        };
        assert_eq!(d(0), "2000-01-01");
        assert_eq!(d(-1), "1999-12-31");
        assert_eq!(d(i32::MAX), "infinity");
        assert_eq!(d(i32::MIN), "-infinity");
        // 0001-01-01 BC is Julian day 1721060; 4713-11-24 BC is day 0.
        assert_eq!(d((1_721_060 - PG_EPOCH_JDATE) as i32), "0001-01-01 BC");
        assert_eq!(d(-(PG_EPOCH_JDATE as i32)), "4714-11-24 BC");
        let t = |us: i64, tz: bool| {
            let mut o = Vec::new();
            write_timestamp(&mut o, us, tz);
            String::from_utf8(o).expect("utf8")
        };
        assert_eq!(t(0, false), "2000-01-01 00:00:00");
        assert_eq!(t(-1, true), "1999-12-31 23:59:59.999999+00");
        assert_eq!(t(1_500_000, false), "2000-01-01 00:00:01.5");
        assert_eq!(t(i64::MAX, true), "infinity");
        let mut o = Vec::new();
        write_time(&mut o, USECS_PER_DAY);
        assert_eq!(o, b"24:00:00");
    }

    #[test]
    fn arrays() {
        // int4[] {{1,NULL},{3,4}} with lower bounds [0:1][1:2]
        let mut b = Vec::new();
        for v in [2i32, 1, 23, 2, 0, 2, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for e in [Some(1i32), None, Some(3), Some(4)] {
            match e {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let a = array(&b).expect("array");
        let mut o = Vec::new();
        a.write_text(&mut o, |o, e| {
            write_int(o, be_i32(e)? as i64);
            Ok(())
        })
        .expect("text");
        assert_eq!(String::from_utf8(o).expect("utf8"), "[0:1][1:2]={{1,NULL},{3,4}}");
        let mut o = Vec::new();
        write_array_elem(&mut o, b"a \"b\"");
        write_array_elem(&mut o, b"null");
        write_array_elem(&mut o, b"");
        assert_eq!(o, b"\"a \\\"b\\\"\"\"null\"\"\"");
        assert!(array(&[0, 0, 0, 1]).is_err());
        // Short of a declared element, trailing bytes, a negative length, seven dimensions.
        assert!(array(&b[..b.len() - 1]).is_err());
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(array(&trailing).is_err());
        let mut negative = b.clone();
        negative[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(array(&negative).is_err());
        let mut seven = Vec::new();
        for v in [7i32, 0, 23] {
            seven.extend_from_slice(&v.to_be_bytes());
        }
        for _ in 0..7 {
            seven.extend_from_slice(&1i32.to_be_bytes());
            seven.extend_from_slice(&1i32.to_be_bytes());
        }
        seven.extend_from_slice(&4i32.to_be_bytes());
        seven.extend_from_slice(&1i32.to_be_bytes());
        assert!(array(&seven).is_err());
        // A header promising a billion elements in a few bytes fails without reserving them.
        let mut huge = Vec::new();
        for v in [1i32, 0, 23, 1_000_000_000, 1] {
            huge.extend_from_slice(&v.to_be_bytes());
        }
        assert!(array(&huge).is_err());
        // Empty: no dimensions, no elements.
        let mut empty = Vec::new();
        for v in [0i32, 0, 23] {
            empty.extend_from_slice(&v.to_be_bytes());
        }
        let e = array(&empty).expect("empty array");
        assert!(e.dims.is_empty() && e.elems.is_empty());
    }
}
