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
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// An IP network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address over 128 bits (IPv4-mapped), host bits clear.
    net: u128,
    /// The prefix as a mask, kept ready: every flow is tested against every network.
    mask: u128,
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
        let mask = prefix_mask(bits);
        let net = u128::from_be_bytes(Addr::from(ip).0) & mask;
        Ok(Cidr { net, mask, bits })
    }

    /// Whether the network holds the address.
    pub fn contains(&self, a: Addr) -> bool {
        u128::from_be_bytes(a.0) & self.mask == self.net
    }
}

/// The leading `bits` of a 128-bit address set (all of them from 128 on).
fn prefix_mask(bits: u8) -> u128 {
    match bits {
        0 => 0,
        1..=127 => u128::MAX << (128 - u32::from(bits)),
        _ => u128::MAX,
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = Addr(self.net.to_be_bytes()).to_ip();
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
        ipproto::L2TP => "l2tp".into(),
        ipproto::IGMP => "igmp".into(),
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
        let c = !self.cx.nets.is_local(self.flow.client().addr);
        let s = !self.cx.nets.is_local(self.flow.server().addr);
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
            .is_standard_port(s, proto == ipproto::TCP, self.flow.server().port)
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

/// Days since 1970-01-01 to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms").
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// TCP flag bits and their letters, in the order they are written (the tcpdump/Zeek
/// convention: S F R P A U E C).
const TCP_FLAG_LETTERS: [(u8, u8); 8] = [
    (0x02, b'S'),
    (0x01, b'F'),
    (0x04, b'R'),
    (0x08, b'P'),
    (0x10, b'A'),
    (0x20, b'U'),
    (0x40, b'E'),
    (0x80, b'C'),
];

/// Appends `,"key":"<letters>"` for a set of TCP flags.
#[inline(always)]
fn json_tcp_flags(out: &mut Vec<u8>, key: &str, f: u8) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    for (b, c) in TCP_FLAG_LETTERS {
        if f & b != 0 {
            out.push(c);
        }
    }
    out.push(b'"');
}

/// Appends `s` as a JSON string (quotes and escapes per RFC 8259 section 7).
#[inline(always)]
fn json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Rare: let serde_json do the escaping. Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether a string needs more than quotes around it in JSON (RFC 8259 section 7): a
/// control character, `"` or `\`; DEL and non-ASCII take the careful path too. Eight
/// bytes at a time: a zero byte of `x ^ c` marks a byte equal to `c`, and the usual
/// "has a byte less than n" test marks the control characters (both may also mark
/// bytes next to a marked one, never a clean word).
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let less = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        let hit = less(x, 0x20)
            | less(x ^ (ONES * u64::from(b'"')), 1)
            | less(x ^ (ONES * u64::from(b'\\')), 1)
            | less(x ^ (ONES * 0x7f), 1)
            | (x & HIGH);
        if hit != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&c| c < 0x20 || c == b'"' || c == b'\\' || c >= 0x7f)
}

/// "00" to "99".
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

#[inline(always)]
fn json_u64(out: &mut Vec<u8>, v: u64) {
    // Digits written left-aligned into a fixed buffer that is appended whole and cut to
    // length: a fixed-size copy is a few moves where a variable one is a call.
    let n = decimal_digits(v);
    let mut buf = [0u8; 20];
    let mut i = n;
    let mut v = v;
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        buf[0..2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        buf[0] = b'0' + v as u8;
    }
    let start = out.len();
    out.extend_from_slice(&buf);
    out.truncate(start + n);
}

/// Decimal digits of `v` (1 for 0).
fn decimal_digits(v: u64) -> usize {
    let mut n = 1;
    let mut p = 10u64;
    while n < 20 && v >= p {
        n += 1;
        p = p.saturating_mul(10);
    }
    n
}

fn json_ip(out: &mut Vec<u8>, a: Addr) {
    match a.to_ip() {
        IpAddr::V4(v4) => {
            // Dotted quad written straight into a fixed buffer ("255.255.255.255" is 15
            // characters), quotes included.
            let mut buf = [0u8; 17];
            buf[0] = b'"';
            let mut n = 1;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    buf[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    buf[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + o % 10;
                n += 1;
            }
            buf[n] = b'"';
            out.extend_from_slice(&buf[..n + 1]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "\"{v6}\"");
        }
    }
}

#[inline(always)]
fn json_endpoint(out: &mut Vec<u8>, key: &str, a: Addr, port: u16) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":{\"ip\":");
    json_ip(out, a);
    out.extend_from_slice(b",\"port\":");
    json_u64(out, u64::from(port));
    out.push(b'}');
}

#[inline(always)]
fn json_pair(out: &mut Vec<u8>, key: &str, p: [u64; 2]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":{\"c2s\":");
    json_u64(out, p[0]);
    out.extend_from_slice(b",\"s2c\":");
    json_u64(out, p[1]);
    out.push(b'}');
}

/// RFC 3339 UTC with microseconds, digits written directly.
#[inline(always)]
fn json_time(out: &mut Vec<u8>, key: &str, us: u64) {
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let y = y.clamp(0, 9999) as u64;
    // "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"
    let mut t = *b"0000-00-00T00:00:00.000000Z";
    let mut two = |at: usize, v: u64| {
        let d = (v % 100) as usize * 2;
        t[at..at + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    };
    two(0, y / 100);
    two(2, y % 100);
    two(5, u64::from(m));
    two(8, u64::from(d));
    two(11, rem / 3600);
    two(14, rem / 60 % 60);
    two(17, rem % 60);
    two(20, micros / 10_000);
    two(22, micros / 100 % 100);
    two(24, micros % 100);
    out.reserve(key.len() + 34);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(&t);
    out.push(b'"');
}

#[inline(always)]
fn json_key_str(out: &mut Vec<u8>, key: &str, v: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    json_str(out, v);
}

fn json_key_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, v: &T) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    // Writing to a Vec cannot fail, and these types always serialise.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// `,"key":` — or without the comma for an object's first field.
#[inline(always)]
fn json_field(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn json_str_array(out: &mut Vec<u8>, v: &[String]) {
    out.push(b'[');
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, s);
    }
    out.push(b']');
}

/// The TLS metadata as serde writes [`crate::classify::TlsMeta`]: fields in declaration
/// order, absent ones and empty lists left out.
fn json_tls(out: &mut Vec<u8>, t: &crate::classify::TlsMeta) {
    out.extend_from_slice(b",\"tls\":{");
    let mut first = true;
    if let Some(v) = &t.version {
        json_field(out, &mut first, "version");
        json_str(out, v);
    }
    if let Some(v) = &t.sni {
        json_field(out, &mut first, "sni");
        json_str(out, v);
    }
    if !t.alpn.is_empty() {
        json_field(out, &mut first, "alpn");
        json_str_array(out, &t.alpn);
    }
    if let Some(v) = &t.alpn_selected {
        json_field(out, &mut first, "alpn_selected");
        json_str(out, v);
    }
    if let Some(v) = &t.ja4 {
        json_field(out, &mut first, "ja4");
        json_str(out, v);
    }
    if let Some(c) = &t.cert {
        json_field(out, &mut first, "cert");
        out.extend_from_slice(b"{\"subject\":");
        json_str(out, &c.subject);
        json_key_str(out, "issuer", &c.issuer);
        if !c.san.is_empty() {
            out.extend_from_slice(b",\"san\":");
            json_str_array(out, &c.san);
        }
        json_key_str(out, "not_before", &c.not_before);
        json_key_str(out, "not_after", &c.not_after);
        out.extend_from_slice(if c.self_signed {
            b",\"self_signed\":true}"
        } else {
            b",\"self_signed\":false}"
        });
    }
    out.push(b'}');
}

impl FlowView<'_> {
    /// Appends the flow as one JSON object (no newline). Hand-written for the envelope,
    /// which every flow has, and for the TLS and HTTP metadata, which most flows that
    /// carry metadata have; the rarer SSH, RDP and IKE metadata go through serde.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let f = self.flow;
        let c = self.class();
        let ext = self.external();
        // One reservation for the usual line: the pieces below then append without
        // growing the buffer.
        out.reserve(1024);
        out.extend_from_slice(b"{\"type\":\"flow\",\"id\":");
        json_u64(out, f.id);
        json_key_str(out, "transport", &transport_name(f.key.proto));
        json_endpoint(out, "client", f.client().addr, f.client().port);
        json_endpoint(out, "server", f.server().addr, f.server().port);
        // `service` is always present (null when the flow is no remote access or VPN);
        // the other optional fields only when known.
        let service = c.and_then(|c| c.service);
        match service {
            Some(s) => {
                json_key_str(out, "service", s.as_str());
                let family = match s.family() {
                    Family::RemoteAccess => "remote-access",
                    Family::Vpn => "vpn",
                    Family::Anonymiser => "anonymiser",
                };
                json_key_str(out, "family", family);
            }
            None => out.extend_from_slice(b",\"service\":null"),
        }
        if let Some(c) = c {
            json_key_str(out, "protocol", c.protocol);
            if let Some(v) = &c.extra.vendor {
                json_key_str(out, "vendor", v);
            }
            if let Some(p) = &c.extra.product {
                json_key_str(out, "product", p);
            }
            if !c.evidence.is_empty() {
                out.extend_from_slice(b",\"evidence\":[");
                for (i, e) in c.evidence.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"rule\":");
                    json_str(out, &e.rule);
                    json_key_str(out, "field", &e.field);
                    json_key_str(out, "value", &e.value);
                    out.push(b'}');
                }
                out.push(b']');
            }
            if let Some(w) = &c.extra.weak {
                json_key_str(out, "weak", w);
            }
        }
        out.extend_from_slice(if self.non_standard_port() {
            b",\"non_standard_port\":true"
        } else {
            b",\"non_standard_port\":false"
        });
        json_key_str(out, "external", ext.as_str());
        json_key_str(out, "direction", ext.direction());
        json_pair(out, "packets", f.packets);
        json_pair(out, "bytes", f.bytes);
        json_pair(out, "payload_bytes", f.payload_bytes);
        json_time(out, "first_seen", f.first_us);
        json_time(out, "last_seen", f.last_us);
        if f.key.proto == ipproto::TCP {
            json_tcp_flags(out, "tcp_flags_c2s", f.tcp_flags[0]);
            json_tcp_flags(out, "tcp_flags_s2c", f.tcp_flags[1]);
            out.extend_from_slice(if f.handshake {
                b",\"handshake\":true"
            } else {
                b",\"handshake\":false"
            });
        }
        let role = match f.role_by {
            crate::flow::RoleBy::Handshake => "handshake",
            crate::flow::RoleBy::Port => "port",
            crate::flow::RoleBy::FirstPacket => "first_packet",
            crate::flow::RoleBy::Content => "content",
        };
        json_key_str(out, "role_by", role);
        if f.vlan != 0 {
            out.extend_from_slice(b",\"vlan\":");
            json_u64(out, u64::from(f.vlan));
        }
        if f.depth != 0 {
            out.extend_from_slice(b",\"tunnel_depth\":");
            json_u64(out, u64::from(f.depth));
        }
        if f.fragments != 0 {
            out.extend_from_slice(b",\"fragments\":");
            json_u64(out, u64::from(f.fragments));
        }
        match f.end {
            Some(e) => json_key_str(out, "end", e.as_str()),
            None => out.extend_from_slice(b",\"end\":null"),
        }
        if let Some(c) = c {
            let meta = &c.extra.meta;
            if let Some(t) = &meta.tls {
                json_tls(out, t);
            }
            if let Some(t) = &meta.ssh {
                json_key_serde(out, "ssh", t);
            }
            if let Some(t) = &meta.rdp {
                json_key_serde(out, "rdp", t);
            }
            if let Some(t) = &meta.ike {
                json_key_serde(out, "ike", t);
            }
            if let Some(h) = &meta.http {
                // As serde writes HttpMeta: absent headers left out.
                out.extend_from_slice(b",\"http\":{\"method\":");
                json_str(out, &h.method);
                json_key_str(out, "uri", &h.uri);
                if let Some(v) = &h.host {
                    json_key_str(out, "host", v);
                }
                if let Some(v) = &h.user_agent {
                    json_key_str(out, "user_agent", v);
                }
                out.push(b'}');
            }
            if let Some(v) = &meta.version {
                json_key_str(out, "protocol_version", v);
            }
        }
        out.push(b'}');
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
        // Prefixes off byte boundaries, host bits given, whole spaces, single hosts.
        let n = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(n.contains(Addr::v4([172, 31, 255, 255])));
        assert!(!n.contains(Addr::v4([172, 32, 0, 0])));
        assert!(!n.contains(Addr::v4([172, 15, 255, 255])));
        assert_eq!(
            Cidr::parse("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        let v4_all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(v4_all.contains(Addr::v4([203, 0, 113, 9])));
        assert!(!v4_all.contains(Addr::from("2001:db8::1".parse::<IpAddr>().unwrap())));
        let all = Cidr::parse("::/0").unwrap();
        assert!(all.contains(Addr::from("2001:db8::1".parse::<IpAddr>().unwrap())));
        let host = Cidr::parse("192.0.2.7").unwrap();
        assert!(host.contains(Addr::v4([192, 0, 2, 7])));
        assert!(!host.contains(Addr::v4([192, 0, 2, 6])));
        let ll = Cidr::parse("fe80::/10").unwrap();
        assert!(ll.contains(Addr::from("febf::1".parse::<IpAddr>().unwrap())));
        assert!(!ll.contains(Addr::from("fec0::1".parse::<IpAddr>().unwrap())));
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
    fn json_pieces_are_valid_json() {
        let mut out = b"{\"x\":0".to_vec();
        json_time(&mut out, "t", 1_700_000_000_123_456);
        json_key_str(&mut out, "s", "a\"b\\c\u{1}日本");
        json_endpoint(&mut out, "e", Addr::v4([192, 0, 2, 255]), 65535);
        json_endpoint(
            &mut out,
            "v6",
            Addr::from("2001:db8::1".parse::<IpAddr>().unwrap()),
            0,
        );
        json_pair(&mut out, "p", [0, u64::MAX]);
        out.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["t"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["s"], "a\"b\\c\u{1}日本");
        assert_eq!(v["e"]["ip"], "192.0.2.255");
        assert_eq!(v["e"]["port"], 65535);
        assert_eq!(v["v6"]["ip"], "2001:db8::1");
        assert_eq!(v["p"]["s2c"], u64::MAX);
    }

    /// The word-at-a-time check agrees with the byte rule for every byte value at every
    /// position of a word and in the tail, and the strings it passes come out as serde
    /// writes them.
    #[test]
    fn escape_check_matches_the_byte_rule() {
        let plain = |b: &[u8]| {
            b.iter()
                .any(|&c| c < 0x20 || c == b'"' || c == b'\\' || c >= 0x7f)
        };
        for len in [1usize, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = v;
                    assert_eq!(
                        needs_escape(&b),
                        plain(&b),
                        "byte {v:#04x} at {at} of {len}"
                    );
                }
            }
        }
        for s in [
            "",
            "GET /index.html",
            "a\"b",
            "tab\there",
            "日本語",
            "x\u{7f}",
            "~}|{",
        ] {
            let mut out = Vec::new();
            json_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    /// Addresses are written as the standard library writes them, in quotes: every
    /// octet width in every position, and IPv6 (IPv4-mapped ones as IPv4).
    #[test]
    fn addresses_as_text() {
        let widths = [0u8, 7, 9, 10, 42, 99, 100, 199, 255];
        for a in widths {
            for b in widths {
                for o in [[a, b, b, a], [b, a, a, b], [a, a, a, a]] {
                    let mut out = Vec::new();
                    json_ip(&mut out, Addr::v4(o));
                    let want = format!("\"{}\"", std::net::Ipv4Addr::from(o));
                    assert_eq!(String::from_utf8(out).unwrap(), want);
                }
            }
        }
        for v6 in ["2001:db8::1", "::1", "fe80::1:2:3:4", "::"] {
            let ip: std::net::Ipv6Addr = v6.parse().unwrap();
            let mut out = Vec::new();
            json_ip(&mut out, Addr(ip.octets()));
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{ip}\""));
        }
    }

    #[test]
    fn numbers_and_times_as_text() {
        for v in [
            0u64,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            65535,
            1 << 32,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            json_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
        for us in [0u64, 1, 999_999, 1_700_000_000_123_456, 951_782_400_000_001] {
            let mut out = Vec::new();
            json_time(&mut out, "t", us);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(",\"t\":\"{}\"", Rfc3339(us))
            );
        }
    }

    /// The hand-written TLS metadata is what serde makes of the same value, with every
    /// optional field absent, present, and the certificate with and without names.
    #[test]
    fn tls_metadata_as_serde_writes_it() {
        use crate::classify::{CertMeta, TlsMeta};
        let cert = CertMeta {
            subject: "CN=vpn.example.jp, OU=FortiGate".into(),
            issuer: "CN=\"Example\" CA".into(),
            san: vec!["vpn.example.jp".into(), "*.example.jp".into()],
            not_before: "2024-01-01T00:00:00Z".into(),
            not_after: "2026-01-01T00:00:00Z".into(),
            self_signed: true,
        };
        let full = TlsMeta {
            version: Some("1.2".into()),
            sni: Some("vpn.example.jp".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
            alpn_selected: Some("h2".into()),
            ja4: Some("t13d1516h2_8daaf6152771_e5627efa2ab1".into()),
            cert: Some(cert.clone()),
        };
        let cases = [
            TlsMeta::default(),
            full.clone(),
            TlsMeta {
                version: None,
                sni: None,
                ..full.clone()
            },
            TlsMeta {
                alpn: Vec::new(),
                cert: Some(CertMeta {
                    san: Vec::new(),
                    self_signed: false,
                    ..cert
                }),
                ..full
            },
        ];
        for t in cases {
            let mut out = Vec::new();
            json_tls(&mut out, &t);
            let want = format!(",\"tls\":{}", serde_json::to_string(&t).unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn flags() {
        for (f, letters) in [
            (0x12u8, "SA"),
            (0x11, "FA"),
            (0x14, "RA"),
            (0x18, "PA"),
            (0, ""),
            (0xff, "SFRPAUEC"),
        ] {
            let mut out = Vec::new();
            json_tcp_flags(&mut out, "tcp_flags_c2s", f);
            let want = format!(",\"tcp_flags_c2s\":\"{letters}\"");
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
