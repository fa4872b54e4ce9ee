//! RTSP (RFC 2326, RFC 7826) over TCP: IP cameras, video encoders and streaming servers.
//!
//! `Yes` when the first message starts with a request line (an RTSP method, an rtsp:,
//! rtsps: or rtspu: URI or "*", "RTSP/1.0" or "RTSP/2.0") or a status line, and its head
//! carries a CSeq (RFC 2326 12.17, RFC 7826 18.20: in every request and response).
//! User-Agent or Server, when present, name the camera or player.

use super::super::{Classification, Cx, Evidence, Verdict};
use super::text::{crlf_line, first_word, is_digits, is_printable, starts_with_ci, Head};
use super::{finish, require, stream, Parse};

/// Methods (RFC 2326 10, RFC 7826 13).
const METHODS: [&[u8]; 12] = [
    b"OPTIONS",
    b"DESCRIBE",
    b"ANNOUNCE",
    b"SETUP",
    b"PLAY",
    b"PAUSE",
    b"TEARDOWN",
    b"GET_PARAMETER",
    b"SET_PARAMETER",
    b"REDIRECT",
    b"RECORD",
    b"PLAY_NOTIFY",
];
/// Longest product header value kept.
const MAX_PRODUCT: usize = 96;

/// What the first message shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The start line.
    pub start: String,
    /// User-Agent or Server.
    pub product: Option<String>,
}

fn is_version(v: &[u8]) -> bool {
    v == b"RTSP/1.0" || v == b"RTSP/2.0"
}

fn start_line(l: &[u8]) -> bool {
    let mut parts = l.splitn(3, |&c| c == b' ');
    let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if is_version(a) {
        is_digits(b, 3) && b.len() == 3 && is_printable(c)
    } else {
        METHODS.contains(&a)
            && (b == b"*"
                || starts_with_ci(b, b"rtsp://")
                || starts_with_ci(b, b"rtsps://")
                || starts_with_ci(b, b"rtspu://"))
            && is_printable(b)
            && is_version(c)
    }
}

/// Parses the first message head of a direction.
pub fn parse_message(b: &[u8]) -> Parse<Message> {
    // Refuse early: the first word must be a method or a version.
    need!(first_word(b, &METHODS).or_else(|| first_word(b, &[b"RTSP/1.0", b"RTSP/2.0"])));
    let (line, rest) = need!(crlf_line(b));
    need!(require(start_line(line)));
    let head = need!(Head::read(rest));
    match head.get(b"cseq") {
        Some(c) if is_digits(c, 10) => {}
        Some(_) => return Parse::Bad,
        None if head.complete => return Parse::Bad,
        None => return Parse::Short,
    }
    let product = head
        .get(b"user-agent")
        .or_else(|| head.get(b"server"))
        .map(|p| super::super::util::printable(p.get(..p.len().min(MAX_PRODUCT)).unwrap_or(p)));
    Parse::Ok(Message {
        start: super::super::util::printable(line),
        product,
    })
}

/// Names RTSP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_message).or_else(|| stream(cx.s2c, parse_message));
    finish(
        cx,
        p.map(|m| {
            let mut c = Classification::new(
                "rtsp",
                None,
                "setten.rtsp.start_line",
                "rtsp.start_line",
                m.start,
            );
            if let Some(p) = m.product {
                c.evidence
                    .push(Evidence::new("setten.rtsp.product", "rtsp.user_agent", p));
            }
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn describe_and_reply() {
        // RFC 2326 C.1 style DESCRIBE, and its reply.
        let q = b"DESCRIBE rtsp://192.168.1.64:554/Streaming/Channels/101 RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)\r\nAccept: application/sdp\r\n\r\n";
        let c = Flow::tcp(50000, 554).c2s(q).yes(check);
        assert_eq!((c.protocol, c.service), ("rtsp", None));
        assert_eq!(
            c.evidence[1].value,
            "LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)"
        );
        let r = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm=\"IP Camera\"\r\n\r\n";
        assert_eq!(
            Flow::tcp(50000, 554).s2c(r).yes(check).evidence[0].value,
            "RTSP/1.0 401 Unauthorized"
        );
    }

    #[test]
    fn not_rtsp() {
        // HTTP, a missing CSeq, a cut head (wait).
        assert_eq!(
            parse_message(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parse::Bad
        );
        assert_eq!(
            parse_message(b"OPTIONS * RTSP/1.0\r\nUser-Agent: x\r\n\r\n"),
            Parse::Bad
        );
        assert!(Flow::tcp(1, 554)
            .c2s(b"OPTIONS * RTSP/1.0\r\n")
            .is_wait(check));
        assert!(Flow::tcp(1, 554)
            .c2s(b"OPTIONS * RTSP/1.0\r\n")
            .is_no_at_end(check));
        assert_eq!(parse_message(b"\x16\x03\x01"), Parse::Bad);
    }
}
