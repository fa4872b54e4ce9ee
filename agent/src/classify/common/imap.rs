//! IMAP (RFC 9051 7.1, RFC 3501 7.1): the server's untagged greeting.
//!
//! `Yes` for a complete printable greeting line "* OK ", "* PREAUTH " or "* BYE " when
//! it mentions IMAP (most carry "[CAPABILITY IMAP4rev1 …]") or the client's first line is
//! a tag and an IMAP command (CAPABILITY, LOGIN, STARTTLS, AUTHENTICATE, ID, NOOP,
//! LOGOUT, ENABLE). A client that sends something else first is not speaking IMAP.

use super::super::{Classification, Cx, Verdict};
use super::text::{contains_ci, crlf_line, is_printable, starts_with_ci};
use super::{finish, require, stream, Parse};

/// First commands of an IMAP client.
const COMMANDS: [&[u8]; 8] = [
    b"CAPABILITY",
    b"LOGIN",
    b"STARTTLS",
    b"AUTHENTICATE",
    b"ID",
    b"NOOP",
    b"LOGOUT",
    b"ENABLE",
];
/// Longest tag accepted.
const MAX_TAG: usize = 32;

/// Parses the greeting line; returns it.
pub fn parse_greeting(b: &[u8]) -> Parse<&[u8]> {
    let n = b.len().min(2);
    need!(require(b.get(..n) == b"* ".get(..n)));
    let (line, _) = need!(crlf_line(b));
    need!(require(
        is_printable(line)
            && (line.starts_with(b"* OK ")
                || line.starts_with(b"* PREAUTH ")
                || line.starts_with(b"* BYE "))
    ));
    Parse::Ok(line)
}

/// The client's first line: a tag (no CTL, space, or list/quote specials; RFC 9051 9
/// "tag"), a space, and a command, decided as early as the bytes allow.
fn parse_command(b: &[u8]) -> Parse<()> {
    let is_tag = |c: &u8| (0x21..0x7f).contains(c) && !b"(){%*\"\\+]".contains(c);
    let Some(n) = b.iter().take(MAX_TAG + 1).position(|&c| c == b' ') else {
        need!(require(b.len() <= MAX_TAG && b.iter().all(is_tag)));
        return Parse::Short;
    };
    let tag = b.get(..n).unwrap_or(&[]);
    need!(require(n > 0 && tag.iter().all(is_tag)));
    let rest = b.get(n + 1..).unwrap_or(&[]);
    if COMMANDS
        .iter()
        .any(|c| starts_with_ci(rest, c) && matches!(rest.get(c.len()), Some(b' ' | b'\r' | b'\n')))
    {
        return Parse::Ok(());
    }
    let prefix = COMMANDS
        .iter()
        .any(|c| rest.len() <= c.len() && starts_with_ci(c, rest));
    if prefix {
        Parse::Short
    } else {
        Parse::Bad
    }
}

/// Names IMAP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    // The client waits for the greeting: what it sends first must be a command.
    let c2s = cx.c2s.bytes();
    if !c2s.is_empty() && parse_command(c2s).is_bad() {
        return Verdict::No;
    }
    let p = stream(cx.s2c, parse_greeting).and_then(|line| {
        let agreed = if !c2s.is_empty() {
            parse_command(c2s)
        } else if contains_ci(line, b"IMAP") {
            Parse::Ok(())
        } else {
            Parse::Short
        };
        agreed.map(|()| {
            Classification::new(
                "imap",
                None,
                "setten.imap.greeting",
                "imap.greeting",
                super::super::util::printable(line),
            )
        })
    });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn greetings() {
        // RFC 9051 8 example greeting, then a Dovecot-style one answered by a command.
        let g = b"* OK [CAPABILITY STARTTLS AUTH=SCRAM-SHA-256 LOGINDISABLED IMAP4rev2] IMAP4rev2 Service Ready\r\n";
        let c = Flow::tcp(50000, 143).s2c(g).yes(check);
        assert_eq!((c.protocol, c.service), ("imap", None));
        let f = Flow::tcp(50000, 143).s2c(b"* OK ready\r\n");
        assert!(f.is_wait(check));
        assert_eq!(f.c2s(b"a001 CAPABILITY\r\n").yes(check).protocol, "imap");
    }

    #[test]
    fn not_imap() {
        assert!(Flow::tcp(1, 143)
            .s2c(b"* OK ready\r\n")
            .c2s(b"GET / HTTP/1.1\r\n")
            .is_no(check));
        assert!(Flow::tcp(1, 143).s2c(b"+OK POP3\r\n").is_no(check));
        assert!(Flow::tcp(1, 143).s2c(b"* OKAY\r\n").is_no(check));
    }
}
