//! SNMP over UDP: v1 (RFC 1157 4), v2c (RFC 1901 3, RFC 3416 3) and v3 (RFC 3412 6).
//!
//! `Yes` when the datagram is exactly one BER SEQUENCE holding version 0, 1 or 3; for
//! v1/v2c a community OCTET STRING then a PDU whose context tag is an SNMP PDU type and
//! which ends exactly where the message ends, with request-id, error-status (0..=18) and
//! error-index INTEGERs and a varbind SEQUENCE (the trap of v1 has its own fields); for v3
//! the msgGlobalData header (msgID, msgMaxSize at least 484, a one-byte msgFlags, a
//! security model) and the security parameters. The community is the evidence, because
//! "public" and "private" are findings of their own.

use super::super::{Classification, Cx, Verdict};
use super::ber;
use super::{finish, opening, require, Parse};

/// Largest error-status (RFC 3416 3: inconsistentName = 18).
const MAX_ERROR_STATUS: u64 = 18;
/// Smallest msgMaxSize (RFC 3412 6).
const MIN_MAX_SIZE: u64 = 484;
/// Longest community kept in evidence.
const MAX_COMMUNITY_SHOWN: usize = 32;

/// PDU types by context tag (RFC 3416 3, RFC 1157 4.1.6).
fn pdu(tag: u8) -> Option<&'static str> {
    Some(match tag {
        0xa0 => "get-request",
        0xa1 => "get-next-request",
        0xa2 => "response",
        0xa3 => "set-request",
        0xa4 => "trap",
        0xa5 => "get-bulk-request",
        0xa6 => "inform-request",
        0xa7 => "snmpV2-trap",
        0xa8 => "report",
        _ => return None,
    })
}

/// A parsed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// "v1", "v2c" or "v3".
    pub version: &'static str,
    /// Community (v1, v2c).
    pub community: Option<String>,
    /// PDU type (v1, v2c).
    pub pdu: Option<&'static str>,
}

/// Parses one SNMP message that fills `d` exactly.
pub fn parse_message(d: &[u8]) -> Parse<Message> {
    let (msg, rest) = need!(ber::expect(d, ber::SEQUENCE));
    need!(require(rest.is_empty()));
    let (version, rest) = need!(ber::expect_uint(msg.value));
    match version {
        0 | 1 => {
            let (community, rest) = need!(ber::expect(rest, ber::OCTET_STRING));
            let p = need!(ber::read(rest));
            let name = need!(pdu(p.tag).map_or(Parse::Bad, Parse::Ok));
            need!(require(p.complete() && p.total() == Some(rest.len())));
            if p.tag == 0xa4 {
                // Trap-PDU: enterprise OID, agent-addr IpAddress [APPLICATION 0] of 4.
                need!(require(version == 0));
                let (_, r) = need!(ber::expect(p.value, ber::OID));
                let (addr, _) = need!(ber::expect(r, 0x40));
                need!(require(addr.len == 4));
            } else {
                let (_, r) = need!(ber::expect_uint(p.value).or_else(|| {
                    // request-id is an Integer32 and may be negative.
                    ber::expect(p.value, ber::INTEGER)
                        .and_then(|(t, r)| require((1..=4).contains(&t.len)).map(|()| (0, r)))
                }));
                let (status, r) = need!(ber::expect_uint(r));
                let (_, r) = need!(ber::expect_uint(r));
                let (_, r) = need!(ber::expect(r, ber::SEQUENCE));
                // get-bulk reuses the two fields as non-repeaters and max-repetitions.
                need!(require(
                    r.is_empty() && (p.tag == 0xa5 || status <= MAX_ERROR_STATUS)
                ));
            }
            let shown = community
                .value
                .get(..community.value.len().min(MAX_COMMUNITY_SHOWN))
                .unwrap_or(&[]);
            Parse::Ok(Message {
                version: if version == 0 { "v1" } else { "v2c" },
                community: Some(super::super::util::printable(shown)),
                pdu: Some(name),
            })
        }
        3 => {
            // msgGlobalData: msgID, msgMaxSize, msgFlags (1 octet), msgSecurityModel.
            let (global, rest) = need!(ber::expect(rest, ber::SEQUENCE));
            let (_, g) = need!(ber::expect_uint(global.value));
            let (max_size, g) = need!(ber::expect_uint(g));
            let (flags, g) = need!(ber::expect(g, ber::OCTET_STRING));
            let (model, g) = need!(ber::expect_uint(g));
            need!(require(
                g.is_empty()
                    && max_size >= MIN_MAX_SIZE
                    && flags.len == 1
                    && flags.value.first().is_some_and(|f| f & 0xf8 == 0)
                    && (1..=3).contains(&model)
            ));
            // msgSecurityParameters, then the (possibly encrypted) scoped PDU.
            let (_, rest) = need!(ber::expect(rest, ber::OCTET_STRING));
            let data = need!(ber::read(rest));
            need!(require(
                matches!(data.tag, ber::SEQUENCE | ber::OCTET_STRING)
                    && data.total() == Some(rest.len())
            ));
            Parse::Ok(Message {
                version: "v3",
                community: None,
                pdu: None,
            })
        }
        _ => Parse::Bad,
    }
}

/// Names SNMP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_message, parse_message);
    finish(
        cx,
        p.map(|m| {
            let mut v = format!("SNMP{}", m.version);
            if let Some(pdu) = m.pdu {
                v.push_str(&format!(" {pdu}"));
            }
            if let Some(c) = m.community {
                v.push_str(&format!(" community={c}"));
            }
            Classification::new("snmp", None, "setten.snmp.message", "snmp.message", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-snmp.pcap frame 1: v1 get-next-request, community "public", sysDescr.
    const GET_NEXT: &str =
        "302902010004067075626c6963a11c02044b781a6e020100020100300e300c06082b060102010105000500";

    #[test]
    fn v1_from_capture() {
        let d = hex(GET_NEXT);
        let m = parse_message(&d).ok().unwrap();
        assert_eq!(
            (m.version, m.pdu, m.community.as_deref()),
            ("v1", Some("get-next-request"), Some("public"))
        );
        let c = Flow::udp(43015, 161).c2s(&d).yes(check);
        assert_eq!((c.protocol, c.service), ("snmp", None));
        assert_eq!(
            c.evidence[0].value,
            "SNMPv1 get-next-request community=public"
        );
    }

    #[test]
    fn v3_report() {
        // RFC 3412 6 / RFC 3414 (USM) discovery: msgID, maxSize 65507, flags reportable,
        // model 3, empty USM parameters, a plaintext scoped PDU.
        let d = hex(
            "3039 020103 300f 02024a69 020300ffe3 040104 020103 0410300e0400020100020100040004000400
             3011 0400 0400 a00b 020100 020100 020100 3000",
        );
        let m = parse_message(&d);
        assert!(
            matches!(m, Parse::Ok(Message { version: "v3", .. })),
            "{m:?}"
        );
    }

    #[test]
    fn must_fill_the_datagram() {
        let mut d = hex(GET_NEXT);
        d.push(0);
        assert_eq!(parse_message(&d), Parse::Bad);
        let mut d = hex(GET_NEXT);
        d[4] = 2; // version 2 does not exist
        assert_eq!(parse_message(&d), Parse::Bad);
        let mut d = hex(GET_NEXT);
        d[13] = 0xb1; // not a PDU tag
        assert_eq!(parse_message(&d), Parse::Bad);
        assert!(Flow::udp(1, 161)
            .c2s(&hex("3003020100"))
            .s2c(b"x")
            .is_no(check));
    }
}
