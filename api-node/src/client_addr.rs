//! The client's address for rate limiting. `X-Forwarded-For` is believed
//! only from a configured trusted proxy (an address or a CIDR range); then
//! the client is the right-most address in it that is not itself a trusted
//! proxy (anything left of that the client could have written). An IPv6
//! client is counted by its /64: one host usually holds a whole /64, so
//! counting single IPv6 addresses would let it pick a fresh one per attempt.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;

/// An address or CIDR range (IPv4 or IPv6), e.g. `10.0.0.0/8`, `fd00::/8`,
/// `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The first address of the range (host bits are zero).
    network: IpAddr,
    /// Leading bits that must match.
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Why a trusted-proxy entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR range (address/prefix, host bits zero)")]
pub struct BadRange(String);

impl FromStr for IpRange {
    type Err = BadRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRange(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would take "+8".
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > bits {
            return Err(bad());
        }
        let range = match addr {
            // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: compare like with like.
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => Self {
                network: IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
                prefix: prefix - 96,
            },
            _ => Self {
                network: addr,
                prefix,
            },
        };
        // A typo such as 10.0.0.1/8 (host bits set: the network address is
        // then outside its own range) is refused rather than guessed at.
        if !range.contains(range.network) {
            return Err(bad());
        }
        Ok(range)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The key every per-address limit counts by: the client's IPv4 address,
/// or the /64 network of its IPv6 address.
pub fn client_key(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    limit_key(client_ip(peer, headers, trusted))
}

/// An IPv6 address reduced to its /64; an IPv4 address unchanged.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(64))),
    }
}

/// The client's address. From a trusted peer, the right-most untrusted
/// `X-Forwarded-For` hop; when every hop is trusted, the left-most one (the
/// client is then itself inside a trusted range, and the first proxy
/// recorded it); without a usable header, the peer.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(peer_ip) {
        return peer_ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer_ip;
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip.to_canonical(),
            Ok(ip) => return ip.to_canonical(),
            // Garbage was written by the client: the last proxy's view stands.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn believes_forwarded_for_only_from_trusted_proxies() {
        let proxy = ranges(&["127.0.0.1"]);
        let peer = SocketAddr::new(ip("127.0.0.1"), 5000);
        let stranger = SocketAddr::new(ip("10.0.0.9"), 5000);
        let h = headers("1.1.1.1, 2.2.2.2");
        assert_eq!(client_ip(peer, &h, &proxy), ip("2.2.2.2"));
        assert_eq!(client_ip(stranger, &h, &proxy), stranger.ip());
        assert_eq!(client_ip(peer, &h, &[]), ip("127.0.0.1"));
        assert_eq!(
            client_ip(peer, &headers("3.3.3.3, 127.0.0.1"), &proxy),
            ip("3.3.3.3")
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &proxy), ip("127.0.0.1"));
    }

    #[test]
    fn cidr_ranges_of_both_families_are_trusted() {
        let trusted = ranges(&["10.0.0.0/8", "fd00::/8"]);
        let from_pod = SocketAddr::new(ip("10.42.3.17"), 5000);
        let from_v6_pod = SocketAddr::new(ip("fd12::7"), 5000);
        let from_mapped = SocketAddr::new(ip("::ffff:10.1.2.3"), 5000);
        let outside = SocketAddr::new(ip("11.0.0.1"), 5000);
        let h = headers("198.51.100.4, 10.9.9.9");
        assert_eq!(client_ip(from_pod, &h, &trusted), ip("198.51.100.4"));
        assert_eq!(client_ip(from_v6_pod, &h, &trusted), ip("198.51.100.4"));
        assert_eq!(client_ip(from_mapped, &h, &trusted), ip("198.51.100.4"));
        assert_eq!(client_ip(outside, &h, &trusted), ip("11.0.0.1"));
    }

    #[test]
    fn a_client_inside_a_trusted_range_is_the_left_most_hop() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let peer = SocketAddr::new(ip("10.0.0.2"), 5000);
        assert_eq!(
            client_ip(peer, &headers("10.7.7.7, 10.0.0.3"), &trusted),
            ip("10.7.7.7")
        );
        // What the client wrote left of garbage is not believed.
        assert_eq!(
            client_ip(peer, &headers("1.2.3.4, junk, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn parses_addresses_and_ranges_and_refuses_the_rest() {
        for ok in [
            "127.0.0.1",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "::1",
            "::/0",
            "2001:db8::/32",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(ok.parse::<IpRange>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "nginx",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "2001:db8::/129",
            "2001:db8::1/64",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
        let mapped: IpRange = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        let range: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains(ip("10.255.255.255")));
        assert!(!range.contains(ip("11.0.0.0")));
        assert!(!range.contains(ip("::a00:1")));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(limit_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}
