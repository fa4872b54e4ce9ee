//! Common hospital and enterprise protocols: name them, so that "unknown" means unknown.
//!
//! These detectors run last, after every remote-access and VPN detector, and their only
//! promise is a protocol name (`dns`, `smb`, `dicom`, …) with evidence: they never set a
//! service, because none of them is an external connection point by itself. Being last
//! makes them dangerous in one way: a wrong `Yes` here would hide a flow that a VPN
//! detector was still waiting on. So every check is structural — several fields that must
//! agree (a length that equals the rest, a magic value, a version, a name that parses) —
//! and never a single byte or a port alone. Ports only choose a name among protocols that
//! share one wire format byte for byte (DNS, mDNS and LLMNR; an FTP or SMTP `220` banner),
//! or confirm a structurally weak format that the other side never answered (a Modbus
//! request to 502, an NTP client request to 123).
//!
//! UDP flows are judged by the client's first datagram (the server's only while the
//! client has sent nothing); TCP flows by either direction's opening bytes, because a
//! capture that starts mid-session still shows the server's next message whole.
//!
//! Every protocol lives in its own submodule with the same inner shape: pure parsers over
//! `&[u8]` returning [`Parse`], and a `check(&Cx) -> Verdict` that applies them to the
//! flow's opening bytes (TCP) or first datagrams (UDP). [`detect`] asks them in order,
//! strictest first: `Yes` from any wins, `Wait` if any may still decide, `No` only when
//! all say `No`.

/// Unwraps a [`Parse::Ok`], or returns the `Short` or `Bad` from the enclosing parser:
/// `?` for [`Parse`].
macro_rules! need {
    ($e:expr) => {
        match $e {
            $crate::classify::common::Parse::Ok(v) => v,
            $crate::classify::common::Parse::Short => return $crate::classify::common::Parse::Short,
            $crate::classify::common::Parse::Bad => return $crate::classify::common::Parse::Bad,
        }
    };
}

pub mod ber;
pub mod bittorrent;
pub mod dcerpc;
pub mod dhcp;
pub mod dhcpv6;
pub mod dicom;
pub mod dns;
pub mod dropbox;
pub mod dtls;
pub mod ftp;
pub mod gnutella;
pub mod hl7;
pub mod imap;
pub mod iscsi;
pub mod kerberos;
pub mod ldap;
pub mod mining;
pub mod modbus;
pub mod mqtt;
pub mod mysql;
pub mod natpmp;
pub mod netbios;
pub mod ntp;
pub mod pop3;
pub mod postgresql;
pub mod quic;
pub mod radius;
pub mod rsync;
pub mod rtsp;
pub mod sip;
pub mod smb;
pub mod smtp;
pub mod snmp;
pub mod ssdp;
pub mod stun;
pub mod sunrpc;
pub mod syslog;
pub mod tds;
pub mod text;
pub mod tftp;
pub mod wsd;
pub mod zabbix;

use super::{Cx, On, Verdict};
use crate::flow::reassembly::Stream;

/// What a parser concluded from the bytes it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// The bytes are this protocol: the parsed view.
    Ok(T),
    /// Consistent so far; more bytes are needed to decide.
    Short,
    /// The bytes are not this protocol.
    Bad,
}

impl<T> Parse<T> {
    /// Maps the parsed view.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parse<U> {
        match self {
            Parse::Ok(v) => Parse::Ok(f(v)),
            Parse::Short => Parse::Short,
            Parse::Bad => Parse::Bad,
        }
    }

    /// Chains a parser over the view: its answer replaces `Ok`.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Parse<U>) -> Parse<U> {
        match self {
            Parse::Ok(v) => f(v),
            Parse::Short => Parse::Short,
            Parse::Bad => Parse::Bad,
        }
    }

    /// Combines two independent chances (e.g. the two directions of a flow): `Ok` from
    /// either wins (this one first), `Short` if either may still become `Ok`, else `Bad`.
    pub fn or_else(self, other: impl FnOnce() -> Parse<T>) -> Parse<T> {
        match self {
            Parse::Ok(v) => Parse::Ok(v),
            Parse::Short => match other() {
                Parse::Ok(v) => Parse::Ok(v),
                _ => Parse::Short,
            },
            Parse::Bad => other(),
        }
    }

    /// The view, if `Ok`.
    pub fn ok(self) -> Option<T> {
        match self {
            Parse::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// `Bad` stays `Bad`; `Short` and `Ok` are still possible.
    pub fn is_bad(&self) -> bool {
        matches!(self, Parse::Bad)
    }
}

/// `Ok(())` when `cond`, else `Bad`: for the many "this field must be" checks.
pub fn require(cond: bool) -> Parse<()> {
    if cond {
        Parse::Ok(())
    } else {
        Parse::Bad
    }
}

/// Bytes `off..off + n` of `b`, or `Short` when `b` ends before.
pub fn take(b: &[u8], off: usize, n: usize) -> Parse<&[u8]> {
    match off.checked_add(n).and_then(|end| b.get(off..end)) {
        Some(s) => Parse::Ok(s),
        None => Parse::Short,
    }
}

/// Byte `off` of `b`, or `Short`.
pub fn byte(b: &[u8], off: usize) -> Parse<u8> {
    match b.get(off) {
        Some(&v) => Parse::Ok(v),
        None => Parse::Short,
    }
}

/// Big-endian u16 at `off`, or `Short`.
pub fn be16(b: &[u8], off: usize) -> Parse<u16> {
    match super::util::be16(b, off) {
        Some(v) => Parse::Ok(v),
        None => Parse::Short,
    }
}

/// Big-endian u32 at `off`, or `Short`.
pub fn be32(b: &[u8], off: usize) -> Parse<u32> {
    match super::util::be32(b, off) {
        Some(v) => Parse::Ok(v),
        None => Parse::Short,
    }
}

/// Little-endian u16 at `off`, or `Short`.
pub fn le16(b: &[u8], off: usize) -> Parse<u16> {
    match take(b, off, 2) {
        Parse::Ok(&[lo, hi]) => Parse::Ok(u16::from_le_bytes([lo, hi])),
        _ => Parse::Short,
    }
}

/// Little-endian u32 at `off`, or `Short`.
pub fn le32(b: &[u8], off: usize) -> Parse<u32> {
    match super::util::le32(b, off) {
        Some(v) => Parse::Ok(v),
        None => Parse::Short,
    }
}

/// Runs `parse` over one TCP direction's opening bytes. `Short` becomes `Bad` once the
/// direction can grow no more (window full or an unfillable gap).
pub fn stream<'a, T>(s: &'a Stream, parse: impl FnOnce(&'a [u8]) -> Parse<T>) -> Parse<T> {
    match parse(s.bytes()) {
        Parse::Short if s.is_done() => Parse::Bad,
        p => p,
    }
}

/// Runs `parse` over the first datagram of one UDP direction; `Short` while the
/// direction has sent nothing. A datagram is complete, so a parser's `Short` on it means
/// `Bad` (parsers that accept a datagram cut at the capture cap say so themselves).
pub fn first_datagram<'a, T>(
    cx: &Cx<'a>,
    s: &'a Stream,
    parse: impl FnOnce(&'a [u8]) -> Parse<T>,
) -> Parse<T> {
    match cx.datagrams(s).next() {
        None => Parse::Short,
        Some(d) => match parse(d) {
            Parse::Short => Parse::Bad,
            p => p,
        },
    }
}

/// UDP: the client's first datagram decides when there is one, because a flow's first
/// datagram is its opening and waiting for the server to prove what the client's bytes
/// did not would hold every unknown flow open; the server's first datagram decides only
/// while the client has sent nothing (the capture began after it, or the client's side
/// is not seen).
pub fn opening<'a, T>(
    cx: &Cx<'a>,
    client: impl FnOnce(&'a [u8]) -> Parse<T>,
    server: impl FnOnce(&'a [u8]) -> Parse<T>,
) -> Parse<T> {
    if cx.datagrams(cx.c2s).next().is_some() {
        first_datagram(cx, cx.c2s, client)
    } else {
        first_datagram(cx, cx.s2c, server)
    }
}

/// Turns a check's conclusion into the framework's answer: `Short` waits for more bytes
/// unless none will come.
pub fn finish(cx: &Cx<'_>, p: Parse<super::Classification>) -> Verdict {
    match p {
        Parse::Ok(c) => Verdict::Yes(c),
        Parse::Short if !cx.last => Verdict::Wait,
        _ => Verdict::No,
    }
}

/// A protocol check.
struct Check {
    on: On,
    check: fn(&Cx<'_>) -> Verdict,
}

/// The checks, strictest first (long magic values before text heuristics). A `Yes` from
/// an earlier one ends the search.
static CHECKS: &[Check] = &[
    Check {
        on: On::Tcp,
        check: smb::check,
    },
    Check {
        on: On::Tcp,
        check: dicom::check,
    },
    Check {
        on: On::Tcp,
        check: hl7::check,
    },
    Check {
        on: On::Tcp,
        check: bittorrent::check_tcp,
    },
    Check {
        on: On::Udp,
        check: bittorrent::check_udp,
    },
    Check {
        on: On::Tcp,
        check: mining::check,
    },
    Check {
        on: On::Tcp,
        check: gnutella::check_tcp,
    },
    Check {
        on: On::Udp,
        check: gnutella::check_udp,
    },
    Check {
        on: On::Tcp,
        check: zabbix::check,
    },
    Check {
        on: On::Tcp,
        check: rsync::check,
    },
    Check {
        on: On::Tcp,
        check: iscsi::check,
    },
    Check {
        on: On::Tcp,
        check: dcerpc::check,
    },
    Check {
        on: On::Both,
        check: stun::check,
    },
    Check {
        on: On::Udp,
        check: dhcp::check,
    },
    Check {
        on: On::Udp,
        check: quic::check,
    },
    Check {
        on: On::Udp,
        check: dtls::check,
    },
    Check {
        on: On::Both,
        check: kerberos::check,
    },
    Check {
        on: On::Both,
        check: netbios::check,
    },
    Check {
        on: On::Both,
        check: dns::check,
    },
    Check {
        on: On::Tcp,
        check: tds::check,
    },
    Check {
        on: On::Tcp,
        check: postgresql::check,
    },
    Check {
        on: On::Tcp,
        check: mysql::check,
    },
    Check {
        on: On::Both,
        check: ldap::check,
    },
    Check {
        on: On::Udp,
        check: snmp::check,
    },
    Check {
        on: On::Udp,
        check: radius::check,
    },
    Check {
        on: On::Both,
        check: sunrpc::check,
    },
    Check {
        on: On::Tcp,
        check: mqtt::check,
    },
    Check {
        on: On::Udp,
        check: dhcpv6::check,
    },
    Check {
        on: On::Tcp,
        check: modbus::check,
    },
    Check {
        on: On::Both,
        check: sip::check,
    },
    Check {
        on: On::Tcp,
        check: rtsp::check,
    },
    Check {
        on: On::Udp,
        check: ssdp::check,
    },
    Check {
        on: On::Udp,
        check: wsd::check,
    },
    Check {
        on: On::Udp,
        check: tftp::check,
    },
    Check {
        on: On::Udp,
        check: dropbox::check,
    },
    Check {
        on: On::Tcp,
        check: imap::check,
    },
    Check {
        on: On::Tcp,
        check: pop3::check,
    },
    Check {
        on: On::Tcp,
        check: smtp::check,
    },
    Check {
        on: On::Tcp,
        check: ftp::check,
    },
    Check {
        on: On::Both,
        check: syslog::check,
    },
    Check {
        on: On::Udp,
        check: ntp::check,
    },
    Check {
        on: On::Udp,
        check: natpmp::check,
    },
];

// One bit per check in the mask of [`detect_rest`].
const _: () = assert!(CHECKS.len() <= u64::BITS as usize);

/// Names a common protocol: `Yes` from the first check that is sure, `Wait` while any
/// may still decide, `No` when all say the bytes are none of them.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    detect_rest(cx, &mut 0)
}

/// [`detect`] for a flow asked again as its bytes grow: the checks whose bit is set in
/// `no` (bit i for `CHECKS[i]`) said `No` before and are skipped; each that says `No`
/// now gets its bit. Most flows that come here are asked several times while one
/// check waits for the other side (a server banner, a reply), and the other thirty-odd
/// checks need not read the same bytes again.
pub fn detect_rest(cx: &Cx<'_>, no: &mut u64) -> Verdict {
    let mut waiting = false;
    for (i, c) in CHECKS.iter().enumerate() {
        let bit = 1u64 << i;
        if *no & bit != 0 {
            continue;
        }
        let applies = match c.on {
            On::Tcp => cx.is_tcp(),
            On::Udp => cx.is_udp(),
            On::Both => cx.is_tcp() || cx.is_udp(),
        };
        if !applies {
            *no |= bit;
            continue;
        }
        match (c.check)(cx) {
            Verdict::Yes(cl) => return Verdict::Yes(cl),
            Verdict::Wait | Verdict::Claim => waiting = true,
            Verdict::No => *no |= bit,
        }
    }
    if waiting {
        Verdict::Wait
    } else {
        Verdict::No
    }
}

/// Test support: flows built from byte fixtures.
#[cfg(test)]
pub mod testing {
    use super::super::{Classification, Cx, Verdict};
    use crate::decode::ipproto;
    use crate::flow::reassembly::Stream;
    use crate::rules::Rules;

    /// A flow's opening bytes, built by hand.
    pub struct Flow {
        proto: u8,
        cport: u16,
        sport: u16,
        c2s: Stream,
        s2c: Stream,
        next: [u32; 2],
    }

    impl Flow {
        /// A TCP flow between the ports.
        pub fn tcp(cport: u16, sport: u16) -> Flow {
            let mut f = Flow {
                proto: ipproto::TCP,
                cport,
                sport,
                c2s: Stream::default(),
                s2c: Stream::default(),
                next: [1, 1],
            };
            f.c2s.syn(0);
            f.s2c.syn(0);
            f
        }

        /// A UDP flow between the ports.
        pub fn udp(cport: u16, sport: u16) -> Flow {
            Flow {
                proto: ipproto::UDP,
                ..Flow::tcp(cport, sport)
            }
        }

        /// Client sends `b` (a segment or a datagram).
        pub fn c2s(mut self, b: &[u8]) -> Flow {
            self.add(0, b);
            self
        }

        /// Server sends `b`.
        pub fn s2c(mut self, b: &[u8]) -> Flow {
            self.add(1, b);
            self
        }

        fn add(&mut self, d: usize, b: &[u8]) {
            let s = if d == 0 { &mut self.c2s } else { &mut self.s2c };
            if self.proto == ipproto::UDP {
                s.add_datagram(b);
            } else {
                s.add_segment(self.next[d], b);
                self.next[d] = self.next[d].wrapping_add(b.len() as u32);
            }
        }

        /// Runs `check` as the framework would, with `last` as given.
        pub fn run(&self, check: fn(&Cx<'_>) -> Verdict, last: bool) -> Verdict {
            static RULES: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
            let rules = RULES.get_or_init(|| Rules::defaults().expect("built-in rules"));
            let cx = Cx {
                proto: self.proto,
                client_port: self.cport,
                server_port: self.sport,
                c2s: &self.c2s,
                s2c: &self.s2c,
                last,
                rules,
            };
            check(&cx)
        }

        /// The classification `check` gives while more bytes may come, or a panic.
        pub fn yes(&self, check: fn(&Cx<'_>) -> Verdict) -> Classification {
            match self.run(check, false) {
                Verdict::Yes(c) => c,
                v => panic!("expected Yes, got {v:?}"),
            }
        }

        /// `check` says `No` (while more bytes may come).
        pub fn is_no(&self, check: fn(&Cx<'_>) -> Verdict) -> bool {
            matches!(self.run(check, false), Verdict::No)
        }

        /// `check` says `Wait` (while more bytes may come).
        pub fn is_wait(&self, check: fn(&Cx<'_>) -> Verdict) -> bool {
            matches!(self.run(check, false), Verdict::Wait)
        }

        /// `check` says `No` once no more bytes will come.
        pub fn is_no_at_end(&self, check: fn(&Cx<'_>) -> Verdict) -> bool {
            matches!(self.run(check, true), Verdict::No)
        }
    }

    /// Bytes from a hex string (whitespace ignored), for fixtures copied from captures.
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|c| !c.is_ascii_whitespace())
            .map(|c| match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => panic!("not hex: {c}"),
            })
            .collect();
        assert!(digits.len() % 2 == 0, "odd hex length");
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Flow;
    use super::*;

    #[test]
    fn or_else_prefers_ok_then_short() {
        assert_eq!(Parse::<u8>::Bad.or_else(|| Parse::Ok(1)), Parse::Ok(1));
        assert_eq!(Parse::Short.or_else(|| Parse::Ok(2)), Parse::Ok(2));
        assert_eq!(Parse::Ok(3).or_else(|| Parse::Ok(4)), Parse::Ok(3));
        assert_eq!(Parse::<u8>::Short.or_else(|| Parse::Bad), Parse::Short);
        assert_eq!(Parse::<u8>::Bad.or_else(|| Parse::Short), Parse::Short);
        assert_eq!(Parse::<u8>::Bad.or_else(|| Parse::Bad), Parse::Bad);
    }

    #[test]
    fn take_never_panics_near_usize_max() {
        assert_eq!(take(b"abc", usize::MAX, 2), Parse::Short);
        assert_eq!(take(b"abc", 1, usize::MAX), Parse::Short);
        assert_eq!(take(b"abc", 1, 2), Parse::Ok(&b"bc"[..]));
    }

    #[test]
    fn detect_combines_yes_wait_no() {
        // A DNS query (RFC 1035 4.1) is named whatever else says.
        let q = testing::hex("abcd 0100 0001 0000 0000 0000 0365 7878 0000 0100 01");
        let f = Flow::udp(40000, 53).c2s(&q);
        assert!(matches!(f.run(detect, false), Verdict::Yes(c) if c.protocol == "dns"));
        // Two bytes of TCP could still be many things: wait, then give up at the end.
        let f = Flow::tcp(40000, 5000).c2s(b"\x00\x00");
        assert!(f.is_wait(detect));
        assert!(f.is_no_at_end(detect));
        // Random bytes in both directions are nothing of ours.
        let f = Flow::tcp(40000, 5000).c2s(&[0x5a; 300]).s2c(&[0xa7; 300]);
        assert!(f.is_no(detect));
        let f = Flow::udp(40000, 5000).c2s(&[0x5a; 300]).s2c(&[0xa7; 300]);
        assert!(f.is_no(detect));
    }

    /// Mutated openings (bit flips, cuts, splices of the test fixtures' shapes) never
    /// make a check panic, in either transport and with or without more bytes to come,
    /// and whatever they name carries no service. A cheap stand-in for the fuzz target,
    /// run by every `cargo test`.
    #[test]
    fn mutated_openings_never_panic() {
        let seeds: [&[u8]; 12] = [
            b"\x00\x00\x00\xeb\x6a\x81\xe8\x30\x81\xe5\xa1\x03\x02\x01\x05\xa2\x03\x02\x01\x0a",
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
            b"\x00\x00\x01\x00\xfeSMB\x40\x00\x01\x00\x00\x00\x00\x00\x01\x00\x1f\x00\x09\x00\x00\x00",
            b"\x0bMSH|^~\\&|A|B|C|D|20110613083617||ADT^A01|1|P|2.3\r",
            b"\x01\x00\x00\x00\x00\x80\x00\x01\x00\x00ORTHANC         STORESCU        ",
            b"\x00\x01\x00\x08\x21\x12\xa4\x42abcdefghijkl\x80\x22\x00\x04test",
            b"\xc0\x00\x00\x00\x01\x08\x83\x94\xc8\xf0\x3e\x51\x57\x08\x00\x00\x44\x9e",
            b"<134>Jan  2 10:09:52 host app[1]: message\n",
            b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 REGISTER\r\n\r\n",
            b"\x30\x29\x02\x01\x00\x04\x06public\xa1\x1c\x02\x04\x4b\x78\x1a\x6e\x02\x01\x00",
            b"ZBXD\x01\x0a\x00\x00\x00\x00\x00\x00\x00proc.num[]",
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000u32 {
            let seed = seeds[(next() % seeds.len() as u64) as usize];
            let mut b = seed.to_vec();
            for _ in 0..(next() % 4) {
                let i = (next() % b.len().max(1) as u64) as usize;
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << (next() % 8);
                }
            }
            if next() % 3 == 0 {
                b.truncate((next() % (b.len() as u64 + 1)) as usize);
            }
            if next() % 4 == 0 {
                b.extend_from_slice(seeds[(next() % seeds.len() as u64) as usize]);
            }
            let ports = [
                53, 88, 137, 138, 139, 445, 3478, 5353, 514, 161, 502, 123, 21, 25,
            ];
            let port = ports[(next() % ports.len() as u64) as usize];
            let f = if round % 2 == 0 {
                Flow::tcp(40000, port)
            } else {
                Flow::udp(40000, port)
            };
            let f = if next() % 2 == 0 {
                f.c2s(&b)
            } else {
                f.s2c(&b)
            };
            let f = if next() % 3 == 0 {
                f.s2c(&b).c2s(&b)
            } else {
                f
            };
            for last in [false, true] {
                if let Verdict::Yes(c) = f.run(detect, last) {
                    // Common protocols are named, never made connection points.
                    assert!(c.service.is_none() && !c.protocol.is_empty(), "{c:?}");
                    assert!(c.evidence.iter().all(|e| e.rule.starts_with("setten.")));
                }
            }
        }
    }

    #[test]
    fn remote_access_openings_are_not_claimed() {
        // Openings of services other detectors own: none may be named here.
        let openings: &[(u8, &[u8])] = &[
            // SSH identification (RFC 4253 4.2).
            (0, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n"),
            // RFB protocol version (RFC 6143 7.1.1).
            (0, b"RFB 003.008\n"),
            // TPKT + X.224 connection request (MS-RDPBCGR 2.2.1.1).
            (
                0,
                b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00",
            ),
            // TLS ClientHello record header.
            (0, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            // OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2 over UDP.
            (1, b"\x38\x1c\x3b\x0a\x51\x82\x6f\x2c\x54\x00\x00\x00\x00\x00"),
            // WireGuard handshake initiation type 1 (whitepaper 5.4.2).
            (1, &[1, 0, 0, 0, 0x11, 0x22, 0x33, 0x44]),
            // IKEv2 IKE_SA_INIT header (RFC 7296 3.1), SPIr zero.
            (
                1,
                b"\x86\x41\xd3\x0a\x8c\x2e\x5f\x01\x00\x00\x00\x00\x00\x00\x00\x00\x21\x20\x22\x08\x00\x00\x00\x00\x00\x00\x01\x2c",
            ),
        ];
        for (udp, b) in openings {
            let f = if *udp == 1 {
                Flow::udp(40000, 4500).c2s(b)
            } else {
                Flow::tcp(40000, 4500).c2s(b)
            };
            assert!(
                !matches!(f.run(detect, true), Verdict::Yes(_)),
                "claimed {b:02x?}"
            );
        }
    }
}
