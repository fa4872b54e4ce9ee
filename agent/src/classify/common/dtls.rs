//! DTLS (RFC 6347; RFC 9147 for 1.3) over UDP: TLS for datagrams, used by WebRTC, CoAP,
//! syslog and SIP over DTLS, and by some VPN clients as their data channel.
//!
//! `Yes` for a client's first datagram that is a DTLS handshake record carrying the
//! start of a ClientHello: content type 22, a DTLS record version (0xfeff for 1.0,
//! 0xfefd for 1.2 and 1.3's compatibility value), epoch 0, a record length that fits the
//! datagram, handshake type 1 with message sequence 0, a fragment that lies inside the
//! message and the record, and a DTLS client version. RFC 7983 section 7 keeps DTLS
//! apart from STUN, RTP and the rest on a shared port by the same first byte.

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, first_datagram, require, take, Parse};

/// Record header: type, version, epoch, 48-bit sequence number, length.
const RECORD_HEADER_LEN: usize = 13;
/// Handshake header: type, length (3), message sequence (2), fragment offset (3),
/// fragment length (3).
const HANDSHAKE_HEADER_LEN: usize = 12;

fn version_name(v: u16) -> Option<&'static str> {
    match v {
        0xfeff => Some("1.0"),
        0xfefd => Some("1.2"),
        _ => None,
    }
}

fn be24(b: &[u8], off: usize) -> Parse<usize> {
    let t = need!(take(b, off, 3));
    Parse::Ok(t.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x)))
}

/// The first handshake message fragment of a datagram's first record.
#[derive(Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The record's version field.
    pub record_version: u16,
    /// Handshake type (1 ClientHello, 2 ServerHello).
    pub msg_type: u8,
    /// Length of the whole message.
    pub msg_len: usize,
    /// Message sequence: 0 for a flight's first message; 1 for a ClientHello sent again
    /// with the cookie of a HelloVerifyRequest and for the ServerHello that answers it
    /// (RFC 6347 section 4.2.2).
    pub message_seq: u16,
    /// Where this fragment starts in the message.
    pub offset: usize,
    /// The fragment's bytes.
    pub body: &'a [u8],
}

/// Reads a datagram that opens with a DTLS handshake record of epoch 0 (RFC 6347 4.1:
/// type 22, version, epoch, 48-bit sequence, length that fits the datagram) holding the
/// first fragment of a handshake message (4.2.2: type, length, message sequence,
/// fragment offset and length inside both the message and the record). The record
/// version and the message sequence are not checked here.
pub fn handshake_fragment(d: &[u8]) -> Parse<Fragment<'_>> {
    need!(require(need!(byte(d, 0)) == 22));
    let record_version = need!(be16(d, 1));
    need!(require(need!(be16(d, 3)) == 0));
    let len = usize::from(need!(be16(d, 11)));
    need!(require(
        len >= HANDSHAKE_HEADER_LEN && RECORD_HEADER_LEN + len <= d.len()
    ));
    let h = RECORD_HEADER_LEN;
    let msg_type = need!(byte(d, h));
    let msg_len = need!(be24(d, h + 1));
    let message_seq = need!(be16(d, h + 4));
    let offset = need!(be24(d, h + 6));
    let frag_len = need!(be24(d, h + 9));
    need!(require(
        offset + frag_len <= msg_len && HANDSHAKE_HEADER_LEN + frag_len <= len
    ));
    let body = need!(take(d, h + HANDSHAKE_HEADER_LEN, frag_len));
    Parse::Ok(Fragment {
        record_version,
        msg_type,
        msg_len,
        message_seq,
        offset,
        body,
    })
}

/// Parses a client's first datagram; returns the ClientHello's version.
pub fn parse_client_hello(d: &[u8]) -> Parse<&'static str> {
    let f = need!(handshake_fragment(d));
    need!(require(
        version_name(f.record_version).is_some()
            && f.msg_type == 1
            && f.message_seq == 0
            && f.offset == 0
    ));
    // The ClientHello body starts with client_version.
    match super::super::util::be16(f.body, 0).and_then(version_name) {
        Some(name) => Parse::Ok(name),
        None => Parse::Bad,
    }
}

/// Names DTLS.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = first_datagram(cx, cx.c2s, parse_client_hello);
    finish(
        cx,
        p.map(|v| {
            let mut c = Classification::new(
                "dtls",
                None,
                "setten.dtls.client-hello",
                "dtls.handshake",
                format!("ClientHello, DTLS {v}"),
            );
            c.extra.meta.version = Some(v.into());
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// OpenSSL 3.0 `s_client -dtls`: the first ClientHello (record version 1.0, epoch 0,
    /// length 0xdb; handshake length 0xcf, one fragment; client version DTLS 1.2), cut
    /// after the version and random's first bytes and padded to the record length.
    fn hello() -> Vec<u8> {
        let mut d = hex("16 feff 0000 000000000000 00db 01 0000cf 0000 000000 0000cf fefd");
        d.resize(RECORD_HEADER_LEN + 0xdb, 0x5a);
        d
    }

    #[test]
    fn openssl_client_hello() {
        let c = Flow::udp(50000, 4433).c2s(&hello()).yes(check);
        assert_eq!((c.protocol, c.service), ("dtls", None));
        assert_eq!(c.evidence[0].value, "ClientHello, DTLS 1.2");
    }

    #[test]
    fn not_dtls() {
        let mut d = hello();
        d[0] = 23; // application data
        assert_eq!(parse_client_hello(&d), Parse::Bad);
        let mut d = hello();
        d[2] = 0xfe; // version 0xfefe
        assert_eq!(parse_client_hello(&d), Parse::Bad);
        let mut d = hello();
        d[4] = 1; // epoch 1
        assert_eq!(parse_client_hello(&d), Parse::Bad);
        let mut d = hello();
        d.truncate(100); // the record is longer than the datagram
        assert_eq!(parse_client_hello(&d), Parse::Bad);
        // TLS over UDP is not DTLS.
        assert!(Flow::udp(50000, 443)
            .c2s(&hex("16 0301 00cf 01 0000cb 0303"))
            .is_no(check));
        for cut in 0..30 {
            let _ = parse_client_hello(&hello()[..cut]);
        }
    }
}
