//! X11 display connections over TCP: a remote X client drawing on an X server (the old
//! way to run a Unix imaging or lab workstation's programs from afar), named `xdmcp` with
//! the protocol `x11`, since XDMCP is what hands such displays out; nDPI names the same
//! connection setup XDMCP (`src/lib/protocols/xdmcp.c`).
//!
//! The bytes are those of "X Window System Protocol" (X.Org, X11R7), section 8
//! "Connection Setup": the client opens with a byte-order byte (`l` 0x6c least
//! significant byte first, `B` 0x42 most significant first), an unused byte, the protocol
//! major and minor version (CARD16 11 and 0 in that byte order), the lengths of the
//! authorisation protocol name and data (CARD16 each), two unused bytes, then the name
//! and the data, each padded to four bytes. The server answers with 0 (Failed: the
//! reason's length, the version, the length of what follows in 4-byte units, then the
//! reason), 1 (Success: an unused byte, the version, the length) or 2 (Authenticate).
//! nDPI checks the 48-byte MIT-MAGIC-COOKIE-1 form alone (`l`, 0, name length 18, data
//! length 16) to TCP 6000-6005.
//!
//! Promise: `Yes` only when the client's first bytes are a whole connection setup with
//! protocol 11.0 and an authorisation name of printable characters, and either the
//! server's answer is one of the three with the same version (Failed and Success carry
//! it), or the flow ends unanswered, the client sent nothing after its setup, and the
//! setup named an authorisation protocol or went to an X server's port (6000 + display
//! 0-10). Any other answer is `No`: an X server always answers so.
//!
//! The connection is plain text (every key press, and the cookie itself, cross the
//! network unencrypted), so it is reported as weak.

use super::{util, Classification, Cx, Evidence, Service, Verdict};

/// The protocol's major version (the "11" of X11).
pub const MAJOR: u16 = 11;
/// Its minor version (0 since X11R1).
pub const MINOR: u16 = 0;
/// An X server listens on 6000 + its display number.
pub const PORT_BASE: u16 = 6000;
/// Display numbers taken as an X server's port: 6000-6010, the ports the service
/// catalogue lists for `xdmcp` over TCP (`rules/services.toml`). Higher displays are
/// mostly SSH's forwarded ones, which never cross the network as X11.
pub const MAX_DISPLAY: u16 = 10;
/// Fixed part of the connection setup.
const SETUP_HEADER: usize = 12;
/// Longest authorisation protocol name accepted (those in use: MIT-MAGIC-COOKIE-1,
/// XDM-AUTHORIZATION-1, SUN-DES-1, MIT-KERBEROS-5).
const MAX_AUTH_NAME: usize = 64;
/// Longest authorisation data accepted (a cookie is 16 bytes).
const MAX_AUTH_DATA: usize = 1024;
/// Fixed part of the server's answer.
const REPLY_HEADER: usize = 8;

/// The byte order a client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `l`: least significant byte first.
    Lsb,
    /// `B`: most significant byte first.
    Msb,
}

impl Order {
    fn u16_at(self, b: &[u8], off: usize) -> Option<u16> {
        let v = [*b.get(off)?, *b.get(off.checked_add(1)?)?];
        Some(match self {
            Order::Lsb => u16::from_le_bytes(v),
            Order::Msb => u16::from_be_bytes(v),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Order::Lsb => "LSB first",
            Order::Msb => "MSB first",
        }
    }
}

/// A client's connection setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup<'a> {
    /// Its byte order.
    pub order: Order,
    /// The authorisation protocol name (empty: none offered).
    pub auth_name: &'a [u8],
    /// Length of the authorisation data.
    pub auth_data: usize,
    /// Length of the whole setup, name and data padded to four bytes each.
    pub len: usize,
}

/// The server's answer to a setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Failed, with the reason as far as it was captured.
    Failed(String),
    /// Success.
    Success,
    /// Authenticate (more authorisation is needed).
    Authenticate,
}

/// Why bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// They fit so far, but are not complete.
    Incomplete,
    /// Not X11's.
    Invalid,
}

/// Parses a connection setup at the start of a client's bytes.
pub fn parse_setup(b: &[u8]) -> Result<Setup<'_>, Error> {
    let order = match b.first() {
        None => return Err(Error::Incomplete),
        Some(b'l') => Order::Lsb,
        Some(b'B') => Order::Msb,
        Some(_) => return Err(Error::Invalid),
    };
    // The bytes that must be known, checked as far as they have come: the unused byte
    // (0 as Xlib sends it; nDPI wants 0), then the version.
    match b.get(1) {
        None => return Err(Error::Incomplete),
        Some(0) => {}
        Some(_) => return Err(Error::Invalid),
    }
    for (off, want) in [(2, MAJOR), (4, MINOR)] {
        match order.u16_at(b, off) {
            None => return Err(Error::Incomplete),
            Some(v) if v == want => {}
            Some(_) => return Err(Error::Invalid),
        }
    }
    let (Some(n), Some(d)) = (order.u16_at(b, 6), order.u16_at(b, 8)) else {
        return Err(Error::Incomplete);
    };
    let (n, d) = (usize::from(n), usize::from(d));
    if n > MAX_AUTH_NAME || d > MAX_AUTH_DATA {
        return Err(Error::Invalid);
    }
    let name = b
        .get(SETUP_HEADER..SETUP_HEADER + n)
        .ok_or(Error::Incomplete)?;
    if !name.iter().all(|c| c.is_ascii_graphic()) {
        return Err(Error::Invalid);
    }
    let len = SETUP_HEADER + n.next_multiple_of(4) + d.next_multiple_of(4);
    if b.len() < len {
        return Err(Error::Incomplete);
    }
    Ok(Setup {
        order,
        auth_name: name,
        auth_data: d,
        len,
    })
}

/// Parses the server's answer at the start of its bytes, in the client's byte order. A
/// Failed answer waits for its reason, unless no more bytes will come (`last`): then the
/// reason is given as far as it came.
pub fn parse_reply(b: &[u8], order: Order, last: bool) -> Result<Reply, Error> {
    let status = *b.first().ok_or(Error::Incomplete)?;
    if status > 2 {
        return Err(Error::Invalid);
    }
    let head = b.get(..REPLY_HEADER).ok_or(Error::Incomplete)?;
    if status == 2 {
        return Ok(Reply::Authenticate);
    }
    let version = (order.u16_at(head, 2), order.u16_at(head, 4));
    if version != (Some(MAJOR), Some(MINOR)) {
        return Err(Error::Invalid);
    }
    // What follows, in 4-byte units: at least the reason (Failed) or the fixed part of
    // the server's description (Success: 32 bytes).
    let words = usize::from(order.u16_at(head, 6).unwrap_or(0));
    if status == 1 {
        return if words >= 8 {
            Ok(Reply::Success)
        } else {
            Err(Error::Invalid)
        };
    }
    let reason_len = usize::from(head.get(1).copied().unwrap_or(0));
    if words * 4 < reason_len {
        return Err(Error::Invalid);
    }
    let reason = b.get(REPLY_HEADER..).unwrap_or(&[]);
    if reason.len() < reason_len && !last {
        return Err(Error::Incomplete);
    }
    let reason = reason.get(..reason_len).unwrap_or(reason);
    Ok(Reply::Failed(util::printable(reason)))
}

/// Whether a server port is an X server's.
fn x_port(port: u16) -> bool {
    (PORT_BASE..=PORT_BASE + MAX_DISPLAY).contains(&port)
}

/// Detects an X11 connection (see the module documentation).
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let setup = match parse_setup(cx.c2s.bytes()) {
        Ok(s) => s,
        Err(Error::Incomplete) if !cx.last => return Verdict::Wait,
        Err(_) => return Verdict::No,
    };
    let reply = match parse_reply(cx.s2c.bytes(), setup.order, cx.last || cx.s2c.is_done()) {
        Ok(r) => Some(r),
        Err(Error::Invalid) => return Verdict::No,
        Err(Error::Incomplete) if !cx.last => return Verdict::Wait,
        Err(Error::Incomplete) => None,
    };
    // Unanswered: the client, which waits for the answer, sent nothing after its setup.
    if reply.is_none()
        && (cx.c2s.bytes().len() != setup.len
            || (setup.auth_name.is_empty() && !x_port(cx.server_port)))
    {
        return Verdict::No;
    }
    let auth = if setup.auth_name.is_empty() {
        "no authorisation".to_owned()
    } else {
        format!(
            "{} ({} bytes of data)",
            util::printable(setup.auth_name),
            setup.auth_data
        )
    };
    let mut c = Classification::new(
        "x11",
        Some(Service::Xdmcp),
        "setten.x11.setup",
        "x11.setup",
        format!(
            "c2s connection setup, {}, protocol {MAJOR}.{MINOR}, {auth}",
            setup.order.name()
        ),
    );
    match reply {
        Some(r) => c.evidence.push(Evidence::new(
            "setten.x11.reply",
            "x11.reply",
            match r {
                Reply::Success => "Success".to_owned(),
                Reply::Authenticate => "Authenticate".to_owned(),
                Reply::Failed(reason) => format!("Failed: {reason}"),
            },
        )),
        None => c.evidence.push(Evidence::new(
            "setten.x11.port",
            "tcp.port",
            cx.server_port.to_string(),
        )),
    }
    c.extra.meta.version = Some(format!("{MAJOR}.{MINOR}"));
    c.extra.weak = Some("x11".to_owned());
    Verdict::Yes(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::common::testing::hex;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], server_port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (57660, server_port), last)
    }

    /// xdpyinfo to Xvfb (tests/fixtures/make-x11.sh): the 48-byte setup with a
    /// MIT-MAGIC-COOKIE-1, and the server's first segment.
    const SETUP: &str = "6c000b0000001200100000004d49542d4d414749432d434f4f4b49452d3100
        000123456789abcdef0123456789abcdef";
    const SUCCESS: &str = "01000b0000005309";
    /// The same server refusing a wrong cookie: Failed, 30-byte reason, 8 words.
    const FAILED: &str = "001e0b0000000800496e76616c6964204d49542d4d414749432d434f4f4b49
        452d31206b65790000";
    /// A client offering no authorisation to a server started with -ac.
    const NO_AUTH: &str = "6c000b000000000000000000";

    #[test]
    fn setup_and_success() {
        let v = run(&[&hex(SETUP)], &[&hex(SUCCESS)], 6000, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.protocol, "x11");
        assert_eq!(c.service, Some(Service::Xdmcp));
        assert_eq!(
            c.evidence[0].value,
            "c2s connection setup, LSB first, protocol 11.0, MIT-MAGIC-COOKIE-1 (16 bytes of data)"
        );
        assert_eq!(c.evidence[1].value, "Success");
        assert_eq!(c.extra.meta.version.as_deref(), Some("11.0"));
        assert_eq!(c.extra.weak.as_deref(), Some("x11"));
    }

    #[test]
    fn a_refused_cookie_gives_the_reason() {
        let v = run(&[&hex(SETUP)], &[&hex(FAILED)], 6000, false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(
            c.evidence[1].value,
            "Failed: Invalid MIT-MAGIC-COOKIE-1 key"
        );
        // The reason waits for its bytes; cut short by the end of the flow, it is given
        // as far as it came.
        let cut = hex(FAILED);
        assert!(matches!(
            run(&[&hex(SETUP)], &[&cut[..14]], 6000, false),
            Verdict::Wait
        ));
        let v = run(&[&hex(SETUP)], &[&cut[..14]], 6000, true);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.evidence[1].value, "Failed: Invali");
    }

    #[test]
    fn no_authorisation_needs_an_answer_or_an_x_port() {
        let setup = hex(NO_AUTH);
        assert!(matches!(
            run(&[&setup], &[&hex(SUCCESS)], 7777, false),
            Verdict::Yes(_)
        ));
        assert!(matches!(run(&[&setup], &[], 6001, false), Verdict::Wait));
        let v = run(&[&setup], &[], 6001, true);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.evidence[1].rule, "setten.x11.port");
        assert!(matches!(run(&[&setup], &[], 7777, true), Verdict::No));
        // With a cookie, the setup alone names the flow once it is over.
        assert!(matches!(
            run(&[&hex(SETUP)], &[], 7777, true),
            Verdict::Yes(_)
        ));
        // Unanswered, the client says nothing after its setup.
        let mut more = hex(SETUP);
        more.extend_from_slice(b"\x37\x00\x05\x00");
        assert!(matches!(run(&[&more], &[], 6000, true), Verdict::No));
        // xdm 1.1.11 managing an Xvfb 21.1.7 on display :158 (Debian 12): answered.
        assert!(matches!(
            run(&[&hex(SETUP)], &[&hex(SUCCESS)], 6158, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn most_significant_byte_first() {
        // The same setup from a big-endian client ('B'), and the server's answer in that
        // order.
        let mut setup = b"B\x00\x00\x0b\x00\x00\x00\x12\x00\x10\x00\x00".to_vec();
        setup.extend_from_slice(b"MIT-MAGIC-COOKIE-1\x00\x00");
        setup.extend_from_slice(&[0xab; 16]);
        let v = run(
            &[&setup],
            &[b"\x01\x00\x00\x0b\x00\x00\x09\x53"],
            6000,
            false,
        );
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert!(c.evidence[0].value.contains("MSB first"), "{c:?}");
        // An answer in the other byte order is not this server's.
        assert!(matches!(
            run(&[&setup], &[&hex(SUCCESS)], 6000, false),
            Verdict::No
        ));
    }

    #[test]
    fn partial_bytes_wait_and_others_are_no() {
        let setup = hex(SETUP);
        for cut in 0..setup.len() {
            assert!(
                matches!(run(&[&setup[..cut]], &[], 6000, false), Verdict::Wait),
                "cut {cut}"
            );
            assert!(matches!(
                run(&[&setup[..cut]], &[], 6000, true),
                Verdict::No
            ));
        }
        // A reply shorter than its header waits.
        assert!(matches!(
            run(&[&setup], &[b"\x01\x00\x0b"], 6000, false),
            Verdict::Wait
        ));
        for bad in [
            "6c010b000000000000000000",      // unused byte set
            "6c000a000000000000000000",      // protocol 10
            "6c000b000100000000000000",      // minor 1
            "6c000b000000410000000000",      // a 65-byte name
            "6c000b000000020000000000 2000", // a name with a space
            "47455420",                      // "GET "
        ] {
            assert!(
                matches!(
                    run(&[&hex(bad)], &[&hex(SUCCESS)], 6000, false),
                    Verdict::No
                ),
                "{bad}"
            );
        }
        // Answers an X server never gives.
        for bad in ["03000b0000005309", "01000c0000005309", "01000b0000000100"] {
            assert!(
                matches!(run(&[&setup], &[&hex(bad)], 6000, false), Verdict::No),
                "{bad}"
            );
        }
        // SSH and an HTTP request to an X port.
        assert!(matches!(
            run(&[b"SSH-2.0-OpenSSH_9.2\r\n"], &[], 6000, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"lorem ipsum"], &[], 6000, false),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte change of the fixtures is handled without a
    /// panic.
    #[test]
    fn mutations_never_panic() {
        let (setup, failed) = (hex(SETUP), hex(FAILED));
        for cut in 0..=setup.len() {
            for last in [false, true] {
                let _ = run(
                    &[&setup[..cut]],
                    &[&failed[..cut.min(failed.len())]],
                    6000,
                    last,
                );
            }
        }
        for i in 0..setup.len() {
            let mut bad = setup.clone();
            bad[i] ^= 0x5a;
            let _ = run(&[&bad], &[&failed], 6000, true);
            let mut bad = failed.clone();
            bad[i.min(failed.len() - 1)] ^= 0x5a;
            let _ = run(&[&setup], &[&bad], 6000, true);
        }
    }
}
