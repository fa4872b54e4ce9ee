//! DHCPv6 (RFC 8415 8, 9, 21) on UDP.
//!
//! `Yes` for a message whose type is assigned, whose options walk exactly to the end of
//! the datagram, and which carries what RFC 8415 makes mandatory for its sender: a
//! client's messages the Elapsed Time option (21.9) and, where required, a Client
//! Identifier with a valid DUID type (11.1, 21.2); a server's the Server Identifier
//! (21.3); a relay's the Relay Message option (21.10).

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, opening, require, take, Parse};

/// Options walked before giving up.
const MAX_OPTIONS: usize = 128;
/// Relay header octets: type, hop count, link and peer addresses (RFC 8415 9).
const RELAY_HEADER_LEN: usize = 34;
/// Largest option code accepted (the IANA registry is below 256).
const MAX_OPTION_CODE: u16 = 255;
/// Option codes.
const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_ELAPSED_TIME: u16 = 8;
const OPT_RELAY_MSG: u16 = 9;

/// Who sends a message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    Client,
    Server,
    Relay,
}

/// Message types (RFC 8415 7.3, RFC 5007 4.2) and their sender.
fn message_type(t: u8) -> Option<(&'static str, Sender)> {
    Some(match t {
        1 => ("SOLICIT", Sender::Client),
        2 => ("ADVERTISE", Sender::Server),
        3 => ("REQUEST", Sender::Client),
        4 => ("CONFIRM", Sender::Client),
        5 => ("RENEW", Sender::Client),
        6 => ("REBIND", Sender::Client),
        7 => ("REPLY", Sender::Server),
        8 => ("RELEASE", Sender::Client),
        9 => ("DECLINE", Sender::Client),
        10 => ("RECONFIGURE", Sender::Server),
        11 => ("INFORMATION-REQUEST", Sender::Client),
        12 => ("RELAY-FORW", Sender::Relay),
        13 => ("RELAY-REPL", Sender::Relay),
        _ => return None,
    })
}

/// Parses a DHCPv6 message; returns its type name.
pub fn parse_message(d: &[u8]) -> Parse<&'static str> {
    let (name, sender) = need!(message_type(need!(byte(d, 0))).map_or(Parse::Bad, Parse::Ok));
    let mut off = if sender == Sender::Relay {
        RELAY_HEADER_LEN
    } else {
        4
    };
    need!(require(d.len() > off));
    let (mut client_id, mut server_id, mut elapsed, mut relay_msg) = (false, false, false, false);
    for _ in 0..MAX_OPTIONS {
        if off == d.len() {
            let must = match (sender, name) {
                (Sender::Relay, _) => relay_msg,
                (Sender::Server, _) => server_id,
                // Information-request may omit the Client Identifier (18.2.6).
                (Sender::Client, "INFORMATION-REQUEST") => elapsed,
                (Sender::Client, _) => elapsed && client_id,
            };
            return require(must).map(|()| name);
        }
        let code = need!(be16(d, off));
        let len = usize::from(need!(be16(d, off + 2)));
        let v = need!(take(d, off + 4, len));
        need!(require(code != 0 && code <= MAX_OPTION_CODE));
        match code {
            OPT_CLIENTID | OPT_SERVERID => {
                // DUID: a type 1..=4 and some identifier (11.1).
                let duid = need!(be16(v, 0));
                need!(require((1..=4).contains(&duid) && v.len() > 2));
                if code == OPT_CLIENTID {
                    client_id = true;
                } else {
                    server_id = true;
                }
            }
            OPT_ELAPSED_TIME => {
                need!(require(len == 2));
                elapsed = true;
            }
            OPT_RELAY_MSG => relay_msg = true,
            _ => {}
        }
        off += 4 + len;
    }
    Parse::Bad
}

/// Names DHCPv6.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_message, parse_message);
    finish(
        cx,
        p.map(|t| {
            Classification::new(
                "dhcpv6",
                None,
                "setten.dhcpv6.message",
                "dhcpv6.msg_type",
                t,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-gnutella.pcap frame 9: a SOLICIT from fe80::…:546 to ff02::1:2:547 with
    /// Elapsed Time, Client Identifier (DUID-LLT), IA_NA, FQDN, Vendor Class and
    /// Option Request.
    const SOLICIT: &str = "0113d1ed0008000200000001000e000100012422f1b3080027e6e5590003000c0508002700000000000000000027000d000b4d534544474557494e31300010000e0000013700084d53465420352e30000600080011001700180027";

    #[test]
    fn solicit_from_capture() {
        assert_eq!(parse_message(&hex(SOLICIT)), Parse::Ok("SOLICIT"));
        let c = Flow::udp(546, 547).c2s(&hex(SOLICIT)).yes(check);
        assert_eq!((c.protocol, c.service), ("dhcpv6", None));
        assert_eq!(c.evidence[0].value, "SOLICIT");
    }

    #[test]
    fn options_must_walk_to_the_end() {
        let d = hex(SOLICIT);
        assert_eq!(parse_message(&d[..d.len() - 1]), Parse::Short);
        let mut x = d.clone();
        x.push(0);
        assert!(!matches!(parse_message(&x), Parse::Ok(_)));
        assert!(Flow::udp(546, 547).c2s(&x).s2c(&[7, 0]).is_no(check));
    }

    #[test]
    fn mandatory_options() {
        // A SOLICIT without Elapsed Time (RFC 8415 21.9).
        assert_eq!(
            parse_message(&hex("01 123456 0001 000a 0003 0001 080027e6e559")),
            Parse::Bad
        );
        // A REPLY with a Server Identifier (21.3).
        assert_eq!(
            parse_message(&hex("07 123456 0002 000a 0003 0001 080027e6e559")),
            Parse::Ok("REPLY")
        );
        // DUID type 9 does not exist.
        assert_eq!(
            parse_message(&hex("07 123456 0002 000a 0009 0001 080027e6e559")),
            Parse::Bad
        );
    }
}
