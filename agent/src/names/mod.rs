//! Passive names: what the wire says about who an address is.
//!
//! External addresses get names from DNS answers (TTL respected); internal hosts from
//! DHCP (option 12), NetBIOS name service, LLMNR and mDNS; MAC addresses get a vendor from
//! the IEEE OUI registry when it is installed.
//!
//! [`harvest`] is the packet-path entry: one UDP datagram in, at most
//! [`MAX_OBS_PER_DATAGRAM`] [`Obs`] out, chosen by port. Each protocol lives in its own
//! module with the same shape: pure parsers over `&[u8]` (a view or an error, never a
//! panic) and a `harvest` that turns a parsed message into observations:
//! [`dns`] (DNS, and LLMNR and mDNS, which share its message format), [`dhcp`],
//! [`netbios`]. [`book::NameBook`] keeps the observations, bounded, and answers "what was
//! this address called when the connection started"; [`oui`] names MAC vendors.
//!
//! Every name that leaves this module is printable text: valid UTF-8, no control or
//! invisible formatting characters (they could garble or disguise a report line), at most
//! [`MAX_NAME_LEN`] bytes.

pub mod book;
pub mod dhcp;
pub mod dns;
pub mod netbios;
pub mod oui;

use serde::Serialize;
use std::net::IpAddr;

/// Longest name kept, in bytes: the longest DNS name in text form (RFC 1035 section
/// 3.1: 255 octets on the wire, minus the first length octet and the root label).
pub const MAX_NAME_LEN: usize = 253;

/// Observations [`harvest`] pushes for one datagram.
pub const MAX_OBS_PER_DATAGRAM: usize = 32;

/// UDP ports of the naming protocols.
pub mod port {
    /// DNS (RFC 1035 section 4.2.1); answers come from this port.
    pub const DNS: u16 = 53;
    /// DHCP/BOOTP server (RFC 2131 section 4.1).
    pub const DHCP_SERVER: u16 = 67;
    /// DHCP/BOOTP client.
    pub const DHCP_CLIENT: u16 = 68;
    /// NetBIOS name service (RFC 1002 section 4.2).
    pub const NETBIOS_NS: u16 = 137;
    /// Multicast DNS (RFC 6762 section 3).
    pub const MDNS: u16 = 5353;
    /// LLMNR (RFC 4795 section 2); responses come from this port.
    pub const LLMNR: u16 = 5355;
}

/// Where a name came from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NameSource {
    /// A unicast DNS answer.
    Dns,
    /// A DHCP host name (option 12) or client FQDN (option 81).
    Dhcp,
    /// A NetBIOS name registration or positive query response.
    Netbios,
    /// An LLMNR answer.
    Llmnr,
    /// A multicast DNS answer or announcement.
    Mdns,
}

impl NameSource {
    /// The lowercase name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Dns => "dns",
            NameSource::Dhcp => "dhcp",
            NameSource::Netbios => "netbios",
            NameSource::Llmnr => "llmnr",
            NameSource::Mdns => "mdns",
        }
    }

    /// Whether names from this source hold only for their record's TTL (DNS, LLMNR,
    /// mDNS) rather than for as long as the host keeps its address (DHCP, NetBIOS).
    pub fn is_timed(self) -> bool {
        matches!(self, NameSource::Dns | NameSource::Llmnr | NameSource::Mdns)
    }
}

/// One observation from one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obs {
    /// `name` belongs to `ip` (DNS: for `ttl` seconds from when it was seen).
    Name {
        /// The address named.
        ip: IpAddr,
        /// The name: printable, at most [`MAX_NAME_LEN`] bytes.
        name: String,
        /// The protocol that said so.
        source: NameSource,
        /// Seconds the name holds from when it was seen, where the protocol says.
        ttl: Option<u32>,
    },
    /// `ip` was leased to / used by the interface with this MAC (DHCP).
    Mac {
        /// The address.
        ip: IpAddr,
        /// The client hardware address.
        mac: [u8; 6],
        /// The protocol that said so.
        source: NameSource,
    },
}

impl Obs {
    /// The address the observation is about.
    pub fn ip(&self) -> IpAddr {
        match self {
            Obs::Name { ip, .. } | Obs::Mac { ip, .. } => *ip,
        }
    }
}

/// Parses one UDP datagram if its ports belong to a naming protocol, pushing at most
/// [`MAX_OBS_PER_DATAGRAM`] observations. Cheap when the ports do not match (it is called
/// for every UDP packet on the packet path: a port check first, nothing allocated
/// otherwise).
///
/// Ports: DNS answers come from 53, LLMNR answers from 5355; mDNS (5353), NetBIOS name
/// service (137) and DHCP (67/68) are recognised on either side. One protocol per
/// datagram, in that order.
pub fn harvest(sport: u16, dport: u16, payload: &[u8], out: &mut Vec<Obs>) {
    let either = |p: u16| sport == p || dport == p;
    if sport == port::DNS {
        dns::harvest(payload, NameSource::Dns, out);
    } else if either(port::MDNS) {
        dns::harvest(payload, NameSource::Mdns, out);
    } else if sport == port::LLMNR {
        dns::harvest(payload, NameSource::Llmnr, out);
    } else if either(port::NETBIOS_NS) {
        netbios::harvest(payload, out);
    } else if either(port::DHCP_SERVER) || either(port::DHCP_CLIENT) {
        dhcp::harvest(payload, out);
    }
}

/// Whether `ip` can belong to one host: not unspecified, loopback, multicast or the
/// IPv4 limited broadcast (DHCP's 0.0.0.0 and DNS sinkhole answers end here).
pub fn is_host_addr(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let v4_broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || v4_broadcast)
}

/// Whether `c` would hide or reorder text around it: zero-width characters and bidi
/// controls (Unicode category Cf in the ranges names can carry), which `char::is_control`
/// does not cover.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// `s` when it is a usable name: not empty, at most [`MAX_NAME_LEN`] bytes, no control
/// or invisible characters.
pub fn printable(s: &str) -> bool {
    // ASCII (nearly every name) has no invisible characters and its controls are the
    // bytes below 0x20 and DEL: a byte test answers for it, characters for the rest.
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && (s.bytes().all(|b| (0x20..0x7f).contains(&b))
            || (!s.is_ascii() && s.chars().all(|c| !c.is_control() && !is_invisible(c))))
}

/// A name from free-form text bytes (DHCP option 12, a NetBIOS name): NULs and white space
/// trimmed at both ends, then valid UTF-8 and [`printable`], or `None`.
pub fn text_name(bytes: &[u8]) -> Option<String> {
    let trim = |b: &u8| *b == 0 || b.is_ascii_whitespace();
    let start = bytes.iter().position(|b| !trim(b))?;
    let end = bytes.iter().rposition(|b| !trim(b))?;
    let s = std::str::from_utf8(bytes.get(start..=end)?).ok()?;
    printable(s).then(|| s.to_string())
}

/// Pushes observations for one datagram, up to [`MAX_OBS_PER_DATAGRAM`], dropping
/// addresses no single host has.
struct Sink<'a> {
    out: &'a mut Vec<Obs>,
    left: usize,
}

impl<'a> Sink<'a> {
    fn new(out: &'a mut Vec<Obs>) -> Sink<'a> {
        Sink {
            out,
            left: MAX_OBS_PER_DATAGRAM,
        }
    }

    fn is_full(&self) -> bool {
        self.left == 0
    }

    fn push(&mut self, obs: Obs) {
        if self.left > 0 && is_host_addr(obs.ip()) {
            self.out.push(obs);
            self.left -= 1;
        }
    }

    fn name(&mut self, ip: IpAddr, name: String, source: NameSource, ttl: Option<u32>) {
        let ip = ip.to_canonical();
        self.push(Obs::Name {
            ip,
            name,
            source,
            ttl,
        });
    }

    fn mac(&mut self, ip: IpAddr, mac: [u8; 6], source: NameSource) {
        // An all-zero or group (multicast) address is no interface's.
        if mac != [0; 6] && mac[0] & 0x01 == 0 {
            let ip = ip.to_canonical();
            self.push(Obs::Mac { ip, mac, source });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Parses a hex fixture.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The DNS answer of `dns::tests::CNAME_ANSWER` (corpus `ndpi-1kxun.pcap` frame 474).
    fn dns_answer() -> Vec<u8> {
        hex(dns::tests::CNAME_ANSWER)
    }

    #[test]
    fn source_names_match_serde() {
        for s in [
            NameSource::Dns,
            NameSource::Dhcp,
            NameSource::Netbios,
            NameSource::Llmnr,
            NameSource::Mdns,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn dispatch_by_port() {
        let msg = dns_answer();
        let mut out = Vec::new();
        // A DNS answer goes from port 53 to the client.
        harvest(53, 54420, &msg, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|o| matches!(
            o,
            Obs::Name {
                source: NameSource::Dns,
                ..
            }
        )));
        // The same bytes towards port 53 are not an answer anyone gave.
        out.clear();
        harvest(54420, 53, &msg, &mut out);
        assert!(out.is_empty());
        // Other ports: nothing, nothing allocated.
        let mut none = Vec::new();
        harvest(443, 50000, &msg, &mut none);
        assert!(none.is_empty());
        assert_eq!(none.capacity(), 0);
        // mDNS on either side.
        harvest(40000, 5353, &msg, &mut out);
        assert!(out.iter().all(|o| matches!(
            o,
            Obs::Name {
                source: NameSource::Mdns,
                ..
            }
        )));
        assert!(!out.is_empty());
    }

    #[test]
    fn host_addresses() {
        assert!(is_host_addr(Ipv4Addr::new(10, 0, 2, 15).into()));
        assert!(!is_host_addr(Ipv4Addr::UNSPECIFIED.into()));
        assert!(!is_host_addr(Ipv4Addr::BROADCAST.into()));
        assert!(!is_host_addr(Ipv4Addr::new(224, 0, 0, 251).into()));
        assert!(!is_host_addr(Ipv4Addr::LOCALHOST.into()));
        assert!(!is_host_addr("::ffff:0.0.0.0".parse().unwrap()));
        assert!(is_host_addr("fe80::c50d:519f:96a4:e108".parse().unwrap()));
    }

    #[test]
    fn text_names_are_trimmed_and_printable() {
        assert_eq!(text_name(b"  kevin-PC\0\0").as_deref(), Some("kevin-PC"));
        assert_eq!(
            text_name("小佛專機".as_bytes()).as_deref(),
            Some("小佛專機")
        );
        assert_eq!(text_name(b"bad\x07bell"), None);
        assert_eq!(text_name(b"\xff\xfe"), None);
        assert_eq!(text_name(b"   "), None);
        assert_eq!(text_name("a\u{202e}b".as_bytes()), None);
        assert_eq!(text_name(&[b'a'; MAX_NAME_LEN + 1]), None);
        assert!(text_name(&[b'a'; MAX_NAME_LEN]).is_some());
    }

    /// The byte test for ASCII gives the character rule's answer: every ASCII byte
    /// alone, at either end of a name and beside non-ASCII text.
    #[test]
    fn printable_agrees_with_the_character_rule() {
        let by_chars = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_NAME_LEN
                && s.chars().all(|c| !c.is_control() && !is_invisible(c))
        };
        for b in 0u8..0x80 {
            let c = char::from(b);
            for s in [
                c.to_string(),
                format!("host{c}"),
                format!("{c}.example"),
                format!("é{c}"),
                format!("{c}\u{200b}"),
                format!("\u{85}{c}"),
            ] {
                assert_eq!(printable(&s), by_chars(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn sink_caps_and_filters() {
        let mut out = Vec::new();
        let mut s = Sink::new(&mut out);
        s.mac(Ipv4Addr::new(10, 0, 0, 1).into(), [0; 6], NameSource::Dhcp);
        s.mac(
            Ipv4Addr::new(10, 0, 0, 1).into(),
            [1, 0, 0, 0, 0, 1],
            NameSource::Dhcp,
        );
        s.name(
            Ipv4Addr::BROADCAST.into(),
            "x".into(),
            NameSource::Dhcp,
            None,
        );
        for i in 0..100u8 {
            s.name(
                Ipv4Addr::new(10, 0, 0, i).into(),
                "x".into(),
                NameSource::Dhcp,
                None,
            );
        }
        assert!(s.is_full());
        assert_eq!(out.len(), MAX_OBS_PER_DATAGRAM);
        // 10.0.0.0 is a host address too; the first pushes are kept.
        assert_eq!(out[0].ip(), IpAddr::from(Ipv4Addr::new(10, 0, 0, 0)));
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let mut out = Vec::new();
        Sink::new(&mut out).name(
            "::ffff:10.0.0.7".parse().unwrap(),
            "h".into(),
            NameSource::Dhcp,
            None,
        );
        assert_eq!(out[0].ip(), IpAddr::from(Ipv4Addr::new(10, 0, 0, 7)));
    }

    /// Every observation of a corpus capture (`../shared/corpus/pcap`), with its time;
    /// `None` when the corpus is not beside the repository.
    fn corpus(file: &str) -> Option<Vec<(u64, Obs)>> {
        use crate::capture::CaptureFile;
        use crate::decode::{ipproto, Decoder};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/corpus/pcap")
            .join(file);
        if !path.exists() {
            eprintln!("note: {} is absent; skipping", path.display());
            return None;
        }
        let mut cap = CaptureFile::open(&path).unwrap();
        let mut dec = Decoder::new();
        let mut all = Vec::new();
        cap.for_each_packet(|p| {
            for l4 in dec.decode(p.link, p.data).iter() {
                if l4.proto == ipproto::UDP {
                    let mut out = Vec::new();
                    harvest(l4.sport, l4.dport, l4.payload, &mut out);
                    all.extend(out.into_iter().map(|o| (p.ts_us, o)));
                }
            }
        })
        .unwrap();
        Some(all)
    }

    /// What tshark shows in these captures (frame numbers cited), read back from a book.
    #[test]
    fn corpus_captures_name_their_hosts() {
        use book::NameBook;
        let src = |n: &str, s| (n.to_string(), s);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();

        if let Some(all) = corpus("ndpi-gnutella.pcap") {
            let mut b = NameBook::default();
            all.iter().for_each(|(t, o)| b.observe(*t, o));
            // Frame 7 (DHCPREQUEST), 21 (mDNS), 33/43 (NetBIOS registrations).
            assert_eq!(
                b.all_names(ip("10.0.2.15")),
                [
                    src("MSEDGEWIN10", NameSource::Dhcp),
                    src("MSEDGEWIN10", NameSource::Netbios),
                    src("msedgewin10.local", NameSource::Mdns),
                ]
            );
            assert_eq!(
                b.mac_of(ip("10.0.2.15")),
                Some([0x08, 0x00, 0x27, 0xe6, 0xe5, 0x59])
            );
            assert_eq!(
                b.all_names(ip("fe80::c50d:519f:96a4:e108")),
                [src("msedgewin10.local", NameSource::Mdns)]
            );
            // WORKGROUP<00> (frame 34) is a group name.
            assert!(all
                .iter()
                .all(|(_, o)| !matches!(o, Obs::Name { name, .. } if name == "WORKGROUP")));
        }

        if let Some(all) = corpus("ndpi-1kxun.pcap") {
            let mut b = NameBook::default();
            all.iter().for_each(|(t, o)| b.observe(*t, o));
            // Frame 675: DHCPINFORM with option 12.
            assert_eq!(
                b.names_at(ip("192.168.5.9"), 0),
                [src("Joanna-PC", NameSource::Dhcp)]
            );
            assert_eq!(
                b.mac_of(ip("192.168.5.9")),
                Some([0x70, 0xf1, 0xa1, 0xf8, 0x2a, 0xfd])
            );
            // Frame 474: the CNAME answer, TTL 299.
            let (t, _) = all
                .iter()
                .find(|(_, o)| o.ip() == ip("203.205.151.234"))
                .unwrap();
            assert_eq!(
                b.names_at(ip("203.205.151.234"), t + 298_000_000),
                [
                    src("proxy-set1.video.qq.com", NameSource::Dns),
                    src("vv.video.qq.com", NameSource::Dns)
                ]
            );
            assert!(b
                .names_at(ip("203.205.151.234"), t + 300_000_000)
                .is_empty());
        }

        if let Some(all) = corpus("ndpi-netbios.pcap") {
            // Frames 69 and 107, the only positive NB query responses; the NBSTAT
            // responses and 250 queries give nothing.
            let got: Vec<_> = all.iter().map(|(_, o)| o.clone()).collect();
            let nb = |a: &str, n: &str| Obs::Name {
                ip: ip(a),
                name: n.into(),
                source: NameSource::Netbios,
                ttl: Some(300_000),
            };
            assert_eq!(got, [nb("10.0.4.24", "GUNNAR"), nb("10.0.5.1", "GURU")]);
        }
    }
}
