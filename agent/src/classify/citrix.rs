//! Citrix ICA (TCP 1494) and CGP, ICA's session-reliability layer (TCP 2598).
//!
//! Promise: `Yes` only when a direction opens with one of Citrix's fixed magic strings:
//!
//! - the ICA detect string `7f 7f 'I' 'C' 'A' 00`, which an ICA host sends (and repeats)
//!   as soon as a client connects (`ICA_DETECT_STRING` in Citrix's `ica30.h`; Nessus'
//!   `find_service` and Nmap's NULL-probe match `^\x7f\x7fICA\0` use the same bytes);
//! - the CGP header `1a 'C' 'G' 'P' '/' '0' '1'` (nDPI `src/lib/protocols/citrix.c`).
//!
//! The ICA string is accepted from the server, or from the client alone when the capture
//! ends without a server byte (a one-sided capture: ICA clients echo the string back).
//! The CGP header is accepted from either side. ICA carried inside TLS (Citrix Gateway on
//! 443) is the TLS detector's and the catalogue's. nDPI also matches `07 07 'I' 'C' 'A' 00`;
//! no Citrix source uses those bytes, so they are not accepted here.

use super::{util, Classification, Cx, Service, Verdict};

/// The ICA detect string (`ICA_DETECT_STRING`, Citrix `ica30.h`).
pub const ICA_DETECT: &[u8; 6] = b"\x7f\x7fICA\x00";
/// The CGP header opening a session-reliability connection (nDPI `citrix.c`).
pub const CGP_MAGIC: &[u8; 7] = b"\x1aCGP/01";
/// ICA's standard port.
pub const ICA_PORT: u16 = 1494;
/// CGP's standard port.
pub const CGP_PORT: u16 = 2598;

/// Which magic string a direction opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The ICA detect string.
    Ica,
    /// The CGP header.
    Cgp,
    /// Too few bytes to tell (a prefix of a magic string, or nothing yet).
    Undecided,
    /// Neither.
    Other,
}

/// Classifies the start of a direction.
pub fn opening(b: &[u8]) -> Opening {
    let starts = |magic: &[u8]| b.starts_with(magic);
    let prefix_of = |magic: &[u8]| magic.starts_with(b);
    if starts(ICA_DETECT) {
        Opening::Ica
    } else if starts(CGP_MAGIC) {
        Opening::Cgp
    } else if prefix_of(ICA_DETECT) || prefix_of(CGP_MAGIC) {
        Opening::Undecided
    } else {
        Opening::Other
    }
}

fn classification(kind: Opening, b: &[u8]) -> Classification {
    let (protocol, rule, field, product) = match kind {
        Opening::Cgp => (
            "cgp",
            "setten.citrix.cgp-header",
            "citrix.cgp_header",
            "Citrix ICA session reliability (CGP)",
        ),
        _ => (
            "ica",
            "setten.citrix.ica-detect",
            "citrix.ica_detect",
            "Citrix ICA",
        ),
    };
    let len = if kind == Opening::Cgp {
        CGP_MAGIC.len()
    } else {
        ICA_DETECT.len()
    };
    let mut c = Classification::new(
        protocol,
        Some(Service::Citrix),
        rule,
        field,
        util::hex(b.get(..len).unwrap_or(&[])),
    );
    c.extra.vendor = Some("Citrix".to_owned());
    c.extra.product = Some(product.to_owned());
    c
}

/// Detects ICA and CGP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let (cb, sb) = (cx.c2s.bytes(), cx.s2c.bytes());
    let (client, server) = (opening(cb), opening(sb));
    match (client, server) {
        (_, Opening::Ica | Opening::Cgp) => Verdict::Yes(classification(server, sb)),
        (Opening::Cgp, _) => Verdict::Yes(classification(client, cb)),
        (Opening::Ica, Opening::Undecided) if cx.last && sb.is_empty() => {
            Verdict::Yes(classification(client, cb))
        }
        // The server spoke first with something else, or the client sent something
        // other than CGP and the server has since answered otherwise.
        (_, Opening::Other) => Verdict::No,
        _ if cx.last => Verdict::No,
        // The ICA host speaks first; until it has, the client's bytes do not decide.
        _ => Verdict::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], server_port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (50123, server_port), last)
    }

    fn yes(v: Verdict) -> Classification {
        match v {
            Verdict::Yes(c) => c,
            other => panic!("expected Yes, got {other:?}"),
        }
    }

    // ica30.h ICA_DETECT_STRING, sent twice by the host (Nmap's NULL-probe match
    // `^\x7f\x7fICA\0\x7f\x7fICA\0`).
    const ICA_BANNER: &[u8] = b"\x7f\x7fICA\x00\x7f\x7fICA\x00";

    #[test]
    fn ica_host_banner() {
        let c = yes(run(&[], &[ICA_BANNER], ICA_PORT, false));
        assert_eq!(c.protocol, "ica");
        assert_eq!(c.service, Some(Service::Citrix));
        assert_eq!(c.evidence[0].value, "7f7f49434100");
        // The client echoing it is fine too.
        assert!(matches!(
            run(&[ICA_DETECT], &[ICA_BANNER], ICA_PORT, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn cgp_header() {
        // nDPI citrix.c: the CGP header, here followed by the rest of a packet.
        let c = yes(run(&[b"\x1aCGP/01\x00\x00\x00\x05"], &[], CGP_PORT, false));
        assert_eq!(c.protocol, "cgp");
        assert_eq!(c.evidence[0].value, "1a4347502f3031");
    }

    #[test]
    fn client_alone_only_at_the_end() {
        assert!(matches!(
            run(&[ICA_DETECT], &[], ICA_PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[ICA_DETECT], &[], ICA_PORT, true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(&[ICA_DETECT], &[b"HTTP/1.1 400"], ICA_PORT, true),
            Verdict::No
        ));
    }

    #[test]
    fn prefixes_wait() {
        assert!(matches!(
            run(&[], &[b"\x7f\x7fI"], ICA_PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[b"\x1aCG"], &[], CGP_PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[], &[b"\x7f\x7fI"], ICA_PORT, true),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_not_citrix() {
        // nDPI's 07 07 'ICA' 00 variant is not accepted.
        assert!(matches!(
            run(&[], &[b"\x07\x07ICA\x00"], ICA_PORT, false),
            Verdict::No
        ));
        // RDP X.224 Connection Request (TPKT), TLS, HTTP, SSH.
        assert!(matches!(
            run(
                &[&[0x03, 0x00, 0x00, 0x13, 0x0e, 0xe0]],
                &[&[0x03, 0x00]],
                3389,
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(
                &[&[0x16, 0x03, 0x01, 0x00, 0xa5]],
                &[&[0x16, 0x03, 0x03]],
                443,
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(
                &[b"GET / HTTP/1.1\r\n"],
                &[b"HTTP/1.1 200 OK\r\n"],
                80,
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(&[], &[b"SSH-2.0-x\r\n"], 22, false),
            Verdict::No
        ));
        // A DEL byte followed by something else.
        assert!(matches!(
            run(&[], &[b"\x7fELF"], ICA_PORT, false),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the magic strings is handled without
    /// a panic, and a corrupted magic string is never accepted.
    #[test]
    fn mutations_never_panic() {
        for magic in [&ICA_DETECT[..], &CGP_MAGIC[..]] {
            for cut in 0..magic.len() {
                assert!(matches!(
                    run(&[], &[&magic[..cut]], ICA_PORT, true),
                    Verdict::No
                ));
            }
            for i in 0..magic.len() {
                let mut bad = magic.to_vec();
                bad[i] ^= 0x20;
                assert!(matches!(run(&[&bad], &[&bad], ICA_PORT, true), Verdict::No));
            }
        }
    }
}
