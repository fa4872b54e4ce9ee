//! NTP (RFC 5905 7.3) over UDP: the 48-byte header, optionally followed by extension
//! fields and a MAC.
//!
//! The header has few fixed bits, so one packet alone is not enough unless it carries a
//! server's clock readings that agree with each other. `Yes` for: a client request
//! (mode 3) answered by a server reply (mode 4) whose origin timestamp echoes the
//! request's transmit timestamp (RFC 5905 8, the 64-bit check NTP itself relies on), or
//! the same for symmetric peers (modes 1, 2); a lone server reply or broadcast (modes 4,
//! 5) whose stratum, precision, delays and timestamps are those of a synchronised clock;
//! or, once the flow is over, a lone client request sent to port 123 (the port is the
//! tie-breaker for a packet whose format is otherwise weak).

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, first_datagram, require, take, Parse};

/// Header octets (RFC 5905 7.3).
pub const HEADER_LEN: usize = 48;
/// Longest packet accepted: the header with extension fields (RFC 7822) and a MAC.
pub const MAX_PACKET_LEN: usize = 1024;
/// NTP port.
pub const PORT: u16 = 123;
/// Largest root delay or dispersion in NTP short format (16.16): 16 seconds, MAXDISP
/// (RFC 5905 7.2).
const MAX_ROOT: u32 = 16 << 16;
/// Largest poll exponent (MAXPOLL, RFC 5905 7.2).
const MAX_POLL: i8 = 17;
/// Most a server's receive timestamp may precede its transmit timestamp: 4 seconds,
/// in 32.32 fixed point.
const MAX_TURNAROUND: u64 = 4 << 32;
/// Oldest reference timestamp accepted relative to the transmit timestamp: 2^24 seconds
/// (about 194 days).
const MAX_REFERENCE_AGE: u64 = 1 << (24 + 32);

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Version (2..=4).
    pub version: u8,
    /// Mode (1..=5).
    pub mode: u8,
    /// Stratum.
    pub stratum: u8,
    /// Precision, log2 seconds.
    pub precision: i8,
    /// Reference timestamp.
    pub reference: u64,
    /// Origin timestamp.
    pub origin: u64,
    /// Receive timestamp.
    pub receive: u64,
    /// Transmit timestamp.
    pub transmit: u64,
}

/// Parses a header and checks what every packet obeys: length, version 2..=4, mode
/// 1..=5 (control and private modes are not this), stratum 0..=16, poll 0..=17,
/// precision -32..=0, root delay and dispersion at most 16 s, a nonzero transmit time.
/// A client request's precision is not checked: chrony's client requests say 32 on
/// purpose, so as not to reveal the clock's state (chrony `ntp_core.c`
/// `transmit_packet`, since 3.2).
pub fn parse_packet(d: &[u8]) -> Parse<Packet> {
    need!(require(
        d.len() >= HEADER_LEN && d.len() <= MAX_PACKET_LEN && d.len() % 4 == 0
    ));
    let first = need!(byte(d, 0));
    let (version, mode) = ((first >> 3) & 7, first & 7);
    let stratum = need!(byte(d, 1));
    let poll = need!(byte(d, 2)) as i8;
    let precision = need!(byte(d, 3)) as i8;
    let word = |o: usize| super::super::util::be32(d, o).unwrap_or(u32::MAX);
    let ts = |o: usize| match take(d, o, 8) {
        Parse::Ok(s) => u64::from_be_bytes(s.try_into().unwrap_or([0; 8])),
        _ => 0,
    };
    need!(require(
        (2..=4).contains(&version)
            && (1..=5).contains(&mode)
            && stratum <= 16
            && (0..=MAX_POLL).contains(&poll)
            && (mode == 3 || (-32..=0).contains(&precision))
            && word(4) <= MAX_ROOT
            && word(8) <= MAX_ROOT
    ));
    let p = Packet {
        version,
        mode,
        stratum,
        precision,
        reference: ts(16),
        origin: ts(24),
        receive: ts(32),
        transmit: ts(40),
    };
    need!(require(p.transmit != 0));
    Parse::Ok(p)
}

/// The clock readings of a synchronised server or broadcaster agree: stratum 1..=15, a
/// real precision, receive shortly before transmit (server), reference not in the
/// future and not ancient.
pub fn is_synchronised(p: &Packet) -> bool {
    let ref_age = p.transmit.wrapping_sub(p.reference);
    let turnaround = p.transmit.wrapping_sub(p.receive);
    (1..=15).contains(&p.stratum)
        && p.precision < 0
        && p.reference != 0
        && ref_age < MAX_REFERENCE_AGE
        && (p.mode == 5 || (p.receive != 0 && turnaround < MAX_TURNAROUND))
}

fn mode_name(m: u8) -> &'static str {
    match m {
        1 => "symmetric active",
        2 => "symmetric passive",
        3 => "client",
        4 => "server",
        _ => "broadcast",
    }
}

/// Names NTP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let client = first_datagram(cx, cx.c2s, parse_packet);
    let server = first_datagram(cx, cx.s2c, parse_packet);
    let yes = |v: String| {
        Parse::Ok(Classification::new(
            "ntp",
            None,
            "setten.ntp.header",
            "ntp.mode",
            v,
        ))
    };
    let p = match (client, server) {
        (Parse::Ok(c), Parse::Ok(s)) => {
            // A reply answers a request: modes pair up and the origin echoes.
            let paired = matches!((c.mode, s.mode), (3, 4) | (1, 1 | 2));
            if paired && s.origin == c.transmit {
                yes(format!(
                    "v{} {} answered by {} stratum {}",
                    c.version,
                    mode_name(c.mode),
                    mode_name(s.mode),
                    s.stratum
                ))
            } else {
                Parse::Bad
            }
        }
        (Parse::Ok(c), Parse::Short) => {
            if matches!(c.mode, 4 | 5) && is_synchronised(&c) {
                yes(format!(
                    "v{} {} stratum {}",
                    c.version,
                    mode_name(c.mode),
                    c.stratum
                ))
            } else if cx.last && matches!(c.mode, 1 | 3) && cx.server_port == PORT {
                yes(format!(
                    "v{} {} to port {PORT}, unanswered",
                    c.version,
                    mode_name(c.mode)
                ))
            } else if matches!(c.mode, 1 | 3) {
                Parse::Short
            } else {
                Parse::Bad
            }
        }
        (Parse::Short, Parse::Ok(s)) if matches!(s.mode, 4 | 5) && is_synchronised(&s) => yes(
            format!("v{} {} stratum {}", s.version, mode_name(s.mode), s.stratum),
        ),
        (Parse::Short, Parse::Short) => Parse::Short,
        _ => Parse::Bad,
    };
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-1kxun.pcap frame 993: a v4 client request from an ntpd (stratum 2, poll 6,
    /// precision -20, its own reference and receive times), 123 to 123.
    const REQUEST: &str = "230206ec000026200000f6c911fd1a7ddb4a7e8f3d3ee739db4a8184a643c768db4a8184b424877edb4a81ec3f779f2c";

    /// A reply to it (RFC 5905 8): stratum 1 "GPS", origin = the request's transmit.
    fn reply() -> Vec<u8> {
        hex("240106e8 00000010 00000020 47505300
             db4a81ec00000000 db4a81ec3f779f2c db4a81ec40000000 db4a81ec40001000")
    }

    #[test]
    fn request_answered_by_reply() {
        let c = Flow::udp(123, 123)
            .c2s(&hex(REQUEST))
            .s2c(&reply())
            .yes(check);
        assert_eq!((c.protocol, c.service), ("ntp", None));
        assert_eq!(
            c.evidence[0].value,
            "v4 client answered by server stratum 1"
        );
        // An origin that does not echo the request is not an answer.
        let mut r = reply();
        r[31] ^= 1;
        assert!(Flow::udp(123, 123).c2s(&hex(REQUEST)).s2c(&r).is_no(check));
    }

    #[test]
    fn chrony_client_request_with_precision_32() {
        // chronyd 4.3 as a client (Debian 12): v4 client, precision 32, every field but
        // the transmit time zero; chronyd 4.3 as the server answers with the transmit
        // time echoed as origin.
        let req = hex("23000620 00000000 00000000 00000000 0000000000000000 \
            0000000000000000 0000000000000000 f523aa005d7e3169");
        let resp = hex("240806e7 00000000 00000000 7f7f0101 eead9b7b3fcd1321 \
            f523aa005d7e3169 eead9b7ce4d6055f eead9b7ce638834c");
        let c = Flow::udp(49427, 123).c2s(&req).s2c(&resp).yes(check);
        assert_eq!(c.protocol, "ntp");
        // A server's precision is still checked.
        let mut r = resp;
        r[3] = 0x20;
        assert_eq!(parse_packet(&r), Parse::Bad);
    }

    #[test]
    fn lone_request_needs_port_and_end() {
        let f = Flow::udp(123, 123).c2s(&hex(REQUEST));
        assert!(f.is_wait(check));
        assert!(matches!(f.run(check, true), Verdict::Yes(_)));
        let f = Flow::udp(50000, 4000).c2s(&hex(REQUEST));
        assert!(f.is_no_at_end(check));
    }

    #[test]
    fn lone_reply_must_be_synchronised() {
        assert!(matches!(
            Flow::udp(50000, 123).s2c(&reply()).run(check, false),
            Verdict::Yes(_)
        ));
        let mut r = reply();
        r[1] = 0; // stratum 0 (unsynchronised / kiss code)
        assert!(Flow::udp(50000, 123).s2c(&r).is_no(check));
        let mut r = reply();
        r[40] = 0xdc; // transmit long after receive
        assert!(Flow::udp(50000, 123).s2c(&r).is_no(check));
    }

    #[test]
    fn header_sanity() {
        let d = hex(REQUEST);
        assert!(parse_packet(&d).ok().is_some());
        assert_eq!(parse_packet(&d[..47]), Parse::Bad);
        let mut x = d.clone();
        x[0] = 0x26; // mode 6, control
        assert_eq!(parse_packet(&x), Parse::Bad);
        let mut x = d.clone();
        x[0] = 0x3b; // version 7
        assert_eq!(parse_packet(&x), Parse::Bad);
        let mut x = d.clone();
        x[2] = 0x40; // poll 64
        assert_eq!(parse_packet(&x), Parse::Bad);
        let mut x = d.clone();
        x[4] = 0x7f; // root delay of hours
        assert_eq!(parse_packet(&x), Parse::Bad);
        let mut x = d;
        x.extend_from_slice(&[0; 3]);
        assert_eq!(parse_packet(&x), Parse::Bad);
    }
}
