//! The client's address behind trusted proxies: `X-Forwarded-For` read only
//! when the peer is one of them, walked from the right.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The header a proxy appends the address of its own client to.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed: a list of networks
/// (`10.0.0.0/8`, `fd00::/8`) and single addresses (`192.0.2.7`). Empty by
/// default: the header is ignored and the client is the peer of the
/// connection.
///
/// [`TrustedProxies::client_addr`] starts from the peer; while the address
/// in hand is a trusted proxy it steps one entry to the left in
/// `X-Forwarded-For` (the entry that proxy appended), and stops at the
/// first address that is not a trusted proxy. A client can write anything
/// it likes at the left of the header, but only the entries that trusted
/// proxies appended are read, so it cannot choose the address found.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// An entry of a trusted proxy list that is neither an address nor a
/// network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy {
    /// The entry's position in the list.
    pub index: usize,
    /// The entry as written.
    pub entry: String,
}

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is neither an IP address nor a network (like 10.0.0.0/8, 192.0.2.7 or fd00::/8)",
            self.entry
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let networks: Vec<String> = self.networks.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", networks.join(", "))
    }
}

impl TrustedProxies {
    /// The proxies listed in `entries`, each a network (`10.0.0.0/8`) or an
    /// address (`192.0.2.7`, `::1`).
    ///
    /// # Errors
    ///
    /// [`InvalidProxy`] naming the first entry that is neither.
    pub fn new<I, S>(entries: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let text = entry.as_ref().trim();
                text.parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidProxy {
                        index,
                        entry: entry.as_ref().to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies (an IPv4 address mapped
    /// into IPv6, `::ffff:10.0.0.1`, counts as the IPv4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that came from `peer` with
    /// `headers`: `peer` itself unless it is a trusted proxy; then the
    /// right-most address of `X-Forwarded-For` (every such header, in
    /// order) that is not a trusted proxy, or the left-most one when all
    /// are. An entry that is not an address (`unknown`, garbage) ends the
    /// walk at the last address read, a trusted proxy's.
    #[must_use]
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let chain: Vec<&str> = headers
            .get_all(FORWARDED_FOR_HEADER)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .collect();
        for entry in chain.into_iter().rev() {
            let Some(hop) = parse_hop(entry) else {
                break;
            };
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

/// One entry of `X-Forwarded-For`: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`), as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR_HEADER, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn entries_are_networks_or_addresses_and_a_bad_one_is_named() {
        let proxies =
            TrustedProxies::new(["10.0.0.0/8", " 192.0.2.7 ", "fd00::/8", "10.1.2.3/16"]).unwrap();
        assert!(proxies.contains(ip("10.200.0.1")));
        assert!(proxies.contains(ip("192.0.2.7")));
        assert!(!proxies.contains(ip("192.0.2.8")));
        assert!(proxies.contains(ip("fd12::1")));
        assert!(proxies.contains(ip("::ffff:10.0.0.1")), "mapped IPv4");
        assert!(!proxies.contains(ip("11.0.0.1")));
        assert!(!proxies.is_empty());
        assert!(TrustedProxies::default().is_empty());
        let err = TrustedProxies::new(["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!((err.index, err.entry.as_str()), (1, "10.0.0.0/33"));
        assert!(err.to_string().contains("\"10.0.0.0/33\""));
        assert!(TrustedProxies::new(["proxy.local"]).is_err());
        assert_eq!(
            format!("{proxies:?}"),
            r#"[10.0.0.0/8, 192.0.2.7/32, fd00::/8, 10.1.0.0/16]"#
        );
    }

    #[test]
    fn the_header_is_ignored_from_a_peer_that_is_not_trusted() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = forwarded(&["203.0.113.9"]);
        assert_eq!(
            proxies.client_addr(ip("198.51.100.4"), &spoofed),
            ip("198.51.100.4")
        );
        assert_eq!(
            TrustedProxies::default().client_addr(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1"),
            "no proxies: never the header"
        );
    }

    #[test]
    fn the_walk_goes_right_to_left_past_trusted_proxies_only() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let peer = ip("10.0.0.2");
        // What the client wrote (1.1.1.1) is left of what proxies appended.
        let chain = forwarded(&["1.1.1.1, 203.0.113.9", "10.0.0.5"]);
        assert_eq!(proxies.client_addr(peer, &chain), ip("203.0.113.9"));
        let all_trusted = forwarded(&["10.1.1.1, 10.0.0.5"]);
        assert_eq!(proxies.client_addr(peer, &all_trusted), ip("10.1.1.1"));
        assert_eq!(proxies.client_addr(peer, &HeaderMap::new()), peer);
        let with_ports = forwarded(&["[2001:db8::1]:4711, 203.0.113.9:80"]);
        assert_eq!(proxies.client_addr(peer, &with_ports), ip("203.0.113.9"));
        let garbage = forwarded(&["203.0.113.9, unknown, 10.0.0.7"]);
        assert_eq!(
            proxies.client_addr(peer, &garbage),
            ip("10.0.0.7"),
            "stops at what it cannot read"
        );
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.0.0.2"), &forwarded(&["::ffff:203.0.113.9"])),
            ip("203.0.113.9")
        );
    }
}
