//! Parsers for the text forms PostgreSQL sends over the simple protocol: one-dimensional arrays
//! (`{a,"b c",NULL}`) and `int2vector` (`1 2 0`).

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
