//! The data channel of Cisco AnyConnect-style SSL VPNs (Cisco ASA, and ocserv with
//! `dtls-legacy`) in Cisco's pre-standard DTLS: version 0x0100 ("DTLS 0.9", OpenSSL's
//! `DTLS1_BAD_VER`), which no standard DTLS stack speaks.
//!
//! Promise: `Yes` when the client's first datagram is a DTLS handshake record of version
//! 0x0100, epoch 0, holding a whole ClientHello of version 0x0100 with a 32-byte session
//! id (the `X-DTLS-Session-ID` the server gave inside the TLS tunnel), and the server's
//! first datagram is a ServerHello of version 0x0100 that resumes that same session id
//! (the master secret was also given inside TLS, so the handshake is abbreviated). A
//! server may first answer with a HelloVerifyRequest of version 0x0100 (Cisco ASA does);
//! the client's hello sent again with its cookie and the ServerHello then carry message
//! sequence 1 and the same session id. A client hello alone counts only when the flow is
//! over. openconnect
//! `gnutls-dtls.c` (`start_dtls_handshake`, `GNUTLS_DTLS0_9`) and ocserv `main.c`
//! (`forward_udp_to_owner`, which accepts record version 1.0 only this way) agree on the
//! layout.

use super::common::{self, Parse};
use super::{util, Classification, Cx, Service, Verdict};

/// Cisco's pre-standard DTLS version.
const VERSION: u16 = 0x0100;
/// Session id length AnyConnect uses.
const SESSION_ID_LEN: usize = 32;

/// Datagrams of each direction looked at for the handshake: a hello sent again before
/// the answer came (the first was lost) leaves room for one more.
const LOOK: usize = 4;

/// The first handshake message of a datagram's first record, of version 0x0100, of the
/// given type and message sequence and whole in the datagram.
fn message(d: &[u8], msg_type: u8, seq: u16) -> Option<&[u8]> {
    let Parse::Ok(f) = common::dtls::handshake_fragment(d) else {
        return None;
    };
    if f.record_version != VERSION
        || f.msg_type != msg_type
        || f.message_seq != seq
        || f.offset != 0
        || f.body.len() != f.msg_len
    {
        return None;
    }
    // Every message here opens with its version.
    (util::be16(f.body, 0)? == VERSION).then_some(f.body)
}

/// The session id of a version-0x0100 ClientHello (type 1) or ServerHello (type 2) with
/// the given message sequence in a datagram.
fn hello_session_id(d: &[u8], msg_type: u8, seq: u16) -> Option<&[u8]> {
    let body = message(d, msg_type, seq)?;
    // version (2), random (32), session id length, session id.
    if usize::from(*body.get(34)?) != SESSION_ID_LEN {
        return None;
    }
    body.get(35..35 + SESSION_ID_LEN)
}

/// Whether a datagram is a version-0x0100 HelloVerifyRequest (type 3): the server asks
/// the client to send its hello again with the cookie given (RFC 6347 section 4.2.1:
/// server version, then a cookie of at most 32 bytes in DTLS 1.0).
fn is_hello_verify(d: &[u8]) -> bool {
    message(d, 3, 0).is_some_and(|b| {
        b.get(2)
            .is_some_and(|&n| n <= 32 && b.len() == 3 + usize::from(n))
    })
}

/// How the server answered the client's hello with session id `sid`: `Some(true)` a
/// ServerHello resuming that session, `Some(false)` nothing yet, `None` something else.
/// A server may first send a HelloVerifyRequest (as Cisco ASA does); the client's hello
/// sent again with the cookie and the ServerHello after it then carry message sequence 1.
fn answered(cx: &Cx<'_>, sid: &[u8]) -> Option<bool> {
    let mut s2c = cx.datagrams(cx.s2c);
    let Some(first) = s2c.next() else {
        return Some(false);
    };
    if let Some(echo) = hello_session_id(first, 2, 0) {
        return (echo == sid).then_some(true);
    }
    if !is_hello_verify(first) {
        return None;
    }
    // The hello sent again: the same session id, message sequence 1.
    let again = cx
        .datagrams(cx.c2s)
        .take(LOOK)
        .find_map(|d| hello_session_id(d, 1, 1));
    match again {
        Some(id) if id != sid => return None,
        Some(_) => {}
        None if cx.datagrams(cx.c2s).nth(LOOK).is_some() => return None,
        None => return Some(false),
    }
    for d in s2c.take(LOOK) {
        if is_hello_verify(d) {
            continue;
        }
        return (hello_session_id(d, 2, 1)? == sid).then_some(true);
    }
    Some(false)
}

/// Detects Cisco's pre-standard DTLS.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let c = cx.first_c2s_datagram();
    if c.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let Some(sid) = hello_session_id(c, 1, 0) else {
        return Verdict::No;
    };
    let resumed = match answered(cx, sid) {
        Some(true) => true,
        Some(false) if !cx.last => return Verdict::Wait,
        Some(false) => false,
        None => return Verdict::No,
    };
    let mut cl = Classification::new(
        "dtls",
        Some(Service::SslVpn),
        "setten.sslvpn.cisco-dtls",
        "dtls.version",
        if resumed {
            "0x0100 (Cisco pre-standard DTLS), ClientHello session resumed by the server"
        } else {
            "0x0100 (Cisco pre-standard DTLS), ClientHello"
        },
    );
    cl.extra.product = Some("AnyConnect protocol (Cisco ASA or compatible)".into());
    cl.extra.meta.version = Some("DTLS 0.9 (0x0100)".into());
    Verdict::Yes(cl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::common::testing::hex;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::UDP,
            c2s,
            s2c,
            (40000, 443),
            last,
        )
    }

    /// openconnect 9.01 to ocserv 1.1.6 with `dtls-legacy` (Debian 12),
    /// `--dtls-ciphers=AES128-SHA`: the client's ClientHello and the server's ServerHello
    /// resuming the same 32-byte session id.
    const CLIENT: &str = "160100000000000000000000670100005b000000000000005b0100fe42369331\
        ac3ab9e9e8ba9706add9f962ec3c25a0169dbec7c0585d2ca56a2d205d15d13713d309b6bef883e55e\
        2c09ed484103624d27d02f35f663b92a6179c7000002002f0100000f00230000ff01000100001c00024000";
    const SERVER: &str = "1601000000000000000000005a0200004e000000000000004e0100c387eff2c2\
        d0241b5cd5af720b394b6979fb75e1a8c708a01fd8e2be613a4616205d15d13713d309b6bef883e55e\
        2c09ed484103624d27d02f35f663b92a6179c7002f000006001c00024000";

    #[test]
    fn openconnect_legacy_dtls_to_ocserv() {
        let (c, s) = (hex(CLIENT), hex(SERVER));
        match run(&[&c], &[&s], false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.service, Some(Service::SslVpn));
                assert_eq!(cl.evidence[0].rule, "setten.sslvpn.cisco-dtls");
                assert!(cl.evidence[0].value.ends_with("resumed by the server"));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(run(&[&c], &[], false), Verdict::Wait));
        assert!(matches!(run(&[&c], &[], true), Verdict::Yes(_)));
    }

    /// A datagram's first handshake message with its message sequence set to `seq`.
    fn with_seq(d: &[u8], seq: u16) -> Vec<u8> {
        let mut d = d.to_vec();
        d[17..19].copy_from_slice(&seq.to_be_bytes());
        d
    }

    /// A version-0x0100 HelloVerifyRequest with a cookie of `n` bytes.
    fn hello_verify(n: u8) -> Vec<u8> {
        let body_len = 3 + n;
        let mut d = vec![0x16, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12 + body_len];
        d.extend_from_slice(&[3, 0, 0, body_len, 0, 0, 0, 0, 0, 0, 0, body_len]);
        d.extend_from_slice(&[0x01, 0x00, n]);
        d.extend((0..n).map(|i| i.wrapping_mul(37)));
        d
    }

    /// As Cisco ASA answers (the flow of an AnyConnect client in nDPI's test capture
    /// `anyconnect-vpn.pcap` has this shape): a HelloVerifyRequest first, then the hello
    /// sent again and the ServerHello, both with message sequence 1 and the same session.
    #[test]
    fn a_hello_verify_request_before_the_resumed_session() {
        let (c, s) = (hex(CLIENT), hex(SERVER));
        let (c2, s2, hvr) = (with_seq(&c, 1), with_seq(&s, 1), hello_verify(20));
        match run(&[&c, &c2], &[&hvr, &s2], false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.service, Some(Service::SslVpn));
                assert!(cl.evidence[0].value.ends_with("resumed by the server"));
            }
            v => panic!("{v:?}"),
        }
        // The client's first hello was lost and sent twice.
        assert!(matches!(
            run(&[&c, &c, &c2], &[&hvr, &hvr, &s2], false),
            Verdict::Yes(_)
        ));
        assert!(matches!(run(&[&c], &[&hvr], false), Verdict::Wait));
        assert!(matches!(run(&[&c, &c2], &[&hvr], false), Verdict::Wait));
        // Another session in the hello sent again, or a ServerHello of sequence 0 after
        // the request, or a cookie longer than DTLS 1.0 allows: not this.
        let mut other = c2.clone();
        // The session id: after the record header (13), the handshake header (12), the
        // version (2), the random (32) and the id's length.
        other[13 + 12 + 2 + 32 + 1] ^= 1;
        assert!(matches!(
            run(&[&c, &other], &[&hvr, &s2], false),
            Verdict::No
        ));
        assert!(matches!(run(&[&c, &c2], &[&hvr, &s], false), Verdict::No));
        assert!(matches!(
            run(&[&c, &c2], &[&hello_verify(33), &s2], false),
            Verdict::No
        ));
        // No hello sent again within the datagrams looked at.
        let many: Vec<&[u8]> = std::iter::repeat_n(&c[..], LOOK + 1).collect();
        assert!(matches!(run(&many, &[&hvr], false), Verdict::No));
    }

    #[test]
    fn standard_dtls_or_another_session_is_not_this() {
        let (c, s) = (hex(CLIENT), hex(SERVER));
        // The server answering another session id.
        let mut other = s.clone();
        let last = other.len() - 20;
        other[last] ^= 1;
        assert!(matches!(run(&[&c], &[&other], false), Verdict::No));
        // DTLS 1.2 (0xfefd) records and hellos.
        let mut std = c.clone();
        std[1..3].copy_from_slice(&[0xfe, 0xfd]);
        assert!(matches!(run(&[&std], &[&s], false), Verdict::No));
        for cut in 0..c.len() {
            assert!(hello_session_id(&c[..cut], 1, 0).is_none(), "cut {cut}");
        }
    }
}
