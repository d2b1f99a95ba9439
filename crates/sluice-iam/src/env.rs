//! The variables the credential chain reads, handed in as a map.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A snapshot of environment variables. The chain reads only this, so a test passes its own map
/// instead of changing the process environment. `Debug` shows the names, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment now (variables whose name or value is not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env::from_pairs(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Env {
        Env { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The variable's value; set but empty counts as unset, as in the AWS SDKs.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    pub(crate) fn home(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }

    /// `path` with a leading `~/` expanded to `HOME`.
    pub(crate) fn expand(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.home()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(path),
        }
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_unset_and_debug_hides_values() {
        let env = Env::from_pairs([("A", ""), ("B", "secret-value"), ("HOME", "/h")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("secret-value"));
        assert_eq!(env.expand("~/x/y"), PathBuf::from("/h/x/y"));
        assert_eq!(env.expand("/abs"), PathBuf::from("/abs"));
        assert!(!format!("{env:?}").contains("secret-value"));
    }
}
