//! SSDP, UPnP discovery (UPnP Device Architecture 2.0, 1.2 and 1.3), over UDP.
//!
//! `Yes` for a whole datagram with an HTTP-over-UDP head: "M-SEARCH * HTTP/1.1" with
//! MAN "ssdp:discover" and an ST; "NOTIFY * HTTP/1.1" with an NT and an NTS of
//! ssdp:alive, ssdp:byebye or ssdp:update; or a search response "HTTP/1.1 200 OK" with
//! ST and USN. SERVER or USER-AGENT names the device (printer, camera, TV, NAS).

use super::super::{Classification, Cx, Evidence, Verdict};
use super::text::{crlf_line, starts_with_ci, Head};
use super::{finish, opening, require, Parse};

/// Longest product header value kept.
const MAX_PRODUCT: usize = 96;

/// What a datagram shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// "M-SEARCH", "NOTIFY ssdp:alive", "search response", …
    pub kind: String,
    /// SERVER or USER-AGENT.
    pub product: Option<String>,
}

/// Parses one SSDP datagram.
pub fn parse_message(d: &[u8]) -> Parse<Message> {
    need!(require(matches!(d.first(), Some(b'M' | b'N' | b'H'))));
    let (line, rest) = need!(crlf_line(d));
    let head = need!(Head::read(rest));
    need!(require(head.complete));
    let kind = if line == b"M-SEARCH * HTTP/1.1" {
        let man = need!(head.get(b"man").map_or(Parse::Bad, Parse::Ok));
        need!(require(
            man == b"\"ssdp:discover\"" && head.get(b"st").is_some()
        ));
        "M-SEARCH".to_owned()
    } else if line == b"NOTIFY * HTTP/1.1" {
        let nts = need!(head.get(b"nts").map_or(Parse::Bad, Parse::Ok));
        need!(require(
            head.get(b"nt").is_some()
                && [&b"ssdp:alive"[..], b"ssdp:byebye", b"ssdp:update"].contains(&nts)
        ));
        format!("NOTIFY {}", super::super::util::printable(nts))
    } else if starts_with_ci(line, b"HTTP/1.1 200 ") || line == b"HTTP/1.1 200" {
        need!(require(
            head.get(b"st").is_some() && head.get(b"usn").is_some()
        ));
        "search response".to_owned()
    } else {
        return Parse::Bad;
    };
    let product = head
        .get(b"server")
        .or_else(|| head.get(b"user-agent"))
        .map(|p| super::super::util::printable(p.get(..p.len().min(MAX_PRODUCT)).unwrap_or(p)));
    Parse::Ok(Message { kind, product })
}

/// Names SSDP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_message, parse_message);
    finish(
        cx,
        p.map(|m| {
            let mut c =
                Classification::new("ssdp", None, "setten.ssdp.head", "ssdp.start_line", m.kind);
            if let Some(p) = m.product {
                c.evidence
                    .push(Evidence::new("setten.ssdp.product", "ssdp.server", p));
            }
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    /// ndpi-1kxun.pcap frame 3: an M-SEARCH for Internet gateway devices.
    const SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHost:239.255.255.250:1900\r\nST:urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMan:\"ssdp:discover\"\r\nMX:3\r\n\r\n";

    #[test]
    fn search_from_capture() {
        let c = Flow::udp(55809, 1900).c2s(SEARCH).yes(check);
        assert_eq!((c.protocol, c.service), ("ssdp", None));
        assert_eq!(c.evidence[0].value, "M-SEARCH");
    }

    #[test]
    fn notify_with_server() {
        // UDA 2.0 1.2.2 ssdp:alive.
        let n = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\nLOCATION: http://192.168.1.20:49152/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\nSERVER: Linux/3.10 UPnP/1.0 Portable SDK for UPnP devices/1.6.19\r\nUSN: uuid:1234::upnp:rootdevice\r\n\r\n";
        let c = Flow::udp(1900, 1900).c2s(n).yes(check);
        assert_eq!(c.evidence[0].value, "NOTIFY ssdp:alive");
        assert!(c.evidence[1].value.starts_with("Linux/3.10 UPnP/1.0"));
    }

    #[test]
    fn not_ssdp() {
        // Missing MAN, a cut head, HTTP over UDP of another kind.
        assert_eq!(
            parse_message(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"),
            Parse::Bad
        );
        assert!(!matches!(parse_message(&SEARCH[..60]), Parse::Ok(_)));
        assert_eq!(
            parse_message(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"),
            Parse::Bad
        );
        assert!(Flow::udp(1, 1900)
            .c2s(b"GET / HTTP/1.1\r\n\r\n")
            .s2c(b"x")
            .is_no(check));
    }
}
