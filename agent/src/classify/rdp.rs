//! RDP: the X.224 Connection Request and Confirm in TPKT ([MS-RDPBCGR] 2.2.1.1 and
//! 2.2.1.2), with the optional `mstshash` cookie or routing token and the RDP negotiation
//! request/response that name the security protocols; and RDP over UDP ([MS-RDPEUDP]
//! 2.2.2.1, the SYN datagram; or, for a session seen after its SYN, the FEC headers of the
//! datagrams on the standard port, see [`detect_udp`]).
//!
//! A server that answers without a negotiation response, or selects PROTOCOL_RDP, uses
//! RDP's own "standard security" (RC4, no server authentication): flagged weak.
//! When the server selects a security protocol that runs over TLS (TLS, CredSSP,
//! RDSTLS, …; [MS-RDPBCGR] 5.4.5), the TLS handshake follows the two TPKTs; it is read as
//! for any TLS flow and its metadata (version, JA4, the server certificate, whose subject
//! usually names the machine) is added to the RDP classification.
//! X.224 alone is not RDP (ISO-on-TCP, e.g. S7comm on port 102, uses the same TPDU), so
//! RDP needs the cookie, a negotiation structure, or — for old clients that send neither —
//! the standard port as tie-breaker.

use super::util::{be16, be32, le32, printable};
use super::{Classification, Cx, RdpMeta, Service, Verdict};

/// TPKT version (RFC 1006 section 6).
pub const TPKT_VERSION: u8 = 3;
/// X.224 Connection Request TPDU code (ITU-T X.224 13.3).
pub const X224_CR: u8 = 0xe0;
/// X.224 Connection Confirm TPDU code.
pub const X224_CC: u8 = 0xd0;
/// RDP_NEG_REQ type ([MS-RDPBCGR] 2.2.1.1.1).
pub const NEG_REQ: u8 = 0x01;
/// RDP_NEG_RSP type (2.2.1.2.1).
pub const NEG_RSP: u8 = 0x02;
/// RDP_NEG_FAILURE type (2.2.1.2.2).
pub const NEG_FAILURE: u8 = 0x03;
/// RDPUDP_FLAG_SYN ([MS-RDPEUDP] 2.2.2.1).
pub const RDPUDP_FLAG_SYN: u16 = 0x0001;

/// Names of the security protocol bits ([MS-RDPBCGR] 2.2.1.1.1 requestedProtocols).
pub fn protocol_names(bits: u32) -> Vec<String> {
    let mut v = Vec::new();
    if bits == 0 {
        v.push("standard".to_owned());
    }
    for (bit, name) in [
        (0x1, "tls"),
        (0x2, "credssp"),
        (0x4, "rdstls"),
        (0x8, "credssp-ex"),
        (0x10, "rdsaad"),
    ] {
        if bits & bit != 0 {
            v.push(name.to_owned());
        }
    }
    v
}

/// A parsed X.224 CR or CC inside TPKT: TPDU code and the variable part.
fn tpkt_x224(b: &[u8]) -> Option<(u8, &[u8])> {
    if *b.first()? != TPKT_VERSION || *b.get(1)? != 0 {
        return None;
    }
    let len = usize::from(be16(b, 2)?);
    if !(11..=512).contains(&len) {
        return None;
    }
    let li = usize::from(*b.get(4)?);
    // The length indicator counts the TPDU header after itself (X.224 13.2.1).
    if li + 5 != len {
        return None;
    }
    let code = *b.get(5)? & 0xf0;
    // dst-ref must be zero in a CR; class option 0 (class 0, no extended formats).
    if code == X224_CR && be16(b, 6)? != 0 {
        return None;
    }
    if *b.get(10)? & 0xf0 != 0 {
        return None;
    }
    let tpdu = b.get(11..len)?;
    Some((code, tpdu))
}

struct Request {
    /// The `Cookie: ` line without its prefix.
    cookie: Option<String>,
    /// A routing token line (load balancing, e.g. `tsv://MS Terminal Services
    /// Plugin.1.<collection>`), sent instead of the cookie.
    routing_token: Option<String>,
    requested: Option<u32>,
}

/// Longest routing token line taken (the whole X.224 TPDU is at most 512 bytes here).
const MAX_TOKEN_LINE: usize = 256;

/// The variable part of a Connection Request ([MS-RDPBCGR] 2.2.1.1): an optional cookie
/// (`Cookie: mstshash=IDENTIFIER\r\n`) or routing token (any CR LF terminated line; FreeRDP
/// `nego_send_negotiation_request` writes it verbatim and ends it with CR LF), then an
/// optional RDP_NEG_REQ.
fn parse_request(var: &[u8]) -> Option<Request> {
    let mut rest = var;
    let mut cookie = None;
    let mut routing_token = None;
    if rest.starts_with(b"Cookie: ") {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = rest.get(8..end)?;
        cookie = Some(printable(line));
        rest = rest.get(end + 2..)?;
    } else if rest.first().is_some_and(|&b| b != NEG_REQ) {
        // A routing token: printable text up to CR LF. ISO-on-TCP parameters (TSAPs) are
        // binary codes and lengths, never a text line.
        let end = rest
            .get(..rest.len().min(MAX_TOKEN_LINE + 2))?
            .windows(2)
            .position(|w| w == b"\r\n")?;
        let line = rest.get(..end)?;
        if line.is_empty() || !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        routing_token = Some(printable(line));
        rest = rest.get(end + 2..)?;
    }
    let mut requested = None;
    if rest.len() >= 8 {
        if *rest.first()? == NEG_REQ && le16(rest, 2)? == 8 {
            requested = le32(rest, 4);
            rest = rest.get(8..)?;
        } else {
            return None;
        }
    }
    // Anything else left over (X.224 parameters such as TSAPs) is not RDP.
    let leftover_ok = rest.is_empty() || (rest.len() < 8 && cookie.is_some());
    if !leftover_ok {
        return None;
    }
    if cookie.is_none() && routing_token.is_none() && requested.is_none() && !var.is_empty() {
        return None;
    }
    Some(Request {
        cookie,
        routing_token,
        requested,
    })
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

enum Confirm {
    Selected(u32),
    Failure(u32),
    Legacy,
}

fn parse_confirm(var: &[u8]) -> Option<Confirm> {
    if var.is_empty() {
        return Some(Confirm::Legacy);
    }
    if var.len() < 8 || le16(var, 2)? != 8 {
        return None;
    }
    match *var.first()? {
        NEG_RSP => Some(Confirm::Selected(le32(var, 4)?)),
        NEG_FAILURE => Some(Confirm::Failure(le32(var, 4)?)),
        _ => None,
    }
}

/// UDP port of RDP's transport ([MS-RDPEUDP] 1.9: the same port as the TCP connection).
const RDP_PORT: u16 = 3389;
/// Shortest datagram of a session taken up midway (nDPI `rdp.c`: 10 bytes).
const UDP_MID_MIN: usize = 10;
/// Leading bytes that stay the same from one datagram to the next within a direction.
const UDP_MID_PREFIX: usize = 3;

/// RDP over UDP.
///
/// From the SYN: `snSourceAck` -1, the SYN flag and MTUs in range, padded to 1232 bytes.
/// Taken up after the SYN (a capture started during the session), only on the standard
/// port: every datagram opens with the RDPUDP_FEC_HEADER ([MS-RDPEUDP] 2.2.2.1), whose
/// first field `snSourceAck` acknowledges the peer's sequence numbers and so changes only
/// in its low byte over a few datagrams; so in each direction the first two datagrams
/// (at least 10 bytes) must share their first three bytes, as nDPI's `rdp.c` checks for
/// such sessions. Random or encrypted payloads fail that in one direction or the other.
fn detect_udp(cx: &Cx<'_>) -> Verdict {
    let d = cx.first_c2s_datagram();
    if d.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    if be32(d, 0) != Some(0xffff_ffff) && cx.server_port == RDP_PORT {
        return detect_udp_midway(cx);
    }
    // RDPUDP_FEC_HEADER: snSourceAck = -1 on the SYN, uReceiveWindowSize, uFlags; then
    // RDPUDP_SYNDATA_PAYLOAD with the MTUs, which must be 1132..=1232 (3.1.5.1.1); the
    // SYN datagram is padded to 1232 bytes.
    let ok = be32(d, 0) == Some(0xffff_ffff)
        && be16(d, 6).is_some_and(|f| f & RDPUDP_FLAG_SYN != 0)
        && be16(d, 12).is_some_and(|m| (1132..=1232).contains(&m))
        && be16(d, 14).is_some_and(|m| (1132..=1232).contains(&m))
        && d.len() >= 1232;
    if !ok {
        return Verdict::No;
    }
    let mut c = Classification::new(
        "rdp",
        Some(Service::Rdp),
        "setten.rdp.udp-syn",
        "rdpudp.syn",
        format!("SYN mtu={}", be16(d, 12).unwrap_or(0)),
    );
    c.extra.meta.rdp = Some(Box::new(RdpMeta {
        udp: true,
        ..RdpMeta::default()
    }));
    Verdict::Yes(c)
}

/// A session on UDP 3389 taken up after its SYN (see [`detect_udp`]).
fn detect_udp_midway(cx: &Cx<'_>) -> Verdict {
    let mut prefixes = [[0u8; UDP_MID_PREFIX]; 2];
    for (i, dir) in [cx.c2s, cx.s2c].into_iter().enumerate() {
        let mut first: Option<&[u8]> = None;
        let mut seen = 0usize;
        for d in cx.datagrams(dir).take(2) {
            if d.len() < UDP_MID_MIN {
                return Verdict::No;
            }
            let head = d.get(..UDP_MID_PREFIX).unwrap_or(&[]);
            match first {
                None => first = Some(head),
                Some(f) if f != head => return Verdict::No,
                Some(_) => {}
            }
            seen += 1;
        }
        if seen < 2 {
            return if cx.last { Verdict::No } else { Verdict::Wait };
        }
        if let (Some(f), Some(p)) = (first, prefixes.get_mut(i)) {
            p.copy_from_slice(f);
        }
    }
    let hex = |p: &[u8; UDP_MID_PREFIX]| p.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut c = Classification::new(
        "rdp",
        Some(Service::Rdp),
        "setten.rdp.udp-session",
        "rdpudp.fec_header",
        format!(
            "UDP {RDP_PORT} session after its SYN: snSourceAck prefix c2s {} s2c {}",
            hex(&prefixes[0]),
            hex(&prefixes[1])
        ),
    );
    c.extra.meta.rdp = Some(Box::new(RdpMeta {
        udp: true,
        ..RdpMeta::default()
    }));
    Verdict::Yes(c)
}

/// Detects RDP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if cx.is_udp() {
        return detect_udp(cx);
    }
    let c2s = cx.c2s.bytes();
    if c2s.len() < 11 {
        if c2s.first().is_some_and(|&v| v != TPKT_VERSION) || cx.last {
            return Verdict::No;
        }
        return Verdict::Wait;
    }
    let Some((code, var)) = tpkt_x224(c2s) else {
        return Verdict::No;
    };
    if code != X224_CR {
        return Verdict::No;
    }
    let Some(req) = parse_request(var) else {
        return Verdict::No;
    };
    let s2c = cx.s2c.bytes();
    let confirm = match tpkt_x224(s2c) {
        Some((X224_CC, v)) => parse_confirm(v),
        _ => None,
    };
    if confirm.is_none() && s2c.len() < 11 && !cx.last {
        return Verdict::Wait;
    }
    // Every security protocol the server may select but standard RDP security
    // (PROTOCOL_RDP, 0) runs over TLS.
    let tls_follows = matches!(confirm, Some(Confirm::Selected(p)) if p != 0);
    let structural = req.cookie.is_some()
        || req.requested.is_some()
        || matches!(
            confirm,
            Some(Confirm::Selected(_)) | Some(Confirm::Failure(_))
        );
    if !structural && cx.server_port != 3389 {
        return Verdict::No;
    }
    let mut meta = RdpMeta {
        cookie: req
            .cookie
            .as_ref()
            .and_then(|c| c.strip_prefix("mstshash=").map(str::to_owned)),
        routing_token: req.routing_token.clone(),
        requested: req.requested.map(protocol_names).unwrap_or_default(),
        ..RdpMeta::default()
    };
    let (rule, value) = match (&req.cookie, &req.routing_token, req.requested) {
        (Some(c), _, _) => ("setten.rdp.x224-cookie", format!("Cookie: {c}")),
        (None, Some(_), Some(r)) | (None, None, Some(r)) => {
            ("setten.rdp.neg-req", format!("requestedProtocols=0x{r:x}"))
        }
        (None, Some(t), None) => ("setten.rdp.routing-token", t.clone()),
        (None, None, None) => ("setten.rdp.x224-port", "X.224 CR on 3389".to_owned()),
    };
    let mut c = Classification::new("rdp", Some(Service::Rdp), rule, "rdp.x224", value);
    if let (Some(t), Some(_)) = (&req.routing_token, req.requested) {
        c.evidence.push(super::Evidence::new(
            "setten.rdp.routing-token",
            "rdp.routing_token",
            t,
        ));
    }
    match confirm {
        Some(Confirm::Selected(p)) => {
            let names = protocol_names(p);
            meta.selected = names.first().cloned();
            if p == 0 {
                c.extra.weak = Some("rdp standard security".into());
            }
        }
        Some(Confirm::Legacy) => {
            meta.selected = Some("standard".into());
            c.extra.weak = Some("rdp standard security".into());
        }
        Some(Confirm::Failure(code)) => meta.selected = Some(format!("failure {code}")),
        None => {}
    }
    c.extra.meta.rdp = Some(Box::new(meta));
    if tls_follows {
        let (ct, st) = (after_tpkt(c2s), after_tpkt(s2c));
        if ct.is_empty() {
            return if cx.last || cx.c2s.is_done() {
                Verdict::Yes(c)
            } else {
                Verdict::Claim
            };
        }
        return match super::tls::handshake(ct, st, cx.last, cx.c2s.is_done(), cx.s2c.is_done()) {
            super::tls::Handshake::Wait | super::tls::Handshake::Claim => Verdict::Claim,
            super::tls::Handshake::Done(Some(tls)) => Verdict::Yes(Classification {
                protocol: "rdp",
                deferred: Some(super::Deferred::After(Box::new((c, tls)))),
                ..Classification::default()
            }),
            super::tls::Handshake::No | super::tls::Handshake::Done(None) => Verdict::Yes(c),
        };
    }
    Verdict::Yes(c)
}

/// The bytes after a direction's first TPKT (its length field, RFC 1006 section 6).
fn after_tpkt(b: &[u8]) -> &[u8] {
    let len = be16(b, 2).map_or(b.len(), usize::from);
    b.get(len..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::reassembly::Stream;
    use crate::rules::Rules;

    /// [MS-RDPBCGR] 4.1.1 Client X.224 Connection Request PDU example:
    /// TPKT, X.224 CR, "Cookie: mstshash=eltons\r\n", RDP_NEG_REQ requesting TLS.
    const CR: &[u8] = b"\x03\x00\x00\x2c\x27\xe0\x00\x00\x00\x00\x00Cookie: mstshash=eltons\r\n\x01\x00\x08\x00\x01\x00\x00\x00";
    /// [MS-RDPBCGR] 4.1.2 Server X.224 Connection Confirm PDU: RDP_NEG_RSP selecting TLS.
    const CC: &[u8] =
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x01\x00\x00\x00";

    fn run(c2s: &[u8], s2c: &[u8], sport: u16, last: bool) -> Verdict {
        crate::classify::testing::run(detect, 6, &[c2s], &[s2c], (50000, sport), last)
    }

    #[test]
    fn spec_example_connection_request_and_confirm() {
        // TLS was selected: its handshake is waited for (the flow is RDP already).
        assert!(matches!(run(CR, CC, 3389, false), Verdict::Claim));
        match run(CR, CC, 3389, true) {
            Verdict::Yes(c) => {
                let m = c.extra.meta.rdp.clone().unwrap();
                assert_eq!(m.cookie.as_deref(), Some("eltons"));
                assert_eq!(m.requested, vec!["tls"]);
                assert_eq!(m.selected.as_deref(), Some("tls"));
                assert!(c.extra.weak.is_none());
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_tls_handshake_after_the_negotiation_is_read() {
        let hello = crate::classify::tls::tests::client_hello("rdp.example", &[]);
        let c2s = [CR, &hello].concat();
        // The client's hello in, the server's answer still to come.
        assert!(matches!(run(&c2s, CC, 3389, false), Verdict::Claim));
        // The server's side goes no further (the end of the capture): RDP, with the
        // ClientHello's fields for the output thread to read.
        match run(&c2s, CC, 3389, true) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Rdp));
                assert_eq!(c.evidence[0].rule, "setten.rdp.x224-cookie");
                assert_eq!(
                    c.extra.meta.rdp.clone().unwrap().cookie.as_deref(),
                    Some("eltons")
                );
                let tls = c.extra.meta.tls.clone().unwrap();
                assert_eq!(tls.sni.as_deref(), Some("rdp.example"));
                assert!(tls.ja4.unwrap().starts_with("t13d"));
            }
            v => panic!("{v:?}"),
        }
        // Bytes after the negotiation that are no TLS leave the RDP classification as
        // it is.
        let odd = [CR, b"\x30\x82\x01\x00 not a TLS record"].concat();
        match run(&odd, CC, 3389, false) {
            Verdict::Yes(c) => {
                assert!(c.deferred.is_none() && c.extra.meta.tls.is_none());
                assert_eq!(c.service, Some(Service::Rdp));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn legacy_confirm_is_standard_security() {
        let cc_legacy = b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x12\x34\x00";
        match run(CR, cc_legacy, 13389, false) {
            Verdict::Yes(c) => assert_eq!(c.extra.weak.as_deref(), Some("rdp standard security")),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn iso_on_tcp_with_tsaps_is_not_rdp() {
        // S7comm COTP CR with calling/called TSAP parameters (0xc1, 0xc2, 0xc0), port 102.
        let cotp = b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc1\x02\x01\x00\xc2\x02\x01\x02\xc0\x01\x0a";
        assert!(matches!(run(cotp, b"", 102, true), Verdict::No));
    }

    #[test]
    fn bare_cr_needs_the_standard_port() {
        let bare = b"\x03\x00\x00\x0b\x06\xe0\x00\x00\x00\x00\x00";
        assert!(matches!(run(bare, b"", 3389, true), Verdict::Yes(_)));
        assert!(matches!(run(bare, b"", 4000, true), Verdict::No));
    }

    #[test]
    fn rdp_udp_syn() {
        let mut d = vec![0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x00, 0x01];
        d.extend_from_slice(&[0, 0, 0, 1, 0x04, 0xd0, 0x04, 0xd0]);
        d.resize(1232, 0);
        let rules = Rules::defaults().unwrap();
        let mut a = Stream::default();
        a.add_datagram(&d);
        let b = Stream::default();
        let v = detect(&Cx {
            proto: 17,
            client_port: 50000,
            server_port: 3389,
            c2s: &a,
            s2c: &b,
            last: false,
            rules: &rules,
        });
        assert!(matches!(v, Verdict::Yes(_)));
    }

    fn run_udp(c2s: &[Vec<u8>], s2c: &[Vec<u8>], sport: u16, last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, 17, &c, &s, (51652, sport), last)
    }

    /// A datagram after the SYN: RDPUDP_FEC_HEADER (snSourceAck, uReceiveWindowSize 64,
    /// uFlags ACK|DATA) and an encrypted-looking body.
    fn fec(ack: u32, len: usize) -> Vec<u8> {
        let mut d = ack.to_be_bytes().to_vec();
        d.extend_from_slice(&[0x00, 0x40, 0x00, 0x0c]);
        d.extend((0..len.saturating_sub(8)).map(|i| (i * 31 + 7) as u8));
        d
    }

    #[test]
    fn rdp_udp_session_after_its_syn_on_the_standard_port() {
        let c2s = vec![fec(0x2f41_0a10, 64), fec(0x2f41_0a13, 384)];
        let s2c = vec![fec(0x77c0_1e02, 120), fec(0x77c0_1e04, 90)];
        match run_udp(&c2s, &s2c, 3389, false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Rdp));
                assert_eq!(c.evidence[0].rule, "setten.rdp.udp-session");
                assert!(c.evidence[0].value.contains("c2s 2f410a s2c 77c01e"));
                assert!(c.extra.meta.rdp.clone().unwrap().udp);
            }
            v => panic!("{v:?}"),
        }
        // One datagram each way: not yet; and not at the end.
        let one = (vec![c2s[0].clone()], vec![s2c[0].clone()]);
        assert!(matches!(
            run_udp(&one.0, &one.1, 3389, false),
            Verdict::Wait
        ));
        assert!(matches!(run_udp(&one.0, &one.1, 3389, true), Verdict::No));
        // Off the standard port there is no SYN to go by.
        assert!(matches!(run_udp(&c2s, &s2c, 3390, false), Verdict::No));
        // Datagrams whose heads differ (random or encrypted payloads) are not RDP.
        let mut x = 0x1234_5678u32;
        let mut rnd = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
        let (a, b) = (vec![rnd(80), rnd(80)], vec![rnd(80), rnd(80)]);
        assert!(matches!(run_udp(&a, &b, 3389, false), Verdict::No));
        // So are runts.
        assert!(matches!(
            run_udp(&[fec(1, 8), fec(1, 8)], &s2c, 3389, false),
            Verdict::No
        ));
    }

    /// tests/fixtures/rdp/routing-token.pcap (xfreerdp 2.11.7 with
    /// `/load-balance-info:` to xrdp 0.9.21): a Connection Request with a routing token
    /// instead of the cookie, then RDP_NEG_REQ for TLS and CredSSP; the Confirm selects TLS.
    const CR_TOKEN: &[u8] = b"\x03\x00\x00\x4c\x47\xe0\x00\x00\x00\x00\x00tsv://VMResource.1.3f2504e0-4f89-11d3-9a0c-0305e82c3301\r\n\x01\x00\x08\x00\x03\x00\x00\x00";
    const CC_TLS: &[u8] =
        b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x01\x08\x00\x01\x00\x00\x00";

    #[test]
    fn routing_token_instead_of_cookie() {
        for port in [3389, 13389] {
            match run(CR_TOKEN, CC_TLS, port, true) {
                Verdict::Yes(c) => {
                    assert_eq!(c.evidence[0].rule, "setten.rdp.neg-req");
                    assert_eq!(c.evidence[1].rule, "setten.rdp.routing-token");
                    let m = c.extra.meta.rdp.clone().unwrap();
                    assert_eq!(
                        m.routing_token.as_deref(),
                        Some("tsv://VMResource.1.3f2504e0-4f89-11d3-9a0c-0305e82c3301")
                    );
                    assert_eq!(m.cookie, None);
                    assert_eq!(m.requested, vec!["tls", "credssp"]);
                    assert_eq!(m.selected.as_deref(), Some("tls"));
                }
                v => panic!("{port}: {v:?}"),
            }
        }
    }

    #[test]
    fn a_token_line_must_be_text_ended_by_crlf() {
        // The same request with a control byte in the token, or without its CR LF.
        let mut bad = CR_TOKEN.to_vec();
        bad[20] = 0x01;
        assert!(matches!(run(&bad, CC_TLS, 3389, false), Verdict::No));
        let no_crlf: Vec<u8> = CR_TOKEN.iter().copied().filter(|&b| b != b'\r').collect();
        assert!(matches!(run(&no_crlf, CC_TLS, 3389, false), Verdict::No));
        // A token alone, with a legacy Confirm, is RDP on 3389 only.
        let cr = b"\x03\x00\x00\x1a\x15\xe0\x00\x00\x00\x00\x00tsv://abc.1.x\r\n";
        let cc = b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x12\x34\x00";
        assert!(matches!(run(cr, cc, 3389, false), Verdict::Yes(_)));
        assert!(matches!(run(cr, cc, 102, false), Verdict::No));
    }
}
