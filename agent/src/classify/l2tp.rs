//! L2TP over UDP: L2TPv2 (RFC 2661) and L2TPv3 (RFC 3931).
//!
//! Promise: `Yes` for a control message whose header is self-consistent — T, L and S set,
//! O and P clear, version 2 or 3, a length field equal to the datagram's length — and
//! whose first AVP is the Message Type AVP (mandatory bit set, not hidden, length 8,
//! vendor 0, attribute 0) with a defined message type (RFC 2661 section 4.4.1; RFC 3931
//! section 5.4.1). Zero-length-body acknowledgements only count alongside such a message.
//! Data messages (T clear; L2TPv2's carry PPP, L2TPv3's a pseudowire) are structurally
//! weak: they count only on UDP 1701 and when both directions keep one tunnel/session
//! pair (L2TPv2) or session id (L2TPv3).
//!
//! The Host Name and Vendor Name AVPs of each end's SCCRQ or SCCRP, where not hidden, are
//! evidence (who dialled, with what): the first control message waits a little for the
//! other end's (a claim, see [`Verdict::Claim`]).
//!
//! L2TPv3 directly over IP (protocol 115, RFC 3931 section 4.1.1) is named from its first
//! packet ([`over_ip`]): a control message (session id 0, then the control header as over
//! UDP) with the checks above, or a data message of a session. IANA gives protocol 115 to
//! L2TP alone, as it gives 50 to ESP.
//! L2TP inside IPsec (the usual Windows/macOS setup) is ESP and is the IPsec detector's.

use super::{util, Classification, Cx, Evidence, Service, Verdict};

/// Header flag bits of the first byte (RFC 2661 section 3.1, RFC 3931 section 4.1.2.1).
const FLAG_T: u8 = 0x80;
/// Length field present.
const FLAG_L: u8 = 0x40;
/// Ns/Nr present.
const FLAG_S: u8 = 0x08;
/// Offset size present (L2TPv2 data only).
const FLAG_O: u8 = 0x02;
/// Priority (L2TPv2 data only).
const FLAG_P: u8 = 0x01;
/// Version nibble of the second byte.
const VERSION_MASK: u8 = 0x0f;
/// L2TPv2 (RFC 2661).
const VERSION_2: u8 = 2;
/// L2TPv3 (RFC 3931).
const VERSION_3: u8 = 3;
/// Control header: flags/version, length, tunnel+session (v2) or control connection id
/// (v3), Ns, Nr — 12 bytes for both versions.
const CONTROL_HEADER_LEN: usize = 12;
/// AVP header: M/H/length, vendor id, attribute type (RFC 2661 section 4.1).
const AVP_HEADER_LEN: usize = 6;
/// Mandatory bit of an AVP.
const AVP_MANDATORY: u16 = 0x8000;
/// Hidden bit of an AVP.
const AVP_HIDDEN: u16 = 0x4000;
/// AVP length: the low 10 bits.
const AVP_LENGTH_MASK: u16 = 0x03ff;
/// Message Type AVP: attribute 0, 2-byte value, so length 8 (RFC 2661 section 4.4.1).
const MESSAGE_TYPE_AVP_LEN: u16 = 8;
/// Host Name AVP: the sender's name (RFC 2661 section 4.4.2; RFC 3931 section 5.4.3
/// keeps the number).
const AVP_HOST_NAME: u16 = 7;
/// Vendor Name AVP: the sender's implementation (RFC 2661 section 4.4.2; RFC 3931
/// section 5.4.3).
const AVP_VENDOR_NAME: u16 = 8;
/// Start-Control-Connection-Request and -Reply, which carry both names.
const SCCRQ: u16 = 1;
const SCCRP: u16 = 2;
/// Messages of one side waited through for the other side's first, whose names the
/// evidence gives too (a LAC retransmits an unanswered SCCRQ).
const MAX_UNANSWERED: usize = 3;
/// Bytes of a name AVP kept as evidence.
const MAX_NAME_LEN: usize = 64;
/// L2TP's port (tie-breaker for data messages only).
const PORT_L2TP: u16 = 1701;
/// Data messages needed per direction for the port-assisted rule.
const MIN_DATA_PER_DIRECTION: usize = 2;

/// Message type name, or `None` when it is not defined for the version.
/// L2TPv2: RFC 2661 section 3.2 (5 and 13 are reserved). L2TPv3 adds ACK (20,
/// RFC 3931 section 3.3).
fn message_name(version: u8, t: u16) -> Option<&'static str> {
    let name = match t {
        1 => "SCCRQ",
        2 => "SCCRP",
        3 => "SCCCN",
        4 => "StopCCN",
        6 => "HELLO",
        7 => "OCRQ",
        8 => "OCRP",
        9 => "OCCN",
        10 => "ICRQ",
        11 => "ICRP",
        12 => "ICCN",
        14 => "CDN",
        15 => "WEN",
        16 => "SLI",
        20 if version == VERSION_3 => "ACK",
        _ => return None,
    };
    Some(name)
}

/// One classified datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// Control message with its Message Type AVP.
    Control { version: u8, message_type: u16 },
    /// Zero-length-body control acknowledgement.
    Zlb { version: u8 },
    /// Data message: its version, and its tunnel and session ids (L2TPv2) or its
    /// session id (L2TPv3).
    Data { version: u8, ids: u32 },
}

/// Parses one datagram. `cut` says the flow table may have truncated it.
fn parse(d: &[u8], cut: bool) -> Option<Message> {
    let flags = *d.first()?;
    let version = *d.get(1)? & VERSION_MASK;
    if version != VERSION_2 && version != VERSION_3 {
        return None;
    }
    if flags & FLAG_T == 0 {
        return if version == VERSION_2 {
            parse_data_v2(d, flags)
        } else {
            parse_data_v3(d)
        };
    }
    // Control: L and S must be 1, O and P 0 (RFC 2661 section 3.1; RFC 3931 4.1.2.1).
    if flags & (FLAG_L | FLAG_S) != FLAG_L | FLAG_S || flags & (FLAG_O | FLAG_P) != 0 {
        return None;
    }
    let len = usize::from(util::be16(d, 2)?);
    if len < CONTROL_HEADER_LEN || !(len == d.len() || (cut && len > d.len())) {
        return None;
    }
    if len == CONTROL_HEADER_LEN {
        return Some(Message::Zlb { version });
    }
    let off = CONTROL_HEADER_LEN;
    let avp_flags = util::be16(d, off)?;
    let vendor = util::be16(d, off + 2)?;
    let attr = util::be16(d, off + 4)?;
    if avp_flags & AVP_MANDATORY == 0
        || avp_flags & AVP_HIDDEN != 0
        || avp_flags & AVP_LENGTH_MASK != MESSAGE_TYPE_AVP_LEN
        || vendor != 0
        || attr != 0
    {
        return None;
    }
    let message_type = util::be16(d, off + AVP_HEADER_LEN)?;
    message_name(version, message_type)?;
    Some(Message::Control {
        version,
        message_type,
    })
}

/// The Host Name and Vendor Name of a control message whose AVPs are in clear (neither
/// hidden nor vendor-specific), read up to its length field: `[host, vendor]`.
fn names(d: &[u8]) -> [Option<String>; 2] {
    let mut out = [None, None];
    let len = util::be16(d, 2).map_or(0, usize::from).min(d.len());
    let mut off = CONTROL_HEADER_LEN;
    while let (Some(flags), Some(vendor), Some(attr)) = (
        util::be16(d, off),
        util::be16(d, off + 2),
        util::be16(d, off + 4),
    ) {
        let n = usize::from(flags & AVP_LENGTH_MASK);
        let Some(value) = d
            .get(off + AVP_HEADER_LEN..off + n)
            .filter(|_| n >= AVP_HEADER_LEN && off + n <= len)
        else {
            break;
        };
        let slot = match attr {
            AVP_HOST_NAME => out.get_mut(0),
            AVP_VENDOR_NAME => out.get_mut(1),
            _ => None,
        };
        if let Some(slot) = slot.filter(|_| flags & AVP_HIDDEN == 0 && vendor == 0) {
            let text = util::printable(value.get(..MAX_NAME_LEN).unwrap_or(value));
            let text = text.trim();
            if !text.is_empty() {
                *slot = Some(text.to_owned());
            }
        }
        off += n;
    }
    out
}

/// L2TPv2 data header (RFC 2661 section 3.1): optional length, tunnel, session,
/// optional Ns/Nr and offset.
fn parse_data_v2(d: &[u8], flags: u8) -> Option<Message> {
    // Bits other than T, L, S, O, P are reserved and zero; so is the rest of byte 1.
    if flags & !(FLAG_T | FLAG_L | FLAG_S | FLAG_O | FLAG_P) != 0 || d.get(1)? & 0xf0 != 0 {
        return None;
    }
    let mut off = 2;
    if flags & FLAG_L != 0 {
        if usize::from(util::be16(d, off)?) != d.len() {
            return None;
        }
        off += 2;
    }
    let tunnel = util::be16(d, off)?;
    let session = util::be16(d, off + 2)?;
    off += 4;
    if flags & FLAG_S != 0 {
        off += 4;
    }
    if flags & FLAG_O != 0 {
        off = off.checked_add(2 + usize::from(util::be16(d, off)?))?;
    }
    // Some PPP frame must follow.
    (d.len() > off).then_some(Message::Data {
        version: VERSION_2,
        ids: (u32::from(tunnel) << 16) | u32::from(session),
    })
}

/// L2TPv3 data header over UDP (RFC 3931 section 4.1.2.1): T clear and the other eleven
/// flag bits reserved (zero), version 3, two reserved bytes, then a session id that is
/// never 0 (0 is the control connection's); the cookie and pseudowire follow.
fn parse_data_v3(d: &[u8]) -> Option<Message> {
    let (&[0x00, 0x03, 0x00, 0x00, a, b, c, e], rest) = d.split_first_chunk::<8>()? else {
        return None;
    };
    let session = u32::from_be_bytes([a, b, c, e]);
    (session != 0 && !rest.is_empty()).then_some(Message::Data {
        version: VERSION_3,
        ids: session,
    })
}

/// Names an L2TPv3-over-IP flow from its first packet's IP payload (RFC 3931 section
/// 4.1.1.1-4.1.1.2): a 32-bit session id; 0 marks a control message, whose header and
/// Message Type AVP must pass the checks of L2TPv3 over UDP (the length counts from the
/// flags, not the session id). Anything else is a session's data.
pub fn over_ip(payload: &[u8]) -> Option<Classification> {
    let (session, rest) = payload.split_first_chunk::<4>()?;
    let session = u32::from_be_bytes(*session);
    let (rule, field, value) = if session == 0 {
        match parse(rest, true)? {
            Message::Control {
                version: VERSION_3,
                message_type,
            } => (
                "setten.l2tp.control",
                "l2tp.message_type",
                format!(
                    "L2TPv3 {} ({message_type}) over IP",
                    message_name(VERSION_3, message_type).unwrap_or("?")
                ),
            ),
            Message::Zlb { version: VERSION_3 } => (
                "setten.l2tp.control",
                "l2tp.message_type",
                "L2TPv3 acknowledgement (ZLB) over IP".to_string(),
            ),
            _ => return None,
        }
    } else {
        if rest.is_empty() {
            return None;
        }
        (
            "setten.l2tp.ip",
            "ip.protocol",
            format!("115 (L2TPv3 data, session {session:#010x})"),
        )
    };
    let mut c = Classification::new("l2tp", Some(Service::L2tp), rule, field, value);
    c.extra.meta.version = Some("L2TPv3".into());
    Some(c)
}

/// Detects L2TP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    const CUT: usize = crate::flow::reassembly::MAX_DATAGRAM;
    let side =
        |s| -> Option<Vec<Message>> { cx.datagrams(s).map(|d| parse(d, d.len() >= CUT)).collect() };
    let (Some(a), Some(b)) = (side(cx.c2s), side(cx.s2c)) else {
        return Verdict::No;
    };
    if a.is_empty() && b.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    if let Some((version, t)) = a.iter().chain(&b).find_map(|m| match *m {
        Message::Control {
            version,
            message_type,
        } => Some((version, message_type)),
        _ => None,
    }) {
        if (a.is_empty() || b.is_empty()) && a.len() + b.len() < MAX_UNANSWERED && !cx.last {
            // Certainly L2TP: wait for the other side's SCCRP (or SCCRQ) and its names.
            return Verdict::Claim;
        }
        let name = message_name(version, t).unwrap_or("?");
        let mut c = Classification::new(
            "l2tp",
            Some(Service::L2tp),
            "setten.l2tp.control",
            "l2tp.message_type",
            format!("L2TPv{version} {name} ({t}), length matches the datagram"),
        );
        c.extra.meta.version = Some(format!("L2TPv{version}"));
        // Who the ends say they are: the first SCCRQ or SCCRP of each direction.
        for (side, s, msgs) in [("client", cx.c2s, &a), ("server", cx.s2c, &b)] {
            let start = cx.datagrams(s).zip(msgs.iter()).find(|(_, m)| {
                matches!(m, Message::Control { message_type, .. } if matches!(*message_type, SCCRQ | SCCRP))
            });
            let Some((d, _)) = start else { continue };
            let [host, vendor] = names(d);
            if let Some(h) = host {
                c.evidence.push(Evidence::new(
                    "setten.l2tp.host-name",
                    format!("l2tp.{side}.host_name"),
                    h,
                ));
            }
            if let Some(v) = vendor {
                c.evidence.push(Evidence::new(
                    "setten.l2tp.vendor-name",
                    format!("l2tp.{side}.vendor_name"),
                    v,
                ));
            }
        }
        return Verdict::Yes(c);
    }
    // Data only (or ZLBs): the port must agree and each direction keep one session.
    let run = |msgs: &[Message]| -> Option<(usize, Option<(u8, u32)>)> {
        let mut ids = None;
        let mut n = 0;
        for m in msgs {
            if let Message::Data { version, ids: id } = *m {
                if ids.is_some_and(|x| x != (version, id)) {
                    return None;
                }
                ids = Some((version, id));
                n += 1;
            }
        }
        Some((n, ids))
    };
    let (Some((na, ia)), Some((nb, ib))) = (run(&a), run(&b)) else {
        return Verdict::No;
    };
    let version = ia.or(ib).map_or(VERSION_2, |(v, _)| v);
    if cx.port_is(PORT_L2TP)
        && na >= MIN_DATA_PER_DIRECTION
        && nb >= MIN_DATA_PER_DIRECTION
        && ia.map(|(v, _)| v) == ib.map(|(v, _)| v)
    {
        let what = if version == VERSION_2 {
            "tunnel/session"
        } else {
            "session"
        };
        let mut c = Classification::new(
            "l2tp",
            Some(Service::L2tp),
            "setten.l2tp.data-port",
            "l2tp.session",
            format!("L2TPv{version} data messages both ways on one {what}, UDP 1701"),
        );
        c.extra.meta.version = Some(format!("L2TPv{version}"));
        return Verdict::Yes(c);
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[Vec<u8>], s2c: &[Vec<u8>], ports: (u16, u16), last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, &c, &s, ports, last)
    }

    /// SCCRQ as RFC 2661 sections 3.1, 4.1, 4.4.1 and 6.1 lay it out: flags 0xc802,
    /// length, tunnel 0, session 0, Ns 0, Nr 0; Message Type AVP (0x8008, vendor 0,
    /// type 0, value 1); Protocol Version AVP (0x8008, 0, 2, 0x0100).
    fn sccrq_v2() -> Vec<u8> {
        let mut m = vec![0xc8, 0x02, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        m.extend([0x80, 0x08, 0, 0, 0, 0, 0, 1]);
        m.extend([0x80, 0x08, 0, 0, 0, 2, 1, 0]);
        let len = u16::try_from(m.len()).unwrap().to_be_bytes();
        m[2..4].copy_from_slice(&len);
        m
    }

    /// SCCRQ over UDP per RFC 3931 section 4.1.2.1: version 3 and a 32-bit control
    /// connection id of 0 in place of tunnel/session.
    fn sccrq_v3() -> Vec<u8> {
        let mut m = sccrq_v2();
        m[1] = 0x03;
        m
    }

    #[test]
    fn sccrq_v2_and_v3_are_yes() {
        for (m, v) in [(sccrq_v2(), "L2TPv2"), (sccrq_v3(), "L2TPv3")] {
            // Certainly L2TP at once; named with the reply, or alone at the end.
            assert!(matches!(
                run(std::slice::from_ref(&m), &[], (1701, 1701), false),
                Verdict::Claim
            ));
            match run(&[m], &[], (1701, 1701), true) {
                Verdict::Yes(c) => {
                    assert_eq!(c.service, Some(Service::L2tp));
                    assert_eq!(c.extra.meta.version.as_deref(), Some(v));
                    assert!(c.evidence[0].value.contains("SCCRQ"));
                }
                x => panic!("{x:?}"),
            }
        }
        // Three unanswered SCCRQs (retransmissions) need not wait for the end.
        let m = sccrq_v2();
        assert!(matches!(
            run(&[m.clone(), m.clone(), m], &[], (1701, 1701), false),
            Verdict::Yes(_)
        ));
    }

    /// Appends an AVP (flags with the length, vendor 0) and fixes the length field.
    fn with_avp(mut m: Vec<u8>, flags: u16, attr: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(AVP_HEADER_LEN + value.len()).unwrap();
        m.extend((flags | len).to_be_bytes());
        m.extend([0, 0]);
        m.extend(attr.to_be_bytes());
        m.extend_from_slice(value);
        let total = u16::try_from(m.len()).unwrap().to_be_bytes();
        m[2..4].copy_from_slice(&total);
        m
    }

    #[test]
    fn host_and_vendor_names_of_both_ends_are_evidence() {
        // SCCRQ of xl2tpd as a LAC; the LNS's SCCRP hides its host name (H bit: the
        // value is encrypted) and names its vendor.
        let rq = with_avp(sccrq_v2(), AVP_MANDATORY, AVP_HOST_NAME, b"lac-01");
        let rq = with_avp(rq, 0, AVP_VENDOR_NAME, b"xelerance.com");
        let mut rp = sccrq_v2();
        rp[19] = 2;
        let rp = with_avp(
            rp,
            AVP_MANDATORY | AVP_HIDDEN,
            AVP_HOST_NAME,
            b"\x8a\x01secret",
        );
        let rp = with_avp(rp, 0, AVP_VENDOR_NAME, b"Cisco Systems, Inc.");
        let Verdict::Yes(c) = run(std::slice::from_ref(&rq), &[rp], (1701, 1701), false) else {
            panic!("not named");
        };
        let ev: Vec<(&str, &str)> = c
            .evidence
            .iter()
            .skip(1)
            .map(|e| (e.field.as_ref(), e.value.as_str()))
            .collect();
        assert_eq!(
            ev,
            [
                ("l2tp.client.host_name", "lac-01"),
                ("l2tp.client.vendor_name", "xelerance.com"),
                ("l2tp.server.vendor_name", "Cisco Systems, Inc."),
            ]
        );
        // An AVP running past the message ends the walk: what came before is kept.
        let mut long = with_avp(rq, 0, AVP_HOST_NAME, b"later");
        let n = long.len();
        long[n - 11] |= 0x03;
        assert_eq!(
            names(&long),
            [Some("lac-01".into()), Some("xelerance.com".into())]
        );
    }

    #[test]
    fn broken_headers_are_no() {
        let mut len = sccrq_v2();
        len.push(0);
        assert!(matches!(run(&[len], &[], (1701, 1701), false), Verdict::No));
        let mut hidden = sccrq_v2();
        hidden[12] |= 0x40;
        assert!(matches!(
            run(&[hidden], &[], (1701, 1701), false),
            Verdict::No
        ));
        let mut reserved_type = sccrq_v2();
        reserved_type[19] = 5;
        assert!(matches!(
            run(&[reserved_type], &[], (1701, 1701), false),
            Verdict::No
        ));
        let mut no_seq = sccrq_v2();
        no_seq[0] = 0xc0;
        assert!(matches!(
            run(&[no_seq], &[], (1701, 1701), false),
            Verdict::No
        ));
    }

    #[test]
    fn zlb_alone_waits() {
        let zlb = vec![0xc8, 0x02, 0x00, 0x0c, 0, 1, 0, 0, 0, 1, 0, 1];
        assert!(matches!(
            run(std::slice::from_ref(&zlb), &[], (1701, 1701), false),
            Verdict::Wait
        ));
        assert!(matches!(run(&[zlb], &[], (1701, 1701), true), Verdict::No));
    }

    #[test]
    fn data_messages_need_port_and_constant_session() {
        // L2TPv2 data, no optional fields: 0x0002, tunnel 5, session 9, PPP ff03 c021 ...
        let d = |t: u16| {
            let mut m = vec![0x00, 0x02];
            m.extend(t.to_be_bytes());
            m.extend(9u16.to_be_bytes());
            m.extend([0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]);
            m
        };
        let c = vec![d(5), d(5)];
        let s = vec![d(7), d(7)];
        assert!(matches!(run(&c, &s, (1701, 1701), false), Verdict::Yes(_)));
        assert!(matches!(run(&c, &s, (1702, 40000), true), Verdict::No));
        assert!(matches!(
            run(&[d(5), d(6)], &s, (1701, 1701), false),
            Verdict::No
        ));
    }

    #[test]
    fn l2tpv3_data_over_udp_needs_port_and_constant_session() {
        // RFC 3931 section 4.1.2.1: 0x0003, reserved 0x0000, session id, then (no cookie)
        // the Ethernet pseudowire.
        let d = |session: u32| {
            let mut m = vec![0x00, 0x03, 0x00, 0x00];
            m.extend(session.to_be_bytes());
            m.extend([0xff; 14]);
            m
        };
        let c = vec![d(0x1234_5678), d(0x1234_5678)];
        let s = vec![d(0x0bad_cafe), d(0x0bad_cafe)];
        match run(&c, &s, (1701, 1701), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.extra.meta.version.as_deref(), Some("L2TPv3"));
                assert!(
                    c.evidence[0].value.contains("L2TPv3 data"),
                    "{:?}",
                    c.evidence
                );
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(run(&c, &s, (1702, 40000), true), Verdict::No));
        // Session 0 is the control connection's; a changing session; reserved bits set.
        assert!(matches!(
            run(&[d(0), d(0)], &s, (1701, 1701), true),
            Verdict::No
        ));
        assert!(matches!(
            run(&[d(1), d(2)], &s, (1701, 1701), true),
            Verdict::No
        ));
        let mut bad = d(1);
        bad[2] = 1;
        assert!(matches!(
            run(&[bad.clone(), bad], &s, (1701, 1701), true),
            Verdict::No
        ));
    }

    #[test]
    fn l2tpv3_over_ip_is_named_from_its_first_packet() {
        // Control: session id 0, then the SCCRQ exactly as over UDP (RFC 3931 4.1.1.2).
        let mut sccrq = vec![0, 0, 0, 0];
        sccrq.extend(sccrq_v3());
        let c = over_ip(&sccrq).expect("SCCRQ over IP");
        assert_eq!((c.service, c.protocol), (Some(Service::L2tp), "l2tp"));
        assert_eq!(c.evidence[0].value, "L2TPv3 SCCRQ (1) over IP");
        assert_eq!(c.extra.meta.version.as_deref(), Some("L2TPv3"));
        // Cut by the snap length: still the control message.
        assert!(over_ip(&sccrq[..sccrq.len() - 4]).is_some());
        // A ZLB acknowledgement.
        let zlb = [0, 0, 0, 0, 0xc8, 0x03, 0x00, 0x0c, 0, 0, 0, 1, 0, 1, 0, 1];
        assert!(over_ip(&zlb).is_some());
        // Data: a session id, then the pseudowire.
        let mut data = vec![0x00, 0x00, 0x10, 0x01];
        data.extend([0xaa; 18]);
        let c = over_ip(&data).expect("data");
        assert_eq!(c.evidence[0].value, "115 (L2TPv3 data, session 0x00001001)");
        // Not a control message of L2TPv3 (an L2TPv2 header, a broken AVP), or nothing
        // after the session id.
        let mut v2 = vec![0, 0, 0, 0];
        v2.extend(sccrq_v2());
        assert!(over_ip(&v2).is_none());
        let mut broken = sccrq.clone();
        broken[4 + 12] = 0x00;
        assert!(over_ip(&broken).is_none());
        assert!(over_ip(&[0, 0, 0, 1]).is_none());
        assert!(over_ip(&[0, 0]).is_none());
    }

    #[test]
    fn other_protocols_are_no() {
        // NTP client request (RFC 5905 section 7.3): first byte 0x23.
        let mut ntp = vec![0x23, 0x02, 0x06, 0xe8];
        ntp.resize(48, 0);
        assert!(matches!(run(&[ntp], &[], (123, 123), false), Verdict::No));
        let mut x = 7u32;
        for len in 0..64 {
            let r: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse(&r, false);
            assert!(!matches!(run(&[r], &[], (1, 2), true), Verdict::Yes(_)));
        }
    }
}
