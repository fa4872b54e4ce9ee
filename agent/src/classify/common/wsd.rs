//! WS-Discovery (OASIS WS-Discovery 1.1; the 2005/04 draft Windows uses) over UDP: SOAP
//! envelopes multicast by Windows hosts, printers and scanners to announce and find each
//! other.
//!
//! `Yes` for a datagram that is XML text opening a SOAP envelope (an XML declaration or
//! the Envelope element first) which declares a WS-Discovery namespace and carries a
//! WS-Addressing Action of that namespace (Hello, Bye, Probe, ProbeMatches, Resolve,
//! ResolveMatches). The action is the evidence.

use super::super::{Classification, Cx, Verdict};
use super::{finish, opening, require, Parse};

/// WS-Discovery namespaces: the 2005/04 draft and OASIS 1.1.
const NAMESPACES: [&[u8]; 2] = [
    b"http://schemas.xmlsoap.org/ws/2005/04/discovery",
    b"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01",
];
/// Actions, as the last path segment of the Action URI.
const ACTIONS: [&str; 6] = [
    "Hello",
    "Bye",
    "ProbeMatches",
    "Probe",
    "ResolveMatches",
    "Resolve",
];

/// Finds `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a WS-Discovery datagram; returns the action.
pub fn parse_message(d: &[u8]) -> Parse<&'static str> {
    let start = d
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(d.len());
    let body = d.get(start..).unwrap_or(&[]);
    need!(require(body.first() == Some(&b'<')));
    let head = body.get(..body.len().min(256)).unwrap_or(body);
    need!(require(
        body.starts_with(b"<?xml") || find(head, b"Envelope").is_some()
    ));
    // XML text: printable, UTF-8 and line breaks.
    need!(require(body.iter().all(|&c| {
        matches!(c, b'\t' | b'\r' | b'\n') || (0x20..0x7f).contains(&c) || c >= 0x80
    })));
    need!(require(find(body, b"Envelope").is_some()));
    let ns = need!(NAMESPACES
        .iter()
        .find(|n| find(body, n).is_some())
        .map_or(Parse::Bad, Parse::Ok));
    // <…Action …>namespace/Action</…Action>
    let at = need!(find(body, b"Action").map_or(Parse::Bad, Parse::Ok));
    let after = body.get(at..).unwrap_or(&[]);
    for a in ACTIONS {
        let mut uri = ns.to_vec();
        uri.push(b'/');
        uri.extend_from_slice(a.as_bytes());
        uri.push(b'<');
        if find(after, &uri).is_some() {
            return Parse::Ok(a);
        }
    }
    Parse::Bad
}

/// Names WS-Discovery.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_message, parse_message);
    finish(
        cx,
        p.map(|a| Classification::new("wsd", None, "setten.wsd.action", "wsd.action", a)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    /// ndpi-gnutella.pcap frame 38 (shortened body): a Windows host's Hello.
    const HELLO: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:wsd=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Hello</wsa:Action><wsa:MessageID>urn:uuid:ac374acf-92ab-4af5-bdd1-94985daeb407</wsa:MessageID></soap:Header><soap:Body><wsd:Hello></wsd:Hello></soap:Body></soap:Envelope>";

    #[test]
    fn hello_from_capture() {
        let c = Flow::udp(63957, 3702).c2s(HELLO).yes(check);
        assert_eq!((c.protocol, c.service), ("wsd", None));
        assert_eq!(c.evidence[0].value, "Hello");
    }

    #[test]
    fn not_wsd() {
        let other = String::from_utf8_lossy(HELLO).replace("2005/04/discovery", "2005/04/other");
        assert_eq!(parse_message(other.as_bytes()), Parse::Bad);
        assert_eq!(
            parse_message(b"<html><body>Envelope</body></html>"),
            Parse::Bad
        );
        assert!(Flow::udp(1, 3702).c2s(b"\x00<?xml").is_no_at_end(check));
    }
}
