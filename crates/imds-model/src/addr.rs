//! Address types: [`MacAddr`] and the interface address/prefix pairs [`Ipv4Cidr`] and
//! [`Ipv6Cidr`], plus the crate's rules for which IP addresses can identify a guest.
//!
//! MACs are normalised to the lower-case colon form (`02:00:00:00:00:0b`) that EC2, GCE and
//! OpenStack serve; dialects needing another form (Azure's `02000000000B`) render from
//! [`MacAddr::octets`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address: {input:?} (expected e.g. 02:00:00:00:00:0b)")]
pub struct MacAddrError {
    /// The rejected text.
    pub input: String,
}

/// A 48-bit Ethernet MAC address. Displays in lower-case colon form.
///
/// Parses `02:00:00:00:00:0B`, `02-00-00-00-00-0b`, `0200.0000.000b` and `02000000000b`, in
/// any case.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// A MAC from its six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Parses groups of `width` hex digits separated by `sep` (no separator when `None`).
    fn parse_groups(s: &str, sep: Option<char>, width: usize) -> Option<[u8; 6]> {
        let hex: String = match sep {
            Some(sep) => {
                let groups: Vec<&str> = s.split(sep).collect();
                if groups.len() != 12 / width || groups.iter().any(|g| g.len() != width) {
                    return None;
                }
                groups.concat()
            }
            None => s.to_owned(),
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            *octet = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(octets)
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let octets = if s.contains(':') {
            Self::parse_groups(s, Some(':'), 2)
        } else if s.contains('-') {
            Self::parse_groups(s, Some('-'), 2)
        } else if s.contains('.') {
            Self::parse_groups(s, Some('.'), 4)
        } else {
            Self::parse_groups(s, None, 12)
        };
        octets.map(Self).ok_or_else(|| MacAddrError { input: s.to_owned() })
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv4 address assigned to an interface, with its prefix length and optional gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Ipv4Cidr {
    /// The interface's address.
    pub address: Ipv4Addr,
    /// Prefix length, 0 to 32.
    pub prefix: u8,
    /// Default gateway on this subnet, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
}

impl Ipv4Cidr {
    /// The network address (host bits cleared), e.g. `10.0.0.0` for `10.0.0.11/24`.
    pub fn network(&self) -> Ipv4Addr {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(self.address) & mask)
    }

    /// The netmask in dotted form, e.g. `255.255.255.0` for prefix 24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0))
    }
}

/// An IPv6 address assigned to an interface, with its prefix length and optional gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Ipv6Cidr {
    /// The interface's address.
    pub address: Ipv6Addr,
    /// Prefix length, 0 to 128.
    pub prefix: u8,
    /// Default gateway, if any (often link-local, e.g. `fe80::1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv6Addr>,
}

impl Ipv6Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv6Addr {
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
        Ipv6Addr::from(u128::from(self.address) & mask)
    }
}

/// Why `ip` cannot identify a guest by source address, if it cannot.
pub(crate) fn unidentifying(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast address"),
        _ => None,
    }
}

/// Parses CIDR text such as `0.0.0.0/0` or `2001:db8::/32`, checking the prefix length.
pub(crate) fn parse_cidr_text(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(format!("expected CIDR notation like 10.0.0.0/24, got {s:?}"));
    };
    let addr: IpAddr = addr.parse().map_err(|_| format!("not an IP address: {addr:?}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max && !prefix.starts_with('+') => Ok((addr, p)),
        _ => Err(format!("prefix must be an integer from 0 to {max}, got {prefix:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    #[test]
    fn mac_forms() {
        let cases: &[(&str, Option<[u8; 6]>)] = &[
            ("02:00:00:00:00:0b", Some(B)),
            ("02:00:00:00:00:0B", Some(B)),
            ("02-00-00-00-00-0b", Some(B)),
            ("02-00-00-00-00-0B", Some(B)),
            ("0200.0000.000b", Some(B)),
            ("02000000000B", Some(B)),
            ("ff:FF:ff:ff:ff:ff", Some([0xff; 6])),
            ("", None),
            ("02:00:00:00:00", None),
            ("02:00:00:00:00:0b:00", None),
            ("2:0:0:0:0:b", None),
            ("02:00:00:00:00:0g", None),
            ("02:00-00:00:00:0b", None),
            ("0200.0000.000b.0000", None),
            ("0200000000", None),
            ("+2:00:00:00:00:0b", None),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<MacAddr>().ok().map(|m| m.octets()), *expected, "{input:?}");
        }
    }

    #[test]
    fn mac_display_and_serde() {
        let mac: MacAddr = "02-00-00-00-00-0B".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:00:00:00:0b");
        assert_eq!(format!("{mac:?}"), "MacAddr(02:00:00:00:00:0b)");
        assert_eq!(serde_json::to_string(&mac).unwrap(), "\"02:00:00:00:00:0b\"");
        let back: MacAddr = serde_json::from_str("\"02:00:00:00:00:0B\"").unwrap();
        assert_eq!(back, mac);
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
        assert_eq!(
            "x".parse::<MacAddr>().unwrap_err().to_string(),
            "not a MAC address: \"x\" (expected e.g. 02:00:00:00:00:0b)"
        );
    }

    #[test]
    fn cidr_helpers() {
        let c = Ipv4Cidr { address: Ipv4Addr::new(10, 0, 0, 11), prefix: 24, gateway: None };
        assert_eq!(c.network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        let zero = Ipv4Cidr { prefix: 0, ..c };
        assert_eq!(zero.netmask(), Ipv4Addr::UNSPECIFIED);
        let v6 = Ipv6Cidr { address: "2001:db8::b".parse().unwrap(), prefix: 64, gateway: None };
        assert_eq!(v6.network(), "2001:db8::".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn cidr_text() {
        assert_eq!(parse_cidr_text("0.0.0.0/0"), Ok((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)));
        assert!(parse_cidr_text("2001:db8::/128").is_ok());
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+1", "x/8", "::/129", "10.0.0.0/"] {
            assert!(parse_cidr_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifying_addresses() {
        let cases: &[(&str, bool)] = &[
            ("10.0.0.1", true),
            ("127.0.0.1", true),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("fd00::1", true),
            ("::", false),
            ("ff02::1", false),
        ];
        for (ip, ok) in cases {
            assert_eq!(unidentifying(ip.parse().unwrap()).is_none(), *ok, "{ip}");
        }
    }

    proptest! {
        #[test]
        fn mac_display_parse_round_trip(octets in any::<[u8; 6]>()) {
            let mac = MacAddr::new(octets);
            prop_assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
            prop_assert_eq!(mac.to_string().to_uppercase().replace(':', "-").parse::<MacAddr>(), Ok(mac));
        }
    }
}
