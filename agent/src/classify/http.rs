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

/// A parsed request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Target.
    pub uri: String,
    /// Host header.
    pub host: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
}

/// Parses the request line and the headers present. `None` if the bytes are not an
/// HTTP/1.x request; `Some(Err(()))` if more bytes are needed for the request line.
pub fn parse_request(b: &[u8]) -> Option<Result<Request, ()>> {
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
    let line_end = b.iter().take(MAX_LINE).position(|&c| c == b'\n');
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
    let vsp = rest.iter().rposition(|&c| c == b' ')?;
    let version = rest.get(vsp + 1..)?;
    if !(version == b"HTTP/1.1" || version == b"HTTP/1.0") {
        return None;
    }
    let uri = std::str::from_utf8(rest.get(..vsp)?).ok()?;
    let mut req = Request {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: uri.to_owned(),
        ..Request::default()
    };
    let mut headers = b.get(line_end + 1..).unwrap_or(&[]);
    for _ in 0..MAX_HEADERS {
        let Some(end) = headers.iter().take(MAX_LINE).position(|&c| c == b'\n') else {
            break;
        };
        let h = headers.get(..end).unwrap_or(&[]);
        let h = h.strip_suffix(b"\r").unwrap_or(h);
        if h.is_empty() {
            break;
        }
        if let Some(colon) = h.iter().position(|&c| c == b':') {
            let name = h.get(..colon).unwrap_or(&[]);
            let value = String::from_utf8_lossy(h.get(colon + 1..).unwrap_or(&[]))
                .trim()
                .to_owned();
            if name.eq_ignore_ascii_case(b"host") {
                req.host = Some(value.to_ascii_lowercase());
            } else if name.eq_ignore_ascii_case(b"user-agent") {
                req.user_agent = Some(value);
            }
        }
        headers = headers.get(end + 1..).unwrap_or(&[]);
    }
    Some(Ok(req))
}

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
    let req = match parse_request(c2s) {
        None => return Verdict::No,
        Some(Err(())) => {
            return if cx.last || cx.c2s.is_done() {
                Verdict::No
            } else {
                Verdict::Wait
            }
        }
        Some(Ok(r)) => r,
    };
    let mut c = Classification::new(
        "http",
        None,
        "setten.http.request-line",
        "http.request",
        format!("{} {}", req.method, req.uri),
    );
    if req.method.starts_with("RDG_") {
        c.service = Some(Service::Rdp);
        c.vendor = Some("Microsoft".into());
        c.product = Some("RD Gateway (HTTP transport)".into());
        c.evidence.insert(
            0,
            super::Evidence::new("setten.rdp.gateway-method", "http.method", &req.method),
        );
    }
    c.apply_rules(cx.rules, Field::HttpUri, &req.uri);
    if let Some(h) = &req.host {
        c.apply_rules(cx.rules, Field::HttpHost, h);
    }
    if let Some(ua) = &req.user_agent {
        c.apply_rules(cx.rules, Field::HttpUserAgent, ua);
    }
    let meta = HttpMeta {
        method: req.method,
        uri: req.uri,
        host: req.host,
        user_agent: req.user_agent,
    };
    // A POST body may be a SoftEther PACK (its DDNS / VPN Azure clients speak plain
    // HTTP); the body check lives with the rest of SoftEther.
    if c.service.is_none() && meta.method == "POST" {
        if let Verdict::Yes(mut s) = super::softether::detect(cx) {
            s.protocol = "http";
            s.meta.http = Some(Box::new(meta));
            return Verdict::Yes(s);
        }
    }
    c.meta.http = Some(Box::new(meta));
    Verdict::Yes(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(detect, 6, &[c2s], &[], (50000, 80), last)
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
                let m = c.meta.http.unwrap();
                assert_eq!(m.host.as_deref(), Some("example.org"));
                assert_eq!(m.user_agent.as_deref(), Some("curl/8"));
            }
            v => panic!("{v:?}"),
        }
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
