//! SIP (RFC 3261) over UDP and TCP.
//!
//! `Yes` when the first message starts with a request line (a method RFC 3261 or its
//! extensions define, a sip:, sips: or tel: Request-URI, "SIP/2.0") or a status line
//! ("SIP/2.0", a code 100..=699), and its header carries a Via with "SIP/2.0/" and a
//! CSeq of a sequence number and a method (RFC 3261 8.1.1: mandatory in every request).
//! Over UDP the whole head must be in the datagram (18.3). User-Agent or Server, when
//! present, name the phone, gateway or PBX.

use super::super::{Classification, Cx, Evidence, Verdict};
use super::text::{crlf_line, first_word, is_digits, is_printable, starts_with_ci, Head};
use super::{finish, opening, require, stream, Parse};

/// Request methods (RFC 3261 27.4 and the extensions registered with IANA).
const METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"OPTIONS",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
];

/// What a message can start with: a method or the version of a status line.
const FIRST_WORDS: [&[u8]; 15] = [
    b"SIP/2.0",
    b"INVITE",
    b"ACK",
    b"OPTIONS",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
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

/// Checks a start line: request or status.
fn start_line(l: &[u8]) -> bool {
    let mut parts = l.splitn(3, |&c| c == b' ');
    let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if a == b"SIP/2.0" {
        // Status-Line (7.2).
        is_digits(b, 3)
            && b.len() == 3
            && (b"100".as_slice()..=b"699".as_slice()).contains(&b)
            && is_printable(c)
    } else {
        // Request-Line (7.1).
        METHODS.contains(&a)
            && (starts_with_ci(b, b"sip:")
                || starts_with_ci(b, b"sips:")
                || starts_with_ci(b, b"tel:"))
            && b.len() > 4
            && is_printable(b)
            && c == b"SIP/2.0"
    }
}

/// Parses a message head; `complete` when the bytes are the whole message (UDP).
pub fn parse_message(b: &[u8], complete: bool) -> Parse<Message> {
    // Refuse early: the first word must be a method or "SIP/2.0".
    need!(first_word(b, &FIRST_WORDS));
    let (line, rest) = need!(crlf_line(b));
    need!(require(start_line(line)));
    let head = need!(Head::read(rest));
    let via = head.get(b"via").or_else(|| head.get(b"v"));
    let cseq = head.get(b"cseq");
    let have = via.is_some_and(|v| starts_with_ci(v, b"SIP/2.0/"))
        && cseq.is_some_and(|c| {
            let mut p = c.splitn(2, |&x| x == b' ');
            p.next().is_some_and(|n| is_digits(n, 10))
                && p.next()
                    .is_some_and(|m| METHODS.contains(&super::text::trim(m)))
        });
    if !have {
        return if head.complete || complete {
            Parse::Bad
        } else {
            Parse::Short
        };
    }
    if complete {
        need!(require(head.complete));
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

/// Names SIP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let p = if cx.is_udp() {
        opening(cx, |d| parse_message(d, true), |d| parse_message(d, true))
    } else {
        stream(cx.c2s, |b| parse_message(b, false))
            .or_else(|| stream(cx.s2c, |b| parse_message(b, false)))
    };
    finish(
        cx,
        p.map(|m| {
            let mut c = Classification::new(
                "sip",
                None,
                "setten.sip.start_line",
                "sip.start_line",
                m.start,
            );
            if let Some(p) = m.product {
                c.evidence
                    .push(Evidence::new("setten.sip.product", "sip.user_agent", p));
            }
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    /// ndpi-webex.pcap frame 409: a REGISTER from a Zoiper softphone.
    const REGISTER: &[u8] = b"REGISTER sip:172.16.1.75;transport=UDP SIP/2.0\r\nVia: SIP/2.0/UDP 10.133.206.47:64538;branch=z9hG4bK-524287-1---3e4698618cfb2b73;rport\r\nMax-Forwards: 70\r\nContact: <sip:45191@10.133.206.47:64538;rinstance=7a46f1e12702e7fb;transport=UDP>\r\nTo: <sip:45191@172.16.1.75;transport=UDP>\r\nFrom: <sip:45191@172.16.1.75;transport=UDP>;tag=d3833767\r\nCall-ID: KopLTw9xs_lEpCtiPa07bQ..\r\nCSeq: 4 REGISTER\r\nExpires: 60\r\nAllow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\nSupported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\nUser-Agent: Zoiper r33688\r\nAllow-Events: presence, kpml\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn register_from_capture() {
        let c = Flow::udp(64538, 5060).c2s(REGISTER).yes(check);
        assert_eq!((c.protocol, c.service), ("sip", None));
        assert_eq!(
            c.evidence[0].value,
            "REGISTER sip:172.16.1.75;transport=UDP SIP/2.0"
        );
        assert_eq!(c.evidence[1].value, "Zoiper r33688");
    }

    #[test]
    fn response_over_tcp() {
        // RFC 3665 3.1 style response; TCP allows waiting for the rest of the head.
        let r = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\nCSeq: 1 INVITE\r\n";
        assert_eq!(Flow::tcp(5060, 5060).s2c(r).yes(check).protocol, "sip");
        assert!(Flow::tcp(5060, 5060).s2c(&r[..30]).is_wait(check));
    }

    #[test]
    fn not_sip() {
        // A cut datagram (no empty line), HTTP, keepalives, an unknown method.
        assert!(!matches!(
            parse_message(&REGISTER[..200], true),
            Parse::Ok(_)
        ));
        assert_eq!(
            parse_message(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            Parse::Bad
        );
        assert_eq!(parse_message(b"\r\n\r\n", true), Parse::Bad);
        assert_eq!(
            parse_message(
                b"FETCH sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 FETCH\r\n\r\n",
                true
            ),
            Parse::Bad
        );
        assert_eq!(
            parse_message(b"OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", true),
            Parse::Bad
        );
        assert!(Flow::udp(1, 5060)
            .c2s(b"\x00\x01\x02")
            .s2c(b"SIP")
            .is_no(check));
    }
}
