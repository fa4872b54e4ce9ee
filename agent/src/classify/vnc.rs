//! VNC: the RFB protocol (RFC 6143), Apple Remote Desktop / Screen Sharing included.
//!
//! Promise: `Yes` only when the server opens with a complete RFB ProtocolVersion message,
//! the 12 bytes `"RFB xxx.yyy\n"` with decimal digits (RFC 6143 section 7.1.1). The
//! client's answering version is waited for and kept as evidence; a client that answers
//! with something else (a scanner) does not unmake the server. A client version with no
//! server bytes at all is accepted only when the flow is over (a reverse connection whose
//! viewer never answered, or a one-sided capture). The server's version goes into
//! `meta.version` ("RFB 003.008"); Apple's variant ("RFB 003.889") names the vendor and
//! product. Once both versions are in, the detector waits for the server's next message,
//! the security types it offers (section 7.1.2), and keeps them as evidence: a server
//! offering "None" gives its desktop to anyone.
//!
//! The version message is the whole test: it is 12 fixed-shape bytes that no other
//! protocol sends first, so the port is never consulted.

use super::{Classification, Cx, Evidence, Service, Verdict};

/// Length of a ProtocolVersion message (RFC 6143 section 7.1.1).
pub const VERSION_LEN: usize = 12;

/// The fixed shape of a ProtocolVersion message: `R F B space d d d . d d d \n`, where `d`
/// is any ASCII digit (RFC 6143 section 7.1.1).
const VERSION_SHAPE: &[u8; VERSION_LEN] = b"RFB 000.000\n";

/// Positions of [`VERSION_SHAPE`] that hold a digit.
const DIGIT_POSITIONS: [usize; 6] = [4, 5, 6, 8, 9, 10];

/// Version minor number Apple Remote Desktop and macOS Screen Sharing announce
/// ("RFB 003.889"); they otherwise follow the 3.8 handshake.
pub const APPLE_MINOR: u16 = 889;

/// Security type "None" (RFC 6143 section 7.2.1).
pub const SEC_NONE: u8 = 1;
/// Security type "VNC Authentication" (RFC 6143 section 7.2.2).
pub const SEC_VNC_AUTH: u8 = 2;

/// Why a ProtocolVersion message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes so far fit the shape but are fewer than 12.
    Incomplete,
    /// The bytes break the shape: not RFB.
    Invalid,
}

/// An RFB ProtocolVersion message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersion {
    /// Major number (3 in RFC 6143; RealVNC also sends 4 and 5).
    pub major: u16,
    /// Minor number (3, 7 or 8 in RFC 6143; 889 for Apple).
    pub minor: u16,
}

impl ProtocolVersion {
    /// The wire text without the newline, e.g. "RFB 003.008".
    pub fn text(&self) -> String {
        format!("RFB {:03}.{:03}", self.major, self.minor)
    }

    /// Apple Remote Desktop / Screen Sharing.
    pub fn is_apple(&self) -> bool {
        self.major == 3 && self.minor == APPLE_MINOR
    }

    /// Before 3.7 the server decides the security type alone and sends it as a U32
    /// (RFC 6143 section 7.1.2, "Version 3.3").
    fn server_picks_security(&self) -> bool {
        self.major < 3 || (self.major == 3 && self.minor < 7)
    }

    /// The version both sides use: the lower of the two (RFC 6143 section 7.1.1: the
    /// client answers with the server's version or a lower one).
    fn min_with(&self, other: &ProtocolVersion) -> ProtocolVersion {
        if (other.major, other.minor) < (self.major, self.minor) && !self.is_apple() {
            *other
        } else {
            *self
        }
    }
}

/// Parses a ProtocolVersion message at the start of `b`; returns it and the rest.
pub fn parse_version(b: &[u8]) -> Result<(ProtocolVersion, &[u8]), Error> {
    for (i, (&got, &want)) in b.iter().zip(VERSION_SHAPE.iter()).enumerate() {
        let fits = if DIGIT_POSITIONS.contains(&i) {
            got.is_ascii_digit()
        } else {
            got == want
        };
        if !fits {
            return Err(Error::Invalid);
        }
    }
    let (Some(msg), Some(rest)) = (b.get(..VERSION_LEN), b.get(VERSION_LEN..)) else {
        return Err(Error::Incomplete);
    };
    let number = |from: usize| -> u16 {
        msg.get(from..from + 3)
            .unwrap_or(&[])
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
    };
    Ok((
        ProtocolVersion {
            major: number(4),
            minor: number(8),
        },
        rest,
    ))
}

/// Security types the server offers (RFC 6143 section 7.1.2), read from the bytes after
/// its ProtocolVersion. `None` when they are not (all) there yet or the server refused
/// the connection (zero types).
pub fn parse_security_types(version: &ProtocolVersion, rest: &[u8]) -> Option<Vec<u8>> {
    if version.server_picks_security() {
        // Version 3.3: one U32, 0 meaning failure.
        let t = super::util::be32(rest, 0)?;
        return match u8::try_from(t) {
            Ok(0) | Err(_) => None,
            Ok(t) => Some(vec![t]),
        };
    }
    // 3.7 and later: U8 count, then that many U8 types; a count of 0 is a failure.
    // The count is a U8, so the list is at most 255 bytes.
    let count = usize::from(*rest.first()?);
    if count == 0 {
        return None;
    }
    rest.get(1..1 + count).map(<[u8]>::to_vec)
}

/// A readable name for a security type (RFC 6143 section 7.2 and the IANA "RFB Security
/// Types" registry).
pub fn security_type_name(t: u8) -> &'static str {
    match t {
        SEC_NONE => "None",
        SEC_VNC_AUTH => "VNC Authentication",
        5 => "RA2",
        6 => "RA2ne",
        16 => "Tight",
        17 => "Ultra",
        18 => "TLS",
        19 => "VeNCrypt",
        20 => "SASL",
        21 => "MD5 hash",
        22 => "xvp",
        30 => "Apple Diffie-Hellman",
        _ => "other",
    }
}

fn security_evidence(types: &[u8]) -> Evidence {
    let value = types
        .iter()
        .map(|&t| format!("{t} ({})", security_type_name(t)))
        .collect::<Vec<_>>()
        .join(", ");
    Evidence::new("setten.vnc.security-types", "rfb.security_types", value)
}

fn classify(server: Option<ProtocolVersion>, client: Option<ProtocolVersion>) -> Classification {
    let (rule, field, first) = match (server, client) {
        (Some(s), _) => ("setten.vnc.server-version", "rfb.server_version", s),
        (None, Some(c)) => ("setten.vnc.client-version", "rfb.client_version", c),
        // Callers always pass one version; fall back to RFC 6143's own.
        (None, None) => (
            "setten.vnc.server-version",
            "rfb.server_version",
            ProtocolVersion { major: 3, minor: 8 },
        ),
    };
    let mut c = Classification::new("rfb", Some(Service::Vnc), rule, field, first.text());
    if let (Some(_), Some(cv)) = (server, client) {
        c.evidence.push(Evidence::new(
            "setten.vnc.client-version",
            "rfb.client_version",
            cv.text(),
        ));
    }
    if first.is_apple() {
        c.extra.vendor = Some("Apple".to_owned());
        c.extra.product = Some("Apple Remote Desktop / Screen Sharing".to_owned());
    }
    c.extra.meta.version = Some(first.text());
    c
}

/// Detects RFB.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let server = parse_version(cx.s2c.bytes());
    let client = parse_version(cx.c2s.bytes());
    match (server, client) {
        // The server speaks RFB first in both directions of use (RFC 6143 section 7.1.1;
        // in a reverse connection the TCP server is the viewer, which answers in kind).
        (Err(Error::Invalid), _) => Verdict::No,
        (Ok((sv, rest)), Ok((cv, _))) => {
            // Wait one more server message for the security types (section 7.1.2).
            if rest.is_empty() && !cx.last {
                return Verdict::Wait;
            }
            let mut c = classify(Some(sv), Some(cv));
            if let Some(types) = parse_security_types(&sv.min_with(&cv), rest) {
                c.evidence.push(security_evidence(&types));
            }
            Verdict::Yes(c)
        }
        // The client said something else (a scanner, a confused client): the server is
        // still an RFB server.
        (Ok((sv, _)), Err(Error::Invalid)) => Verdict::Yes(classify(Some(sv), None)),
        (Ok((sv, _)), Err(Error::Incomplete)) => {
            if cx.last {
                Verdict::Yes(classify(Some(sv), None))
            } else {
                Verdict::Wait
            }
        }
        // Neither RFB client nor server sends anything but a version first.
        (Err(Error::Incomplete), Err(Error::Invalid)) => Verdict::No,
        (Err(Error::Incomplete), Ok((cv, _))) => {
            if !cx.last {
                Verdict::Wait
            } else if cx.s2c.bytes().is_empty() {
                Verdict::Yes(classify(None, Some(cv)))
            } else {
                Verdict::No
            }
        }
        (Err(Error::Incomplete), Err(Error::Incomplete)) => {
            if cx.last {
                Verdict::No
            } else {
                Verdict::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (59791, 6900), last)
    }

    fn yes(v: Verdict) -> Classification {
        match v {
            Verdict::Yes(c) => c,
            other => panic!("expected Yes, got {other:?}"),
        }
    }

    // Corpus ndpi-vnc.pcap, frame 4 (server) and frame 5 (client): RealVNC 4.1.
    const REALVNC_SERVER: &[u8] = b"RFB 004.001\n";
    // Frame 6: the server's security types after the client's version.
    const REALVNC_SECURITY: &[u8] = &[0x07, 0x0d, 0x85, 0x05, 0x81, 0x06, 0x82, 0x02];

    #[test]
    fn corpus_realvnc_handshake() {
        let c = yes(run(
            &[REALVNC_SERVER, &[0x0d]],
            &[REALVNC_SERVER, REALVNC_SECURITY],
            false,
        ));
        assert_eq!(c.service, Some(Service::Vnc));
        assert_eq!(c.extra.meta.version.as_deref(), Some("RFB 004.001"));
        assert_eq!(c.evidence[0].rule, "setten.vnc.server-version");
        assert_eq!(c.evidence[1].value, "RFB 004.001");
        let sec = c.evidence.last().expect("security evidence");
        assert_eq!(sec.field, "rfb.security_types");
        assert!(sec.value.starts_with("13 (other), 133 (other), 5 (RA2)"));
        assert!(sec.value.ends_with("2 (VNC Authentication)"));
    }

    #[test]
    fn waits_for_the_security_types_then_decides_at_the_end() {
        assert!(matches!(
            run(&[REALVNC_SERVER], &[REALVNC_SERVER], false),
            Verdict::Wait
        ));
        let c = yes(run(&[REALVNC_SERVER], &[REALVNC_SERVER], true));
        assert_eq!(c.evidence.len(), 2);
    }

    // RFC 6143 section 7.1.1/7.1.2, version 3.3: the server names the type as a U32.
    #[test]
    fn rfc_3_3_security_none() {
        let c = yes(run(
            &[b"RFB 003.003\n"],
            &[b"RFB 003.003\n", &[0, 0, 0, 1]],
            false,
        ));
        assert_eq!(c.evidence[2].value, "1 (None)");
    }

    // RFC 6143 section 7.1.2, version 3.8, server offering None and VNC Authentication.
    #[test]
    fn rfc_3_8_security_list() {
        let c = yes(run(
            &[b"RFB 003.008\n"],
            &[b"RFB 003.008\n", &[2, 1, 2]],
            false,
        ));
        assert_eq!(c.extra.meta.version.as_deref(), Some("RFB 003.008"));
        assert_eq!(c.evidence[2].value, "1 (None), 2 (VNC Authentication)");
    }

    // macOS Screen Sharing announces "RFB 003.889" (the Apple variant; its security list
    // includes type 30, Apple's Diffie-Hellman authentication).
    #[test]
    fn apple_remote_desktop() {
        let c = yes(run(
            &[b"RFB 003.889\n"],
            &[b"RFB 003.889\n", &[2, 30, 2]],
            false,
        ));
        assert_eq!(c.extra.vendor.as_deref(), Some("Apple"));
        assert_eq!(c.extra.meta.version.as_deref(), Some("RFB 003.889"));
        assert!(c.evidence[2].value.contains("30 (Apple Diffie-Hellman)"));
    }

    #[test]
    fn server_banner_alone_at_the_end() {
        let c = yes(run(&[], &[b"RFB 003.008\n"], true));
        assert_eq!(c.evidence.len(), 1);
        assert!(matches!(
            run(&[], &[b"RFB 003.008\n"], false),
            Verdict::Wait
        ));
    }

    #[test]
    fn partial_banner_waits() {
        assert!(matches!(run(&[], &[b"RFB 00"], false), Verdict::Wait));
        assert!(matches!(run(&[], &[b"RFB 00"], true), Verdict::No));
    }

    #[test]
    fn parse_version_shapes() {
        assert_eq!(
            parse_version(b"RFB 003.007\nrest").map(|(v, r)| (v.minor, r.len())),
            Ok((7, 4))
        );
        assert_eq!(parse_version(b"RFB 003.00").err(), Some(Error::Incomplete));
        assert_eq!(parse_version(b"RFB 003.0a8\n").err(), Some(Error::Invalid));
        assert_eq!(parse_version(b"RFB 003.008\r").err(), Some(Error::Invalid));
        assert_eq!(parse_version(b"rfb 003.008\n").err(), Some(Error::Invalid));
        assert_eq!(parse_version(b"").err(), Some(Error::Incomplete));
    }

    #[test]
    fn other_protocols_are_not_rfb() {
        // SSH banner (RFC 4253 section 4.2), HTTP request, TLS ClientHello start.
        assert!(matches!(
            run(
                &[b"SSH-2.0-OpenSSH_9.6\r\n"],
                &[b"SSH-2.0-OpenSSH_9.6\r\n"],
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"], &[], false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01]], &[], false),
            Verdict::No
        ));
        // A server that speaks first with something else.
        assert!(matches!(
            run(&[], &[b"220 mail.example ESMTP\r\n"], false),
            Verdict::No
        ));
        // The client alone sends a version while the server answered otherwise.
        assert!(matches!(
            run(
                &[b"RFB 003.008\n"],
                &[b"HTTP/1.1 400 Bad Request\r\n"],
                true
            ),
            Verdict::No
        ));
    }

    #[test]
    fn security_types_edge_cases() {
        let v38 = ProtocolVersion { major: 3, minor: 8 };
        assert_eq!(parse_security_types(&v38, &[]), None);
        assert_eq!(parse_security_types(&v38, &[0, 0, 0, 0, 5]), None);
        assert_eq!(parse_security_types(&v38, &[3, 1, 2]), None);
        assert_eq!(parse_security_types(&v38, &[255]), None);
        let v33 = ProtocolVersion { major: 3, minor: 3 };
        assert_eq!(parse_security_types(&v33, &[0, 0, 0, 0]), None);
        assert_eq!(parse_security_types(&v33, &[0, 0, 1, 2]), None);
        assert_eq!(parse_security_types(&v33, &[0, 0, 0, 2]), Some(vec![2]));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic, and a corrupted version byte never passes as RFB.
    #[test]
    fn mutations_never_panic() {
        let whole = [REALVNC_SERVER, REALVNC_SECURITY].concat();
        for cut in 0..=whole.len() {
            for last in [false, true] {
                let _ = run(&[&whole[..cut]], &[&whole[..cut]], last);
            }
        }
        for i in 0..VERSION_LEN {
            let mut bad = whole.clone();
            bad[i] ^= 0x80;
            assert!(matches!(run(&[REALVNC_SERVER], &[&bad], true), Verdict::No));
        }
    }
}
