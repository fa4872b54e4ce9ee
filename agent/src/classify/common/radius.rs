//! RADIUS (RFC 2865 3, RFC 2866, RFC 5176) over UDP: the authentication behind Wi-Fi
//! 802.1X, switch logins and, often, the hospital's own VPN concentrator.
//!
//! `Yes` when the datagram has a defined code whose direction fits, a Length of 20..=4096
//! that the datagram covers, and attributes (type, length of at least 2) that walk exactly
//! to Length; an Access-Request must name its NAS (NAS-IP-Address, NAS-IPv6-Address or
//! NAS-Identifier, RFC 2865 4.1) and an Accounting-Request must carry Acct-Status-Type
//! (RFC 2866 4.1). The NAS-Identifier is the evidence; user names are not.

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, opening, require, take, Parse};

/// Header octets: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet (RFC 2865 3).
pub const MAX_LEN: usize = 4096;
/// Attributes walked.
const MAX_ATTRIBUTES: usize = 256;

/// Codes and whether the client (NAS, or the dynamic-authorization client of RFC 5176)
/// sends them.
fn code(c: u8) -> Option<(&'static str, bool)> {
    Some(match c {
        1 => ("Access-Request", true),
        2 => ("Access-Accept", false),
        3 => ("Access-Reject", false),
        4 => ("Accounting-Request", true),
        5 => ("Accounting-Response", false),
        11 => ("Access-Challenge", false),
        12 => ("Status-Server", true),
        40 => ("Disconnect-Request", true),
        41 => ("Disconnect-ACK", false),
        42 => ("Disconnect-NAK", false),
        43 => ("CoA-Request", true),
        44 => ("CoA-ACK", false),
        45 => ("CoA-NAK", false),
        _ => return None,
    })
}

/// A parsed packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Code name.
    pub code: &'static str,
    /// NAS-Identifier, when sent.
    pub nas: Option<String>,
}

/// Parses a RADIUS packet sent by the client (`from_client`) or the server.
pub fn parse_packet(d: &[u8], from_client: bool) -> Parse<Packet> {
    let c = need!(byte(d, 0));
    let (name, client) = need!(code(c).map_or(Parse::Bad, Parse::Ok));
    need!(require(client == from_client));
    let len = usize::from(need!(be16(d, 2)));
    // Octets beyond Length are padding (RFC 2865 3), but the datagram must cover it.
    need!(require(
        (HEADER_LEN..=MAX_LEN).contains(&len) && len <= d.len()
    ));
    let attrs = need!(take(d, HEADER_LEN, len - HEADER_LEN));
    let (mut off, mut nas, mut nas_seen, mut status_type) = (0, None, false, false);
    for _ in 0..MAX_ATTRIBUTES {
        if off == attrs.len() {
            let required = match c {
                1 => nas_seen,
                4 => status_type,
                _ => true,
            };
            need!(require(required));
            return Parse::Ok(Packet { code: name, nas });
        }
        let t = need!(byte(attrs, off));
        let l = usize::from(need!(byte(attrs, off + 1)));
        need!(require(t != 0 && l >= 2));
        let v = need!(take(attrs, off + 2, l - 2));
        match t {
            4 | 95 => nas_seen = true,
            32 => {
                nas_seen = true;
                if super::text::is_printable(v) {
                    nas = Some(super::super::util::printable(v));
                }
            }
            40 => status_type = true,
            _ => {}
        }
        off += l;
    }
    Parse::Bad
}

/// Names RADIUS.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, |d| parse_packet(d, true), |d| parse_packet(d, false));
    finish(
        cx,
        p.map(|pk| {
            let v = match pk.nas {
                Some(n) => format!("{} NAS-Identifier={n}", pk.code),
                None => pk.code.to_owned(),
            };
            Classification::new("radius", None, "setten.radius.packet", "radius.code", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// RFC 2865 7.1 example Access-Request: User-Name "nemo", User-Password (16),
    /// NAS-IP-Address 192.168.1.16, NAS-Port 3.
    const ACCESS_REQUEST: &str = "01000038 0f403f9473978057bd83d5cb98f4227a 01066e656d6f 0212 0dbe708d93d413ce3196e43f782a0aee 0406c0a80110 05060000 0003";

    #[test]
    fn rfc_example() {
        let d = hex(ACCESS_REQUEST);
        assert_eq!(parse_packet(&d, true).ok().unwrap().code, "Access-Request");
        let c = Flow::udp(50000, 1812).c2s(&d).yes(check);
        assert_eq!((c.protocol, c.service), ("radius", None));
        assert_eq!(c.evidence[0].value, "Access-Request");
        // RFC 2865 7.1 Access-Accept in reply.
        let a = hex(
            "0200 0026 86fe220e7624ba2a1005f6bf9b55e0b2 0606 00000001 0f06 00000000 0e06 c0a80103",
        );
        assert_eq!(parse_packet(&a, false).ok().unwrap().code, "Access-Accept");
    }

    #[test]
    fn inconsistent() {
        let d = hex(ACCESS_REQUEST);
        assert_eq!(parse_packet(&d, false), Parse::Bad); // a request from the server
        let mut x = d.clone();
        x[3] += 1; // Length past the datagram
        assert_eq!(parse_packet(&x, true), Parse::Bad);
        let mut x = d.clone();
        x[21] = 7; // an attribute overrunning the next
        assert!(!matches!(parse_packet(&x, true), Parse::Ok(_)));
        // Without a NAS attribute.
        let n = hex("0100001a 0f403f9473978057bd83d5cb98f4227a 01066e656d6f");
        assert_eq!(parse_packet(&n, true), Parse::Bad);
        assert!(Flow::udp(1, 1812).c2s(&[1; 30]).s2c(&[2; 30]).is_no(check));
    }
}
