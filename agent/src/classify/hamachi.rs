//! LogMeIn Hamachi, the mesh VPN: over TCP (its relay and login connections) and over
//! UDP (the tunnel between peers).
//!
//! TCP: its messages carry a 32-bit big-endian length of the rest of the message, and the
//! opening message (longer than 300 bytes) holds the constant 0x7b7a0dad at offset 12
//! (nDPI `src/lib/protocols/hamachi.c`, `search_hamachi_tcp`). Promise: `Yes` only when a
//! direction opens with such a length (the message longer than 300 bytes, at most 64 KiB)
//! and the constant; four fixed bytes at a fixed place behind a consistent length do not
//! occur by chance.
//!
//! UDP (nDPI `search_hamachi_udp`, 2025): a session may open with 76-byte datagrams whose
//! first eight bytes are zero (a key exchange, nDPI supposes), which are passed over. Every
//! other datagram is at least 46 bytes and carries a 32-bit value at offset 0 (neither 0
//! nor all ones) and a 16-bit value at offset 8 that stay the same within a direction and
//! differ between the two, with a big-endian sequence number from 1 to 65535 at offset 4.
//! Promise: `Yes` once both directions have spoken and three such datagrams agree, as
//! nDPI decides; here every datagram of the opening window must agree, not only the first
//! three. No byte is fixed, so this is the weakest check there is: it is asked after
//! every other detector (see [`detect_udp`]).

use super::util::{be16, be32};
use super::{Classification, Cx, Service, Verdict};

/// The constant at offset 12 of the opening message (nDPI `hamachi.c`).
pub const MAGIC: u32 = 0x7b7a_0dad;
/// Offset of the constant.
const MAGIC_OFFSET: usize = 12;
/// Shortest opening message nDPI accepts: more than 300 bytes.
const MIN_MESSAGE: u32 = 301;
/// Longest opening message accepted.
const MAX_MESSAGE: u32 = 64 * 1024;
/// Bytes before a message's constant can be read.
const NEEDED: usize = MAGIC_OFFSET + 4;

/// Whether the first bytes of a direction can still open a Hamachi message: the length
/// (big-endian, below 64 KiB) starts with two zero bytes and, once whole, is in range.
fn may_open(b: &[u8]) -> bool {
    match b {
        [] => true,
        [0] | [0, 0] | [0, 0, _] => true,
        [0, 0, _, _, ..] => {
            let whole = be32(b, 0).unwrap_or(0).saturating_add(4);
            (MIN_MESSAGE..=MAX_MESSAGE).contains(&whole)
        }
        _ => false,
    }
}

/// Hamachi, over either transport, with one piece of evidence.
fn classification(rule: &'static str, field: &'static str, value: String) -> Classification {
    let mut c = Classification::new("hamachi", Some(Service::ConsumerVpn), rule, field, value);
    c.extra.vendor = Some("GoTo".to_owned());
    c.extra.product = Some("LogMeIn Hamachi".to_owned());
    c
}

/// Detects Hamachi.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let mut undecided = false;
    for (dir, b) in [("c2s", cx.c2s.bytes()), ("s2c", cx.s2c.bytes())] {
        if !may_open(b) {
            // Whoever spoke first did not open with a Hamachi message.
            if !b.is_empty() {
                return Verdict::No;
            }
            continue;
        }
        if b.len() < NEEDED {
            undecided = true;
            continue;
        }
        let whole = be32(b, 0).unwrap_or(0).saturating_add(4);
        if be32(b, MAGIC_OFFSET) == Some(MAGIC) {
            return Verdict::Yes(classification(
                "setten.hamachi.opening",
                "hamachi.message",
                format!("{dir} message of {whole} bytes with 7b7a0dad at offset 12"),
            ));
        }
        return Verdict::No;
    }
    if undecided && !cx.last {
        Verdict::Wait
    } else {
        Verdict::No
    }
}

/// Length of the opening datagrams passed over (nDPI `hamachi.c`).
const UDP_OPENING_LEN: usize = 76;
/// Zero bytes at the start of such a datagram.
const UDP_OPENING_ZEROS: usize = 8;
/// Shortest other datagram ("empirically observed minimum", nDPI).
const UDP_MIN_LEN: usize = 46;
/// Highest sequence number accepted.
const UDP_MAX_SEQ: u32 = 0xffff;
/// Datagrams that must agree before the flow is named (nDPI decides on the third).
const UDP_NEEDED: usize = 3;

/// The per-direction constants of a tunnel datagram: the value at offset 0 and the one at
/// offset 8; `None` when the datagram cannot be Hamachi's.
fn udp_constants(d: &[u8]) -> Option<(u32, u16)> {
    if d.len() < UDP_MIN_LEN {
        return None;
    }
    let (long, seq, short) = (be32(d, 0)?, be32(d, 4)?, be16(d, 8)?);
    ((1..=UDP_MAX_SEQ).contains(&seq) && long != 0 && long != u32::MAX).then_some((long, short))
}

/// Whether a datagram is one of the opening ones nDPI passes over.
fn udp_opening(d: &[u8]) -> bool {
    d.len() == UDP_OPENING_LEN && d.iter().take(UDP_OPENING_ZEROS).all(|&b| b == 0)
}

/// Detects Hamachi's UDP tunnel (see the module documentation). Registered on its own,
/// last of all detectors, so that every protocol with a real signature is asked first.
pub fn detect_udp(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let mut seen = [None::<(u32, u16)>; 2];
    let mut agreeing = 0usize;
    for (side, dir) in seen.iter_mut().zip([cx.c2s, cx.s2c]) {
        for d in cx.datagrams(dir) {
            if udp_opening(d) {
                continue;
            }
            let Some(k) = udp_constants(d) else {
                return Verdict::No;
            };
            if side.is_some_and(|first| first != k) {
                return Verdict::No;
            }
            *side = Some(k);
            agreeing += 1;
        }
    }
    if let [Some(c), Some(s)] = seen {
        if c.0 == s.0 || c.1 == s.1 {
            return Verdict::No;
        }
        if agreeing >= UDP_NEEDED {
            return Verdict::Yes(classification(
                "setten.hamachi.udp-session",
                "hamachi.udp_constants",
                format!(
                    "{agreeing} datagrams: c2s {:08x}/{:04x}, s2c {:08x}/{:04x} at offsets 0/8, \
                     sequence numbers at offset 4",
                    c.0, c.1, s.0, s.1
                ),
            ));
        }
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (61356, 12975), last)
    }

    /// An opening message of `len` bytes as nDPI's `hamachi.c` describes it.
    fn opening(len: usize) -> Vec<u8> {
        let mut m: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
        m[..4].copy_from_slice(&(len as u32 - 4).to_be_bytes());
        m[12..16].copy_from_slice(&MAGIC.to_be_bytes());
        m
    }

    #[test]
    fn opening_message() {
        let m = opening(420);
        match run(&[&m], &[], false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::ConsumerVpn));
                assert_eq!(c.extra.product.as_deref(), Some("LogMeIn Hamachi"));
                assert_eq!(
                    c.evidence[0].value,
                    "c2s message of 420 bytes with 7b7a0dad at offset 12"
                );
            }
            v => panic!("{v:?}"),
        }
        // The first bytes alone wait.
        assert!(matches!(run(&[&m[..10]], &[], false), Verdict::Wait));
        assert!(matches!(run(&[&m[..10]], &[], true), Verdict::No));
        assert!(matches!(run(&[], &[&m[..3]], false), Verdict::Wait));
        // A first byte no Hamachi length starts with decides at once.
        assert!(matches!(run(&[b"G"], &[], false), Verdict::No));
        assert!(matches!(
            run(&[b"\x00\x00\x00\x10"], &[], false),
            Verdict::No
        ));
    }

    fn run_udp(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(detect_udp, ipproto::UDP, c2s, s2c, (55865, 17771), last)
    }

    /// A tunnel datagram as nDPI's `search_hamachi_udp` reads it: the direction's
    /// constants at offsets 0 and 8, the sequence number at 4, then `len` bytes in all.
    fn datagram(long: u32, short: u16, seq: u32, len: usize) -> Vec<u8> {
        let mut d: Vec<u8> = (0..len).map(|i| (i * 29 + seq as usize) as u8).collect();
        d[..4].copy_from_slice(&long.to_be_bytes());
        d[4..8].copy_from_slice(&seq.to_be_bytes());
        d[8..10].copy_from_slice(&short.to_be_bytes());
        d
    }

    /// The opening datagram nDPI passes over: 76 bytes, the first eight zero.
    fn key_exchange() -> Vec<u8> {
        let mut d = vec![0u8; UDP_OPENING_LEN];
        d[30..34].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        d
    }

    #[test]
    fn udp_tunnel_session() {
        let (c1, c2) = (
            datagram(0x5c1d_0a01, 0x0102, 1, 118),
            datagram(0x5c1d_0a01, 0x0102, 2, 90),
        );
        let s1 = datagram(0x8e77_4410, 0x0a0b, 1, 160);
        let kx = key_exchange();
        let v = run_udp(&[&kx, &c1, &c2], &[&kx, &s1], false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.service, Some(Service::ConsumerVpn));
        assert_eq!(c.extra.product.as_deref(), Some("LogMeIn Hamachi"));
        assert_eq!(
            c.evidence[0].value,
            "3 datagrams: c2s 5c1d0a01/0102, s2c 8e774410/0a0b at offsets 0/8, \
             sequence numbers at offset 4"
        );
        // Two datagrams, or one direction only, are not enough yet; at the end, never.
        assert!(matches!(run_udp(&[&c1], &[&s1], false), Verdict::Wait));
        assert!(matches!(run_udp(&[&c1], &[&s1], true), Verdict::No));
        assert!(matches!(run_udp(&[&kx, &c1, &c2], &[], true), Verdict::No));
        // The key exchange alone names nothing.
        assert!(matches!(run_udp(&[&kx], &[&kx], true), Verdict::No));
    }

    #[test]
    fn udp_constants_must_hold() {
        let c1 = datagram(0x5c1d_0a01, 0x0102, 1, 118);
        let s1 = datagram(0x8e77_4410, 0x0a0b, 1, 160);
        let s2 = datagram(0x8e77_4410, 0x0a0b, 2, 60);
        assert!(matches!(
            run_udp(&[&c1], &[&s1, &s2], false),
            Verdict::Yes(_)
        ));
        // A constant that changes within a direction.
        let moved = datagram(0x8e77_4411, 0x0a0b, 2, 60);
        assert!(matches!(
            run_udp(&[&c1], &[&s1, &moved], false),
            Verdict::No
        ));
        let moved = datagram(0x8e77_4410, 0x0a0c, 2, 60);
        assert!(matches!(
            run_udp(&[&c1], &[&s1, &moved], false),
            Verdict::No
        ));
        // The same constants both ways (as a protocol with a fixed header has).
        let same = datagram(0x5c1d_0a01, 0x0a0b, 1, 60);
        assert!(matches!(run_udp(&[&c1], &[&same, &s2], false), Verdict::No));
        let same = datagram(0x8e77_4410, 0x0102, 1, 60);
        assert!(matches!(run_udp(&[&c1], &[&same, &s2], false), Verdict::No));
        // Sequence numbers out of range, values nDPI excludes, short datagrams.
        for bad in [
            datagram(0x8e77_4410, 0x0a0b, 0, 60),
            datagram(0x8e77_4410, 0x0a0b, 0x1_0000, 60),
            datagram(0, 0x0a0b, 3, 60),
            datagram(u32::MAX, 0x0a0b, 3, 60),
            datagram(0x8e77_4410, 0x0a0b, 3, 45),
        ] {
            assert!(matches!(run_udp(&[&c1], &[&s1, &bad], false), Verdict::No));
        }
    }

    #[test]
    fn other_udp_protocols_are_not_hamachi() {
        // DTLS application data: the same record header both ways.
        let dtls = |seq: u8| {
            let mut d = vec![
                0x17, 0xfe, 0xfd, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, seq,
            ];
            d.extend_from_slice(&[0x00, 0x40]);
            d.resize(77, 0x33);
            d
        };
        let (a, b, c) = (dtls(1), dtls(2), dtls(3));
        assert!(matches!(run_udp(&[&a, &b], &[&c], false), Verdict::No));
        // RTP: the sequence number in bytes 2-3 changes the first word.
        let rtp = |seq: u16| {
            let mut d = vec![0x80, 0x00];
            d.extend_from_slice(&seq.to_be_bytes());
            d.extend_from_slice(&[0, 0, 0x03, 0x20, 0x11, 0x22, 0x33, 0x44]);
            d.resize(172, 0x55);
            d
        };
        let (a, b, c) = (rtp(100), rtp(101), rtp(7));
        assert!(matches!(run_udp(&[&a, &b], &[&c], false), Verdict::No));
        // A DNS query is too short.
        assert!(matches!(
            run_udp(
                &[b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"],
                &[],
                false
            ),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte change of a session is handled without a panic.
    #[test]
    fn udp_mutations_never_panic() {
        let c1 = datagram(0x5c1d_0a01, 0x0102, 1, 118);
        let s1 = datagram(0x8e77_4410, 0x0a0b, 1, 160);
        for cut in 0..c1.len() {
            let _ = run_udp(&[&c1[..cut], &c1], &[&s1[..cut.min(s1.len())]], true);
        }
        for i in 0..c1.len() {
            let mut bad = c1.clone();
            bad[i] ^= 0xa5;
            let _ = run_udp(&[&c1, &bad], &[&s1], false);
        }
    }

    #[test]
    fn short_messages_or_another_constant_are_no() {
        assert!(matches!(run(&[&opening(200)], &[b"x"], true), Verdict::No));
        let mut m = opening(420);
        m[15] ^= 0xff;
        assert!(matches!(run(&[&m], &[&m], false), Verdict::No));
        // A TLS ClientHello and an HTTP request.
        assert!(matches!(
            run(
                &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh"],
                &[b"GET / HTTP/1.1\r\nHost: x\r\n"],
                false
            ),
            Verdict::No
        ));
    }
}
