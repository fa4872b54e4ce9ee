//! Gnutella and Gnutella2, the file-sharing networks of gtk-gnutella, LimeWire's
//! descendants and Shareaza: on a hospital network, a workstation sharing its disk with
//! strangers.
//!
//! - TCP: the connection handshake, "GNUTELLA CONNECT/0.6" from the connecting servent
//!   and "GNUTELLA/0.6 200 OK" back (Gnutella Protocol Specification 0.6, section 2.2);
//!   Gnutella2 uses the same handshake.
//! - UDP, Gnutella 0.6: a message header of 23 bytes, the 16-byte message id, the payload
//!   type, TTL, hops and the payload length (little-endian), which must be the rest of the
//!   datagram exactly (section 2.4). Payload types: Ping 0x00, Pong 0x01, Bye 0x02,
//!   vendor messages 0x31 and 0x32, Push 0x40, Query 0x80, Query Hit 0x81, and LimeWire's
//!   Mojito DHT 0x44 (Wireshark `packet-mojito.c`).
//! - UDP, Gnutella2: the "GND" framing (G2 UDP transceiver): flags, a sequence number,
//!   this part's number and the part count. The first part of a message is a G2 packet
//!   whose header and length fill the datagram, or a zlib stream when the deflate flag
//!   is set.

use super::super::{Classification, Cx, Verdict};
use super::text::{self, Head};
use super::{finish, opening, require, stream, Parse};

/// What a connecting servent sends first (0.4 and 0.6 alike).
const CONNECT: &[u8] = b"GNUTELLA CONNECT/";
/// What the servent connected to answers with on 0.6.
const ANSWER: &[u8] = b"GNUTELLA/";
/// Header of a Gnutella 0.6 message.
const HEADER: usize = 23;
/// Payload types a Gnutella 0.6 datagram may carry, with their names.
const TYPES: [(u8, &str); 9] = [
    (0x00, "ping"),
    (0x01, "pong"),
    (0x02, "bye"),
    (0x31, "vendor message"),
    (0x32, "standard vendor message"),
    (0x40, "push"),
    (0x44, "Mojito DHT"),
    (0x80, "query"),
    (0x81, "query hit"),
];
/// A message's TTL and hops add up to at most this (the specification's largest TTL is
/// 7; servents allow some more).
const MAX_TTL_HOPS: u8 = 16;
/// Gnutella2's UDP framing starts with these three bytes.
const G2_MAGIC: &[u8; 3] = b"GND";
/// G2 framing flag: the message is a zlib stream.
const G2_DEFLATE: u8 = 0x01;

/// A version "major.minor" of one or two digits each.
fn is_version(v: &[u8]) -> bool {
    match v.iter().position(|&c| c == b'.') {
        Some(i) => {
            let (major, minor) = v.split_at(i);
            text::is_digits(major, 2) && text::is_digits(minor.get(1..).unwrap_or(&[]), 2)
        }
        None => false,
    }
}

/// The handshake's opening line: the version asked for, and the User-Agent when the
/// headers after it name one.
pub fn parse_connect(b: &[u8]) -> Parse<(String, Option<String>)> {
    let n = b.len().min(CONNECT.len());
    need!(require(b.get(..n) == CONNECT.get(..n)));
    let (line, rest) = need!(text::line(b));
    let version = line.get(CONNECT.len()..).unwrap_or(&[]);
    need!(require(is_version(version)));
    let agent = match Head::read(rest) {
        Parse::Ok(head) => head
            .get(b"user-agent")
            .filter(|v| !v.is_empty() && text::is_printable(v))
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        _ => None,
    };
    Parse::Ok((String::from_utf8_lossy(line).into_owned(), agent))
}

/// The answer's status line, "GNUTELLA/0.6 200 OK": for a capture that starts after the
/// connecting side's line.
pub fn parse_answer(b: &[u8]) -> Parse<String> {
    let n = b.len().min(ANSWER.len());
    need!(require(b.get(..n) == ANSWER.get(..n)));
    let (line, _) = need!(text::line(b));
    let rest = line.get(ANSWER.len()..).unwrap_or(&[]);
    let mut parts = rest.splitn(3, |&c| c == b' ');
    let version = parts.next().unwrap_or(&[]);
    let code = parts.next().unwrap_or(&[]);
    need!(require(
        is_version(version)
            && code.len() == 3
            && text::is_digits(code, 3)
            && text::is_printable(line)
    ));
    Parse::Ok(String::from_utf8_lossy(line).into_owned())
}

/// A Gnutella 0.6 message filling one datagram: its payload type's name.
pub fn parse_message(d: &[u8]) -> Parse<&'static str> {
    let Some(&[kind, ttl, hops, l0, l1, l2, l3]) = d.get(16..HEADER) else {
        return Parse::Bad;
    };
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    need!(require(
        usize::try_from(len).is_ok_and(|len| Some(len) == d.len().checked_sub(HEADER))
    ));
    need!(require(
        ttl.checked_add(hops).is_some_and(|t| t <= MAX_TTL_HOPS)
    ));
    match TYPES.iter().find(|(t, _)| *t == kind) {
        Some((_, name)) => Parse::Ok(name),
        None => Parse::Bad,
    }
}

/// A Gnutella2 datagram: "GND", flags, sequence, part and count; the first part begins
/// with a G2 packet (or a zlib stream). Returns the packet's name, or "compressed".
pub fn parse_g2(d: &[u8]) -> Parse<String> {
    let Some((magic, rest)) = d.split_first_chunk::<3>() else {
        return Parse::Bad;
    };
    need!(require(magic == G2_MAGIC));
    let Some(&[flags, _, _, part, count]) = rest.get(..5) else {
        return Parse::Bad;
    };
    // Later parts of a message carry the middle of a packet: nothing more to check.
    need!(require(part == 1 && count >= 1));
    let body = rest.get(5..).unwrap_or(&[]);
    if flags & G2_DEFLATE != 0 {
        // RFC 1950 section 2.2: CM 8 (deflate), a window of at most 32 KiB, and the
        // two header bytes a multiple of 31.
        let [cmf, flg, ..] = *body else {
            return Parse::Bad;
        };
        need!(require(
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
        ));
        return Parse::Ok("compressed".to_owned());
    }
    // A G2 packet header: the control byte gives the length field's size (0-3 bytes,
    // little-endian unless the big-endian flag is set) and the name's (1-8 bytes).
    let Some((&control, after)) = body.split_first() else {
        return Parse::Bad;
    };
    let len_len = usize::from(control >> 6);
    let name_len = usize::from((control >> 3) & 7) + 1;
    let big_endian = control & 0x02 != 0;
    let Some(len_bytes) = after.get(..len_len) else {
        return Parse::Bad;
    };
    let len = if big_endian {
        len_bytes
            .iter()
            .fold(0usize, |a, &b| a << 8 | usize::from(b))
    } else {
        len_bytes
            .iter()
            .rev()
            .fold(0usize, |a, &b| a << 8 | usize::from(b))
    };
    let Some(name) = after.get(len_len..len_len + name_len) else {
        return Parse::Bad;
    };
    need!(require(
        name.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && name.first().is_some_and(u8::is_ascii_uppercase)
    ));
    // A single-part message is exactly its packet.
    if count == 1 {
        need!(require(1 + len_len + name_len + len == body.len()));
    }
    Parse::Ok(String::from_utf8_lossy(name).into_owned())
}

/// Names Gnutella over TCP from the handshake.
pub fn check_tcp(cx: &Cx<'_>) -> Verdict {
    let p = stream(cx.c2s, parse_connect)
        .or_else(|| stream(cx.s2c, parse_connect))
        .or_else(|| stream(cx.s2c, parse_answer).map(|line| (line, None)))
        .or_else(|| stream(cx.c2s, parse_answer).map(|line| (line, None)));
    finish(
        cx,
        p.map(|(line, agent)| {
            let mut c = Classification::new(
                "gnutella",
                None,
                "setten.gnutella.handshake",
                "gnutella.handshake",
                line,
            );
            c.extra.product = agent;
            c
        }),
    )
}

/// Names Gnutella and Gnutella2 over UDP from the first datagram.
pub fn check_udp(cx: &Cx<'_>) -> Verdict {
    let one = |d: &[u8]| {
        parse_g2(d)
            .map(|name| ("setten.gnutella2.udp", format!("Gnutella2 {name}")))
            .or_else(|| {
                parse_message(d).map(|name| ("setten.gnutella.udp", format!("Gnutella {name}")))
            })
    };
    let p = opening(cx, one, one);
    finish(
        cx,
        p.map(|(rule, value)| {
            Classification::new("gnutella", None, rule, "gnutella.message", value)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// Corpus `ndpi-gnutella.pcap` frame 181: gtk-gnutella connecting (first lines).
    const CONNECT_HEAD: &[u8] = b"GNUTELLA CONNECT/0.6\r\nNode: 93.47.226.53:28681\r\n\
        Remote-IP: 47.147.52.21\r\nUser-Agent: gtk-gnutella/1.2.2 (2022-02-25; GTK2; Windows x64)\r\n\
        Pong-Caching: 0.1\r\nGGEP: 0.5\r\n\r\n";

    #[test]
    fn the_handshake_names_gnutella_and_the_servent() {
        let c = Flow::tcp(50199, 36728).c2s(CONNECT_HEAD).yes(check_tcp);
        assert_eq!((c.protocol, c.service), ("gnutella", None));
        // No earlier check in the ordered list takes these bytes.
        let all = Flow::tcp(50199, 36728)
            .c2s(CONNECT_HEAD)
            .yes(super::super::detect);
        assert_eq!(all, c);
        assert_eq!(c.evidence[0].value, "GNUTELLA CONNECT/0.6");
        assert_eq!(
            c.extra.product.as_deref(),
            Some("gtk-gnutella/1.2.2 (2022-02-25; GTK2; Windows x64)")
        );
        // Joined after the connecting line: the answer alone.
        let c = Flow::tcp(50199, 36728)
            .s2c(b"GNUTELLA/0.6 200 OK\r\nUser-Agent: x\r\n\r\n")
            .yes(check_tcp);
        assert_eq!(c.evidence[0].value, "GNUTELLA/0.6 200 OK");
        // Cut short: wait for the line's end.
        assert!(matches!(
            parse_connect(b"GNUTELLA CONNECT/0."),
            Parse::Short
        ));
        for bad in [
            &b"GNUTELLA CONNECT/x.6\r\n\r\n"[..],
            b"GNUTELLA CONNECT/0.6.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse_connect(bad), Parse::Bad), "{bad:?}");
        }
        assert!(matches!(
            parse_answer(b"GNUTELLA/0.6 2000 OK\r\n"),
            Parse::Bad
        ));
    }

    #[test]
    fn gnutella_messages_in_datagrams_as_captured() {
        // ndpi-gnutella.pcap frame 673: a ping with a GGEP block (24 payload bytes).
        let ping = hex(
            "24d5310268fc1981ffbcc6e01fdbbe0300010018000000c30353435041020256434547544b476286\
             44485449505040",
        );
        let c = Flow::udp(28681, 9239).c2s(&ping).yes(check_udp);
        assert_eq!((c.protocol, c.service), ("gnutella", None));
        assert_eq!(
            Flow::udp(28681, 9239).c2s(&ping).yes(super::super::detect),
            c
        );
        assert_eq!(c.evidence[0].value, "Gnutella ping");
        // Frame 771: a Mojito DHT message (type 0x44).
        let dht = hex(
            "f7483102b05f56722c92b7b9fa24a83a440000260000000147544b470000289d0a8d06deffc8263c\
             33897c2c9179fd84ab61045d2fe235700901010000",
        );
        assert_eq!(
            Flow::udp(28681, 52367).c2s(&dht).yes(check_udp).evidence[0].value,
            "Gnutella Mojito DHT"
        );
        // The length must be the rest of the datagram exactly.
        let mut long = ping.clone();
        long.push(0);
        assert!(matches!(parse_message(&long), Parse::Bad));
        // An unknown payload type, or a TTL no servent sends.
        let mut odd = ping.clone();
        odd[16] = 0x03;
        assert!(matches!(parse_message(&odd), Parse::Bad));
        let mut far = ping;
        far[17] = 200;
        assert!(matches!(parse_message(&far), Parse::Bad));
    }

    #[test]
    fn gnutella2_frames_as_captured() {
        // ndpi-gnutella.pcap frame 356: a query key request (QKR with an RNA child).
        let qkr = hex("474e44103e8f0101540b514b525006524e415d2fe2350970");
        let c = Flow::udp(28681, 6346).c2s(&qkr).yes(check_udp);
        assert_eq!(c.evidence[0].value, "Gnutella2 QKR");
        assert_eq!(
            Flow::udp(28681, 6346).c2s(&qkr).yes(super::super::detect),
            c
        );
        assert_eq!(c.evidence[0].rule, "setten.gnutella2.udp");
        // Frame 2685, the first 16 of its 309 bytes: a deflated message.
        let z = hex("474e44012c260101789ceb29670c74f4");
        assert_eq!(
            Flow::udp(8255, 28681).c2s(&z).yes(check_udp).evidence[0].value,
            "Gnutella2 compressed"
        );
        // A packet length that does not fill the datagram, a lowercase name, a second
        // part, no zlib header.
        let mut short = qkr.clone();
        short.push(0);
        assert!(matches!(parse_g2(&short), Parse::Bad));
        let mut lower = qkr.clone();
        lower[10] = b'k';
        assert!(matches!(parse_g2(&lower), Parse::Bad));
        let mut second = qkr.clone();
        second[6] = 2;
        assert!(matches!(parse_g2(&second), Parse::Bad));
        let mut raw = z;
        raw[8] = 0x79;
        assert!(matches!(parse_g2(&raw), Parse::Bad));
        for n in 0..qkr.len() {
            assert!(!matches!(parse_g2(&qkr[..n]), Parse::Ok(_)), "{n} bytes");
        }
    }
}
