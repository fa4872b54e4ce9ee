//! PostgreSQL frontend/backend protocol (PostgreSQL documentation 55.7, "Message
//! Formats"): the client's first message.
//!
//! `Yes` for a StartupMessage (length, protocol 3.0..=3.2, NUL-terminated parameter
//! pairs including "user", a final NUL, all filling the length exactly), or for an
//! SSLRequest, GSSENCRequest or CancelRequest (a fixed length and a 32-bit request
//! code). After an SSLRequest the server's single byte 'S' or 'N' is shown when present.

use super::super::{Classification, Cx, Verdict};
use super::{be32, finish, require, stream, take, Parse};

/// Protocol 3.0 (major 3 in the high 16 bits).
pub const PROTOCOL_3: u32 = 0x0003_0000;
/// SSLRequest code.
pub const SSL_REQUEST: u32 = 80_877_103;
/// GSSENCRequest code.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// CancelRequest code.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Largest StartupMessage accepted (the server refuses over 10000 bytes,
/// MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_LEN: usize = 10_000;
/// Parameters read.
const MAX_PARAMS: usize = 64;

/// What the client's first message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum First {
    /// StartupMessage with the user, database and application names.
    Startup {
        /// Minor protocol version.
        minor: u16,
        /// user, database, application_name.
        params: String,
    },
    /// SSLRequest.
    Ssl,
    /// GSSENCRequest.
    Gssenc,
    /// CancelRequest.
    Cancel,
}

/// Parses the client's first message.
pub fn parse_first(b: &[u8]) -> Parse<First> {
    let len = need!(be32(b, 0)) as usize;
    need!(require((8..=MAX_STARTUP_LEN).contains(&len)));
    let code = need!(be32(b, 4));
    match code {
        SSL_REQUEST | GSSENC_REQUEST => {
            need!(require(len == 8));
            Parse::Ok(if code == SSL_REQUEST {
                First::Ssl
            } else {
                First::Gssenc
            })
        }
        CANCEL_REQUEST => require(len == 16).map(|()| First::Cancel),
        _ if code >> 16 == 3 && code & 0xffff <= 2 => {
            let body = need!(take(b, 8, len - 8));
            let mut rest = body;
            let mut user = false;
            let mut shown = Vec::new();
            for _ in 0..MAX_PARAMS {
                if rest == [0] {
                    need!(require(user));
                    return Parse::Ok(First::Startup {
                        minor: (code & 0xffff) as u16,
                        params: shown.join(" "),
                    });
                }
                let k = need!(cstring(rest));
                let v = need!(cstring(rest.get(k.len() + 1..).unwrap_or(&[])));
                need!(require(!k.is_empty() && super::text::is_printable(k)));
                if k == b"user" {
                    user = true;
                }
                if matches!(k, b"user" | b"database" | b"application_name") {
                    shown.push(format!(
                        "{}={}",
                        super::super::util::printable(k),
                        super::super::util::printable(v)
                    ));
                }
                rest = rest.get(k.len() + v.len() + 2..).unwrap_or(&[]);
            }
            Parse::Bad
        }
        _ => Parse::Bad,
    }
}

/// A NUL-terminated string inside a complete message: missing NUL is `Bad`.
fn cstring(b: &[u8]) -> Parse<&[u8]> {
    match b.iter().position(|&c| c == 0) {
        Some(i) => Parse::Ok(b.get(..i).unwrap_or(&[])),
        None => Parse::Bad,
    }
}

/// Names PostgreSQL.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_first).map(|f| {
        let v = match f {
            First::Startup { minor, params } => format!("StartupMessage 3.{minor} {params}"),
            First::Ssl => match cx.s2c.bytes().first() {
                Some(b'S') => "SSLRequest accepted".to_owned(),
                Some(b'N') => "SSLRequest refused".to_owned(),
                _ => "SSLRequest".to_owned(),
            },
            First::Gssenc => "GSSENCRequest".to_owned(),
            First::Cancel => "CancelRequest".to_owned(),
        };
        Classification::new(
            "postgresql",
            None,
            "setten.postgresql.startup",
            "postgresql.startup",
            v,
        )
    });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    fn startup(params: &[u8]) -> Vec<u8> {
        let mut b = ((8 + params.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        b.extend_from_slice(params);
        b
    }

    #[test]
    fn startup_message() {
        // psql's StartupMessage (documentation 55.7).
        let b = startup(b"user\0postgres\0database\0emr\0application_name\0psql\0\0");
        let c = Flow::tcp(50000, 5432).c2s(&b).yes(check);
        assert_eq!((c.protocol, c.service), ("postgresql", None));
        assert_eq!(
            c.evidence[0].value,
            "StartupMessage 3.0 user=postgres database=emr application_name=psql"
        );
        // Cut: wait. Without "user", or a length one too long: not a startup.
        assert!(Flow::tcp(50000, 5432).c2s(&b[..20]).is_wait(check));
        assert_eq!(parse_first(&startup(b"database\0emr\0\0")), Parse::Bad);
        let mut x = b.clone();
        x[3] += 1;
        x.push(0);
        assert_eq!(parse_first(&x), Parse::Bad);
    }

    #[test]
    fn ssl_request() {
        let b = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        let c = Flow::tcp(50000, 5432).c2s(&b).s2c(b"S").yes(check);
        assert_eq!(c.evidence[0].value, "SSLRequest accepted");
        assert_eq!(
            parse_first(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f, 0]),
            Parse::Bad
        );
        assert!(Flow::tcp(1, 5432)
            .c2s(b"\x16\x03\x01\x02\x00\x01\x00\x01")
            .is_no(check));
    }
}
