//! AnyDesk outside TLS: there is nothing structural to detect, so this says `No` at once.
//!
//! Everything AnyDesk sends over TCP, to its relays (80, 443, 6568) and directly between
//! peers (7070), is TLS. It is recognised by the TLS detector with the catalogue
//! (`rules/signatures.toml`: certificate subject "CN=AnyDesk Client", the relay
//! certificates, ALPN "anydesk/…", SNI under anydesk.com), not here. What was checked:
//!
//! - the corpus capture `ndpi-anydesk.pcapng`: all five TCP flows open with a TLS record
//!   (`16 03 01`, or `17 03 03` for a flow captured mid-stream) and it has no AnyDesk UDP
//!   flow at all (its two UDP flows are DNS queries for AnyDesk names);
//! - nDPI: its protocol list marks AnyDesk "Not a protocol (no dissector)"; AnyDesk is a
//!   sub-classification of TLS there (certificate name, and since pull request 1778 the
//!   ALPN "anydesk/…").
//!
//! AnyDesk's UDP (direct connections and LAN discovery) has no public description and no
//! capture here; a byte pattern guessed for it would put the precision target at risk.
//! The detector stays registered so that a future, evidenced signature has its place.

use super::{Cx, Verdict};

/// Never claims a flow: AnyDesk is identified through TLS (see the module documentation).
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;
    use crate::flow::reassembly::Stream;
    use crate::rules::Rules;

    fn tcp_stream(parts: &[&[u8]]) -> Stream {
        let mut s = Stream::default();
        s.syn(0);
        let mut seq = 1u32;
        for p in parts {
            s.add_segment(seq, p);
            seq = seq.wrapping_add(p.len() as u32);
        }
        s
    }

    // Corpus ndpi-anydesk.pcapng frame 69 (192.168.1.187:54164 -> 192.168.1.178:7070):
    // the start of a TLS 1.2 ClientHello record, which the TLS detector handles.
    const CLIENT_HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00, 0x00, 0xec];
    // Frame 1 (port 80 relay, mid-stream): a TLS application data record header.
    const APP_DATA_START: &[u8] = &[0x17, 0x03, 0x03, 0x00, 0x2e];

    #[test]
    fn tls_flows_are_left_to_the_tls_detector() {
        let rules = Rules::defaults().expect("default rules");
        for (c2s, port) in [(CLIENT_HELLO_START, 7070), (APP_DATA_START, 80)] {
            let (c, s) = (tcp_stream(&[c2s]), Stream::default());
            for last in [false, true] {
                let cx = Cx {
                    proto: ipproto::TCP,
                    client_port: 54164,
                    server_port: port,
                    c2s: &c,
                    s2c: &s,
                    last,
                    rules: &rules,
                };
                assert!(matches!(detect(&cx), Verdict::No));
            }
        }
    }
}
