//! NoMachine NX (version 4 and later), TCP and UDP 4000 by default.
//!
//! NoMachine publishes no wire specification. The facts used here are nDPI's
//! (`src/lib/protocols/nomachine.c`, 2023): a NoMachine TCP connection opens with a short
//! handshake line holding only `NXSH-` (the client's request) or `NXD-` (the server's
//! answer) and a version number, 11 to 14 bytes in one packet, after which the peers
//! start TLS; its UDP multimedia datagrams carry a little-endian 1 at offset 2, their own
//! length (little-endian) at offset 4 and two zero bytes at offset 8. No capture was
//! available, so the test fixtures are built from that description.
//!
//! Promise on TCP: `Yes` only when a direction opens with `NXSH-` or `NXD-` and a
//! dotted numeric version (two to four parts of one to four digits), followed by the end
//! of the line, the start of a TLS record or any other byte that is not part of the
//! version, or by nothing once the other side has spoken or the flow is over (nDPI
//! names the flow from one such segment of 11 to 14 bytes and checks nothing after the
//! prefix); and the other direction either answers with the other prefix, goes straight
//! to TLS (a handshake record header), or, at the end of the flow, has sent nothing. The
//! prefix with its dotted version is at least as specific as nDPI's check. Both prefixes
//! are accepted in either direction, since nothing public says which side speaks first.
//!
//! Promise on UDP: the datagram layout is too weak to stand alone (any protocol with a
//! little-endian version 1 and length header fits it), so it is used only on the standard
//! port 4000 as tie-breaker, and then the first datagram of each direction must fit (the
//! one nDPI reads) and two fitting datagrams must have been seen (one, once the flow is
//! over). Later datagrams that do not fit are other messages nothing public describes;
//! they neither count nor refute.

use super::{util, Classification, Cx, Service, Verdict};

/// The client's handshake prefix (nDPI `nomachine.c`).
pub const CLIENT_PREFIX: &[u8] = b"NXSH-";
/// The server's handshake prefix (nDPI `nomachine.c`).
pub const SERVER_PREFIX: &[u8] = b"NXD-";
/// Longest version string accepted ("9999.9999.9999.9999").
pub const MAX_VERSION: usize = 19;
/// Version parts accepted at most.
const MAX_VERSION_PARTS: usize = 4;
/// Digits per version part accepted at most.
const MAX_PART_DIGITS: usize = 4;
/// First byte of a TLS handshake record (RFC 8446 section 5.1), which may follow the line.
const TLS_HANDSHAKE: u8 = 0x16;
/// Standard port.
pub const PORT: u16 = 4000;

/// Shortest UDP datagram nDPI accepts (probably a keep-alive).
pub const UDP_MIN_LEN: usize = 10;
/// Offset of the little-endian constant 1 in a UDP datagram.
const UDP_ONE_OFFSET: usize = 2;
/// Offset of the little-endian datagram length.
const UDP_LEN_OFFSET: usize = 4;
/// Offset of the two zero bytes.
const UDP_ZERO_OFFSET: usize = 8;
/// UDP datagrams needed before the flow is over.
const UDP_MIN_DATAGRAMS: usize = 2;

/// Which handshake line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `NXSH-`.
    Client,
    /// `NXD-`.
    Server,
}

/// A handshake line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Which prefix.
    pub side: Side,
    /// The version text, e.g. "8.11.3".
    pub version: &'a [u8],
}

/// Why a handshake line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes so far fit, but the line is not complete.
    Incomplete,
    /// Not a NoMachine handshake line.
    Invalid,
}

fn version_ok(v: &[u8]) -> bool {
    let parts = v.split(|&c| c == b'.');
    let mut n = 0usize;
    for p in parts {
        n += 1;
        if p.is_empty() || p.len() > MAX_PART_DIGITS || n > MAX_VERSION_PARTS {
            return false;
        }
    }
    n >= 2
}

/// Parses a handshake line at the start of `b`; returns it and the bytes after it (the
/// TLS record, if one follows without a line end). `ended`: no more bytes will follow
/// (the other side has answered, or the flow is over), so a complete version at the end
/// of the bytes ends the line: nDPI names the flow from such a segment of 11 to 14
/// bytes, line end or not.
pub fn parse_hello(b: &[u8], ended: bool) -> Result<(Hello<'_>, &[u8]), Error> {
    let mut candidate = None;
    for (side, prefix) in [(Side::Client, CLIENT_PREFIX), (Side::Server, SERVER_PREFIX)] {
        if b.starts_with(prefix) {
            candidate = Some((side, prefix.len()));
        } else if prefix.starts_with(b) {
            return Err(Error::Incomplete);
        }
    }
    let (side, start) = candidate.ok_or(Error::Invalid)?;
    let tail = b.get(start..).unwrap_or(&[]);
    let digits = tail
        .iter()
        .take(MAX_VERSION + 1)
        .take_while(|&&c| c.is_ascii_digit() || c == b'.')
        .count();
    if digits > MAX_VERSION {
        return Err(Error::Invalid);
    }
    let (version, after) = (
        tail.get(..digits).unwrap_or(&[]),
        tail.get(digits..).unwrap_or(&[]),
    );
    let may_still_come = after.is_empty() && version_may_grow(version);
    if !(version_ok(version) || may_still_come) {
        return Err(Error::Invalid);
    }
    // What ends the version is not checked beyond this (nDPI takes the prefix alone): a
    // line end, the TLS record that follows, or whatever else the product sends there.
    let rest = match (after.first(), after.get(1)) {
        (None, _) | (Some(b'\r'), None) if ended && version_ok(version) => &[],
        (None, _) | (Some(b'\r'), None) => return Err(Error::Incomplete),
        (Some(b'\n'), _) => after.get(1..).unwrap_or(&[]),
        (Some(b'\r'), Some(b'\n')) => after.get(2..).unwrap_or(&[]),
        _ => after,
    };
    Ok((Hello { side, version }, rest))
}

/// Whether a version cut short by the end of the bytes can still become a valid one.
fn version_may_grow(v: &[u8]) -> bool {
    let mut parts = 0usize;
    for p in v.split(|&c| c == b'.') {
        parts += 1;
        if p.len() > MAX_PART_DIGITS || parts > MAX_VERSION_PARTS {
            return false;
        }
    }
    // Only the last part may be empty (the dot just came).
    v.split(|&c| c == b'.').rev().skip(1).all(|p| !p.is_empty())
}

/// Whether a UDP datagram has NoMachine's layout (nDPI `nomachine.c`).
pub fn udp_layout_ok(d: &[u8]) -> bool {
    let le16 = |off: usize| Some(u16::from_le_bytes([*d.get(off)?, *d.get(off + 1)?]));
    d.len() >= UDP_MIN_LEN
        && le16(UDP_ONE_OFFSET) == Some(1)
        && le16(UDP_LEN_OFFSET).map(usize::from) == Some(d.len())
        && util::be16(d, UDP_ZERO_OFFSET) == Some(0)
}

fn classification(rule: &'static str, field: &'static str, value: String) -> Classification {
    let mut c = Classification::new("nx", Some(Service::Nomachine), rule, field, value);
    c.extra.vendor = Some("NoMachine".to_owned());
    c.extra.product = Some("NoMachine".to_owned());
    c
}

fn line(h: &Hello<'_>) -> String {
    let prefix = match h.side {
        Side::Client => CLIENT_PREFIX,
        Side::Server => SERVER_PREFIX,
    };
    format!("{}{}", util::printable(prefix), util::printable(h.version))
}

/// Whether `b` opens with a TLS handshake record header: content type 22 and a 3.x
/// record version (RFC 8446 section 5.1).
fn tls_record(b: &[u8]) -> bool {
    matches!(b, [TLS_HANDSHAKE, 3, v, ..] if *v <= 4)
}

fn detect_tcp(cx: &Cx<'_>) -> Verdict {
    let (cb, sb) = (cx.c2s.bytes(), cx.s2c.bytes());
    // A line without its end counts once the other side has spoken or the flow is over.
    let (c, s) = (
        parse_hello(cb, cx.last || !sb.is_empty()),
        parse_hello(sb, cx.last || !cb.is_empty()),
    );
    let found = match (&c, &s) {
        (Ok((ch, _)), Ok((sh, _))) if ch.side != sh.side => {
            Some(format!("c2s {}; s2c {}", line(ch), line(sh)))
        }
        (Ok((ch, _)), Err(Error::Incomplete)) if cx.last && sb.is_empty() => {
            Some(format!("c2s {}", line(ch)))
        }
        (Err(Error::Incomplete), Ok((sh, _))) if cx.last && cb.is_empty() => {
            Some(format!("s2c {}", line(sh)))
        }
        // One line, and the other side's TLS record.
        (Ok((ch, _)), Err(_)) if tls_record(sb) => Some(format!("c2s {}; s2c TLS", line(ch))),
        (Err(_), Ok((sh, _))) if tls_record(cb) => Some(format!("c2s TLS; s2c {}", line(sh))),
        _ => None,
    };
    if let Some(value) = found {
        let mut cl = classification("setten.nomachine.handshake", "nx.handshake", value);
        let version = match (&c, &s) {
            (_, Ok((h, _))) | (Ok((h, _)), _) => Some(util::printable(h.version)),
            _ => None,
        };
        cl.extra.meta.version = version;
        return Verdict::Yes(cl);
    }
    match (c, s) {
        // The server's TLS captured before the client's line (directions reordered by
        // the mirror): the line may still come.
        (Err(Error::Incomplete), Err(Error::Invalid))
            if cb.is_empty() && tls_record(sb) && !cx.last =>
        {
            Verdict::Wait
        }
        (Err(Error::Invalid), _) | (_, Err(Error::Invalid)) => Verdict::No,
        // Both sides sent the same prefix.
        (Ok(_), Ok(_)) => Verdict::No,
        _ if cx.last => Verdict::No,
        _ => Verdict::Wait,
    }
}

fn detect_udp(cx: &Cx<'_>) -> Verdict {
    if !cx.port_is(PORT) {
        return Verdict::No;
    }
    // The first datagram of each direction must fit, as the one nDPI reads; later ones
    // (other message kinds nothing public describes) only count when they fit too.
    let mut seen = 0usize;
    for dir in [cx.c2s, cx.s2c] {
        for (i, d) in cx.datagrams(dir).enumerate() {
            if udp_layout_ok(d) {
                seen += 1;
            } else if i == 0 {
                return Verdict::No;
            }
        }
    }
    if seen >= UDP_MIN_DATAGRAMS || (cx.last && seen > 0) {
        let mut cl = classification(
            "setten.nomachine.udp-layout",
            "nx.udp_datagrams",
            format!("{seen} datagrams with version 1 and their own length at offset 4"),
        );
        cl.evidence.push(super::Evidence::new(
            "setten.nomachine.port",
            "udp.port",
            PORT.to_string(),
        ));
        return Verdict::Yes(cl);
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

/// Detects NoMachine NX.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if cx.is_tcp() {
        detect_tcp(cx)
    } else if cx.is_udp() {
        detect_udp(cx)
    } else {
        Verdict::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(tcp: bool, c2s: &[&[u8]], s2c: &[&[u8]], server_port: u16, last: bool) -> Verdict {
        let proto = if tcp { ipproto::TCP } else { ipproto::UDP };
        crate::classify::testing::run(detect, proto, c2s, s2c, (51000, server_port), last)
    }

    // Built from nDPI nomachine.c's description: "NXSH-" / "NXD-" and a version number,
    // 11 to 14 bytes, then TLS.
    const CLIENT_LINE: &[u8] = b"NXSH-8.11.3\n";
    const SERVER_LINE: &[u8] = b"NXD-8.11.3\n";
    const TLS_START: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xf4, 0x01];

    #[test]
    fn handshake_lines() {
        let v = run(true, &[CLIENT_LINE, TLS_START], &[SERVER_LINE], PORT, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.service, Some(Service::Nomachine));
        assert_eq!(c.evidence[0].value, "c2s NXSH-8.11.3; s2c NXD-8.11.3");
        assert_eq!(c.extra.meta.version.as_deref(), Some("8.11.3"));
        // CR LF, and TLS right after the version, are line ends too.
        assert!(matches!(
            run(
                true,
                &[b"NXSH-1.0.0\r\n"],
                &[b"NXD-1.0.0\x16\x03\x03"],
                4000,
                false
            ),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn one_side_only_at_the_end() {
        assert!(matches!(
            run(true, &[CLIENT_LINE], &[], PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(true, &[CLIENT_LINE], &[], PORT, true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(true, &[b"NXSH-8.1"], &[], PORT, false),
            Verdict::Wait
        ));
        // At the end, a line cut after a complete version still names the flow; one cut
        // inside the prefix or before the version's second part does not.
        assert!(matches!(
            run(true, &[b"NXSH-8.1"], &[], PORT, true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(true, &[b"NXSH-8."], &[], PORT, true),
            Verdict::No
        ));
        assert!(matches!(run(true, &[b"NXS"], &[], PORT, true), Verdict::No));
        // One line, the other side straight into TLS (either way round).
        let v = run(true, &[CLIENT_LINE], &[TLS_START], PORT, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.evidence[0].value, "c2s NXSH-8.11.3; s2c TLS");
        assert!(matches!(
            run(true, &[TLS_START], &[SERVER_LINE], PORT, false),
            Verdict::Yes(_)
        ));
        // The server's TLS seen before the client's line: wait for the line.
        assert!(matches!(
            run(true, &[], &[TLS_START], PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(true, &[], &[TLS_START], PORT, true),
            Verdict::No
        ));
        // Anything else from the other side is not NoMachine's.
        assert!(matches!(
            run(true, &[CLIENT_LINE], &[b"HTTP/1.1 400 Bad"], PORT, false),
            Verdict::No
        ));
        // The same prefix from both sides is not a handshake.
        assert!(matches!(
            run(true, &[CLIENT_LINE], &[CLIENT_LINE], PORT, false),
            Verdict::No
        ));
    }

    #[test]
    fn a_line_without_its_end() {
        // nDPI takes any 11-14 byte segment with the prefix: the line end is not needed
        // once the other side has answered or the flow is over.
        let v = run(true, &[b"NXSH-8.11.3"], &[b"NXD-8.11.3"], PORT, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.evidence[0].value, "c2s NXSH-8.11.3; s2c NXD-8.11.3");
        assert!(matches!(
            run(true, &[b"NXSH-8.11.3"], &[TLS_START], PORT, false),
            Verdict::Yes(_)
        ));
        // Alone, it may still grow ("8.11.31") until the flow is over.
        assert!(matches!(
            run(true, &[b"NXSH-8.11.3"], &[], PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(true, &[b"NXSH-8.11.3"], &[], PORT, true),
            Verdict::Yes(_)
        ));
        // A version of one part is still no version, answered or not.
        assert!(matches!(
            run(true, &[b"NXSH-8"], &[b"NXD-8"], PORT, true),
            Verdict::No
        ));
        // Whatever follows a complete version ends it.
        let v = run(true, &[b"NXSH-8.11.3-1\n"], &[SERVER_LINE], PORT, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.extra.meta.version.as_deref(), Some("8.11.3"));
    }

    #[test]
    fn udp_datagrams_after_the_first_need_not_fit() {
        let (a, b) = (datagram(12), datagram(14));
        let mut other = datagram(20);
        other[2] = 7;
        // A later datagram of another kind neither counts nor refutes.
        assert!(matches!(
            run(false, &[&a, &other], &[], PORT, false),
            Verdict::Wait
        ));
        let v = run(false, &[&a, &other], &[&b, &other], PORT, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(
            c.evidence[0].value,
            "2 datagrams with version 1 and their own length at offset 4"
        );
        // The first of a direction must fit.
        assert!(matches!(
            run(false, &[&a, &b], &[&other, &b], PORT, false),
            Verdict::No
        ));
    }

    #[test]
    fn version_must_be_dotted_digits() {
        assert_eq!(parse_hello(b"NXSH-8\n", false).err(), Some(Error::Invalid));
        assert_eq!(
            parse_hello(b"NXSH-8..1\n", false).err(),
            Some(Error::Invalid)
        );
        assert_eq!(
            parse_hello(b"NXSH-1.2.3.4.5\n", false).err(),
            Some(Error::Invalid)
        );
        assert_eq!(
            parse_hello(b"NXSH-12345.1\n", false).err(),
            Some(Error::Invalid)
        );
        assert_eq!(parse_hello(b"NXSH-8..1", false).err(), Some(Error::Invalid));
        assert_eq!(parse_hello(b"NXSH-x", false).err(), Some(Error::Invalid));
        assert_eq!(parse_hello(b"NXD-", false).err(), Some(Error::Incomplete));
        assert_eq!(parse_hello(b"NX", false).err(), Some(Error::Incomplete));
        // A complete version at the end of the bytes ends the line only when no more
        // bytes will follow.
        assert_eq!(
            parse_hello(b"NXSH-8.11.3", false).err(),
            Some(Error::Incomplete)
        );
        let (h, rest) = parse_hello(b"NXSH-8.11.3", true).unwrap();
        assert_eq!(
            (h.side, h.version, rest),
            (Side::Client, &b"8.11.3"[..], &b""[..])
        );
        assert_eq!(parse_hello(b"NXSH-8", true).err(), Some(Error::Incomplete));
        assert_eq!(parse_hello(b"NXD-8.", true).err(), Some(Error::Incomplete));
        let long = [b"NXSH-".as_slice(), &[b'1'; 40]].concat();
        assert_eq!(parse_hello(&long, false).err(), Some(Error::Invalid));
    }

    // UDP layout from nDPI nomachine.c: LE 1 at offset 2, LE length at 4, zeros at 8.
    fn datagram(len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[2] = 1;
        d[4..6].copy_from_slice(&(len as u16).to_le_bytes());
        d[6] = 0x5a;
        if let Some(x) = d.get_mut(10) {
            *x = 0x77;
        }
        d
    }

    #[test]
    fn udp_on_the_standard_port() {
        let (a, b) = (datagram(10), datagram(120));
        assert!(matches!(
            run(false, &[&a], &[&b], PORT, false),
            Verdict::Yes(_)
        ));
        assert!(matches!(run(false, &[&a], &[], PORT, false), Verdict::Wait));
        assert!(matches!(
            run(false, &[&a], &[], PORT, true),
            Verdict::Yes(_)
        ));
        // Off the port the layout is not trusted.
        assert!(matches!(run(false, &[&a], &[&b], 4001, false), Verdict::No));
        // One datagram that does not fit decides.
        let mut bad = datagram(40);
        bad[4] = 41;
        assert!(matches!(
            run(false, &[&a], &[&bad], PORT, false),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_not_nomachine() {
        assert!(matches!(
            run(true, &[b"GET / HTTP/1.1\r\n"], &[], PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(true, &[TLS_START], &[], PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(true, &[b"SSH-2.0-x\r\n"], &[b"SSH-2.0-y\r\n"], PORT, false),
            Verdict::No
        ));
        // NX 3 ran inside SSH and greeted with "NX> 105 Hello" lines: not this protocol.
        assert!(matches!(
            run(
                true,
                &[],
                &[b"NX> 105 hello NXCLIENT - Version 3.5.0\n"],
                PORT,
                false
            ),
            Verdict::No
        ));
        // DNS on UDP 4000.
        let dns: &[u8] = &[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(run(false, &[dns], &[], PORT, false), Verdict::No));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic.
    #[test]
    fn mutations_never_panic() {
        let whole = [CLIENT_LINE, TLS_START].concat();
        for cut in 0..=whole.len() {
            for last in [false, true] {
                let _ = run(
                    true,
                    &[&whole[..cut]],
                    &[&SERVER_LINE[..cut.min(11)]],
                    PORT,
                    last,
                );
                let _ = run(false, &[&whole[..cut]], &[], PORT, last);
            }
        }
        for i in 0..CLIENT_LINE.len() {
            let mut bad = CLIENT_LINE.to_vec();
            bad[i] ^= 0x40;
            let _ = run(true, &[&bad], &[SERVER_LINE], PORT, true);
        }
    }
}
