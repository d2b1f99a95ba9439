//! Deciding whether the bastion's host key is the one the user trusts: a pinned `SHA256:`
//! fingerprint, or an OpenSSH known_hosts file (plain, wildcard, negated and hashed host
//! patterns; `@revoked` honoured; `@cert-authority` lines ignored — host certificates are not
//! accepted). Pure: the file's text is handed in.

use base64ct::{Base64, Encoding};
use russh::keys::{Algorithm, HashAlg, PublicKey};

/// What the user trusts.
#[derive(Debug, Clone)]
pub(crate) enum HostKeyPolicy {
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    Pinned(String),
    /// The parsed lines of a known_hosts file, and its path for messages.
    KnownHosts { path: String, entries: Vec<Entry> },
    /// No key is trusted: every presented key is unknown.
    Unpinned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    line: usize,
    marker: Marker,
    patterns: String,
    key: PublicKey,
}

/// The verdict on one presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Trusted; says why (for the doctor's evidence).
    Trusted(String),
    /// Nothing is known about this host.
    Unknown,
    /// Other keys are trusted for this host; lists them (`ALG SHA256:… (line N)`).
    Mismatch(Vec<String>),
    /// The key is marked `@revoked` on this line.
    Revoked(usize),
}

/// `SHA256:…` without base64 padding, as OpenSSH prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn normalize_fingerprint(fp: &str) -> &str {
    fp.trim().trim_end_matches('=')
}

impl HostKeyPolicy {
    /// Parses a known_hosts file. Lines that do not parse are skipped, as OpenSSH does.
    pub(crate) fn known_hosts(path: &str, text: &str) -> HostKeyPolicy {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or("");
            let marker = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                _ => Marker::None,
            };
            if marker != Marker::None {
                first = fields.next().unwrap_or("");
            }
            let (Some(alg), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = PublicKey::from_openssh(&format!("{alg} {blob}")) else {
                continue;
            };
            entries.push(Entry { line: i + 1, marker, patterns: first.to_string(), key });
        }
        HostKeyPolicy::KnownHosts { path: path.to_string(), entries }
    }

    pub(crate) fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let presented = fingerprint(key);
        match self {
            HostKeyPolicy::Unpinned => Verdict::Unknown,
            HostKeyPolicy::Pinned(pin) => {
                if normalize_fingerprint(pin) == normalize_fingerprint(&presented) {
                    Verdict::Trusted("matches the pinned fingerprint".into())
                } else {
                    Verdict::Mismatch(vec![normalize_fingerprint(pin).to_string()])
                }
            }
            HostKeyPolicy::KnownHosts { path, entries } => {
                let name = lookup_name(host, port);
                let matching = || entries.iter().filter(|e| host_matches(&e.patterns, &name));
                if let Some(e) = matching().find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
                {
                    return Verdict::Revoked(e.line);
                }
                let known: Vec<&Entry> = matching().filter(|e| e.marker == Marker::None).collect();
                if let Some(e) = known.iter().find(|e| e.key.key_data() == key.key_data()) {
                    return Verdict::Trusted(format!("is listed for {name} in {path} line {}", e.line));
                }
                if known.is_empty() {
                    Verdict::Unknown
                } else {
                    Verdict::Mismatch(
                        known
                            .iter()
                            .map(|e| format!("{} {} (line {})", e.key.algorithm(), fingerprint(&e.key), e.line))
                            .collect(),
                    )
                }
            }
        }
    }

    /// Host key algorithms to ask for, best first: those of the keys known for this host lead, so
    /// a bastion with several host keys presents the one the file lists (as OpenSSH's client does).
    pub(crate) fn preferred_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut all = vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP256 },
            Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP384 },
            Algorithm::Ecdsa { curve: russh::keys::EcdsaCurve::NistP521 },
            // RSA host keys sign with SHA-2 only; `ssh-rsa` (SHA-1) is not offered.
            Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
            Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
        ];
        if let HostKeyPolicy::KnownHosts { entries, .. } = self {
            let name = lookup_name(host, port);
            let known: Vec<Algorithm> = entries
                .iter()
                .filter(|e| e.marker == Marker::None && host_matches(&e.patterns, &name))
                .map(|e| e.key.algorithm())
                .collect();
            // A stable sort keeps the default order within each group.
            all.sort_by_key(|a| {
                let listed = known.iter().any(|k| match (k, a) {
                    (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
                    (k, a) => k == a,
                });
                !listed
            });
        }
        all
    }

    /// Where the trust comes from, for messages: "the pinned fingerprint" or the file.
    pub(crate) fn source(&self) -> String {
        match self {
            HostKeyPolicy::Pinned(_) => "the pinned fingerprint".into(),
            HostKeyPolicy::Unpinned => "the source (no host key is pinned yet)".into(),
            HostKeyPolicy::KnownHosts { path, .. } => path.clone(),
        }
    }
}

/// OpenSSH's name for a host in known_hosts: `host`, or `[host]:port` off port 22.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A comma-separated pattern list: any positive match and no negated (`!`) match. Hashed
/// entries (`|1|salt|hash`) are HMAC-SHA1 of the name.
fn host_matches(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut positive = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if glob(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            positive = true;
        }
    }
    positive
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// `*` and `?` wildcards, as in OpenSSH host patterns.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real ed25519 public keys (generated by ssh-keygen for these tests).
    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBo6iTe0tSGTZUKedSzijO+wCZIppqSKYnqRTZuvP3Qe";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsLoV7cDCC2yyEOpl35L4FJzHukukW0/IXMQVOB5xUq";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).expect("test key")
    }

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "anything", true),
            ("*.example.com", "db.example.com", true),
            ("*.example.com", "example.com", false),
            ("db?", "db1", true),
            ("db?", "db12", false),
            ("[10.0.0.*]:2222", "[10.0.0.5]:2222", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob(p, t), m, "{p} vs {t}");
        }
    }

    #[test]
    fn pattern_lists_and_negation() {
        assert!(host_matches("bastion,bastion.example.com", "bastion.example.com"));
        assert!(host_matches("*.example.com,!evil.example.com", "db.example.com"));
        assert!(!host_matches("*.example.com,!evil.example.com", "evil.example.com"));
        assert!(host_matches("BASTION", "bastion"));
        assert!(!host_matches("[bastion]:2222", "bastion"));
    }

    #[test]
    fn hashed_host_names() {
        // `ssh-keygen -H` output for the name `[127.0.0.1]:2222`, computed with the same HMAC.
        let salt = [7u8; 20];
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&key, b"[127.0.0.1]:2222");
        let entry = format!("|1|{}|{}", Base64::encode_string(&salt), Base64::encode_string(tag.as_ref()));
        assert!(host_matches(&entry, "[127.0.0.1]:2222"));
        assert!(!host_matches(&entry, "[127.0.0.1]:2223"));
        assert!(!host_matches("|1|not base64|x", "h"));
    }

    #[test]
    fn known_hosts_verdicts() {
        let text = format!(
            "# comment\n\n[bastion]:2222 {KEY_A} comment\nother {KEY_B}\ngarbage line\n@cert-authority * {KEY_B}\n"
        );
        let policy = HostKeyPolicy::known_hosts("/k", &text);
        assert!(matches!(policy.check("bastion", 2222, &key(KEY_A)), Verdict::Trusted(s) if s.contains("line 3")));
        match policy.check("bastion", 2222, &key(KEY_B)) {
            Verdict::Mismatch(expected) => {
                assert_eq!(expected.len(), 1);
                assert!(expected[0].contains(&fingerprint(&key(KEY_A))), "{expected:?}");
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert_eq!(policy.check("bastion", 22, &key(KEY_A)), Verdict::Unknown);
        assert_eq!(policy.check("nobody", 2222, &key(KEY_B)), Verdict::Unknown, "a CA line trusts nothing");

        let revoked = HostKeyPolicy::known_hosts("/k", &format!("@revoked * {KEY_A}\nbastion {KEY_A}\n"));
        assert_eq!(revoked.check("bastion", 22, &key(KEY_A)), Verdict::Revoked(1));
    }

    #[test]
    fn pinned_fingerprints() {
        let fp = fingerprint(&key(KEY_A));
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        let pinned = HostKeyPolicy::Pinned(format!("{fp}="));
        assert!(matches!(pinned.check("h", 22, &key(KEY_A)), Verdict::Trusted(_)));
        assert!(matches!(pinned.check("h", 22, &key(KEY_B)), Verdict::Mismatch(_)));
    }

    #[test]
    fn known_key_types_are_asked_for_first() {
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDJVRQ8KMjvpRYmL/4yHBSEc5m94WbbzbYMCh74tlAHnjwDY2/aM3clLMAM3Bvlyu9yiahwY3Qx8ubzNFQcN4nSArWC2qhT9WP6jJttDaygkLgOoutLqraBGsmLTKQx3HdteqEfOHXceMKheUZ0VjtlIqnwGtDEYKQL6diD0ignYw==";
        let policy = HostKeyPolicy::known_hosts("/k", &format!("bastion {rsa}\n"));
        let order = policy.preferred_algorithms("bastion", 22);
        assert!(matches!(order[0], Algorithm::Rsa { .. }), "{order:?}");
        assert_eq!(order.len(), 6);
        let default = HostKeyPolicy::Pinned("SHA256:x".into()).preferred_algorithms("bastion", 22);
        assert_eq!(default[0], Algorithm::Ed25519);
    }
}
