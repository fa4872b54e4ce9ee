//! The X Window System protocol (X11, "X Window System Protocol", Connection Setup): a
//! program drawing on a remote display, as an X client started over XDMCP or a forwarded
//! display does. The X client opens the TCP connection to the X server.
//!
//! `Yes` for a complete connection setup request: the byte-order byte 'l' (0x6c, least
//! significant first) or 'B' (0x42), an unused zero, protocol version 11.0 in that byte
//! order, authorization name and data lengths with the name printable (e.g.
//! "MIT-MAGIC-COOKIE-1"), each padded to four bytes; and, once the server has answered,
//! a reply that starts with Failed (0), Success (1) or Authenticate (2), with version 11
//! for the first two.

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, require, take, Parse};

/// Fixed part of the setup request.
const SETUP_LEN: usize = 12;
/// Longest authorization name and data accepted.
const MAX_AUTH_NAME: usize = 64;
const MAX_AUTH_DATA: usize = 1024;

fn u16_in(order: u8, b: &[u8], off: usize) -> Parse<u16> {
    let t = need!(take(b, off, 2));
    let pair = [
        t.first().copied().unwrap_or(0),
        t.get(1).copied().unwrap_or(0),
    ];
    Parse::Ok(if order == b'l' {
        u16::from_le_bytes(pair)
    } else {
        u16::from_be_bytes(pair)
    })
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// Parses a connection setup request; returns the byte order and the authorization
/// protocol name.
pub fn parse_setup(b: &[u8]) -> Parse<(u8, String)> {
    let order = need!(byte(b, 0));
    need!(require(order == b'l' || order == b'B'));
    need!(require(need!(byte(b, 1)) == 0));
    need!(require(need!(u16_in(order, b, 2)) == 11));
    need!(require(need!(u16_in(order, b, 4)) == 0));
    let n = usize::from(need!(u16_in(order, b, 6)));
    let d = usize::from(need!(u16_in(order, b, 8)));
    need!(require(n <= MAX_AUTH_NAME && d <= MAX_AUTH_DATA));
    let name = need!(take(b, SETUP_LEN, n));
    need!(require(super::text::is_printable(name)));
    // The whole request, padding included, has arrived (and nothing is sent before the
    // reply).
    let total = SETUP_LEN + pad4(n) + pad4(d);
    need!(take(b, 0, total));
    need!(require(b.len() == total));
    Parse::Ok((order, super::super::util::printable(name)))
}

/// Whether the server's first bytes are a setup reply for a client of this byte order.
fn reply_ok(order: u8, s2c: &[u8]) -> Parse<()> {
    let status = need!(byte(s2c, 0));
    match status {
        0 | 1 => {
            need!(require(need!(u16_in(order, s2c, 2)) == 11));
            Parse::Ok(())
        }
        2 => Parse::Ok(()),
        _ => Parse::Bad,
    }
}

/// Names X11.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let c2s = cx.c2s.bytes();
    let p = match parse_setup(c2s) {
        Parse::Ok((order, name)) => match reply_ok(order, cx.s2c.bytes()) {
            Parse::Bad => Parse::Bad,
            _ => Parse::Ok(name),
        },
        Parse::Short if cx.c2s.is_done() => Parse::Bad,
        other => other.map(|(_, n)| n),
    };
    finish(
        cx,
        p.map(|name| {
            let auth = if name.is_empty() { "none".into() } else { name };
            Classification::new(
                "x11",
                None,
                "setten.x11.setup",
                "x11.setup",
                format!("X11 11.0 connection setup, authorization {auth}"),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// xdm 1.1.11 connecting to the Xvfb 21.1.7 it manages (Debian 12): 'l', 11.0,
    /// "MIT-MAGIC-COOKIE-1" (18, padded to 20) and a 16-byte cookie.
    fn setup() -> Vec<u8> {
        let mut b = hex("6c00 0b00 0000 1200 1000 0000");
        b.extend_from_slice(b"MIT-MAGIC-COOKIE-1\0\0");
        b.extend_from_slice(&[0x5a; 16]);
        b
    }

    #[test]
    fn xdm_to_xvfb() {
        let reply = hex("0100 0b00 0000 5309");
        let c = Flow::tcp(40000, 6158).c2s(&setup()).s2c(&reply).yes(check);
        assert_eq!((c.protocol, c.service), ("x11", None));
        assert_eq!(
            c.evidence[0].value,
            "X11 11.0 connection setup, authorization MIT-MAGIC-COOKIE-1"
        );
        // The request alone, before the answer, is enough; a big-endian client too.
        Flow::tcp(40000, 6000).c2s(&setup()).yes(check);
        let be = hex("4200 000b 0000 0000 0000 0000");
        Flow::tcp(40000, 6000).c2s(&be).yes(check);
    }

    #[test]
    fn not_x11() {
        // Another version, an answer that is not a setup reply, trailing bytes.
        let mut b = setup();
        b[2] = 10;
        assert_eq!(parse_setup(&b), Parse::Bad);
        let c = Flow::tcp(40000, 6000).c2s(&setup()).s2c(b"HTTP/1.1 400");
        assert!(c.is_no(check));
        let mut b = setup();
        b.push(0);
        assert_eq!(parse_setup(&b), Parse::Bad);
        assert!(Flow::tcp(40000, 6000).c2s(b"lost\0\0\0\0").is_no(check));
        for cut in 0..setup().len() {
            let _ = parse_setup(&setup()[..cut]);
        }
    }
}
