//! The network policy: which addresses Sluice may dial on a user's behalf.
//!
//! A server that connects wherever a user's data source points can be turned against its own
//! network (server-side request forgery: the cloud metadata service hands out the machine's
//! credentials, the store holds every source's secrets). Every address a host name resolves to is
//! checked here after DNS and before the first packet is sent to it, on every dial: sessions,
//! reconnections, cancel requests, the SSH bastion and the doctor's `dns` stage. The addresses
//! checked are the ones then dialled, so a name that resolves differently the next time
//! (DNS rebinding) gains nothing.
//!
//! Matching normalises first: an IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) is matched
//! as its IPv4 address, and the unspecified address (`0.0.0.0`, `::`), which Linux dials as the
//! machine itself, is matched as itself and as loopback too. A name is refused whole when any of
//! its addresses is refused. Deny wins over allow; a non-empty allow list admits only its ranges.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A range of addresses in CIDR notation (`10.0.0.0/8`, `fe80::/10`); a bare address is a
/// single-address range. IPv4-mapped IPv6 ranges are kept as their IPv4 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `network`/`prefix`; refuses a prefix longer than the family allows and set
    /// host bits (so `10.0.0.1/8` is never silently read as `10.0.0.0/8`).
    pub fn new(network: IpAddr, prefix: u8) -> Result<IpRange, String> {
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("the prefix /{prefix} is longer than /{max}"));
        }
        let range = IpRange { network, prefix };
        if range.masked(network) != network {
            let fixed = IpRange { network: range.masked(network), prefix };
            return Err(format!("host bits are set; the range is {fixed}"));
        }
        // `::ffff:a.b.c.d/n` with n ≥ 96 is the IPv4 range a.b.c.d/(n-96): addresses are matched
        // in that form.
        if let (IpAddr::V6(v6), true) = (network, prefix >= 96) {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Ok(IpRange { network: IpAddr::V4(v4), prefix: prefix - 96 });
            }
        }
        Ok(range)
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (already normalised) lies in the range; the families must match.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => self.masked(ip) == self.network,
            _ => false,
        }
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<IpRange, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
        let prefix = match prefix {
            None => {
                if ip.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            // Digits only: `u8::from_str` would also take a leading `+`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| format!("the prefix `/{p}` is not a number from 0 to 128"))?
            }
            Some(p) => return Err(format!("the prefix `/{p}` is not a number from 0 to 128")),
        };
        IpRange::new(ip, prefix)
    }
}

impl serde::Serialize for IpRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One exact address: an IP (every port), or an IP and port (`10.0.0.5:5432`, `[fd00::5]:5432`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExactAddress {
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl ExactAddress {
    fn matches(&self, ip: IpAddr, port: u16) -> bool {
        match self {
            ExactAddress::Ip(a) => normalise(*a) == ip,
            ExactAddress::Socket(s) => normalise(s.ip()) == ip && s.port() == port,
        }
    }
}

impl fmt::Display for ExactAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExactAddress::Ip(a) => write!(f, "{a}"),
            ExactAddress::Socket(s) => write!(f, "{s}"),
        }
    }
}

impl FromStr for ExactAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<ExactAddress, String> {
        let s = s.trim();
        if let Ok(sock) = s.parse::<SocketAddr>() {
            return Ok(ExactAddress::Socket(sock));
        }
        s.parse::<IpAddr>().map(ExactAddress::Ip).map_err(|_| {
            format!("`{s}` is not an address (an IP, or an IP and port such as 10.0.0.5:5432 or [fd00::5]:5432)")
        })
    }
}

impl serde::Serialize for ExactAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A list entry that does not parse; the message names the field and the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network policy {field}[{index}]: {reason}")]
pub struct PolicyError {
    pub field: &'static str,
    pub index: usize,
    pub reason: String,
}

/// Which addresses Sluice may dial. Plain data: the server sets one per source on its
/// [`crate::Connector`] (`Connector::with_policy`).
///
/// In serialized form every field is a list of strings; a missing field takes its value from
/// [`NetworkPolicy::default`], so a `deny` given replaces the default deny list (keep its entries,
/// [`NetworkPolicy::DEFAULT_DENY`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PolicyText")]
pub struct NetworkPolicy {
    /// Ranges never dialled. Default: [`NetworkPolicy::DEFAULT_DENY`].
    pub deny: Vec<IpRange>,
    /// When not empty, only these ranges may be dialled (`deny` still wins). Default: empty.
    pub allow: Vec<IpRange>,
    /// Exact addresses never dialled, such as the store's own. Default: empty.
    pub deny_addresses: Vec<ExactAddress>,
}

/// The serialized form, parsed entry by entry so an error names the field.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyText {
    deny: Vec<String>,
    allow: Vec<String>,
    deny_addresses: Vec<String>,
}

impl Default for PolicyText {
    fn default() -> Self {
        PolicyText {
            deny: NetworkPolicy::DEFAULT_DENY.iter().map(|(r, _)| r.to_string()).collect(),
            allow: Vec::new(),
            deny_addresses: Vec::new(),
        }
    }
}

impl TryFrom<PolicyText> for NetworkPolicy {
    type Error = PolicyError;

    fn try_from(t: PolicyText) -> Result<NetworkPolicy, PolicyError> {
        NetworkPolicy::parse(&t.deny, &t.allow, &t.deny_addresses)
    }
}

impl Default for NetworkPolicy {
    /// The server's default: link-local ranges and the cloud metadata services are refused.
    fn default() -> Self {
        let deny = NetworkPolicy::DEFAULT_DENY.iter().filter_map(|(r, _)| r.parse().ok()).collect();
        NetworkPolicy { deny, allow: Vec::new(), deny_addresses: Vec::new() }
    }
}

impl NetworkPolicy {
    /// The ranges [`NetworkPolicy::default`] refuses, with what lives there.
    pub const DEFAULT_DENY: [(&'static str, &'static str); 4] = [
        ("169.254.0.0/16", "IPv4 link-local, where cloud metadata services answer at 169.254.169.254"),
        ("fe80::/10", "IPv6 link-local"),
        ("fd00:ec2::254/128", "the AWS instance metadata service over IPv6"),
        ("100.100.100.200/32", "the Alibaba Cloud instance metadata service"),
    ];

    /// Dials anything. For a person's own tools and for tests, never for a server acting for
    /// others.
    pub fn permissive() -> NetworkPolicy {
        NetworkPolicy { deny: Vec::new(), allow: Vec::new(), deny_addresses: Vec::new() }
    }

    /// Parses the three lists; an error names the field and index of the entry.
    pub fn parse<S: AsRef<str>>(deny: &[S], allow: &[S], deny_addresses: &[S]) -> Result<NetworkPolicy, PolicyError> {
        fn list<T: FromStr<Err = String>, S: AsRef<str>>(
            field: &'static str,
            items: &[S],
        ) -> Result<Vec<T>, PolicyError> {
            items
                .iter()
                .enumerate()
                .map(|(index, s)| s.as_ref().parse().map_err(|reason| PolicyError { field, index, reason }))
                .collect()
        }
        Ok(NetworkPolicy {
            deny: list("deny", deny)?,
            allow: list("allow", allow)?,
            deny_addresses: list("deny_addresses", deny_addresses)?,
        })
    }

    /// Whether `addr` may be dialled, or the rule that refuses it.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let ip = normalise(addr.ip());
        let refused = |rule: Rule| Err(Refusal { addr: SocketAddr::new(ip, addr.port()), rule });
        let mut forms = vec![ip];
        if ip.is_unspecified() {
            forms.push(if ip.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) });
        }
        for form in &forms {
            if let Some(exact) = self.deny_addresses.iter().find(|a| a.matches(*form, addr.port())) {
                return refused(Rule::DeniedAddress(*exact));
            }
            if let Some(range) = self.deny.iter().find(|r| r.contains(*form)) {
                return refused(Rule::Denied(*range));
            }
        }
        if !self.allow.is_empty() && !forms.iter().all(|f| self.allow.iter().any(|r| r.contains(*f))) {
            return refused(Rule::NotAllowed(self.allow.clone()));
        }
        Ok(())
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else unchanged.
fn normalise(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The rule that refused an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Denied(IpRange),
    DeniedAddress(ExactAddress),
    NotAllowed(Vec<IpRange>),
}

/// An address the policy refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The address as matched (an IPv4-mapped address in its IPv4 form).
    pub addr: SocketAddr,
    pub rule: Rule,
}

impl Refusal {
    /// How an administrator may let Sluice dial the address.
    pub fn hint(&self) -> String {
        let ip = self.addr.ip();
        match &self.rule {
            Rule::Denied(range) => format!(
                "use a host that resolves to another address; if Sluice must reach {ip}, an administrator may remove `{range}` from the network policy's `deny` list"
            ),
            Rule::DeniedAddress(exact) => format!(
                "use a host that resolves to another address; if Sluice must reach {ip}, an administrator may remove `{exact}` from the network policy's `deny_addresses`"
            ),
            Rule::NotAllowed(_) => format!(
                "use a host within the allowed ranges; an administrator may add a range containing {ip} to the network policy's `allow` list"
            ),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.addr.ip();
        let itself = if ip.is_unspecified() { ", which reaches this machine itself" } else { "" };
        match &self.rule {
            Rule::Denied(range) => {
                write!(f, "the network policy refuses {ip}{itself}: it denies {range}")?;
                match NetworkPolicy::DEFAULT_DENY.iter().find(|(r, _)| r.parse::<IpRange>().ok() == Some(*range)) {
                    Some((_, what)) => write!(f, " ({what})"),
                    None => Ok(()),
                }
            }
            Rule::DeniedAddress(exact) => {
                write!(f, "the network policy refuses {ip}{itself}: it denies the address {exact}")
            }
            Rule::NotAllowed(allow) => {
                let list: Vec<String> = allow.iter().map(IpRange::to_string).collect();
                write!(f, "the network policy refuses {ip}{itself}: it allows only {}", list.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        match s.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => SocketAddr::new(s.parse().expect("an address"), 5432),
        }
    }

    #[test]
    fn ranges_parse_and_print() {
        let ok = [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("192.0.2.7/32", "192.0.2.7/32"),
            ("::/0", "::/0"),
            ("fe80::/10", "fe80::/10"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("fd00:ec2::254/128", "fd00:ec2::254/128"),
            (" 10.1.0.0/16 ", "10.1.0.0/16"),
            // IPv4-mapped ranges are kept as IPv4.
            ("::ffff:169.254.0.0/112", "169.254.0.0/16"),
            ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        ];
        for (input, shown) in ok {
            let r: IpRange = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), shown, "{input}");
        }
        let bad = [
            ("10.0.0.1/8", "host bits are set; the range is 10.0.0.0/8"),
            ("10.0.0.0/33", "the prefix /33 is longer than /32"),
            ("::/129", "the prefix /129 is longer than /128"),
            ("10.0.0.0/", "the prefix `/` is not a number"),
            ("10.0.0.0/+8", "the prefix `/+8` is not a number"),
            ("10.0.0.0/-1", "the prefix `/-1` is not a number"),
            ("10.0.0.0/8/8", "the prefix `/8/8` is not a number"),
            ("10.0.0.0/999", "the prefix `/999` is not a number"),
            ("10.0.0.0/200", "the prefix /200 is longer than /32"),
            ("example.com/8", "`example.com` is not an IPv4 or IPv6 address"),
            ("", "`` is not an IPv4 or IPv6 address"),
            ("10.0.0/8", "`10.0.0` is not an IPv4 or IPv6 address"),
        ];
        for (input, why) in bad {
            let e = input.parse::<IpRange>().expect_err(input);
            assert!(e.starts_with(why), "{input}: {e}");
        }
    }

    #[test]
    fn ranges_match_by_family_and_prefix() {
        // (range, address, contained)
        let cases = [
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "203.0.113.9", false),
            ("10.0.0.0/8", "10.255.255.255", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "9.255.255.255", false),
            ("192.0.2.7/32", "192.0.2.7", true),
            ("192.0.2.7/32", "192.0.2.8", false),
            ("169.254.0.0/16", "169.254.169.254", true),
            ("fe80::/10", "fe80::1", true),
            ("fe80::/10", "febf:ffff::1", true),
            ("fe80::/10", "fec0::1", false),
            ("fd00:ec2::254/128", "fd00:ec2::254", true),
            ("fd00:ec2::254/128", "fd00:ec2::253", false),
        ];
        for (range, ip, expect) in cases {
            let r: IpRange = range.parse().expect(range);
            assert_eq!(r.contains(ip.parse().expect(ip)), expect, "{range} ∋ {ip}");
        }
    }

    #[test]
    fn default_policy_refuses_link_local_and_metadata_in_every_form() {
        let p = NetworkPolicy::default();
        let refused = [
            ("169.254.169.254", "169.254.0.0/16"),
            ("169.254.0.1", "169.254.0.0/16"),
            ("[::ffff:169.254.169.254]:80", "169.254.0.0/16"),
            ("[::ffff:a9fe:a9fe]:80", "169.254.0.0/16"),
            ("fe80::1", "fe80::/10"),
            ("fd00:ec2::254", "fd00:ec2::254/128"),
            ("100.100.100.200", "100.100.100.200/32"),
            ("[::ffff:100.100.100.200]:80", "100.100.100.200/32"),
        ];
        for (addr, range) in refused {
            let r = p.check(sa(addr)).expect_err(addr);
            assert_eq!(r.rule, Rule::Denied(range.parse().expect(range)), "{addr}");
            assert!(r.to_string().contains(range), "{addr}: {r}");
        }
        let mapped = p.check(sa("[::ffff:169.254.169.254]:80")).expect_err("mapped");
        assert_eq!(mapped.addr, sa("169.254.169.254:80"), "matched and reported as IPv4");
        for ok in ["10.0.0.5", "127.0.0.1", "::1", "203.0.113.9", "100.100.100.201", "fd00:ec2::253", "fec0::1"] {
            assert_eq!(p.check(sa(ok)), Ok(()), "{ok}");
        }
        assert!(p.check(sa("169.254.169.254")).expect_err("metadata").to_string().contains("cloud metadata"));
        assert_eq!(NetworkPolicy::permissive().check(sa("169.254.169.254")), Ok(()));
    }

    #[test]
    fn deny_wins_over_allow_and_allow_admits_only_its_ranges() {
        let p = NetworkPolicy::parse(&["10.1.0.0/16"], &["10.0.0.0/8", "2001:db8::/32"], &["10.2.0.5:5432"])
            .expect("policy");
        assert_eq!(p.check(sa("10.3.0.1")), Ok(()));
        assert_eq!(p.check(sa("[::ffff:10.3.0.1]:5432")), Ok(()), "a mapped address is matched as IPv4");
        assert_eq!(p.check(sa("[2001:db8::5]:5432")), Ok(()));
        assert_eq!(p.check(sa("10.1.2.3")).map_err(|r| r.rule), Err(Rule::Denied("10.1.0.0/16".parse().expect("r"))));
        assert!(matches!(p.check(sa("192.0.2.1")).map_err(|r| r.rule), Err(Rule::NotAllowed(_))));
        assert!(matches!(p.check(sa("[2001:db9::1]:5432")).map_err(|r| r.rule), Err(Rule::NotAllowed(_))));
        // An exact address with a port refuses that port only.
        assert!(matches!(p.check(sa("10.2.0.5:5432")).map_err(|r| r.rule), Err(Rule::DeniedAddress(_))));
        assert_eq!(p.check(sa("10.2.0.5:6432")), Ok(()));
        let everything = NetworkPolicy::parse(&["0.0.0.0/0", "::/0"], &[], &[]).expect("policy");
        assert!(everything.check(sa("192.0.2.1")).is_err());
        assert!(everything.check(sa("[2001:db8::1]:1")).is_err());
    }

    #[test]
    fn exact_addresses_without_a_port_refuse_every_port_in_every_form() {
        let p =
            NetworkPolicy::parse::<&str>(&[], &[], &["10.9.8.7", "::ffff:10.9.8.6", "[fd00::5]:5432"]).expect("policy");
        assert!(p.check(sa("10.9.8.7:1")).is_err());
        assert!(p.check(sa("[::ffff:10.9.8.7]:5432")).is_err());
        assert!(p.check(sa("10.9.8.6:5432")).is_err(), "a mapped exact address matches its IPv4 form");
        assert!(p.check(sa("[fd00::5]:5432")).is_err());
        assert_eq!(p.check(sa("[fd00::5]:5433")), Ok(()));
    }

    #[test]
    fn the_unspecified_address_is_matched_as_loopback_too() {
        let p = NetworkPolicy::parse::<&str>(&["127.0.0.0/8", "::1/128"], &[], &[]).expect("policy");
        for addr in ["0.0.0.0", "::", "[::ffff:0.0.0.0]:5432"] {
            let r = p.check(sa(addr)).expect_err(addr);
            assert!(r.to_string().contains("reaches this machine itself"), "{addr}: {r}");
        }
        let only_public = NetworkPolicy::parse::<&str>(&[], &["0.0.0.0/0"], &[]).expect("policy");
        assert_eq!(only_public.check(sa("0.0.0.0")), Ok(()), "0.0.0.0/0 contains both forms");
        let only_unspecified = NetworkPolicy::parse::<&str>(&[], &["0.0.0.0/32"], &[]).expect("policy");
        assert!(only_unspecified.check(sa("0.0.0.0")).is_err(), "its loopback form is not allowed");
    }

    #[test]
    fn bad_entries_name_the_field_and_index() {
        let e = NetworkPolicy::parse(&["10.0.0.0/8", "10.0.0.1/8"], &[], &[]).expect_err("deny");
        assert_eq!(e.to_string(), "network policy deny[1]: host bits are set; the range is 10.0.0.0/8");
        let e = NetworkPolicy::parse(&[], &["nope"], &[]).expect_err("allow");
        assert_eq!((e.field, e.index), ("allow", 0));
        let e = NetworkPolicy::parse(&[], &[], &["10.0.0.0/8"]).expect_err("exact");
        assert_eq!((e.field, e.index), ("deny_addresses", 0));
        assert!(e.to_string().contains("`10.0.0.0/8` is not an address"), "{e}");
    }

    #[test]
    fn serde_round_trips_and_defaults_missing_fields() {
        let p = NetworkPolicy::parse(&["10.0.0.0/8", "fe80::/10"], &["0.0.0.0/0"], &["10.0.0.5:5432", "fd00::1"])
            .expect("policy");
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(
            json,
            r#"{"deny":["10.0.0.0/8","fe80::/10"],"allow":["0.0.0.0/0"],"deny_addresses":["10.0.0.5:5432","fd00::1"]}"#
        );
        assert_eq!(serde_json::from_str::<NetworkPolicy>(&json).expect("back"), p);
        let only_store: NetworkPolicy = serde_json::from_str(r#"{"deny_addresses":["10.0.0.5"]}"#).expect("partial");
        assert_eq!(only_store.deny, NetworkPolicy::default().deny, "a missing deny keeps the default list");
        assert_eq!(serde_json::from_str::<NetworkPolicy>("{}").expect("empty"), NetworkPolicy::default());
        let e = serde_json::from_str::<NetworkPolicy>(r#"{"allow":["10.0.0.0/8","x"]}"#).expect_err("bad");
        assert!(e.to_string().contains("network policy allow[1]: `x` is not an IPv4 or IPv6 address"), "{e}");
        assert!(serde_json::from_str::<NetworkPolicy>(r#"{"denny":[]}"#).is_err(), "unknown fields are refused");
    }

    #[test]
    fn refusal_hints_say_what_an_administrator_changes() {
        let p = NetworkPolicy::parse(&["10.1.0.0/16"], &["10.0.0.0/8"], &["10.2.0.5"]).expect("policy");
        let hint = |a: &str| p.check(sa(a)).expect_err(a).hint();
        assert!(hint("10.1.0.1").contains("remove `10.1.0.0/16` from the network policy's `deny` list"));
        assert!(hint("10.2.0.5").contains("remove `10.2.0.5` from the network policy's `deny_addresses`"));
        assert!(hint("192.0.2.1").contains("add a range containing 192.0.2.1 to the network policy's `allow` list"));
    }
}
