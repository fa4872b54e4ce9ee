//! FTP control connections (RFC 959 4.2, 5.4): the server's 220 greeting.
//!
//! A "220" greeting is also how SMTP servers open (RFC 5321 4.2), byte for byte, so the
//! two are told apart by, in order: a keyword in the greeting ("FTP" or "SMTP"), the
//! client's first command (USER, AUTH, FEAT, … for FTP; EHLO or HELO for SMTP), and only
//! then the port (21; 25, 587), which is what ports are for between identical formats.
//! `Yes` needs a complete greeting: CRLF-terminated printable lines, "220-" continuation
//! lines ending in a "220 " line (RFC 959 4.2). The greeting text names the server
//! software.

use super::super::{Classification, Cx, Verdict};
use super::text::{contains_ci, crlf_line, first_word, is_printable};
use super::{finish, require, stream, Parse};

/// Continuation lines read in a multi-line greeting.
const MAX_GREETING_LINES: usize = 32;
/// FTP control port.
pub const PORT_FTP: u16 = 21;
/// SMTP ports (RFC 5321, RFC 6409 submission).
pub const PORTS_SMTP: [u16; 3] = [25, 587, 2525];

/// Which protocol a 220 greeting belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Greeter {
    /// FTP.
    Ftp,
    /// SMTP.
    Smtp,
}

/// First commands of an FTP client (RFC 959 4.1, RFC 2228, RFC 2389, RFC 7151).
const FTP_COMMANDS: [&[u8]; 8] = [
    b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"HOST", b"CLNT", b"PBSZ",
];
/// First commands of an SMTP client (RFC 5321 4.1.1.1).
const SMTP_COMMANDS: [&[u8]; 2] = [b"EHLO", b"HELO"];

/// Parses a complete reply with code `code` ("220"): its first line's text and all of
/// its lines. RFC 959 4.2 and RFC 5321 4.2.1 share the multi-line form.
pub fn parse_reply<'a>(b: &'a [u8], code: &[u8; 3]) -> Parse<(&'a [u8], &'a [u8])> {
    let mut rest = b;
    let mut first = None;
    for _ in 0..MAX_GREETING_LINES {
        // Refuse early what does not start with the code.
        let n = rest.len().min(3);
        need!(require(rest.get(..n) == code.get(..n)));
        let (line, after) = need!(crlf_line(rest));
        need!(require(line.len() >= 3 && is_printable(line)));
        let text = line.get(4..).unwrap_or(&[]);
        first.get_or_insert(text);
        match line.get(3) {
            None | Some(b' ') => {
                let all = b.get(..b.len() - after.len()).unwrap_or(b);
                return Parse::Ok((first.unwrap_or(text), all));
            }
            Some(b'-') => rest = after,
            Some(_) => return Parse::Bad,
        }
    }
    Parse::Bad
}

/// The client's first command decides, if it is one of either list.
fn by_command(c2s: &[u8]) -> Parse<Greeter> {
    let upper: Vec<u8> = c2s.iter().take(5).map(u8::to_ascii_uppercase).collect();
    let word = |words: &[&[u8]]| {
        // "EHLO x", "FEAT\r\n": the command then a space or the line end.
        words
            .iter()
            .any(|w| upper.starts_with(w) && matches!(c2s.get(w.len()), Some(b' ' | b'\r' | b'\n')))
    };
    if word(&FTP_COMMANDS) {
        Parse::Ok(Greeter::Ftp)
    } else if word(&SMTP_COMMANDS) {
        Parse::Ok(Greeter::Smtp)
    } else if c2s.len() < 5
        && !first_word(&upper, &FTP_COMMANDS)
            .or_else(|| first_word(&upper, &SMTP_COMMANDS))
            .is_bad()
    {
        Parse::Short
    } else {
        Parse::Bad
    }
}

/// Decides whether a flow is an FTP or SMTP session, and returns the greeting text.
pub fn which_220<'a>(cx: &Cx<'a>) -> Parse<(Greeter, &'a [u8])> {
    if !cx.is_tcp() {
        return Parse::Bad;
    }
    // The client waits for the greeting: what it sends first must be a command.
    let c2s = cx.c2s.bytes();
    let command = by_command(c2s);
    need!(require(c2s.is_empty() || !command.is_bad()));
    let (greeting, all) = need!(stream(cx.s2c, |b| parse_reply(b, b"220")));
    let by_word = if contains_ci(all, b"SMTP") {
        Some(Greeter::Smtp)
    } else if contains_ci(all, b"FTP") {
        Some(Greeter::Ftp)
    } else {
        None
    };
    match (by_word, command) {
        // A client command of the other protocol contradicts the greeting.
        (Some(w), Parse::Ok(c)) if w != c => Parse::Bad,
        (Some(w), _) => Parse::Ok((w, greeting)),
        (None, Parse::Ok(c)) => Parse::Ok((c, greeting)),
        // Nothing in the bytes tells them apart: the port may.
        (None, _) => {
            if cx.server_port == PORT_FTP {
                Parse::Ok((Greeter::Ftp, greeting))
            } else if PORTS_SMTP.contains(&cx.server_port) {
                Parse::Ok((Greeter::Smtp, greeting))
            } else {
                Parse::Short
            }
        }
    }
}

/// Names FTP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let p = which_220(cx).and_then(|(g, text)| {
        if g == Greeter::Ftp {
            Parse::Ok(Classification::new(
                "ftp",
                None,
                "setten.ftp.greeting",
                "ftp.greeting",
                format!("220 {}", super::super::util::printable(text)),
            ))
        } else {
            Parse::Bad
        }
    });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn greeting_and_command() {
        // RFC 959 4.2 reply 220, then USER.
        let f = Flow::tcp(50000, 2121).s2c(b"220 Service ready for new user.\r\n");
        assert!(f.is_wait(check)); // no keyword, no command, no port: wait
        let c = f.c2s(b"USER anonymous\r\n").yes(check);
        assert_eq!((c.protocol, c.service), ("ftp", None));
        assert_eq!(c.evidence[0].value, "220 Service ready for new user.");
        // vsftpd names itself.
        let c = Flow::tcp(50000, 2121)
            .s2c(b"220 (vsFTPd 3.0.3)\r\n")
            .yes(check);
        assert_eq!(c.evidence[0].value, "220 (vsFTPd 3.0.3)");
    }

    #[test]
    fn multi_line_and_keyword() {
        let g = b"220-FileZilla Server 1.7.0\r\n220-Please visit https://filezilla-project.org/\r\n220 Welcome\r\n";
        assert_eq!(
            parse_reply(g, b"220"),
            Parse::Ok((&b"FileZilla Server 1.7.0"[..], &g[..]))
        );
        // No keyword in it: the client's first command decides.
        assert!(Flow::tcp(50000, 2121).s2c(g).is_wait(check));
        let c = Flow::tcp(50000, 2121)
            .s2c(g)
            .c2s(b"AUTH TLS\r\n")
            .yes(check);
        assert_eq!(c.evidence[0].value, "220 FileZilla Server 1.7.0");
        // Cut inside the continuation: wait.
        assert!(Flow::tcp(50000, 2121).s2c(&g[..40]).is_wait(check));
    }

    #[test]
    fn port_decides_only_between_the_two() {
        let f = Flow::tcp(50000, 21).s2c(b"220 Service ready\r\n");
        assert_eq!(f.yes(check).protocol, "ftp");
        // The same greeting on 25 is SMTP's.
        assert!(Flow::tcp(50000, 25)
            .s2c(b"220 Service ready\r\n")
            .is_no(check));
    }

    #[test]
    fn not_ftp() {
        assert!(Flow::tcp(1, 21).s2c(b"230 Logged in\r\n").is_no(check));
        assert!(Flow::tcp(1, 21).s2c(b"220\x01 x\r\n").is_no(check));
        // A greeting mentioning FTP but a client speaking SMTP.
        assert!(Flow::tcp(1, 21)
            .s2c(b"220 FTP ready\r\n")
            .c2s(b"EHLO x\r\n")
            .is_no(check));
        // A client that speaks first with something else.
        assert!(Flow::tcp(1, 21)
            .s2c(b"220 ready\r\n")
            .c2s(b"\x16\x03\x01")
            .is_no(check));
    }
}
