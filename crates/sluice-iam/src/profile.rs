//! The shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`): INI sections,
//! `[profile name]` in the config file and `[name]` in the credentials file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::Env;

pub(crate) type Section = BTreeMap<String, String>;

/// Sections by profile name. `config` says which file's naming rule applies.
pub(crate) fn parse(text: &str, config: bool) -> BTreeMap<String, Section> {
    let mut out: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        // Indented lines continue a nested setting (`s3 =` followed by its keys): not ours.
        if raw.starts_with([' ', '\t']) && current.is_some() && !raw.trim().starts_with('[') {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let name = name.trim();
            current = if config {
                match name.strip_prefix("profile") {
                    Some(rest) if rest.starts_with([' ', '\t']) => Some(rest.trim().to_string()),
                    _ if name == "default" => Some("default".to_string()),
                    _ => None, // sso-session, services and the like
                }
            } else {
                Some(name.to_string())
            };
            if let Some(n) = &current {
                out.entry(n.clone()).or_default();
            }
            continue;
        }
        let (Some(profile), Some((k, v))) = (&current, line.split_once('=')) else { continue };
        let value = v.trim();
        // An inline comment needs whitespace before it; `#` may appear inside a secret.
        let value = value.split(" #").next().unwrap_or(value).split(" ;").next().unwrap_or(value).trim();
        out.entry(profile.clone()).or_default().insert(k.trim().to_ascii_lowercase(), value.to_string());
    }
    out
}

/// The two files' paths: `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE`, else under `~/.aws`.
pub(crate) fn paths(env: &Env) -> (Option<PathBuf>, Option<PathBuf>) {
    let pick = |var: &str, default: &str| match env.get(var) {
        Some(p) => Some(env.expand(p)),
        None => env.home().map(|h| h.join(".aws").join(default)),
    };
    (pick("AWS_CONFIG_FILE", "config"), pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_profiles_with_a_prefix_and_credentials_without() {
        let config = "[default]\nregion = eu-west-1\n[profile ro]\naws_access_key_id = A\n\
                      s3 =\n  max_concurrent_requests = 2\naws_secret_access_key = x#y ; note\n\
                      [sso-session s]\nsso_region = x\n[ro2]\nk = v\n";
        let p = parse(config, true);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["default", "ro"]);
        assert_eq!(p["ro"].get("aws_secret_access_key").map(String::as_str), Some("x#y"));
        assert!(!p["ro"].contains_key("max_concurrent_requests"));
        let creds = parse("# c\n[ro]\nAWS_ACCESS_KEY_ID=B\n[profile x]\n", false);
        assert_eq!(creds["ro"].get("aws_access_key_id").map(String::as_str), Some("B"));
        assert!(creds.contains_key("profile x"));
    }
}
