//! Radmin (Famatech Remote Administrator), TCP 4899 by default.
//!
//! Promise: `Yes` only when both directions open with the messages of a Radmin
//! connection start, each exactly one framed message:
//!
//! - the client's hello `01 00 00 00 01 00 00 00 08 08` answered by the server's 46-byte
//!   message (body length 0x25, bytes 7..11 `02 12 08 02`, byte 13 `0x0a`); or
//! - the 14-byte message with body length 5 and bytes 8..10 `27 27`, sent by both sides.
//!
//! Radmin publishes no specification. The message values are nDPI's
//! (`src/lib/protocols/radmin.c`, 2024); the client hello is also the Radmin probe of
//! Nmap's service-probe file; all of them are in the corpus capture
//! `ndpi-radmin3.pcapng` (frames 4 and 6, 15 and 17). From that capture the framing is a
//! 9-byte header — `01 00 00 00`, body length in byte 4 (the next two bytes zero), a
//! flags byte, a checksum byte — followed by the body; this module checks that each
//! opening message is exactly one such frame, which nDPI does not.
//!
//! One message alone is not enough: the hello is what scanners send to every port, and
//! only a Radmin server answers it in kind.

use super::{util, Classification, Cx, Evidence, Service, Verdict};

/// Frame magic, the first four bytes of every message (nDPI `radmin.c`).
pub const MAGIC: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Frame header length (corpus `ndpi-radmin3.pcapng` frames 4, 6, 15, 17).
pub const HEADER_LEN: usize = 9;
/// Offset of the body length byte.
const LEN_OFFSET: usize = 4;

/// The client's connection hello (nDPI `radmin.c`; corpus frame 4).
pub const CLIENT_HELLO: [u8; 10] = [0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x08];
/// Length of the server's answer to [`CLIENT_HELLO`] (nDPI `radmin.c`; corpus frame 6).
pub const SERVER_HELLO_LEN: usize = 46;
/// Bytes 7..11 of the server's answer (nDPI `radmin.c`: `0x02120802` at offset 7).
const SERVER_HELLO_AT_7: [u8; 4] = [0x02, 0x12, 0x08, 0x02];
/// Byte 13 of the server's answer (nDPI `radmin.c`).
const SERVER_HELLO_AT_13: u8 = 0x0a;

/// Length of the "27 27" message both sides send (nDPI `radmin.c`; corpus frames 15, 17).
pub const PAIR_LEN: usize = 14;
/// Body length of the "27 27" message.
const PAIR_BODY_LEN: u8 = 5;
/// Bytes 8..10 of the "27 27" message.
const PAIR_AT_8: [u8; 2] = [0x27, 0x27];

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// More bytes are needed.
    Incomplete,
    /// Not a Radmin frame.
    Invalid,
}

/// The opening messages this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The client's hello.
    ClientHello,
    /// The server's answer to the hello.
    ServerHello,
    /// The 14-byte "27 27" message.
    Pair,
    /// Some other well-framed message.
    Other,
}

/// Reads the frame at the start of `b`: returns the whole message and the rest.
pub fn parse_frame(b: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    for (got, want) in b.iter().zip(MAGIC.iter()) {
        if got != want {
            return Err(Error::Invalid);
        }
    }
    let header = b.get(..HEADER_LEN).ok_or(Error::Incomplete)?;
    // Byte 4 is the body length; bytes 5 and 6 were zero in every message seen, which
    // keeps the body well under the 8 KiB window.
    if header.get(LEN_OFFSET + 1..LEN_OFFSET + 3) != Some(&[0, 0][..]) {
        return Err(Error::Invalid);
    }
    let body = usize::from(*header.get(LEN_OFFSET).ok_or(Error::Invalid)?);
    let total = HEADER_LEN + body;
    match (b.get(..total), b.get(total..)) {
        (Some(msg), Some(rest)) => Ok((msg, rest)),
        _ => Err(Error::Incomplete),
    }
}

/// Names a complete message.
pub fn opening(msg: &[u8]) -> Opening {
    if msg == CLIENT_HELLO {
        Opening::ClientHello
    } else if msg.len() == SERVER_HELLO_LEN
        && msg.get(7..11) == Some(&SERVER_HELLO_AT_7[..])
        && msg.get(13) == Some(&SERVER_HELLO_AT_13)
    {
        Opening::ServerHello
    } else if msg.len() == PAIR_LEN
        && msg.get(LEN_OFFSET) == Some(&PAIR_BODY_LEN)
        && msg.get(8..10) == Some(&PAIR_AT_8[..])
    {
        Opening::Pair
    } else {
        Opening::Other
    }
}

fn first_message(b: &[u8]) -> Result<Opening, Error> {
    parse_frame(b).map(|(msg, _)| opening(msg))
}

/// Detects Radmin.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let client = first_message(cx.c2s.bytes());
    let server = first_message(cx.s2c.bytes());
    let found = match (client, server) {
        (Ok(Opening::ClientHello), Ok(Opening::ServerHello)) => Some("hello"),
        (Ok(Opening::Pair), Ok(Opening::Pair)) => Some("27 27 exchange"),
        _ => None,
    };
    if let Some(what) = found {
        let mut c = Classification::new(
            "radmin",
            Some(Service::Radmin),
            "setten.radmin.handshake",
            "radmin.client_message",
            util::hex(cx.c2s.bytes().get(..HEADER_LEN + 1).unwrap_or(&[])),
        );
        c.evidence.push(Evidence::new(
            "setten.radmin.handshake",
            "radmin.exchange",
            what,
        ));
        c.extra.vendor = Some("Famatech".to_owned());
        c.extra.product = Some("Radmin".to_owned());
        return Verdict::Yes(c);
    }
    let may_grow = |r: Result<Opening, Error>, want: &[Opening]| match r {
        Err(Error::Incomplete) => true,
        Ok(o) => want.contains(&o),
        Err(Error::Invalid) => false,
    };
    let waiting = !cx.last
        && may_grow(client, &[Opening::ClientHello, Opening::Pair])
        && may_grow(server, &[Opening::ServerHello, Opening::Pair]);
    if waiting {
        Verdict::Wait
    } else {
        Verdict::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (49736, 4899), last)
    }

    // Corpus ndpi-radmin3.pcapng frame 6: the server's 46-byte answer to the hello.
    fn server_hello() -> Vec<u8> {
        let mut m = vec![
            0x01, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x02, 0x12, 0x08, 0x02, 0x00, 0x00, 0x0a,
        ];
        m.resize(SERVER_HELLO_LEN, 0);
        m
    }

    // Corpus ndpi-radmin3.pcapng frames 15 (client) and 17 (server).
    const PAIR_C2S: [u8; 14] = [1, 0, 0, 0, 5, 0, 0, 2, 0x27, 0x27, 2, 0, 0, 0];
    const PAIR_S2C: [u8; 14] = [1, 0, 0, 0, 5, 0, 0, 0, 0x27, 0x27, 0, 0, 0, 0];

    #[test]
    fn corpus_hello_exchange() {
        let s = server_hello();
        let v = run(&[&CLIENT_HELLO], &[&s], false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.service, Some(Service::Radmin));
        assert_eq!(c.evidence[0].value, "01000000010000000808");
        assert_eq!(c.evidence[1].value, "hello");
    }

    #[test]
    fn corpus_pair_exchange() {
        assert!(matches!(
            run(&[&PAIR_C2S], &[&PAIR_S2C], false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn hello_alone_is_not_enough() {
        assert!(matches!(run(&[&CLIENT_HELLO], &[], false), Verdict::Wait));
        assert!(matches!(run(&[&CLIENT_HELLO], &[], true), Verdict::No));
        // A scanner's hello answered by some other service.
        assert!(matches!(
            run(&[&CLIENT_HELLO], &[b"HTTP/1.1 400 Bad Request\r\n"], false),
            Verdict::No
        ));
    }

    #[test]
    fn partial_messages_wait() {
        let s = server_hello();
        assert!(matches!(
            run(&[&CLIENT_HELLO], &[&s[..20]], false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[&CLIENT_HELLO[..3]], &[], false),
            Verdict::Wait
        ));
    }

    #[test]
    fn framing_is_exact() {
        // A hello with a different body byte is a well-framed but unknown message.
        let odd = [1u8, 0, 0, 0, 1, 0, 0, 0, 0x08, 0x09];
        assert_eq!(first_message(&odd), Ok(Opening::Other));
        assert!(matches!(
            run(&[&odd], &[&server_hello()], false),
            Verdict::No
        ));
        // Non-zero high length bytes.
        assert_eq!(
            parse_frame(&[1, 0, 0, 0, 1, 1, 0, 0, 0]).err(),
            Some(Error::Invalid)
        );
        assert_eq!(parse_frame(&[1, 0]).err(), Some(Error::Incomplete));
        assert_eq!(parse_frame(&[2]).err(), Some(Error::Invalid));
    }

    #[test]
    fn other_protocols_are_not_radmin() {
        // SMB2 over TCP (NetBIOS session header 00 ...), TLS ClientHello, SSH banner.
        assert!(matches!(
            run(
                &[&[0x00, 0x00, 0x00, 0x45, 0xfe, b'S', b'M', b'B']],
                &[],
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(&[&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]], &[], false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"SSH-2.0-x\r\n"], &[b"SSH-2.0-y\r\n"], false),
            Verdict::No
        ));
        // A little-endian length-prefixed protocol whose first word happens to be 1.
        assert!(matches!(
            run(
                &[&[1, 0, 0, 0, 0x41]],
                &[&[1, 0, 0, 0, 0x42, 0, 0, 0, 0]],
                true
            ),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic, and no corrupted hello is accepted.
    #[test]
    fn mutations_never_panic() {
        let s = server_hello();
        for cut in 0..=s.len() {
            for last in [false, true] {
                let _ = run(&[&CLIENT_HELLO[..cut.min(10)]], &[&s[..cut]], last);
            }
        }
        for i in 0..CLIENT_HELLO.len() {
            let mut bad = CLIENT_HELLO;
            bad[i] ^= 0x01;
            assert!(!matches!(run(&[&bad], &[&s], true), Verdict::Yes(_)));
        }
    }
}
