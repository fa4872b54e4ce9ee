//! SMTP (RFC 5321): the server's 220 greeting, told apart from FTP's identical one as
//! [`super::ftp`] describes (keyword, client command EHLO/HELO, then port 25 or 587).
//! The greeting text names the mail server software.

use super::super::{Classification, Cx, Verdict};
use super::ftp::{which_220, Greeter};
use super::{finish, Parse};

/// Names SMTP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let p = which_220(cx).and_then(|(g, text)| {
        if g == Greeter::Smtp {
            Parse::Ok(Classification::new(
                "smtp",
                None,
                "setten.smtp.greeting",
                "smtp.greeting",
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
    fn greeting_then_ehlo() {
        // RFC 5321 D.1 scenario.
        let f = Flow::tcp(50000, 25)
            .s2c(b"220 foo.com Simple Mail Transfer Service Ready\r\n")
            .c2s(b"EHLO bar.com\r\n");
        let c = f.yes(check);
        assert_eq!((c.protocol, c.service), ("smtp", None));
        assert_eq!(
            c.evidence[0].value,
            "220 foo.com Simple Mail Transfer Service Ready"
        );
        // Postfix names itself with ESMTP, on any port.
        let c = Flow::tcp(50000, 10025)
            .s2c(b"220 mx.example.org ESMTP Postfix\r\n")
            .yes(check);
        assert_eq!(c.protocol, "smtp");
    }

    #[test]
    fn not_smtp() {
        assert!(Flow::tcp(1, 25).s2c(b"220 x FTP server\r\n").is_no(check));
        assert!(Flow::tcp(1, 25)
            .s2c(b"554 No SMTP service here\r\n")
            .is_no(check));
        assert!(Flow::tcp(1, 25)
            .s2c(b"220 ready\r\n")
            .c2s(b"USER a\r\n")
            .is_no(check));
    }
}
