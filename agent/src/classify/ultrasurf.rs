//! UltraSurf, the censorship-circumvention proxy (UltraReach), over TCP.
//!
//! Its tunnel connections open with a fixed eight-byte preamble, `cc 1c 30 41 5b a4 38
//! 66`, from whichever side speaks first (nDPI `src/lib/protocols/ultrasurf.c`; in nDPI's
//! test capture the server speaks first). Promise: `Yes` only when one direction's first
//! bytes are exactly that preamble; eight fixed bytes do not occur by chance.

use super::{Classification, Cx, Service, Verdict};

/// The preamble (nDPI `ultrasurf.c`).
pub const PREAMBLE: [u8; 8] = [0xcc, 0x1c, 0x30, 0x41, 0x5b, 0xa4, 0x38, 0x66];

/// Detects UltraSurf.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let (c2s, s2c) = (cx.c2s.bytes(), cx.s2c.bytes());
    for (dir, b) in [("c2s", c2s), ("s2c", s2c)] {
        if b.starts_with(&PREAMBLE) {
            let mut c = Classification::new(
                "ultrasurf",
                Some(Service::ConsumerVpn),
                "setten.ultrasurf.preamble",
                "ultrasurf.preamble",
                format!("{dir} opens with cc1c30415ba43866"),
            );
            c.extra.vendor = Some("UltraReach".to_owned());
            c.extra.product = Some("UltraSurf".to_owned());
            return Verdict::Yes(c);
        }
    }
    // Whichever side speaks first opens with the preamble: any other opening byte
    // decides (nDPI likewise looks at the first payload only).
    let fits = |b: &[u8]| b.len() < PREAMBLE.len() && PREAMBLE.starts_with(b);
    if cx.last || !fits(c2s) || !fits(s2c) {
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
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (37898, 50053), last)
    }

    #[test]
    fn preamble_from_either_side() {
        let opening = [PREAMBLE.as_slice(), &[0x01, 0x02, 0x03]].concat();
        for (c2s, s2c) in [(&opening[..], &[][..]), (&[][..], &opening[..])] {
            match run(&[c2s], &[s2c], false) {
                Verdict::Yes(c) => {
                    assert_eq!(c.service, Some(Service::ConsumerVpn));
                    assert_eq!(c.extra.product.as_deref(), Some("UltraSurf"));
                }
                v => panic!("{v:?}"),
            }
        }
        // Half of it waits; the end of the flow decides.
        assert!(matches!(run(&[&PREAMBLE[..4]], &[], false), Verdict::Wait));
        assert!(matches!(run(&[&PREAMBLE[..4]], &[], true), Verdict::No));
    }

    #[test]
    fn other_openings_are_no() {
        let mut near = PREAMBLE;
        near[7] ^= 1;
        assert!(matches!(run(&[&near], &[], false), Verdict::No));
        assert!(matches!(
            run(
                &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"],
                &[b"SSH-2.0-x\r\n"],
                false
            ),
            Verdict::No
        ));
        // The preamble later in the stream is not an opening.
        let late = [b"x".as_slice(), &PREAMBLE].concat();
        assert!(matches!(run(&[&late], &[], false), Verdict::No));
    }
}
