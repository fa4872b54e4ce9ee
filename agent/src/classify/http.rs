//! HTTP/1.x: the request line and headers of the first request (RFC 9112 section 3 and
//! 5), or the status line of a response when the request was not seen.
//!
//! Host, target and User-Agent go through the catalogue, which names SoftEther's
//! HTTP-camouflaged sessions (`/vpnsvc/connect.cgi`), TeamViewer's HTTP tunnel
//! (`/din.aspx`), SSL-VPN portals and others. RD Gateway's HTTP transport uses its own
//! methods (`RDG_OUT_DATA`, `RDG_IN_DATA`; [MS-TSGU] 2.2.5.1) and is RDP.

use super::{Classification, Cx, HttpMeta, Service, Verdict};
use crate::rules::Field;

/// Longest request line or header line looked at.
pub const MAX_LINE: usize = 4096;
/// Headers looked at.
pub const MAX_HEADERS: usize = 64;

const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"PATCH",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"M-SEARCH",
    b"RPC_IN_DATA",
    b"RPC_OUT_DATA",
    b"RDG_OUT_DATA",
    b"RDG_IN_DATA",
];

/// A request head as seen on the wire, borrowed from the stream bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head<'a> {
    /// Method.
    pub method: &'a [u8],
    /// Target.
    pub uri: &'a str,
    /// Host header value, untrimmed.
    pub host: Option<&'a [u8]>,
    /// User-Agent header value, untrimmed.
    pub user_agent: Option<&'a [u8]>,
}

/// A parsed request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Target.
    pub uri: String,
    /// Host header, lowercase.
    pub host: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// A header value as text: invalid UTF-8 replaced, surrounding white space removed.
fn header_text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(t) => t.trim().to_owned(),
        Err(_) => String::from_utf8_lossy(v).trim().to_owned(),
    }
}

impl Head<'_> {
    /// The head as owned text.
    pub fn to_request(&self) -> Request {
        Request {
            method: String::from_utf8_lossy(self.method).into_owned(),
            uri: self.uri.to_owned(),
            host: self.host.map(|h| {
                let mut t = header_text(h);
                t.make_ascii_lowercase();
                t
            }),
            user_agent: self.user_agent.map(header_text),
        }
    }
}

/// Parses the request line and the headers present. `None` if the bytes are not an
/// HTTP/1.x request; `Some(Err(()))` if more bytes are needed for the request line.
pub fn parse_head(b: &[u8]) -> Option<Result<Head<'_>, ()>> {
    let sp = b.iter().take(16).position(|&c| c == b' ');
    let Some(sp) = sp else {
        // Could still become a method if short.
        let prefix_ok = METHODS.iter().any(|m| m.starts_with(b) || b.starts_with(m));
        return if b.len() < 16 && prefix_ok {
            Some(Err(()))
        } else {
            None
        };
    };
    let method = b.get(..sp)?;
    if !METHODS.contains(&method) {
        return None;
    }
    let line_end = memchr::memchr(b'\n', b.get(..MAX_LINE).unwrap_or(b));
    let Some(line_end) = line_end else {
        return if b.len() < MAX_LINE {
            Some(Err(()))
        } else {
            None
        };
    };
    let line = b.get(..line_end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.get(sp + 1..)?;
    let vsp = memchr::memrchr(b' ', rest)?;
    let version = rest.get(vsp + 1..)?;
    if !(version == b"HTTP/1.1" || version == b"HTTP/1.0") {
        return None;
    }
    let uri = std::str::from_utf8(rest.get(..vsp)?).ok()?;
    let mut head = Head {
        method,
        uri,
        ..Head::default()
    };
    let mut headers = b.get(line_end + 1..).unwrap_or(&[]);
    for _ in 0..MAX_HEADERS {
        let Some(end) = memchr::memchr(b'\n', headers.get(..MAX_LINE).unwrap_or(headers)) else {
            break;
        };
        let h = headers.get(..end).unwrap_or(&[]);
        let h = h.strip_suffix(b"\r").unwrap_or(h);
        if h.is_empty() {
            break;
        }
        if let Some(colon) = memchr::memchr(b':', h) {
            let name = h.get(..colon).unwrap_or(&[]);
            let value = h.get(colon + 1..).unwrap_or(&[]);
            if name.eq_ignore_ascii_case(b"host") {
                head.host = Some(value);
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                head.user_agent = Some(value);
            }
        }
        headers = headers.get(end + 1..).unwrap_or(&[]);
    }
    Some(Ok(head))
}

/// The request head a flow was decided on, waiting for [`resolve`]: method, target and
/// the Host and User-Agent lines as seen, copied into one buffer so the packet path
/// makes two small allocations instead of ten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Method, target, Host value, User-Agent value, back to back.
    bytes: Box<[u8]>,
    /// Lengths of method and target.
    method_len: u16,
    uri_len: u16,
    /// Lengths of the Host and User-Agent values; `None`: the header was absent.
    host_len: Option<u16>,
    user_agent_len: Option<u16>,
    /// What the body check (SoftEther PACK in a POST) found, used when the request line
    /// and headers name no service.
    body: Option<Box<Classification>>,
}

impl Pending {
    /// Copies a head; every part is under [`MAX_LINE`] bytes, so the lengths fit.
    fn of(h: &Head<'_>, body: Option<Box<Classification>>) -> Pending {
        let len16 = |b: &[u8]| u16::try_from(b.len()).unwrap_or(u16::MAX);
        let parts = [
            h.method,
            h.uri.as_bytes(),
            h.host.unwrap_or(&[]),
            h.user_agent.unwrap_or(&[]),
        ];
        let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            bytes.extend_from_slice(p.get(..usize::from(len16(p))).unwrap_or(p));
        }
        Pending {
            bytes: bytes.into_boxed_slice(),
            method_len: len16(h.method),
            uri_len: len16(h.uri.as_bytes()),
            host_len: h.host.map(len16),
            user_agent_len: h.user_agent.map(len16),
            body,
        }
    }

    /// The head back; a target cut inside a character reads as empty.
    fn head(&self) -> Head<'_> {
        let mut rest: &[u8] = &self.bytes;
        let mut take = |n: u16| {
            let (a, b) = rest.split_at(usize::from(n).min(rest.len()));
            rest = b;
            a
        };
        let method = take(self.method_len);
        let uri = std::str::from_utf8(take(self.uri_len)).unwrap_or("");
        let host = self.host_len.map(&mut take);
        let user_agent = self.user_agent_len.map(&mut take);
        Head {
            method,
            uri,
            host,
            user_agent,
        }
    }
}

/// Completes an HTTP classification from its request head: evidence, RD Gateway,
/// catalogue matches, metadata; the body check's finding when these name no service.
pub fn resolve(c: &mut Classification, p: Pending, rules: &crate::rules::Rules) {
    let req = p.head().to_request();
    let mut h = Classification::new(
        "http",
        None,
        "setten.http.request-line",
        "http.request",
        format!("{} {}", req.method, req.uri),
    );
    if req.method.starts_with("RDG_") {
        h.service = Some(Service::Rdp);
        h.extra.vendor = Some("Microsoft".into());
        h.extra.product = Some("RD Gateway (HTTP transport)".into());
        h.evidence.insert(
            0,
            super::Evidence::new("setten.rdp.gateway-method", "http.method", &req.method),
        );
    }
    h.apply_rules(rules, Field::HttpUri, &req.uri);
    if let Some(host) = &req.host {
        h.apply_rules(rules, Field::HttpHost, host);
    }
    if let Some(ua) = &req.user_agent {
        h.apply_rules(rules, Field::HttpUserAgent, ua);
    }
    let meta = Some(Box::new(HttpMeta {
        method: req.method,
        uri: req.uri,
        host: req.host,
        user_agent: req.user_agent,
    }));
    *c = match p.body {
        Some(mut b) if h.service.is_none() => {
            b.protocol = "http";
            b.extra.meta.http = meta;
            *b
        }
        _ => {
            h.extra.meta.http = meta;
            h
        }
    };
}

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Detects HTTP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let c2s = cx.c2s.bytes();
    if c2s.is_empty() {
        let s2c = cx.s2c.bytes();
        if !cx.last || s2c.is_empty() {
            return if cx.last { Verdict::No } else { Verdict::Wait };
        }
        // Only a response was captured.
        if s2c.starts_with(b"HTTP/1.") && s2c.get(8) == Some(&b' ') {
            return Verdict::Yes(Classification::new(
                "http",
                None,
                "setten.http.status-line",
                "http.status",
                super::util::printable(s2c.get(..12).unwrap_or(s2c)),
            ));
        }
        return Verdict::No;
    }
    // HTTP/2 over cleartext TCP with prior knowledge (h2c): the client's fixed connection
    // preface (RFC 9113 section 3.4).
    if c2s.starts_with(H2_PREFACE) {
        let mut c = Classification::new(
            "http",
            None,
            "setten.http.h2-preface",
            "http2.preface",
            "PRI * HTTP/2.0 (cleartext HTTP/2, prior knowledge)",
        );
        c.extra.meta.version = Some("HTTP/2".into());
        return Verdict::Yes(c);
    }
    if H2_PREFACE.starts_with(c2s) && !cx.last {
        return Verdict::Wait;
    }
    let head = match parse_head(c2s) {
        None => return Verdict::No,
        Some(Err(())) => {
            return if cx.last || cx.c2s.is_done() {
                Verdict::No
            } else {
                Verdict::Wait
            }
        }
        Some(Ok(h)) => h,
    };
    // A POST body may be a SoftEther PACK (its DDNS / VPN Azure clients speak plain
    // HTTP); the body check lives with the rest of SoftEther. What the request line and
    // headers say (evidence, catalogue, metadata) is worked out in `resolve`, off the
    // packet path.
    let body = match head.method {
        b"POST" => match super::softether::detect(cx) {
            Verdict::Yes(s) => Some(Box::new(s)),
            _ => None,
        },
        _ => None,
    };
    Verdict::Yes(Classification {
        protocol: "http",
        deferred: Some(super::Deferred::Http(Box::new(Pending::of(&head, body)))),
        ..Classification::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(detect, 6, &[c2s], &[], (50000, 80), last)
    }

    #[test]
    fn cleartext_http2_with_prior_knowledge() {
        // curl 7.88.1 --http2-prior-knowledge to nginx 1.22.1: the preface, then SETTINGS.
        let mut c2s = H2_PREFACE.to_vec();
        c2s.extend_from_slice(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00");
        match run(&c2s, false) {
            Verdict::Yes(c) => {
                assert_eq!((c.protocol, c.service), ("http", None));
                assert_eq!(c.evidence[0].rule, "setten.http.h2-preface");
                assert_eq!(c.extra.meta.version.as_deref(), Some("HTTP/2"));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(run(&H2_PREFACE[..10], false), Verdict::Wait));
        assert!(matches!(
            run(b"PRI * HTTP/2.1\r\n\r\nSM", true),
            Verdict::No
        ));
    }

    #[test]
    fn softether_connect_cgi() {
        let r = b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: 130.158.75.45\r\nContent-Type: image/jpeg\r\n\r\n";
        match run(r, false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Softether));
                assert!(c.evidence.iter().any(|e| e.rule == "softether.http-uri"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn plain_request_has_no_service() {
        match run(
            b"GET /index.html HTTP/1.1\r\nHost: Example.org\r\nUser-Agent: curl/8\r\n\r\n",
            false,
        ) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, None);
                let m = c.extra.meta.http.clone().unwrap();
                assert_eq!(m.host.as_deref(), Some("example.org"));
                assert_eq!(m.user_agent.as_deref(), Some("curl/8"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_request_head_comes_back_whole_from_its_pending_copy() {
        for raw in [
            &b"GET /a%20b?q=1 HTTP/1.1\r\nHost: Example.org \r\nUser-Agent: curl/8\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.0\r\nHost:\r\n\r\n",
            b"POST /x HTTP/1.1\r\nuser-agent:\tA B\r\n\r\n",
        ] {
            let Some(Ok(head)) = parse_head(raw) else {
                panic!("{raw:?} is a request")
            };
            assert_eq!(Pending::of(&head, None).head(), head);
        }
        let Some(Ok(empty_host)) = parse_head(b"GET / HTTP/1.1\r\nHost:\r\n\r\n") else {
            panic!()
        };
        let r = Pending::of(&empty_host, None).head().to_request();
        assert_eq!((r.host.as_deref(), r.user_agent), (Some(""), None));
    }

    #[test]
    fn partial_request_line_waits() {
        assert!(matches!(run(b"GE", false), Verdict::Wait));
        assert!(matches!(run(b"GET /very/long", false), Verdict::Wait));
        assert!(matches!(run(b"GET /x HTTP/1.1", true), Verdict::No));
    }

    #[test]
    fn not_http() {
        assert!(matches!(
            run(b"\x16\x03\x01\x02\x00\x01", false),
            Verdict::No
        ));
        assert!(matches!(run(b"GETTING STARTED\r\n", false), Verdict::No));
        assert!(matches!(run(b"GET / SIP/2.0\r\n", false), Verdict::No));
    }

    #[test]
    fn rd_gateway() {
        match run(
            b"RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1\r\nHost: gw\r\n\r\n",
            false,
        ) {
            Verdict::Yes(c) => assert_eq!(c.service, Some(Service::Rdp)),
            v => panic!("{v:?}"),
        }
    }
}
