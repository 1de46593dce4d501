//! Suppress lists: principals (with `*` wildcards), accounts and source
//! networks (CIDR) whose events never alert. A rule may carry its own list;
//! the detector also holds a global one, applied before the rule's.
//!
//! Patterns are parsed once; matching allocates nothing.

use std::net::IpAddr;

use crate::rule::SuppressSpec;

/// A `*` wildcard pattern: literal pieces that must appear in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pieces: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Wildcard {
    /// Parses a pattern; `*` matches any run of characters (also none).
    pub fn new(pattern: &str) -> Self {
        Self {
            pieces: pattern
                .split('*')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*'),
        }
    }

    /// True when the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        if self.pieces.is_empty() {
            // "" matches only ""; "*" (or "**") matches anything.
            return !(self.anchored_start && self.anchored_end) || text.is_empty();
        }
        let mut rest = text;
        let last = self.pieces.len() - 1;
        for (i, piece) in self.pieces.iter().enumerate() {
            if i == 0 && self.anchored_start {
                match rest.strip_prefix(piece.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                }
                if i == last && self.anchored_end {
                    return rest.is_empty();
                }
                continue;
            }
            if i == last && self.anchored_end {
                return rest.ends_with(piece.as_str());
            }
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        !self.anchored_end || rest.is_empty()
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: u128,
    mask: u128,
    v6: bool,
}

impl Network {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (ip, len) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("suppress network {text:?} is not an address or CIDR block"))?;
        let (bits, addr, v6) = match ip {
            IpAddr::V4(a) => (32u32, u128::from(u32::from(a)), false),
            IpAddr::V6(a) => (128u32, u128::from(a), true),
        };
        let len = match len {
            None => bits,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|&l| l <= bits)
                .ok_or_else(|| format!("suppress network {text:?} has a bad prefix length"))?,
        };
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (bits - len)) & (u128::MAX >> (128 - bits))
        };
        Ok(Self {
            addr: addr & mask,
            mask,
            v6,
        })
    }

    /// True when `ip` is in this network. An IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(a)),
            other => other,
        };
        let (addr, v6) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        v6 == self.v6 && addr & self.mask == self.addr
    }
}

/// A compiled suppress list. The default suppresses nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppress {
    principals: Vec<Wildcard>,
    accounts: Vec<Wildcard>,
    networks: Vec<Network>,
}

impl Suppress {
    /// Compiles a suppress list; a bad network is an error naming it.
    pub fn from_spec(spec: &SuppressSpec) -> Result<Self, String> {
        Ok(Self {
            principals: spec.principals.iter().map(|p| Wildcard::new(p)).collect(),
            accounts: spec.accounts.iter().map(|p| Wildcard::new(p)).collect(),
            networks: spec
                .source_networks
                .iter()
                .map(|n| Network::parse(n))
                .collect::<Result<_, _>>()?,
        })
    }

    /// True when nothing is suppressed.
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty() && self.accounts.is_empty() && self.networks.is_empty()
    }

    /// True when an event with these values must not alert. `source_ip` that
    /// is not an address (`ec2.amazonaws.com`) matches no network.
    pub fn suppresses(
        &self,
        principal: Option<&str>,
        account: Option<&str>,
        source_ip: Option<&str>,
    ) -> bool {
        if let Some(p) = principal
            && self.principals.iter().any(|w| w.matches(p))
        {
            return true;
        }
        if let Some(a) = account
            && self.accounts.iter().any(|w| w.matches(a))
        {
            return true;
        }
        if !self.networks.is_empty()
            && let Some(ip) = source_ip.and_then(|s| s.trim().parse::<IpAddr>().ok())
        {
            return self.networks.iter().any(|n| n.contains(ip));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_text() {
        let w = Wildcard::new("arn:aws:iam::*:role/BreakGlass*");
        assert!(w.matches("arn:aws:iam::111122223333:role/BreakGlass"));
        assert!(w.matches("arn:aws:iam::1:role/BreakGlassAdmin"));
        assert!(!w.matches("arn:aws:iam::1:role/Admin"));
        assert!(!w.matches("xarn:aws:iam::1:role/BreakGlass"));
        assert!(Wildcard::new("*").matches("anything"));
        assert!(Wildcard::new("a*b*c").matches("abc"));
        assert!(Wildcard::new("a*b*c").matches("axxbyyc"));
        assert!(!Wildcard::new("a*b*c").matches("axxbyycd"));
        assert!(Wildcard::new("exact").matches("exact"));
        assert!(!Wildcard::new("exact").matches("exactly"));
        assert!(!Wildcard::new("ab*ba").matches("aba"));
    }

    #[test]
    fn networks_contain_their_addresses() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.9.9.9".parse().unwrap()));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let one = Network::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("not-an-ip").is_err());
    }

    #[test]
    fn suppress_checks_each_field() {
        let s = Suppress::from_spec(&SuppressSpec {
            principals: vec!["arn:aws:iam::*:role/BreakGlass*".into()],
            accounts: vec!["111122223333".into()],
            source_networks: vec!["10.0.0.0/8".into()],
        })
        .unwrap();
        assert!(s.suppresses(Some("arn:aws:iam::9:role/BreakGlassX"), None, None));
        assert!(s.suppresses(Some("x"), Some("111122223333"), None));
        assert!(s.suppresses(Some("x"), Some("2"), Some("10.4.4.4")));
        assert!(!s.suppresses(Some("x"), Some("2"), Some("ec2.amazonaws.com")));
        assert!(!s.suppresses(Some("x"), Some("2"), Some("8.8.8.8")));
        assert!(Suppress::default().is_empty());
    }
}
