//! Zabbix agent, proxy and sender protocol (Zabbix manual, "Header and data length"):
//! "ZBXD", a flags byte, then data and reserved lengths.
//!
//! `Yes` when the signature is followed by flags with the protocol bit and only defined
//! bits (0x01 protocol, 0x02 compressed, 0x04 large packet), a data length within the
//! protocol's limit, a reserved length that is zero for uncompressed data and the
//! uncompressed size otherwise, and data that starts as it should: a zlib header when
//! compressed, text or JSON when not. The JSON "request" value (e.g. "active checks")
//! is the evidence.

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, le32, require, stream, take, Parse};

/// Signature.
pub const SIGNATURE: &[u8; 4] = b"ZBXD";
/// Flags: protocol, compressed, large packet.
const FLAG_PROTOCOL: u8 = 0x01;
const FLAG_COMPRESSED: u8 = 0x02;
const FLAG_LARGE: u8 = 0x04;
/// Largest data accepted (ZBX_MAX_RECV_DATA_SIZE, 1 GiB; large packets are not read).
pub const MAX_DATA_LEN: u32 = 1 << 30;
/// Bytes searched for the JSON request name.
const REQUEST_WINDOW: usize = 256;

/// Parses a Zabbix message head; returns the request name, if any.
pub fn parse_message(b: &[u8]) -> Parse<String> {
    let n = b.len().min(4);
    need!(require(b.get(..n) == SIGNATURE.get(..n)));
    let flags = need!(byte(b, 4));
    need!(require(
        flags & FLAG_PROTOCOL != 0 && flags & !(FLAG_PROTOCOL | FLAG_COMPRESSED | FLAG_LARGE) == 0
    ));
    // Large packets use 8-byte lengths; they are for huge history data, not openings.
    need!(require(flags & FLAG_LARGE == 0));
    let len = need!(le32(b, 5));
    let reserved = need!(le32(b, 9));
    need!(require((1..=MAX_DATA_LEN).contains(&len)));
    let data = need!(take(b, 13, 2.min(len as usize)));
    if flags & FLAG_COMPRESSED != 0 {
        // zlib header (RFC 1950 2.2): deflate, check bits.
        let (cmf, flg) = (
            data.first().copied().unwrap_or(0),
            data.get(1).copied().unwrap_or(0),
        );
        need!(require(
            reserved > 0 && cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
        ));
        return Parse::Ok(String::new());
    }
    need!(require(reserved == 0));
    let text = b.get(13..b.len().min(13 + len as usize)).unwrap_or(&[]);
    need!(require(
        super::text::is_text(text.get(..text.len().min(REQUEST_WINDOW)).unwrap_or(&[]))
            || text.first() == Some(&b'{')
    ));
    Parse::Ok(request_name(text))
}

/// The value of `"request":"…"` near the start of JSON data.
fn request_name(json: &[u8]) -> String {
    let w = json.get(..json.len().min(REQUEST_WINDOW)).unwrap_or(json);
    let key = b"\"request\":\"";
    let Some(i) = w.windows(key.len()).position(|x| x == key) else {
        return String::new();
    };
    let v = w.get(i + key.len()..).unwrap_or(&[]);
    let end = v.iter().position(|&c| c == b'"').unwrap_or(0);
    super::super::util::printable(v.get(..end).unwrap_or(&[]))
}

/// Names Zabbix.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_message).or_else(|| stream(cx.s2c, parse_message));
    finish(
        cx,
        p.map(|r| {
            let v = if r.is_empty() {
                "ZBXD".to_owned()
            } else {
                format!("ZBXD request={r}")
            };
            Classification::new("zabbix", None, "setten.zabbix.header", "zabbix.header", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn passive_check_from_capture() {
        // ndpi-zabbix.pcap frame 4 (server to agent): "proc.num[]", uncompressed.
        let b = hex("5a4258440 10a00000000000000 70726f632e6e756d5b5d"
            .replace(' ', "")
            .as_str());
        let c = Flow::tcp(57162, 10050).c2s(&b).yes(check);
        assert_eq!((c.protocol, c.service), ("zabbix", None));
    }

    #[test]
    fn compressed_and_json() {
        // ndpi-zabbix.pcap frame 9 (head): compressed, reserved = uncompressed size,
        // zlib 78 9c.
        let b = hex("5a42584403 4e000000 45000000 789caa562a4a2d2c");
        assert_eq!(parse_message(&b), Parse::Ok(String::new()));
        // An active agent's JSON request.
        let j = br#"{"request":"active checks","host":"pacs01"}"#;
        let mut m = b"ZBXD\x01".to_vec();
        m.extend_from_slice(&(j.len() as u32).to_le_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(j);
        assert_eq!(
            Flow::tcp(1, 10051).c2s(&m).yes(check).evidence[0].value,
            "ZBXD request=active checks"
        );
    }

    #[test]
    fn not_zabbix() {
        assert_eq!(
            parse_message(b"ZBXD\x00\x01\x00\x00\x00\x00\x00\x00\x00x"),
            Parse::Bad
        );
        assert_eq!(
            parse_message(b"ZBXD\x09\x01\x00\x00\x00\x00\x00\x00\x00x"),
            Parse::Bad
        );
        assert_eq!(
            parse_message(b"ZBXD\x01\x01\x00\x00\x00\x05\x00\x00\x00x"),
            Parse::Bad
        );
        assert_eq!(
            parse_message(b"ZBXD\x03\x04\x00\x00\x00\x05\x00\x00\x00xx"),
            Parse::Bad
        );
        assert_eq!(parse_message(b"ZBX"), Parse::Short);
        assert!(Flow::tcp(1, 10050).c2s(b"ZBXE").s2c(b"x").is_no(check));
    }
}
