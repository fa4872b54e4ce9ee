//! DHCP (RFC 2131 2, over BOOTP, RFC 951) on UDP.
//!
//! `Yes` for a BOOTP message with op 1 or 2, an Ethernet-like hardware type and matching
//! address length, a sane hop count, the magic cookie 99.130.83.99 at offset 236 (RFC
//! 2131 3, RFC 2132 2), and options that walk cleanly to the End option, including a
//! DHCP Message Type (option 53, RFC 2132 9.6) that fits the op (requests from
//! clients, offers and acknowledgements from servers).

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, opening, require, take, Parse};

/// Offset of the magic cookie (RFC 2131 3: after the fixed 236-byte BOOTP header).
pub const COOKIE_OFFSET: usize = 236;
/// The magic cookie.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Largest hop count accepted (RFC 1542 4.1.1 discards beyond 16).
const MAX_HOPS: u8 = 16;
/// Options walked before giving up.
const MAX_OPTIONS: usize = 255;
/// Option codes.
const OPT_PAD: u8 = 0;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_END: u8 = 255;

/// DHCP message types (RFC 2132 9.6, RFC 4388 6.1, RFC 6926) and whether a client sends
/// them (BOOTREQUEST).
fn message_type(t: u8) -> Option<(&'static str, bool)> {
    Some(match t {
        1 => ("DISCOVER", true),
        2 => ("OFFER", false),
        3 => ("REQUEST", true),
        4 => ("DECLINE", true),
        5 => ("ACK", false),
        6 => ("NAK", false),
        7 => ("RELEASE", true),
        8 => ("INFORM", true),
        10 => ("LEASEQUERY", true),
        11 => ("LEASEUNASSIGNED", false),
        12 => ("LEASEUNKNOWN", false),
        13 => ("LEASEACTIVE", false),
        _ => return None,
    })
}

/// A parsed DHCP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// DHCP message type name.
    pub kind: &'static str,
    /// Host name (option 12), when sent.
    pub host_name: Option<String>,
}

/// Parses a BOOTP/DHCP message.
pub fn parse_message(d: &[u8]) -> Parse<Message> {
    let op = need!(byte(d, 0));
    let htype = need!(byte(d, 1));
    let hlen = need!(byte(d, 2));
    let hops = need!(byte(d, 3));
    // Ethernet (1) with 6-byte addresses, IEEE 802 (6), or InfiniBand (32, hlen 0 per
    // RFC 4390 2.1).
    need!(require(
        matches!(op, 1 | 2) && matches!((htype, hlen), (1 | 6, 6) | (32, 0)) && hops <= MAX_HOPS
    ));
    need!(require(need!(take(d, COOKIE_OFFSET, 4)) == MAGIC_COOKIE));
    let mut off = COOKIE_OFFSET + 4;
    let mut kind = None;
    let mut host_name = None;
    for _ in 0..MAX_OPTIONS {
        let code = need!(byte(d, off));
        match code {
            OPT_PAD => off += 1,
            OPT_END => {
                let (name, from_client) = need!(kind.map_or(Parse::Bad, Parse::Ok));
                need!(require(from_client == (op == 1)));
                return Parse::Ok(Message {
                    kind: name,
                    host_name,
                });
            }
            _ => {
                let len = usize::from(need!(byte(d, off + 1)));
                let v = need!(take(d, off + 2, len));
                if code == OPT_MESSAGE_TYPE {
                    need!(require(len == 1 && kind.is_none()));
                    kind = Some(need!(v
                        .first()
                        .and_then(|&t| message_type(t))
                        .map_or(Parse::Bad, Parse::Ok)));
                } else if code == 12 && super::text::is_printable(v) {
                    host_name = Some(super::super::util::printable(v));
                }
                off += 2 + len;
            }
        }
    }
    Parse::Bad
}

/// Names DHCP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_message, parse_message);
    finish(
        cx,
        p.map(|m| {
            let mut v = m.kind.to_owned();
            if let Some(h) = m.host_name {
                v.push_str(&format!(" host-name={h}"));
            }
            Classification::new("dhcp", None, "setten.dhcp.bootp", "dhcp.message_type", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// A DHCP message: the BOOTP header of ndpi-1kxun.pcap frame 11 (a REQUEST from
    /// 0.0.0.0:68), zeroed sname/file, then `options`.
    fn message(op: u8, options: &str) -> Vec<u8> {
        let mut d = hex("01010600060fbf5b0000000000000000000000000000000000000000703eacf0f007");
        d[0] = op;
        d.resize(COOKIE_OFFSET, 0);
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(&hex(options));
        d
    }

    #[test]
    fn request_from_capture() {
        // Frame 11's options: type REQUEST, client id, requested address, host name
        // "Shen", parameter list, end.
        let d = message(
            1,
            "3501033707017903060f77fc390205dc3d0701703eacf0f0073204c0a803ed33040076a7000c045368656eff000000",
        );
        let m = parse_message(&d).ok().unwrap();
        assert_eq!((m.kind, m.host_name.as_deref()), ("REQUEST", Some("Shen")));
        let c = Flow::udp(68, 67).c2s(&d).yes(check);
        assert_eq!((c.protocol, c.service), ("dhcp", None));
        assert_eq!(c.evidence[0].value, "REQUEST host-name=Shen");
    }

    #[test]
    fn ack_from_server() {
        // ndpi-1kxun.pcap frame 5's options: ACK, server id, lease time, mask, router.
        let d = message(
            2,
            "3501053604c0a8770133040000003c0104ffff00000304c0a87701ff",
        );
        assert_eq!(parse_message(&d).ok().unwrap().kind, "ACK");
        assert_eq!(Flow::udp(68, 67).s2c(&d).yes(check).protocol, "dhcp");
    }

    #[test]
    fn must_be_consistent() {
        // An OFFER in a BOOTREQUEST.
        assert_eq!(parse_message(&message(1, "350102ff")), Parse::Bad);
        // No message type (plain BOOTP), an unknown type, no end option.
        assert_eq!(parse_message(&message(1, "0c0161ff")), Parse::Bad);
        assert_eq!(parse_message(&message(1, "350163ff")), Parse::Bad);
        assert!(!matches!(
            parse_message(&message(1, "350101")),
            Parse::Ok(_)
        ));
        // Wrong cookie.
        let mut d = message(1, "350101ff");
        d[COOKIE_OFFSET] = 98;
        assert_eq!(parse_message(&d), Parse::Bad);
        // An option overrunning the datagram.
        assert!(Flow::udp(68, 67)
            .c2s(&message(1, "350101 0c40 61"))
            .s2c(&[0; 10])
            .is_no(check));
    }
}
