//! MySQL and MariaDB client/server protocol: the server's initial handshake
//! (Protocol::HandshakeV10, MySQL Source Code Documentation, "Connection Phase").
//!
//! `Yes` when the first server packet has a three-byte length and sequence id 0, then
//! protocol version 10, a NUL-terminated printable server version starting with a digit,
//! a connection id, eight bytes of scramble and a zero filler, and (when present) ten
//! zero reserved bytes; or when it is the pre-handshake ERR packet a server sends to a
//! host it refuses (0xFF, an error code, a printable message filling the packet). The
//! server version is the evidence (and the patch level the report wants).

use super::super::{Classification, Cx, Meta, Verdict};
use super::{byte, finish, le16, require, stream, take, Parse};

/// Protocol version of HandshakeV10.
pub const PROTOCOL_VERSION: u8 = 10;
/// Longest server version string accepted.
pub const MAX_VERSION_LEN: usize = 64;
/// Largest greeting packet accepted.
const MAX_GREETING_LEN: usize = 1024;

/// What the server's first packet shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Greeting {
    /// HandshakeV10 with the server version.
    Handshake(String),
    /// An ERR packet: error code and message.
    Refused(u16, String),
}

/// Parses the server's first packet.
pub fn parse_greeting(b: &[u8]) -> Parse<Greeting> {
    let hdr = need!(take(b, 0, 4));
    let len = hdr
        .iter()
        .take(3)
        .rev()
        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
    need!(require(
        hdr.get(3) == Some(&0) && (8..=MAX_GREETING_LEN).contains(&len)
    ));
    let p = b.get(4..b.len().min(4 + len)).unwrap_or(&[]);
    let first = need!(byte(p, 0));
    if first == 0xff {
        // ERR packet (no SQL state marker before authentication).
        let code = need!(le16(p, 1));
        let msg = need!(take(p, 3, len - 3));
        need!(require(
            (1000..3000).contains(&code) && super::text::is_printable(msg) && msg.len() >= 8
        ));
        return Parse::Ok(Greeting::Refused(code, super::super::util::printable(msg)));
    }
    need!(require(first == PROTOCOL_VERSION));
    need!(require(p.get(1).is_none_or(u8::is_ascii_digit)));
    let window = p.get(1..p.len().min(2 + MAX_VERSION_LEN)).unwrap_or(&[]);
    let Some(nul) = window.iter().position(|&c| c == 0) else {
        need!(require(
            window.len() <= MAX_VERSION_LEN && super::text::is_printable(window)
        ));
        return Parse::Short;
    };
    let version = window.get(..nul).unwrap_or(&[]);
    need!(require(
        !version.is_empty() && super::text::is_printable(version)
    ));
    // Connection id (4), scramble part 1 (8), filler 0.
    let after = 1 + nul + 1;
    need!(require(need!(byte(p, after + 12)) == 0));
    // Capabilities (2), charset (1), status (2), upper capabilities (2), scramble
    // length (1), reserved (10): zero, when the packet carries them. MariaDB (10.2 on)
    // keeps six of them as filler and puts its extended capabilities in the last four
    // when it clears capability bit 0, CLIENT_MYSQL (MariaDB knowledge base, "Connection:
    // Initial handshake packet").
    let reserved_at = after + 13 + 2 + 1 + 2 + 2 + 1;
    if len >= reserved_at + 10 {
        let mariadb = need!(byte(p, after + 13)) & 1 == 0;
        let zero = if mariadb { 6 } else { 10 };
        need!(require(
            need!(take(p, reserved_at, zero)).iter().all(|&x| x == 0)
        ));
    }
    Parse::Ok(Greeting::Handshake(super::super::util::printable(version)))
}

/// Names MySQL.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    // The server speaks first; a client that already sent more than a TLS or handshake
    // response would have had to wait for it, so only the server's side is read.
    let p = stream(cx.s2c, parse_greeting);
    finish(
        cx,
        p.map(|g| match g {
            Greeting::Handshake(v) => {
                let mut c = Classification::new(
                    "mysql",
                    None,
                    "setten.mysql.handshake",
                    "mysql.server_version",
                    &v,
                );
                c.extra.meta = Meta {
                    version: Some(v),
                    ..Meta::default()
                };
                c
            }
            Greeting::Refused(code, msg) => Classification::new(
                "mysql",
                None,
                "setten.mysql.err_packet",
                "mysql.error",
                format!("{code} {msg}"),
            ),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// A MySQL 8.0 HandshakeV10 (Connection Phase documentation layout): version
    /// "8.0.36", connection id 8, scramble, capabilities, utf8mb4, reserved zeros,
    /// scramble part 2 and "caching_sha2_password".
    fn greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"8.0.36\0");
        p.extend_from_slice(&hex(
            "08000000 3a2c4f5e1b7d6a09 00 ffff ff 0200 ffdf 15 00000000000000000000",
        ));
        p.extend_from_slice(&hex("5b1f0c7a2e6d4b3c19087f6500"));
        p.extend_from_slice(b"caching_sha2_password\0");
        let mut b = (p.len() as u32).to_le_bytes().to_vec();
        b[3] = 0;
        b.extend_from_slice(&p);
        b
    }

    #[test]
    fn handshake_v10() {
        let c = Flow::tcp(50000, 3306).s2c(&greeting()).yes(check);
        assert_eq!((c.protocol, c.service), ("mysql", None));
        assert_eq!(c.extra.meta.version.as_deref(), Some("8.0.36"));
        // Cut in the version: wait.
        assert!(Flow::tcp(50000, 3306).s2c(&greeting()[..8]).is_wait(check));
    }

    /// MariaDB 10.11.19 (Debian 12) greeting: version "5.5.5-10.11.19-MariaDB-0+deb12u1",
    /// capabilities 0xfffe (CLIENT_MYSQL clear), then six zero filler bytes and the
    /// extended capabilities 0x1d.
    const MARIADB: &str = "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465\
        62313275310004000000376c3e2e6b52375d00feff080200ff81150000000000001d0000004c475f29\
        4c2572303761665b006d7973716c5f6e61746976655f70617373776f726400";

    #[test]
    fn mariadb_handshake_with_extended_capabilities() {
        let b = hex(MARIADB);
        let c = Flow::tcp(50000, 3306).s2c(&b).yes(check);
        assert_eq!(c.protocol, "mysql");
        assert_eq!(
            c.extra.meta.version.as_deref(),
            Some("5.5.5-10.11.19-MariaDB-0+deb12u1")
        );
        // The same bytes with CLIENT_MYSQL set are a MySQL greeting with nonzero reserved
        // bytes: not MySQL.
        let mut m = b.clone();
        let caps = 51; // the capabilities' low byte
        assert_eq!(m[caps], 0xfe);
        m[caps] = 0xff;
        assert_eq!(parse_greeting(&m), Parse::Bad);
        // Nonzero filler is not MariaDB either.
        let mut m = b;
        m[caps + 9] = 1;
        assert_eq!(parse_greeting(&m), Parse::Bad);
    }

    #[test]
    fn refused_host() {
        // ER_HOST_NOT_PRIVILEGED (1130) sent before the handshake.
        let msg = b"Host '10.0.0.9' is not allowed to connect to this MySQL server";
        let mut b = vec![(msg.len() + 3) as u8, 0, 0, 0, 0xff, 0x6a, 0x04];
        b.extend_from_slice(msg);
        let c = Flow::tcp(50000, 3306).s2c(&b).yes(check);
        assert!(c.evidence[0].value.starts_with("1130 Host"));
    }

    #[test]
    fn not_mysql() {
        let mut b = greeting();
        b[3] = 1; // sequence id
        assert_eq!(parse_greeting(&b), Parse::Bad);
        let mut b = greeting();
        b[4] = 9; // protocol 9
        assert_eq!(parse_greeting(&b), Parse::Bad);
        let mut b = greeting();
        b[24] = 1; // filler
        assert_eq!(parse_greeting(&b), Parse::Bad);
        assert!(Flow::tcp(1, 3306)
            .s2c(b"SSH-2.0-OpenSSH_9.6\r\n")
            .is_no(check));
    }
}
