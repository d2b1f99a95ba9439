//! `~/.pgpass` lookup with libpq's rules: `host:port:database:user:password`, `*` matches
//! anything, `\:` and `\\` escape, the first matching line wins. Reading the file (and checking
//! that it is not readable by others) is the caller's job.

use crate::Secret;

/// The password for this host, port, database and user, if a line of `contents` matches.
pub fn lookup(contents: &str, host: &str, port: u16, database: &str, user: &str) -> Option<Secret> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    contents
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(split_fields)
        .find(|fields| fields[..4].iter().zip(wanted).all(|(f, w)| f == "*" || f == w))
        .map(|fields| Secret::new(fields[4].clone()))
}

fn split_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_with_wildcards_and_escapes() {
        let file = "# comment\n\
                    other:5432:*:*:nope\n\
                    db\\:1:5432:app:ro:colon\\:pw\n\
                    *:5432:app:ro:first\n\
                    *:*:*:*:fallback\n";
        let pw = |h, p, d, u| lookup(file, h, p, d, u).map(|s| s.expose().to_string());
        assert_eq!(pw("db:1", 5432, "app", "ro").as_deref(), Some("colon:pw"));
        assert_eq!(pw("db", 5432, "app", "ro").as_deref(), Some("first"));
        assert_eq!(pw("db", 6000, "app", "ro").as_deref(), Some("fallback"));
        assert_eq!(lookup("h:1:d:u\n", "h", 1, "d", "u"), None, "a line with four fields is ignored");
    }
}
