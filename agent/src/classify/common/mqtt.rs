//! MQTT (OASIS MQTT 3.1.1 3.1, MQTT 5.0 3.1, and IBM's MQIsdp 3.1) over TCP: the
//! publish/subscribe protocol of building sensors, nurse-call gateways and IoT devices.
//!
//! `Yes` for a CONNECT packet from the client: fixed header 0x10, a remaining length in
//! the variable-length encoding (at most four bytes), the protocol name "MQTT" with
//! level 4 or 5 or "MQIsdp" with level 3, and connect flags whose reserved bit is zero
//! and whose will QoS is not 3 (3.1.2.3). The client identifier is the evidence.

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, require, stream, take, Parse};

/// Longest client identifier kept.
const MAX_CLIENT_ID: usize = 64;

/// Parses a CONNECT; returns "MQTT 3.1.1 CONNECT client_id=…".
pub fn parse_connect(b: &[u8]) -> Parse<String> {
    need!(require(need!(byte(b, 0)) == 0x10));
    // Remaining length (2.2.3): up to four bytes, seven bits each.
    let mut len = 0usize;
    let mut off = 1;
    loop {
        let x = need!(byte(b, off));
        len |= usize::from(x & 0x7f) << (7 * (off - 1));
        off += 1;
        if x & 0x80 == 0 {
            break;
        }
        need!(require(off < 5));
    }
    let name_len = usize::from(need!(be16(b, off)));
    need!(require(name_len == 4 || name_len == 6));
    let name = need!(take(b, off + 2, name_len));
    need!(require(name == b"MQTT" || name == b"MQIsdp"));
    let level = need!(byte(b, off + 2 + name_len));
    let version = match (name, level) {
        (b"MQTT", 4) => "3.1.1",
        (b"MQTT", 5) => "5.0",
        (b"MQIsdp", 3) => "3.1",
        _ => return Parse::Bad,
    };
    let flags = need!(byte(b, off + 3 + name_len));
    need!(require(flags & 0x01 == 0 && (flags >> 3) & 3 != 3));
    need!(require(len >= 2 + name_len + 4));
    // Keep alive (2), MQTT 5 properties (a variable-length integer and its bytes), then
    // the client identifier as a UTF-8 string.
    let mut p = off + 4 + name_len + 2;
    if level == 5 {
        let mut plen = 0usize;
        for i in 0..4 {
            let x = need!(byte(b, p));
            plen |= usize::from(x & 0x7f) << (7 * i);
            p += 1;
            if x & 0x80 == 0 {
                break;
            }
        }
        p += plen;
    }
    let id = match be16(b, p) {
        Parse::Ok(l) => match take(b, p + 2, usize::from(l)) {
            Parse::Ok(id) if super::text::is_text(id) => {
                super::super::util::printable(id.get(..id.len().min(MAX_CLIENT_ID)).unwrap_or(id))
            }
            _ => String::new(),
        },
        _ => String::new(),
    };
    Parse::Ok(format!("MQTT {version} CONNECT client_id={id}"))
}

/// Names MQTT.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_connect);
    finish(
        cx,
        p.map(|v| Classification::new("mqtt", None, "setten.mqtt.connect", "mqtt.connect", v)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn connect_311() {
        // MQTT 3.1.1 3.1: CONNECT, clean session, keep alive 60, client id "ward7-gw".
        let b = hex("10 14 0004 4d515454 04 02 003c 0008 77617264372d6777");
        let c = Flow::tcp(50000, 1883).c2s(&b).yes(check);
        assert_eq!((c.protocol, c.service), ("mqtt", None));
        assert_eq!(c.evidence[0].value, "MQTT 3.1.1 CONNECT client_id=ward7-gw");
    }

    #[test]
    fn connect_5() {
        // MQTT 5.0 3.1: properties length 5 (session expiry interval), then the id.
        let b = hex("10 1a 0004 4d515454 05 02 003c 05 1100000e10 0008 77617264372d6777");
        assert_eq!(
            parse_connect(&b),
            Parse::Ok("MQTT 5.0 CONNECT client_id=ward7-gw".to_owned())
        );
    }

    #[test]
    fn not_mqtt() {
        assert_eq!(
            parse_connect(&hex("10 14 0004 4d515454 06 02 003c")),
            Parse::Bad
        );
        assert_eq!(
            parse_connect(&hex("10 14 0004 4d515454 04 03 003c")),
            Parse::Bad
        );
        assert_eq!(parse_connect(&hex("10 ff ff ff ff 01")), Parse::Bad);
        assert!(Flow::tcp(1, 1883).c2s(b"\x10\x00\x00\x04MQTX").is_no(check));
    }
}
