//! Benchmark tools for imds, run by `scripts/bench`: `imds-floor` (the framework floor: a
//! minimal hyper server answering constant bytes) and `imds-load` (a load client that spreads
//! its connections over many loopback source addresses, which `wrk` cannot do). The criterion
//! micro-benchmarks are in `benches/micro.rs`.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

/// The loopback source address of bench instance `n` (0-based): `127.A.B.C` with `A` from 10,
/// and `B`, `C` in 1..=254, so a million instances fit and none ends in `.0` or `.255`.
pub fn source_address(n: u32) -> Ipv4Addr {
    let a = 10 + n / (254 * 254);
    let b = (n / 254) % 254 + 1;
    let c = n % 254 + 1;
    Ipv4Addr::new(127, u8::try_from(a).unwrap_or(u8::MAX), u8::try_from(b).unwrap_or(1), u8::try_from(c).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback_addresses() {
        let ns: Vec<u32> = (0..1_000_000).step_by(997).chain([253, 254, 64_515, 64_516, 999_999]).collect();
        let addrs: std::collections::HashSet<Ipv4Addr> = ns.iter().map(|n| source_address(*n)).collect();
        assert_eq!(addrs.len(), ns.len(), "every instance gets its own address");
        for addr in &addrs {
            assert!(addr.is_loopback() && addr.octets()[3] != 0 && addr.octets()[3] != 255, "{addr}");
        }
        assert_eq!(source_address(0), Ipv4Addr::new(127, 10, 1, 1));
        assert_eq!(source_address(254), Ipv4Addr::new(127, 10, 2, 1));
        assert_eq!(source_address(999_999), Ipv4Addr::new(127, 25, 128, 2));
    }
}
