//! LogMeIn Hamachi, the mesh VPN, over TCP (its relay and login connections).
//!
//! Its messages carry a 32-bit big-endian length of the rest of the message, and the
//! opening message (longer than 300 bytes) holds the constant 0x7b7a0dad at offset 12
//! (nDPI `src/lib/protocols/hamachi.c`, `search_hamachi_tcp`). Promise: `Yes` only when a
//! direction opens with such a length (the message longer than 300 bytes, at most 64 KiB)
//! and the constant; four fixed bytes at a fixed place behind a consistent length do not
//! occur by chance. Hamachi's UDP tunnel has no fixed bytes and is not named.

use super::util::be32;
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
            let mut c = Classification::new(
                "hamachi",
                Some(Service::ConsumerVpn),
                "setten.hamachi.opening",
                "hamachi.message",
                format!("{dir} message of {whole} bytes with 7b7a0dad at offset 12"),
            );
            c.vendor = Some("GoTo".to_owned());
            c.product = Some("LogMeIn Hamachi".to_owned());
            return Verdict::Yes(c);
        }
        return Verdict::No;
    }
    if undecided && !cx.last {
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
                assert_eq!(c.product.as_deref(), Some("LogMeIn Hamachi"));
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
