//! Kerberos V5 KDC exchanges (RFC 4120 5.4.1, 5.4.2, 5.9.1): AS-REQ, AS-REP, TGS-REQ,
//! TGS-REP and KRB-ERROR, over UDP (one message per datagram) and TCP (a four-byte
//! record mark with the high bit reserved, 7.2.2).
//!
//! `Yes` when the application tag, the SEQUENCE inside it and the record mark or
//! datagram length all agree, and the first two fields are pvno 5 and the msg-type
//! matching the tag. Requests must come from the client, replies and errors from the
//! server. The realm, when the bytes reach it, is the evidence.

use super::super::{Classification, Cx, Verdict};
use super::ber::{self, Tlv};
use super::{be32, finish, opening, require, stream, Parse};
use crate::flow::reassembly::MAX_DATAGRAM;

/// Largest TCP record accepted: tickets with large PACs run to tens of kilobytes.
pub const MAX_RECORD_LEN: u32 = 1 << 20;
/// Fields walked in one SEQUENCE looking for a realm.
const MAX_FIELDS: usize = 16;
/// Protocol version (RFC 4120 5.4.1).
const PVNO: u64 = 5;
/// GeneralString tag, the encoding of Realm (5.2.1).
const GENERAL_STRING: u8 = 0x1b;

/// Message types by application tag (RFC 4120 5.4.1, 5.4.2, 5.9.1).
fn msg_type(tag: u8) -> Option<(u64, &'static str)> {
    Some(match tag {
        0x6a => (10, "AS-REQ"),
        0x6b => (11, "AS-REP"),
        0x6c => (12, "TGS-REQ"),
        0x6d => (13, "TGS-REP"),
        0x7e => (30, "KRB-ERROR"),
        _ => return None,
    })
}

/// A KDC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// msg-type (10, 11, 12, 13, 30).
    pub msg_type: u64,
    /// Its name.
    pub name: &'static str,
    /// Realm, when present in the bytes.
    pub realm: Option<String>,
    /// KRB-ERROR error-code.
    pub error_code: Option<u64>,
}

impl Message {
    /// A request (client to KDC).
    pub fn is_request(&self) -> bool {
        matches!(self.msg_type, 10 | 12)
    }
}

/// The value of context field `[n]` in a SEQUENCE's value, if present in the bytes.
fn field(seq: &[u8], n: u8) -> Option<&[u8]> {
    let mut b = seq;
    for _ in 0..MAX_FIELDS {
        let t = ber::read(b).ok()?;
        if t.tag == 0xa0 | n {
            return Some(t.value);
        }
        b = b.get(t.total()?..)?;
    }
    None
}

/// A Realm (GeneralString) inside a context field's value.
fn realm(v: Option<&[u8]>) -> Option<String> {
    let (t, _) = ber::expect(v?, GENERAL_STRING).ok()?;
    super::text::is_printable(t.value).then(|| super::super::util::printable(t.value))
}

/// Reads `[n] INTEGER` at the start of `b`: its value and the bytes after it.
fn ctx_uint(b: &[u8], n: u8) -> Parse<(u64, &[u8])> {
    let (t, rest) = need!(ber::expect(b, 0xa0 | n));
    let (v, after) = need!(ber::expect_uint(t.value));
    need!(require(after.is_empty()));
    Parse::Ok((v, rest))
}

/// Parses a KDC message at the start of `b`; `total` is the length the transport gives
/// it (record mark or datagram), which the outer TLV must equal.
pub fn parse_message(b: &[u8], total: Option<usize>) -> Parse<Message> {
    let app: Tlv<'_> = need!(ber::read(b));
    let (want, name) = need!(msg_type(app.tag).map_or(Parse::Bad, Parse::Ok));
    if let Some(total) = total {
        need!(require(app.total() == Some(total)));
    }
    let seq = need!(ber::read(app.value));
    need!(require(
        seq.tag == ber::SEQUENCE && seq.total() == Some(app.len)
    ));
    // KDC-REQ: pvno [1], msg-type [2]; KDC-REP and KRB-ERROR: pvno [0], msg-type [1].
    let first = if matches!(want, 10 | 12) { 1 } else { 0 };
    let (pvno, rest) = need!(ctx_uint(seq.value, first));
    let (mt, _) = need!(ctx_uint(rest, first + 1));
    need!(require(pvno == PVNO && mt == want));
    let (realm, error_code) = match want {
        // req-body [4] SEQUENCE { kdc-options [0], cname [1] OPTIONAL, realm [2] }.
        10 | 12 => {
            let body = field(seq.value, 4).and_then(|v| ber::read(v).ok());
            (realm(body.and_then(|b| field(b.value, 2))), None)
        }
        // crealm [3].
        11 | 13 => (realm(field(seq.value, 3)), None),
        // error-code [6], realm [9].
        _ => (
            realm(field(seq.value, 9)),
            field(seq.value, 6)
                .and_then(|v| ber::expect_uint(v).ok())
                .map(|(c, _)| c),
        ),
    };
    Parse::Ok(Message {
        msg_type: want,
        name,
        realm,
        error_code,
    })
}

/// Parses the opening bytes of a TCP direction: record mark, then the message.
pub fn parse_tcp(b: &[u8]) -> Parse<Message> {
    let mark = need!(be32(b, 0));
    need!(require(
        mark & 0x8000_0000 == 0 && (2..=MAX_RECORD_LEN).contains(&mark)
    ));
    parse_message(b.get(4..).unwrap_or(&[]), Some(mark as usize))
}

/// Parses a UDP datagram (one cut at the capture cap has no length to agree with).
pub fn parse_datagram(d: &[u8]) -> Parse<Message> {
    let total = (d.len() < MAX_DATAGRAM).then_some(d.len());
    match parse_message(d, total) {
        Parse::Short if total.is_none() => Parse::Bad,
        p => p,
    }
}

fn fits(m: Message, from_client: bool) -> Parse<Message> {
    if m.is_request() == from_client {
        Parse::Ok(m)
    } else {
        Parse::Bad
    }
}

/// Names Kerberos.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let p = if cx.is_udp() {
        opening(
            cx,
            |d| parse_datagram(d).and_then(|m| fits(m, true)),
            |d| parse_datagram(d).and_then(|m| fits(m, false)),
        )
    } else {
        stream(cx.c2s, parse_tcp)
            .and_then(|m| fits(m, true))
            .or_else(|| stream(cx.s2c, parse_tcp).and_then(|m| fits(m, false)))
    };
    finish(
        cx,
        p.map(|m| {
            let mut v = m.name.to_owned();
            if let Some(code) = m.error_code {
                v.push_str(&format!(" error-code={code}"));
            }
            if let Some(r) = &m.realm {
                v.push_str(&format!(" realm={r}"));
            }
            Classification::new(
                "kerberos",
                None,
                "setten.kerberos.kdc",
                "kerberos.msg_type",
                v,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-kerberos.pcap frame 1 (first 64 bytes of 239): record mark 0xeb, AS-REQ
    /// [APPLICATION 10], SEQUENCE, pvno 5, msg-type 10, padata.
    const AS_REQ: &str = "000000eb6a81e83081e5a103020105a20302010aa31530133011a10402020080a20904073005a0030101ffa481c13081bea00703050040810010a118";

    /// ndpi-kerberos.pcap frame 32 (first 68 bytes): KRB-ERROR with stime, error-code.
    const KRB_ERROR: &str = "000000847e8181307fa003020105a10302011ea411180f32303139303230353033333834395aa50502030c9c32a60302010da9101b0e484150505943524146542e4f5247";

    #[test]
    fn as_req_from_capture() {
        let m = parse_tcp(&hex(AS_REQ)).ok().unwrap();
        assert_eq!((m.msg_type, m.name), (10, "AS-REQ"));
        let c = Flow::tcp(49157, 88).c2s(&hex(AS_REQ)).yes(check);
        assert_eq!((c.protocol, c.service), ("kerberos", None));
        assert_eq!(c.evidence[0].value, "AS-REQ");
        // From the server it is not a reply.
        assert!(Flow::tcp(49157, 88)
            .s2c(&hex(AS_REQ))
            .c2s(b"\x00")
            .is_no_at_end(check));
    }

    #[test]
    fn krb_error_with_realm() {
        let m = parse_tcp(&hex(KRB_ERROR)).ok().unwrap();
        assert_eq!((m.msg_type, m.error_code), (30, Some(13)));
        assert_eq!(m.realm.as_deref(), Some("HAPPYCRAFT.ORG"));
        // ndpi-kerberos.pcap flow 49173: the capture starts mid-request; the error
        // from the KDC shows Kerberos.
        let c = Flow::tcp(49173, 88)
            .c2s(&hex("0e484150505943524146542e4f5247a2273025"))
            .s2c(&hex(KRB_ERROR))
            .yes(check);
        assert_eq!(
            c.evidence[0].value,
            "KRB-ERROR error-code=13 realm=HAPPYCRAFT.ORG"
        );
    }

    #[test]
    fn udp_as_req() {
        // RFC 4120 5.4.1 AS-REQ over UDP: the DER must fill the datagram exactly.
        let d = hex("6a 1b 30 19 a1 03 020105 a2 03 02010a a4 0d 30 0b a0 07 03050050800000 a2 00");
        let m = parse_datagram(&d).ok().unwrap();
        assert_eq!(m.name, "AS-REQ");
        let mut long = d.clone();
        long.push(0);
        assert_eq!(parse_datagram(&long), Parse::Bad);
        assert_eq!(Flow::udp(50000, 88).c2s(&d).yes(check).protocol, "kerberos");
    }

    #[test]
    fn fields_must_agree() {
        let b = hex(AS_REQ);
        let mut x = b.clone();
        x[14] = 4; // pvno 4
        assert_eq!(parse_tcp(&x), Parse::Bad);
        let mut x = b.clone();
        x[19] = 12; // msg-type 12 inside an AS-REQ tag
        assert_eq!(parse_tcp(&x), Parse::Bad);
        let mut x = b.clone();
        x[3] = 0xea; // record mark one short
        assert_eq!(parse_tcp(&x), Parse::Bad);
        let mut x = b.clone();
        x[0] = 0x80; // reserved high bit
        assert_eq!(parse_tcp(&x), Parse::Bad);
        // ndpi-kerberos.pcap frame 5: encrypted continuation bytes.
        let f = Flow::tcp(49159, 88)
            .c2s(&hex("88d784fad089228f42cf52851c689c8a0225c641"))
            .s2c(&hex("d47e7a6dbe7aacb4f3848feca3aa4697a8c82eed"));
        assert!(f.is_no(check));
    }
}
