//! The client's address for rate limiting. `X-Forwarded-For` is believed
//! only from a configured trusted proxy; then the client is the right-most
//! address in it that is not itself a trusted proxy (anything left of that
//! the client could have written).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The address to rate-limit by.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if !trusted.contains(&peer_ip) {
        return peer_ip;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            Err(_) => break,
        }
    }
    peer_ip
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

    #[test]
    fn believes_forwarded_for_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let peer = SocketAddr::new(proxy, 5000);
        let stranger = SocketAddr::new("10.0.0.9".parse().unwrap(), 5000);
        let h = headers("1.1.1.1, 2.2.2.2");
        assert_eq!(
            client_ip(peer, &h, &[proxy]),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &[proxy]), stranger.ip());
        assert_eq!(client_ip(peer, &h, &[]), proxy);
        assert_eq!(
            client_ip(peer, &headers("3.3.3.3, 127.0.0.1"), &[proxy]),
            "3.3.3.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &[proxy]), proxy);
    }
}
