//! STUN (RFC 5389 6, RFC 8489) and TURN (RFC 8656), over UDP and TCP.
//!
//! `Yes` for a message with the two top bits zero, a method STUN or TURN defines, a length
//! that equals the rest of the message, the magic cookie 0x2112A442, and attributes that
//! walk exactly to its end (each padded to four bytes, RFC 5389 15; or, with Microsoft's
//! TURN attributes present, as its clients write them, some unpadded). The classic STUN of RFC 3489, which lacks the cookie, counts only when the
//! first messages of both sides carry the same 128-bit transaction ID. The SOFTWARE
//! attribute, when sent, names the client or server.

use super::super::{Classification, Cx, Evidence, Verdict};
use super::{be16, be32, byte, finish, first_datagram, opening, require, stream, take, Parse};

/// Header octets.
pub const HEADER_LEN: usize = 20;
/// The magic cookie (RFC 5389 6).
pub const MAGIC_COOKIE: u32 = 0x2112_a442;
/// Largest message accepted: a UDP datagram's worth.
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// Attributes walked.
const MAX_ATTRIBUTES: usize = 64;
/// SOFTWARE attribute (RFC 5389 15.10).
const ATTR_SOFTWARE: u16 = 0x8022;
/// Longest SOFTWARE value kept (RFC 5389 15.10: fewer than 128 characters).
const MAX_SOFTWARE: usize = 128;

/// Method names (RFC 5389 18.1, RFC 8656 17, RFC 6062 6.1).
fn method(m: u16) -> Option<&'static str> {
    Some(match m {
        0x001 => "Binding",
        0x003 => "Allocate",
        0x004 => "Refresh",
        0x006 => "Send",
        0x007 => "Data",
        0x008 => "CreatePermission",
        0x009 => "ChannelBind",
        0x00a => "Connect",
        0x00b => "ConnectionBind",
        0x00c => "ConnectionAttempt",
        _ => return None,
    })
}

/// Class names (RFC 5389 6).
fn class(c: u16) -> &'static str {
    match c {
        0 => "request",
        1 => "indication",
        2 => "success response",
        _ => "error response",
    }
}

/// A parsed message head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Method name.
    pub method: &'static str,
    /// Class name.
    pub class: &'static str,
    /// Transaction ID (96 bits after the cookie, or the 128 bits of RFC 3489).
    pub transaction: &'a [u8],
    /// SOFTWARE attribute.
    pub software: Option<String>,
    /// Octets the message takes.
    pub len: usize,
}

/// MAGIC-COOKIE attribute of Microsoft's TURN ([MS-TURN] 2.2.2.9).
const ATTR_MS_MAGIC_COOKIE: u16 = 0x000f;
/// Its value.
const MS_MAGIC_COOKIE: u32 = 0x72c6_4bc6;
/// MS-VERSION attribute ([MS-TURN] 2.2.2.16).
const ATTR_MS_VERSION: u16 = 0x8008;

/// What the attributes of a message say.
struct Attributes {
    software: Option<String>,
    /// A MAGIC-COOKIE with Microsoft's value or an MS-VERSION: Microsoft's TURN.
    ms_turn: bool,
}

/// Walks attributes (type, length, value) over exactly `attrs`, each value padded to
/// four bytes (RFC 5389 15) when `padded`.
fn walk_attributes(attrs: &[u8], padded: bool) -> Parse<Attributes> {
    let mut off = 0;
    let mut found = Attributes {
        software: None,
        ms_turn: false,
    };
    for _ in 0..MAX_ATTRIBUTES {
        if off == attrs.len() {
            return Parse::Ok(found);
        }
        let t = need!(be16(attrs, off));
        let l = usize::from(need!(be16(attrs, off + 2)));
        let v = need!(take(attrs, off + 4, l));
        if t == ATTR_SOFTWARE && l <= MAX_SOFTWARE && super::text::is_text(v) {
            found.software = Some(super::super::util::printable(v));
        }
        if t == ATTR_MS_VERSION
            || (t == ATTR_MS_MAGIC_COOKIE && be32(v, 0) == Parse::Ok(MS_MAGIC_COOKIE))
        {
            found.ms_turn = true;
        }
        off += 4 + if padded { l.div_ceil(4) * 4 } else { l };
        need!(require(off <= attrs.len()));
    }
    Parse::Bad
}

/// The attributes of a modern message: padded as RFC 5389 says, or, in Microsoft's TURN
/// (Teams and Skype for Business relays), unpadded as its clients write some of them (a
/// 10-byte NONCE followed at once by the next attribute; Wireshark calls such messages
/// malformed), which counts only with Microsoft's own attributes present.
fn attributes(attrs: &[u8]) -> Parse<Attributes> {
    match walk_attributes(attrs, true) {
        Parse::Ok(a) => Parse::Ok(a),
        padded => match walk_attributes(attrs, false) {
            Parse::Ok(a) if a.ms_turn => Parse::Ok(a),
            _ => padded,
        },
    }
}

/// Parses an RFC 5389 message at the start of `b`; `exact` for a datagram, which the
/// message must fill.
pub fn parse_message(b: &[u8], exact: bool) -> Parse<Message<'_>> {
    let t = need!(be16(b, 0));
    let len = usize::from(need!(be16(b, 2)));
    // The length is a multiple of four when every attribute is padded (RFC 5389 6);
    // Microsoft's TURN leaves that out with its padding (see `attributes`).
    need!(require(t & 0xc000 == 0));
    let m = (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
    let c = ((t & 0x0100) >> 7) | ((t & 0x0010) >> 4);
    let name = need!(method(m).map_or(Parse::Bad, Parse::Ok));
    need!(require(need!(be32(b, 4)) == MAGIC_COOKIE));
    if exact {
        need!(require(b.len() == HEADER_LEN + len));
    }
    let attrs = need!(take(b, HEADER_LEN, len));
    let software = need!(attributes(attrs)).software;
    Parse::Ok(Message {
        method: name,
        class: class(c),
        transaction: b.get(8..HEADER_LEN).unwrap_or(&[]),
        software,
        len: HEADER_LEN + len,
    })
}

/// Parses a classic (RFC 3489 11.1) message filling a datagram: a Binding or Shared
/// Secret type, no cookie, the 128-bit transaction ID, attributes walked to the end.
pub fn parse_classic(d: &[u8]) -> Parse<Message<'_>> {
    let t = need!(be16(d, 0));
    let len = usize::from(need!(be16(d, 2)));
    let (method, class) = match t {
        0x0001 => ("Binding", "request"),
        0x0101 => ("Binding", "response"),
        0x0111 => ("Binding", "error response"),
        0x0002 => ("Shared Secret", "request"),
        0x0102 => ("Shared Secret", "response"),
        0x0112 => ("Shared Secret", "error response"),
        _ => return Parse::Bad,
    };
    need!(require(d.len() == HEADER_LEN + len && len % 4 == 0));
    need!(byte(d, HEADER_LEN - 1));
    let software = need!(walk_attributes(d.get(HEADER_LEN..).unwrap_or(&[]), true)).software;
    Parse::Ok(Message {
        method,
        class,
        transaction: d.get(4..HEADER_LEN).unwrap_or(&[]),
        software,
        len: d.len(),
    })
}

/// Names STUN.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let (p, rule) = if cx.is_udp() {
        let modern = opening(cx, |d| parse_message(d, true), |d| parse_message(d, true));
        let classic = || {
            // Without the cookie, only the two sides agreeing on a 128-bit transaction
            // ID is enough (Zoom answers a Binding request with type 0x0002).
            let q = first_datagram(cx, cx.c2s, parse_classic);
            let r = first_datagram(cx, cx.s2c, parse_classic);
            match (q, r) {
                (Parse::Ok(q), Parse::Ok(r)) if q.transaction == r.transaction => Parse::Ok(q),
                (Parse::Ok(_) | Parse::Short, Parse::Short) | (Parse::Short, Parse::Ok(_)) => {
                    Parse::Short
                }
                _ => Parse::Bad,
            }
        };
        match modern {
            Parse::Ok(m) => (Parse::Ok(m), "setten.stun.message"),
            _ => (classic(), "setten.stun.classic"),
        }
    } else {
        let p = stream(cx.c2s, |b| parse_message(b, false))
            .or_else(|| stream(cx.s2c, |b| parse_message(b, false)));
        (p, "setten.stun.message")
    };
    finish(
        cx,
        p.map(|m| {
            let mut c = Classification::new(
                "stun",
                None,
                rule,
                "stun.message_type",
                format!("{} {}", m.method, m.class),
            );
            if let Some(s) = m.software {
                c.evidence
                    .push(Evidence::new("setten.stun.software", "stun.software", s));
            }
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-stun_signal.pcapng frame 1: a Binding request without attributes.
    const BINDING: &str = "000100002112a4425343644b3631746a5657366b";

    /// ndpi-stun_signal.pcapng frame 31: its success response, XOR-MAPPED-ADDRESS.
    const BINDING_OK: &str = "0101000c2112a4425343644b3631746a5657366b0020000800010f627c3d4551";

    #[test]
    fn binding_from_capture() {
        let d = hex(BINDING);
        let m = parse_message(&d, true).ok().unwrap();
        assert_eq!((m.method, m.class), ("Binding", "request"));
        let c = Flow::udp(39518, 19302).c2s(&hex(BINDING)).yes(check);
        assert_eq!((c.protocol, c.service), ("stun", None));
        assert_eq!(c.evidence[0].value, "Binding request");
        let d = hex(BINDING_OK);
        let m = parse_message(&d, true).ok().unwrap();
        assert_eq!(m.class, "success response");
    }

    #[test]
    fn allocate_with_software() {
        // RFC 5769 2.1 sample request (header and SOFTWARE "STUN test client"), without
        // the other attributes: length 20.
        let d = hex(
            "00010014 2112a442 b7e7a701bc34d686fa87dfae 8022 0010 5354554e207465737420636c69656e74",
        );
        let c = Flow::udp(50000, 3478).c2s(&d).yes(check);
        assert_eq!(c.evidence[1].value, "STUN test client");
    }

    #[test]
    fn lengths_and_cookie() {
        let mut d = hex(BINDING_OK);
        d.push(0);
        assert_eq!(parse_message(&d, true), Parse::Bad);
        let mut d = hex(BINDING_OK);
        d[5] = 0x13; // cookie
        assert_eq!(parse_message(&d, true), Parse::Bad);
        let mut d = hex(BINDING_OK);
        d[23] = 0x0c; // the attribute's length overruns the message
        assert!(!matches!(parse_message(&d, true), Parse::Ok(_)));
        let mut d = hex(BINDING_OK);
        d[0] = 0x40; // top bits
        assert_eq!(parse_message(&d, true), Parse::Bad);
    }

    /// ndpi-teams.pcap frame 1276: a Teams client's Allocate request to Microsoft's TURN
    /// relay, whose 10-byte NONCE is not padded before the next attribute.
    const MS_TURN_ALLOCATE: &str = concat!(
        "000300c22112a442cebf09f4e3bb00f87114e1b6000f000472c64bc6803700040000000280080004",
        "0000000680060004000000010010000400002ee08055000400020002809500085be55b060c2d89fa",
        "001400143caeff41e4f0d59f6820280d2f1493f8b0f312000015000a227274636d65646961220006",
        "00380200002490a0dbdb01d6194de21537bfc992a00332731af1bedc569ae83bd5ab00000000bf71",
        "b276c97813a8ddefeb5cbc793a277a4ce63c0008002094ed4c8ab8380a489294be4f124acf68be1b",
        "06329d3a2a8936a04d5d14eb8acd",
    );

    #[test]
    fn microsoft_turn_without_padding() {
        let d = hex(MS_TURN_ALLOCATE);
        let c = Flow::udp(50036, 3478).c2s(&d).yes(check);
        assert_eq!(c.evidence[0].value, "Allocate request");
        // The same message without Microsoft's attributes is not STUN: its attributes
        // do not walk as RFC 5389 pads them.
        let mut plain = d.clone();
        plain[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&[0x00, 0x1a]);
        plain[HEADER_LEN + 8..HEADER_LEN + 10].copy_from_slice(&[0x80, 0x29]);
        plain[HEADER_LEN + 16..HEADER_LEN + 18].copy_from_slice(&[0x80, 0x29]);
        assert!(!matches!(parse_message(&plain, true), Parse::Ok(_)));
    }

    #[test]
    fn classic_needs_both_sides() {
        // ndpi-zoom.pcap frame 34: an RFC 3489 Binding request (no cookie).
        let q = hex("00010018c15dae63585d14392e582c260403bf30010100143132333435363738393031323334353637383900");
        assert!(Flow::udp(23903, 3478).c2s(&q).is_wait(check));
        assert!(Flow::udp(23903, 3478).c2s(&q).is_no_at_end(check));
        // ndpi-zoom.pcap frame 60: Zoom's answer, type 0x0002, same transaction ID.
        let mut r = hex("0002000cc15dae63585d14392e582c260403bf30010300080001ff7550b4dcef");
        let c = Flow::udp(23903, 3478).c2s(&q).s2c(&r).yes(check);
        assert_eq!(c.evidence[0].rule, "setten.stun.classic");
        r[4] ^= 1;
        assert!(Flow::udp(23903, 3478).c2s(&q).s2c(&r).is_no(check));
    }
}
