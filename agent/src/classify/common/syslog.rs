//! Syslog: RFC 5424 and the BSD format of RFC 3164 (and the Cisco and appliance variants
//! of it), over UDP (RFC 5426, one message per datagram) and TCP (RFC 6587: octet
//! counting or LF-terminated).
//!
//! `Yes` when every message seen starts with a PRI "<0>".."<191>" without leading zeros
//! (RFC 5424 6.2.1), is text throughout (line breaks allowed), and its header is one of: the RFC 5424 header
//! (version 1, a timestamp or "-", host, app, procid and msgid fields); a clock time
//! "hh:mm:ss" within the first bytes (the RFC 3164 timestamp "Mmm dd hh:mm:ss", ISO
//! forms and the Cisco "seq: *Mmm dd hh:mm:ss.mmm" all contain one); or a tag
//! "name[pid]: " or "name: " at the start. Syslog is one-way: bytes from the server
//! must be syslog too. Only the facility and severity are kept, never the message.

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, require, stream, Parse};

/// Largest PRI (facility 23, severity 7: RFC 5424 6.2.1).
pub const MAX_PRI: u16 = 191;
/// Bytes after the PRI searched for a clock time.
const TIME_WINDOW: usize = 48;
/// Longest tag (RFC 3164 4.1.3: 32 characters).
const MAX_TAG_LEN: usize = 32;
/// Longest octet-counted frame accepted on TCP.
const MAX_FRAME_LEN: usize = 64 * 1024;

/// Facility names (RFC 5424 Table 1).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
/// Severity names (RFC 5424 Table 2).
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// What a message's head shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// PRI value.
    pub pri: u16,
    /// Header form: "RFC 5424", "timestamp" or "tag".
    pub form: &'static str,
}

/// Parses "<PRI>" at the start: the value and the bytes after it.
pub fn parse_pri(b: &[u8]) -> Parse<(u16, &[u8])> {
    need!(require(need!(byte(b, 0)) == b'<'));
    let digits = b
        .iter()
        .skip(1)
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    need!(require(digits <= 3));
    let close = need!(byte(b, 1 + digits));
    need!(require(close == b'>' && digits >= 1));
    let d = b.get(1..1 + digits).unwrap_or(&[]);
    need!(require(d == b"0" || d.first() != Some(&b'0')));
    let pri = d.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
    need!(require(pri <= MAX_PRI));
    Parse::Ok((pri, b.get(2 + digits..).unwrap_or(&[])))
}

/// RFC 5424 6: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP.
fn is_rfc5424(h: &[u8]) -> bool {
    let Some(rest) = h.strip_prefix(b"1 ") else {
        return false;
    };
    let mut fields = rest.splitn(6, |&c| c == b' ');
    let limits = [64usize, 255, 48, 128, 32];
    let ok = limits.iter().all(|&max| {
        fields.next().is_some_and(|f| {
            !f.is_empty() && f.len() <= max && f.iter().all(|c| (0x21..0x7f).contains(c))
        })
    });
    // The structured data (or "-") follows.
    ok && fields
        .next()
        .is_some_and(|sd| sd.starts_with(b"-") || sd.starts_with(b"["))
        && rest
            .first()
            .is_some_and(|&c| c == b'-' || c.is_ascii_digit())
}

/// A clock time "hh:mm:ss" (hours 00..=23) within the first bytes of `h`, not inside a
/// longer run of digits.
fn has_clock_time(h: &[u8]) -> bool {
    let w = h.get(..h.len().min(TIME_WINDOW)).unwrap_or(h);
    w.windows(8).enumerate().any(|(i, t)| {
        let d = |j: usize| t.get(j).is_some_and(u8::is_ascii_digit);
        let before = i.checked_sub(1).and_then(|p| w.get(p));
        d(0) && d(1)
            && t.get(2) == Some(&b':')
            && d(3)
            && d(4)
            && t.get(5) == Some(&b':')
            && d(6)
            && d(7)
            && t.first().is_some_and(|&c| c <= b'2')
            && t.get(3).is_some_and(|&c| c <= b'5')
            && t.get(6).is_some_and(|&c| c <= b'5')
            && !before.is_some_and(u8::is_ascii_digit)
            && !w.get(i + 8).is_some_and(u8::is_ascii_digit)
    })
}

/// A tag at the start: "name: " or "name[pid]: " (RFC 3164 4.1.3).
fn has_tag(h: &[u8]) -> bool {
    let n = h
        .iter()
        .take(MAX_TAG_LEN + 1)
        .take_while(|c| c.is_ascii_alphanumeric() || b"_-./".contains(c))
        .count();
    if n == 0 || n > MAX_TAG_LEN {
        return false;
    }
    let rest = h.get(n..).unwrap_or(&[]);
    let rest = match rest.strip_prefix(b"[") {
        Some(r) => {
            let p = r.iter().take_while(|c| c.is_ascii_digit()).count();
            match r.get(p..).and_then(|x| x.strip_prefix(b"]")) {
                Some(x) if p > 0 => x,
                _ => return false,
            }
        }
        None => rest,
    };
    rest.starts_with(b": ")
}

/// Parses one complete message (a datagram, or a TCP frame without its framing).
pub fn parse_message(m: &[u8]) -> Parse<Message> {
    let (pri, h) = need!(parse_pri(m));
    // Trailing LF, CR and NUL are common on the wire; anything else must be text.
    let body = h
        .iter()
        .rposition(|&c| !matches!(c, b'\n' | b'\r' | 0))
        .map_or(&[][..], |e| h.get(..=e).unwrap_or(h));
    // Multi-line messages keep their line breaks.
    need!(require(
        !body.is_empty()
            && body.iter().all(|&c| c == b'\t'
                || c == b'\n'
                || c == b'\r'
                || (0x20..0x7f).contains(&c)
                || c >= 0x80)
    ));
    let form = if is_rfc5424(body) {
        "RFC 5424"
    } else if has_clock_time(body) {
        "timestamp"
    } else if has_tag(body) {
        "tag"
    } else {
        return Parse::Bad;
    };
    Parse::Ok(Message { pri, form })
}

/// Parses the first message of a TCP direction (RFC 6587 3.4.1 octet counting, or
/// 3.4.2 LF-terminated).
pub fn parse_tcp(b: &[u8]) -> Parse<Message> {
    let first = need!(byte(b, 0));
    if first.is_ascii_digit() {
        let n = b.iter().take(6).take_while(|c| c.is_ascii_digit()).count();
        need!(require(n <= 5 && first != b'0'));
        need!(require(need!(byte(b, n)) == b' '));
        let len = b
            .get(..n)
            .unwrap_or(&[])
            .iter()
            .fold(0usize, |a, &c| a * 10 + usize::from(c - b'0'));
        need!(require(len <= MAX_FRAME_LEN));
        // Refuse early what cannot become syslog.
        need!(parse_pri(b.get(n + 1..).unwrap_or(&[])));
        let frame = need!(super::take(b, n + 1, len));
        parse_message(frame)
    } else {
        let (_, _) = need!(parse_pri(b));
        match b
            .iter()
            .take(super::text::MAX_LINE * 8)
            .position(|&c| c == b'\n')
        {
            Some(e) => parse_message(b.get(..e).unwrap_or(&[])),
            None if b.len() >= super::text::MAX_LINE * 8 => Parse::Bad,
            None => Parse::Short,
        }
    }
}

/// Every datagram of a UDP direction is a syslog message; the first one's head.
fn all_datagrams(cx: &Cx<'_>, s: &crate::flow::reassembly::Stream) -> Parse<Message> {
    let mut first = None;
    for d in cx.datagrams(s) {
        let m = need!(match parse_message(d) {
            Parse::Short => Parse::Bad,
            p => p,
        });
        first.get_or_insert(m);
    }
    first.map_or(Parse::Short, Parse::Ok)
}

/// Names syslog.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let (client, server) = if cx.is_udp() {
        (all_datagrams(cx, cx.c2s), all_datagrams(cx, cx.s2c))
    } else {
        (stream(cx.c2s, parse_tcp), stream(cx.s2c, parse_tcp))
    };
    let p = match (client, server) {
        (Parse::Ok(m), Parse::Ok(_) | Parse::Short) | (Parse::Short, Parse::Ok(m)) => {
            // Server bytes present but not syslog: on TCP an empty server side is
            // `Short` and fine; on UDP `Short` means it sent nothing.
            Parse::Ok(m)
        }
        (Parse::Short, Parse::Short) => Parse::Short,
        _ => Parse::Bad,
    };
    // On TCP the server of a syslog session never speaks.
    let p = if cx.is_tcp() && !cx.s2c.bytes().is_empty() {
        p.and_then(|_| Parse::Bad)
    } else {
        p
    };
    finish(
        cx,
        p.map(|m| {
            let facility = FACILITIES
                .get(usize::from(m.pri / 8))
                .copied()
                .unwrap_or("?");
            let severity = SEVERITIES
                .get(usize::from(m.pri % 8))
                .copied()
                .unwrap_or("?");
            Classification::new(
                "syslog",
                None,
                "setten.syslog.pri",
                "syslog.pri",
                format!("<{}> {facility}.{severity} ({})", m.pri, m.form),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn bsd_and_cisco_forms_from_capture() {
        // ndpi-syslog.pcap frames 18, 20, 36, 1 (heads).
        let samples: [&[u8]; 4] = [
            b"<147>Jan  2 10:09:52 nb6 chillispot[4222]: C:192.168.2.83/00:19:7D:3B:6F:D4\n",
            b"<189>72: Mar  3 19:57:17.371: %LINK-5-CHANGED: Interface GigabitEthernet0/2, changed state to administratively down",
            b"<187>38: R1: *Sep 22 13:39:11.250: %LINK-3-UPDOWN: Interface Ethernet0/2, changed state to up",
            b"<134>854 08/20/2013-19:05:23 CONFIG QLA23XX PCIDEV03 DiscLoopId qla23xxStMachRun.cxx 3510\n0 Local Port",
        ];
        for s in samples {
            assert_eq!(
                parse_message(s).ok().map(|m| m.form),
                Some("timestamp"),
                "{s:?}"
            );
        }
        let c = Flow::udp(59194, 514).c2s(samples[0]).yes(check);
        assert_eq!((c.protocol, c.service), ("syslog", None));
        assert_eq!(c.evidence[0].value, "<147> local2.err (timestamp)");
    }

    #[test]
    fn rfc5424_and_tag_forms() {
        // RFC 5424 6.5, example 1.
        let m = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8";
        assert_eq!(parse_message(m).ok().map(|m| m.form), Some("RFC 5424"));
        // ndpi-syslog.pcap frame 26 (head): a NetScreen tag without a timestamp.
        let m = b"<133>ssg: NetScreen device_id=0185082008001541  [Root]system-notification-00257(traffic): start_time";
        assert_eq!(parse_message(m).ok().map(|m| m.form), Some("tag"));
    }

    #[test]
    fn strictness() {
        for bad in [
            &b"<192>Jan  2 10:09:52 host x: y"[..], // PRI beyond 191
            b"<013>Jan  2 10:09:52 host x: y",      // leading zero
            b"<13>",                                // nothing after
            b"<13>hello world",                     // no time, no tag
            b"<13>Jan  2 10:09:52 host \x01\x02",   // control bytes
            b"<html><body>",
        ] {
            assert!(!matches!(parse_message(bad), Parse::Ok(_)), "{bad:?}");
        }
        // Every datagram must be syslog.
        let f = Flow::udp(514, 514)
            .c2s(b"<13>Jan  2 10:09:52 host x: y")
            .c2s(b"\x00\x01binary");
        assert!(f.is_no(check));
    }

    #[test]
    fn tcp_framings() {
        // RFC 6587 3.4.1 octet counting, 3.4.2 LF-terminated.
        let m = b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - msg";
        let mut counted = format!("{} ", m.len()).into_bytes();
        counted.extend_from_slice(m);
        assert_eq!(
            Flow::tcp(50000, 601).c2s(&counted).yes(check).protocol,
            "syslog"
        );
        let mut lf = m.to_vec();
        lf.push(b'\n');
        assert_eq!(Flow::tcp(50000, 514).c2s(&lf).yes(check).protocol, "syslog");
        // Without the LF yet: wait. A server that answers: not syslog.
        assert!(Flow::tcp(50000, 514).c2s(m).is_wait(check));
        assert!(Flow::tcp(50000, 514).c2s(&lf).s2c(b"+OK\r\n").is_no(check));
    }
}
