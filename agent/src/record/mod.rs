//! Record: what is said about each flow once it ends.
//!
//! [`FlowView`] serialises a finished flow straight from the flow table's structures
//! (no intermediate copies), as one JSON object: the contract in DESIGN.md
//! (`transport`, `client`, `server`, `service`) plus everything the inventory and a
//! reader need. [`table`] renders the same for a person.

pub mod sink;
pub mod table;

use crate::classify::{Classification, Family};
use crate::decode::{ipproto, Addr};
use crate::flow::Flow;
use crate::rules::Rules;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// An IP network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: [u8; 16],
    /// Prefix length over the 128-bit (IPv4-mapped) address.
    bits: u8,
}

impl Cidr {
    /// Parses "10.0.0.0/8", "2001:db8::/32" or a single address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (expected e.g. 10.0.0.0/8)"))?;
        let (max, offset) = match ip {
            IpAddr::V4(_) => (32u8, 96u8),
            IpAddr::V6(_) => (128u8, 0u8),
        };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?,
            None => max,
        };
        let bits = offset + len;
        let mut net = Addr::from(ip).0;
        mask(&mut net, bits);
        Ok(Cidr { net, bits })
    }

    /// Whether the network holds the address.
    pub fn contains(&self, a: Addr) -> bool {
        let mut x = a.0;
        mask(&mut x, self.bits);
        x == self.net
    }
}

fn mask(a: &mut [u8; 16], bits: u8) {
    for (i, b) in a.iter_mut().enumerate() {
        let lo = (i * 8) as u32;
        let bits = u32::from(bits);
        if bits <= lo {
            *b = 0;
        } else if bits < lo + 8 {
            *b &= 0xffu8 << (8 - (bits - lo));
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = Addr(self.net).to_ip();
        let len = if ip.is_ipv4() {
            self.bits - 96
        } else {
            self.bits
        };
        write!(f, "{ip}/{len}")
    }
}

/// The networks that count as inside the hospital.
#[derive(Clone, Debug)]
pub struct LocalNets {
    nets: Vec<Cidr>,
}

impl LocalNets {
    /// Private, shared, link-local, loopback, ULA and multicast/broadcast ranges
    /// (RFC 1918, RFC 6598, RFC 3927, RFC 4193, RFC 4291), plus the given ones.
    pub fn with(extra: &[Cidr]) -> LocalNets {
        let mut nets: Vec<Cidr> = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "224.0.0.0/4",
            "255.255.255.255/32",
            "0.0.0.0/32",
            "::1/128",
            "::/128",
            "fe80::/10",
            "fc00::/7",
            "ff00::/8",
        ]
        .iter()
        .filter_map(|s| Cidr::parse(s).ok())
        .collect();
        nets.extend_from_slice(extra);
        LocalNets { nets }
    }

    /// Whether an address is inside.
    pub fn is_local(&self, a: Addr) -> bool {
        self.nets.iter().any(|n| n.contains(a))
    }
}

/// Name of a transport for output.
pub fn transport_name(proto: u8) -> std::borrow::Cow<'static, str> {
    match proto {
        ipproto::TCP => "tcp".into(),
        ipproto::UDP => "udp".into(),
        ipproto::ICMP => "icmp".into(),
        ipproto::ICMPV6 => "icmpv6".into(),
        ipproto::ESP => "esp".into(),
        ipproto::AH => "ah".into(),
        ipproto::GRE => "gre".into(),
        ipproto::IPIP => "ipip".into(),
        ipproto::IPV6 => "ipv6-in-ip".into(),
        2 => "igmp".into(),
        132 => "sctp".into(),
        n => format!("ip-{n}").into(),
    }
}

/// Which side(s) of a flow are outside the local networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum External {
    /// Both inside.
    None,
    /// The client is outside.
    Client,
    /// The server is outside.
    Server,
    /// Both outside.
    Both,
}

impl External {
    /// Output name.
    pub fn as_str(self) -> &'static str {
        match self {
            External::None => "none",
            External::Client => "client",
            External::Server => "server",
            External::Both => "both",
        }
    }
    /// Direction of the flow relative to the hospital.
    pub fn direction(self) -> &'static str {
        match self {
            External::None => "internal",
            External::Client => "inbound",
            External::Server => "outbound",
            External::Both => "transit",
        }
    }
}

/// Context for rendering records.
pub struct RecordCx<'a> {
    /// Local networks.
    pub nets: &'a LocalNets,
    /// Catalogue (standard ports).
    pub rules: &'a Rules,
}

/// A finished flow, ready to serialise.
pub struct FlowView<'a> {
    /// The flow.
    pub flow: &'a Flow,
    /// Context.
    pub cx: &'a RecordCx<'a>,
}

impl<'a> FlowView<'a> {
    /// The classification, if any.
    pub fn class(&self) -> Option<&'a Classification> {
        self.flow.class.as_deref()
    }

    /// External side.
    pub fn external(&self) -> External {
        let c = !self.cx.nets.is_local(self.flow.client.addr);
        let s = !self.cx.nets.is_local(self.flow.server.addr);
        match (c, s) {
            (false, false) => External::None,
            (true, false) => External::Client,
            (false, true) => External::Server,
            (true, true) => External::Both,
        }
    }

    /// The service was found by content on a port not standard for it.
    pub fn non_standard_port(&self) -> bool {
        let Some(c) = self.class() else { return false };
        let Some(s) = c.service else { return false };
        let proto = self.flow.key.proto;
        if !matches!(proto, ipproto::TCP | ipproto::UDP) {
            return false;
        }
        !self
            .cx
            .rules
            .is_standard_port(s, proto == ipproto::TCP, self.flow.server.port)
    }
}

struct Endpoint(Addr, u16);

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("ip", &DisplayIp(self.0))?;
        m.serialize_entry("port", &self.1)?;
        m.end()
    }
}

struct DisplayIp(Addr);

impl Serialize for DisplayIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.to_ip())
    }
}

struct Pair(u64, u64);

impl Serialize for Pair {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("c2s", &self.0)?;
        m.serialize_entry("s2c", &self.1)?;
        m.end()
    }
}

/// A timestamp in microseconds, rendered as RFC 3339 UTC.
pub struct Rfc3339(pub u64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000;
        let micros = self.0 % 1_000_000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Days since 1970-01-01 to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms").
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// TCP flags as letters (the tcpdump/Zeek convention: S F R P A U E C).
pub fn tcp_flags_str(f: u8) -> String {
    const NAMES: [(u8, char); 8] = [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, 'A'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'C'),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

impl Serialize for FlowView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.flow;
        let c = self.class();
        let ext = self.external();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "flow")?;
        m.serialize_entry("id", &f.id)?;
        m.serialize_entry("transport", &transport_name(f.key.proto))?;
        m.serialize_entry("client", &Endpoint(f.client.addr, f.client.port))?;
        m.serialize_entry("server", &Endpoint(f.server.addr, f.server.port))?;
        // `service` is always present (null when the flow is no remote access or VPN);
        // the other optional fields only when known.
        let service = c.and_then(|c| c.service);
        m.serialize_entry("service", &service.map(|s| s.as_str()))?;
        if let Some(s) = service {
            let family = match s.family() {
                Family::RemoteAccess => "remote-access",
                Family::Vpn => "vpn",
                Family::Anonymiser => "anonymiser",
            };
            m.serialize_entry("family", family)?;
        }
        if let Some(c) = c {
            m.serialize_entry("protocol", c.protocol)?;
            if let Some(v) = &c.vendor {
                m.serialize_entry("vendor", v)?;
            }
            if let Some(p) = &c.product {
                m.serialize_entry("product", p)?;
            }
            if !c.evidence.is_empty() {
                m.serialize_entry("evidence", &c.evidence)?;
            }
            if let Some(w) = &c.weak {
                m.serialize_entry("weak", w)?;
            }
        }
        m.serialize_entry("non_standard_port", &self.non_standard_port())?;
        m.serialize_entry("external", ext.as_str())?;
        m.serialize_entry("direction", ext.direction())?;
        m.serialize_entry("packets", &Pair(f.packets[0], f.packets[1]))?;
        m.serialize_entry("bytes", &Pair(f.bytes[0], f.bytes[1]))?;
        m.serialize_entry(
            "payload_bytes",
            &Pair(f.payload_bytes[0], f.payload_bytes[1]),
        )?;
        m.serialize_entry("first_seen", &Rfc3339(f.first_us))?;
        m.serialize_entry("last_seen", &Rfc3339(f.last_us))?;
        if f.key.proto == ipproto::TCP {
            m.serialize_entry("tcp_flags_c2s", &tcp_flags_str(f.tcp_flags[0]))?;
            m.serialize_entry("tcp_flags_s2c", &tcp_flags_str(f.tcp_flags[1]))?;
            m.serialize_entry("handshake", &f.handshake)?;
        }
        m.serialize_entry(
            "role_by",
            match f.role_by {
                crate::flow::RoleBy::Handshake => "handshake",
                crate::flow::RoleBy::Port => "port",
                crate::flow::RoleBy::FirstPacket => "first_packet",
            },
        )?;
        if f.vlan != 0 {
            m.serialize_entry("vlan", &f.vlan)?;
        }
        if f.depth != 0 {
            m.serialize_entry("tunnel_depth", &f.depth)?;
        }
        if f.fragments != 0 {
            m.serialize_entry("fragments", &f.fragments)?;
        }
        m.serialize_entry("end", &f.end.map(|e| e.as_str()))?;
        if let Some(c) = c {
            let meta = &c.meta;
            if let Some(t) = &meta.tls {
                m.serialize_entry("tls", t)?;
            }
            if let Some(t) = &meta.ssh {
                m.serialize_entry("ssh", t)?;
            }
            if let Some(t) = &meta.rdp {
                m.serialize_entry("rdp", t)?;
            }
            if let Some(t) = &meta.ike {
                m.serialize_entry("ike", t)?;
            }
            if let Some(t) = &meta.http {
                m.serialize_entry("http", t)?;
            }
            if let Some(v) = &meta.version {
                m.serialize_entry("protocol_version", v)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(n.contains(Addr::v4([10, 1, 200, 3])));
        assert!(!n.contains(Addr::v4([10, 2, 0, 1])));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(Addr::from("2001:db8::1".parse::<IpAddr>().unwrap())));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("hospital").is_err());
    }

    #[test]
    fn default_local_nets() {
        let l = LocalNets::with(&[Cidr::parse("203.0.113.0/24").unwrap()]);
        assert!(l.is_local(Addr::v4([192, 168, 1, 1])));
        assert!(l.is_local(Addr::v4([100, 64, 0, 1])));
        assert!(l.is_local(Addr::v4([203, 0, 113, 9])));
        assert!(!l.is_local(Addr::v4([8, 8, 8, 8])));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Rfc3339(1_700_000_000_123_456).to_string(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            Rfc3339(951_782_400_000_000).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn flags() {
        assert_eq!(tcp_flags_str(0x12), "SA");
        assert_eq!(tcp_flags_str(0x11), "FA");
    }
}
