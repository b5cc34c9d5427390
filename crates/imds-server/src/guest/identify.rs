//! Who is asking: the caller's identity from its connection.
//!
//! Today the source IP address, IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack listener
//! reports for IPv4 clients) taken as the IPv4 address it maps. MAC lookup through the host's
//! neighbour table and signed headers from a trusted proxy come later and plug in here.

use std::net::IpAddr;

use crate::listener::Peer;

/// The caller's canonical source address, or `None` for a connection without one.
pub fn caller_ip(peer: &Peer) -> Option<IpAddr> {
    match peer {
        Peer::Tcp { remote, .. } => Some(remote.ip().to_canonical()),
        Peer::Unix => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn ipv4_mapped_callers_are_their_ipv4() {
        let local: SocketAddr = "[::]:80".parse().unwrap();
        let mapped = Peer::Tcp { remote: "[::ffff:10.0.0.7]:5000".parse().unwrap(), local };
        assert_eq!(caller_ip(&mapped), Some("10.0.0.7".parse().unwrap()));
        let v6 = Peer::Tcp { remote: "[fd00::7]:5000".parse().unwrap(), local };
        assert_eq!(caller_ip(&v6), Some("fd00::7".parse().unwrap()));
        assert_eq!(caller_ip(&Peer::Unix), None);
    }
}
