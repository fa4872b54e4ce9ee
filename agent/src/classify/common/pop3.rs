//! POP3 (RFC 1939 4): the server's "+OK" greeting.
//!
//! "+OK" is short, so the greeting must be a complete printable CRLF line and something
//! else must agree: the greeting mentions POP, or the client's first command is a POP3
//! command (USER, APOP, CAPA, STLS, AUTH; RFC 1939 7, RFC 2449, RFC 2595). A client that
//! sends anything else first is not speaking POP3.

use super::super::{Classification, Cx, Verdict};
use super::text::{contains_ci, crlf_line, first_word, is_printable};
use super::{finish, require, stream, Parse};

/// First commands of a POP3 client.
const COMMANDS: [&[u8]; 5] = [b"USER", b"APOP", b"CAPA", b"STLS", b"AUTH"];

/// Parses the greeting: "+OK", then a space and text, CRLF. Returns the text.
pub fn parse_greeting(b: &[u8]) -> Parse<&[u8]> {
    let n = b.len().min(3);
    need!(require(b.get(..n) == b"+OK".get(..n)));
    let (line, _) = need!(crlf_line(b));
    need!(require(
        is_printable(line) && (line.len() == 3 || line.get(3) == Some(&b' '))
    ));
    Parse::Ok(line.get(4..).unwrap_or(&[]))
}

/// The client's first command: a POP3 command (any case) followed by space or CRLF.
fn parse_command(b: &[u8]) -> Parse<()> {
    let upper: Vec<u8> = b.iter().take(5).map(u8::to_ascii_uppercase).collect();
    match first_word(&upper, &COMMANDS) {
        Parse::Bad => {
            let ok = COMMANDS
                .iter()
                .any(|c| upper.starts_with(c) && matches!(b.get(c.len()), Some(b'\r' | b'\n')));
            require(ok)
        }
        p => p,
    }
}

/// Names POP3.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    // The client waits for the greeting: what it sends first must be a command.
    let c2s = cx.c2s.bytes();
    if !c2s.is_empty() && parse_command(c2s).is_bad() {
        return Verdict::No;
    }
    let p = stream(cx.s2c, parse_greeting).and_then(|text| {
        let agreed = if c2s.is_empty() {
            if contains_ci(text, b"POP") {
                Parse::Ok(())
            } else {
                Parse::Short
            }
        } else {
            parse_command(c2s)
        };
        agreed.map(|()| {
            Classification::new(
                "pop3",
                None,
                "setten.pop3.greeting",
                "pop3.greeting",
                format!("+OK {}", super::super::util::printable(text)),
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
    fn greeting_and_command() {
        // RFC 1939 4 greeting with an APOP timestamp.
        let g = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n";
        let c = Flow::tcp(50000, 110).s2c(g).yes(check);
        assert_eq!((c.protocol, c.service), ("pop3", None));
        // Dovecot does not say POP: the client's CAPA does.
        let d = Flow::tcp(50000, 110).s2c(b"+OK Dovecot ready.\r\n");
        assert!(d.is_wait(check));
        assert_eq!(
            d.c2s(b"CAPA\r\n").yes(check).evidence[0].value,
            "+OK Dovecot ready."
        );
    }

    #[test]
    fn not_pop3() {
        // Redis answers +OK to a client that spoke RESP first.
        let f = Flow::tcp(50000, 6379)
            .c2s(b"*1\r\n$4\r\nPING\r\n")
            .s2c(b"+OK\r\n");
        assert!(f.is_no(check));
        assert!(Flow::tcp(1, 110).s2c(b"-ERR no\r\n").is_no(check));
        assert!(Flow::tcp(1, 110).s2c(b"+OKAY\r\n").is_no(check));
    }
}
