//! Parsers for the text forms PostgreSQL sends over the simple protocol: one-dimensional arrays
//! (`{a,"b c",NULL}`), `int2vector` (`1 2 0`), and the `escape` encoding of stored bytes
//! (`caf\351`).

/// Elements of a one-dimensional array literal; `None` for an unquoted `NULL`.
pub(crate) fn parse_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("`{text}` is not an array literal"))?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => item.push(c),
                        None => return Err(format!("`{text}` ends inside an escape")),
                    },
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err(format!("`{text}` has an unterminated quote")),
                }
            }
            out.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return Err(format!("`{text}` is not a one-dimensional array"));
                }
                item.push(c);
                chars.next();
            }
            out.push(if item == "NULL" { None } else { Some(item) });
        }
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(c) => return Err(format!("`{text}`: unexpected `{c}` after an element")),
        }
    }
}

/// A non-null `int2[]` such as `conkey`.
pub(crate) fn parse_int2_array(text: &str) -> Result<Vec<i16>, String> {
    parse_array(text)?
        .into_iter()
        .map(|item| item.and_then(|s| s.parse().ok()).ok_or_else(|| format!("`{text}` is not an array of smallints")))
        .collect()
}

/// Names from a `text[]` that holds no NULLs.
pub(crate) fn parse_name_array(text: &str) -> Result<Vec<String>, String> {
    parse_array(text)?.into_iter().map(|item| item.ok_or_else(|| format!("`{text}` holds a NULL name"))).collect()
}

/// An `int2vector` such as `pg_index.indkey`: numbers separated by spaces.
pub(crate) fn parse_int2vector(text: &str) -> Result<Vec<i16>, String> {
    text.split_ascii_whitespace().map(|s| s.parse().map_err(|_| format!("`{text}` is not an int2vector"))).collect()
}

/// Bytes that `encode(…, 'escape')` wrote — other bytes as is, a high-bit byte as `\ooo`, a
/// backslash as `\\` — as text: the bytes themselves when they are UTF-8, else with each invalid
/// sequence replaced by U+FFFD. The flag says whether anything was replaced.
pub(crate) fn unescape_bytes(text: &str) -> Result<(String, bool), String> {
    if !text.contains('\\') {
        return Ok((text.to_string(), false));
    }
    let src = text.as_bytes();
    let mut bytes = Vec::with_capacity(src.len());
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        if b != b'\\' {
            bytes.push(b);
            i += 1;
            continue;
        }
        if src.get(i + 1) == Some(&b'\\') {
            bytes.push(b'\\');
            i += 2;
            continue;
        }
        match src.get(i + 1..i + 4) {
            Some(&[a, b, c]) if a <= b'3' && [a, b, c].iter().all(|d| (b'0'..=b'7').contains(d)) => {
                bytes.push(((a - b'0') << 6) | ((b - b'0') << 3) | (c - b'0'));
                i += 4;
            }
            _ => return Err(format!("`{text}` is not escaped bytes")),
        }
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(items: &[&str]) -> Vec<Option<String>> {
        items.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn arrays_as_postgres_prints_them() {
        let cases: [(&str, Vec<Option<String>>); 7] = [
            ("{}", vec![]),
            ("{a}", some(&["a"])),
            ("{a,b}", some(&["a", "b"])),
            (r#"{"a b","c,d"}"#, some(&["a b", "c,d"])),
            (r#"{"say \"hi\"","back\\slash"}"#, some(&[r#"say "hi""#, r"back\slash"])),
            (r#"{NULL,"NULL"}"#, vec![None, Some("NULL".into())]),
            ("{ünï,\"{x}\"}", some(&["ünï", "{x}"])),
        ];
        for (text, want) in cases {
            assert_eq!(parse_array(text).expect(text), want, "{text}");
        }
        for bad in ["", "a,b", "{\"a}", "{a\"b}", "{{1,2},{3,4}}", "{\"a\"b}"] {
            assert!(parse_array(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn escaped_bytes_decode_to_utf8_or_are_flagged() {
        assert_eq!(unescape_bytes("plain").expect("plain"), ("plain".to_string(), false));
        assert_eq!(unescape_bytes(r"back\\slash").expect("backslash"), (r"back\slash".to_string(), false));
        assert_eq!(unescape_bytes(r"x\\").expect("trailing backslash"), (r"x\".to_string(), false));
        // UTF-8 bytes stored in a SQL_ASCII database are text as they are.
        assert_eq!(unescape_bytes(r"gr\303\266\303\237e").expect("utf8"), ("größe".to_string(), false));
        // Latin-1 bytes are not: each invalid byte becomes U+FFFD.
        assert_eq!(unescape_bytes(r"caf\351").expect("latin1"), ("caf\u{FFFD}".to_string(), true));
        assert_eq!(unescape_bytes(r"\351\350!").expect("two"), ("\u{FFFD}\u{FFFD}!".to_string(), true));
        assert_eq!(unescape_bytes(r"\\351").expect("escaped backslash"), (r"\351".to_string(), false));
        for bad in [r"a\", r"a\9", r"a\35", r"\400"] {
            assert!(unescape_bytes(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(parse_int2_array("{3,1,2}").expect("int2[]"), vec![3, 1, 2]);
        assert!(parse_int2_array("{1,NULL}").is_err());
        assert!(parse_int2_array("{x}").is_err());
        assert_eq!(parse_int2vector("1 2 0").expect("int2vector"), vec![1, 2, 0]);
        assert_eq!(parse_int2vector("").expect("empty"), Vec::<i16>::new());
        assert!(parse_int2vector("1 x").is_err());
        assert_eq!(
            parse_name_array(r#"{id,"tenant id"}"#).expect("names"),
            vec!["id".to_string(), "tenant id".to_string()]
        );
        assert!(parse_name_array("{NULL}").is_err());
    }
}
