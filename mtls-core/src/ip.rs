//! IP networks (addresses and CIDR ranges, v4 and v6) for IP-address SAN rules.
//!
//! ```
//! use mtls_core::IpNetwork;
//! use std::net::IpAddr;
//!
//! let net = IpNetwork::parse("10.1.0.0/16").unwrap();
//! assert!(net.contains("10.1.200.3".parse::<IpAddr>().unwrap()));
//! assert!(!net.contains("10.2.0.1".parse::<IpAddr>().unwrap()));
//! // A bare address is a network of one.
//! assert!(IpNetwork::parse("fd00::1").unwrap().contains("fd00::1".parse().unwrap()));
//! // Host bits set after the prefix are a mistake, not something to round away.
//! assert!(IpNetwork::parse("10.1.2.3/16").is_err());
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address and a prefix length.
///
/// IPv4 networks never contain IPv6 addresses and vice versa; an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`) in a certificate is an IPv6 address and matches only IPv6 networks. This is
/// deliberate: a policy should say exactly what it admits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IP network {input:?}: {reason}")]
pub struct IpNetworkError {
    input: String,
    reason: String,
}

impl IpNetworkError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        IpNetworkError {
            input: crate::truncate_for_display(input),
            reason: reason.into(),
        }
    }
}

impl IpNetwork {
    /// Parses `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (`"10.0.0.1"`, a /32 or /128).
    ///
    /// Host bits after the prefix must be zero: `"10.0.0.1/8"` is an error rather than being
    /// silently widened or narrowed, since either reading could be what the author meant.
    pub fn parse(s: &str) -> Result<IpNetwork, IpNetworkError> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            IpNetworkError::new(s, format!("{addr_text:?} is not an IPv4 or IPv6 address"))
        })?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(IpNetworkError::new(
                        s,
                        "the prefix length after '/' must be a decimal number",
                    ));
                }
                let n: u8 = p
                    .parse()
                    .map_err(|_| IpNetworkError::new(s, "prefix length out of range"))?;
                if n > max {
                    return Err(IpNetworkError::new(
                        s,
                        format!("prefix length {n} exceeds {max} for this address family"),
                    ));
                }
                n
            }
        };
        let net = IpNetwork { addr, prefix };
        if net.network_address() != addr {
            return Err(IpNetworkError::new(
                s,
                format!(
                    "host bits are set after the /{prefix} prefix; did you mean {}/{prefix}?",
                    net.network_address()
                ),
            ));
        }
        Ok(net)
    }

    /// The network for exactly one address.
    pub fn from_addr(addr: IpAddr) -> IpNetwork {
        IpNetwork {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network. Address families never mix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    fn network_address(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_u32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_u128(self.prefix)).into()),
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for IpNetwork {
    /// `addr/prefix`, or the bare address for a single-address network.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl fmt::Debug for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpNetwork({self})")
    }
}

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpNetwork::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_cidr_contains_inside_and_not_outside() {
        let net = IpNetwork::parse("192.168.4.0/22").unwrap();
        assert!(net.contains(ip("192.168.7.255")));
        assert!(!net.contains(ip("192.168.8.0")));
    }

    #[test]
    fn v6_cidr_contains_inside_and_not_outside() {
        let net = IpNetwork::parse("2001:db8::/32").unwrap();
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
    }

    #[test]
    fn zero_prefix_contains_its_whole_family_only() {
        let net = IpNetwork::parse("0.0.0.0/0").unwrap();
        assert!(net.contains(ip("255.255.255.255")));
        assert!(!net.contains(ip("::1")));
    }

    #[test]
    fn v4_network_never_contains_v4_mapped_v6() {
        let net = IpNetwork::parse("10.0.0.0/8").unwrap();
        assert!(!net.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn bare_address_is_a_single_host() {
        let net = IpNetwork::parse("10.0.0.1").unwrap();
        assert_eq!(net.prefix_len(), 32);
        assert!(net.contains(ip("10.0.0.1")));
        assert!(!net.contains(ip("10.0.0.2")));
    }

    #[test]
    fn host_bits_set_is_an_error_that_suggests_the_network() {
        let err = IpNetwork::parse("10.1.2.3/16").unwrap_err();
        assert!(err.to_string().contains("10.1.0.0/16"), "{err}");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/8/8",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/ 8",
            "010.0.0.1",
            "host.example",
            "10.0.0.0/0008",
        ] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn full_length_prefixes_are_single_hosts() {
        // The upper bounds are inclusive: /32 and /128 are valid, one more bit is not.
        let v4 = IpNetwork::parse("10.0.0.1/32").unwrap();
        assert_eq!(v4.prefix_len(), 32);
        assert!(v4.contains(ip("10.0.0.1")));
        assert!(!v4.contains(ip("10.0.0.2")));
        let v6 = IpNetwork::parse("2001:db8::1/128").unwrap();
        assert_eq!(v6.prefix_len(), 128);
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("2001:db8::2")));
        assert!(IpNetwork::parse("10.0.0.1/33").is_err());
        assert!(IpNetwork::parse("2001:db8::1/129").is_err());
    }

    #[test]
    fn debug_names_the_type_and_the_network() {
        let net = IpNetwork::parse("192.168.0.0/16").unwrap();
        assert_eq!(format!("{net:?}"), "IpNetwork(192.168.0.0/16)");
    }

    #[test]
    fn display_round_trips() {
        for s in ["10.0.0.0/8", "10.0.0.1", "fd00::/8", "::1"] {
            assert_eq!(IpNetwork::parse(s).unwrap().to_string(), s);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = IpNetwork::parse(&s);
        }

        #[test]
        fn v4_contains_agrees_with_prefix_comparison(a: u32, b: u32, prefix in 0u8..=32) {
            let net_addr = a & mask_u32(prefix);
            let net = IpNetwork { addr: IpAddr::V4(net_addr.into()), prefix };
            let expected = (b & mask_u32(prefix)) == net_addr;
            prop_assert_eq!(net.contains(IpAddr::V4(b.into())), expected);
            prop_assert!(net.contains(IpAddr::V4(net_addr.into())));
        }
    }
}
