//! PPTP control connection (RFC 2637 section 2), a legacy VPN: classified `weak`.
//!
//! Promise: `Yes` when a direction opens with a complete PPTP control message — length,
//! PPTP message type 1 (control), the magic cookie 0x1A2B3C4D and a defined control
//! message type — that is the Start-Control-Connection-Request from the client or the
//! Start-Control-Connection-Reply from the server, each with its fixed length of 156
//! bytes. The cookie and the two length checks make a chance match negligible. The host
//! name and vendor strings of the request/reply are reported as evidence.
//!
//! The calls' data travel in enhanced GRE (RFC 2637 section 4.1), which nothing but PPTP
//! uses: [`gre`] names such an IP protocol 47 flow from its first packet's header.

use super::{util, Classification, Cx, Evidence, Service, Verdict};

/// PPTP message type "control message" (RFC 2637 section 2).
const PPTP_MESSAGE_CONTROL: u16 = 1;
/// Magic cookie (RFC 2637 section 2).
const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// Start-Control-Connection-Request (RFC 2637 section 2.1).
const CTRL_SCCRQ: u16 = 1;
/// Start-Control-Connection-Reply (RFC 2637 section 2.2).
const CTRL_SCCRP: u16 = 2;
/// Highest control message type defined (Set-Link-Info, RFC 2637 section 2).
const CTRL_MAX: u16 = 15;
/// Length of SCCRQ and SCCRP (RFC 2637 sections 2.1 and 2.2).
const SCC_LEN: usize = 156;
/// Common header: length, message type, cookie, control type, reserved.
const HEADER_LEN: usize = 12;
/// Offset of the protocol version in SCCRQ/SCCRP.
const OFF_VERSION: usize = 12;
/// Offset and size of the 64-byte host name in SCCRQ/SCCRP.
const OFF_HOST_NAME: usize = 28;
/// Offset of the 64-byte vendor string.
const OFF_VENDOR: usize = 92;
/// Size of the host name and vendor fields.
const NAME_FIELD_LEN: usize = 64;
/// Protocol version 1.0 (RFC 2637 section 2.1).
const PROTOCOL_VERSION_1_0: u16 = 0x0100;

/// A parsed Start-Control-Connection message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scc {
    control_type: u16,
    version: u16,
    host_name: String,
    vendor: String,
}

/// Reads a NUL-padded text field as printable ASCII.
fn text_field(b: &[u8], off: usize) -> String {
    let f = b.get(off..off + NAME_FIELD_LEN).unwrap_or(&[]);
    let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
    util::printable(f.get(..end).unwrap_or(&[]))
        .trim()
        .to_owned()
}

/// Checks the common header of the first control message of a direction. `Err(())`
/// means the bytes are not PPTP; `Ok(None)` that more bytes are needed.
fn parse_first(b: &[u8]) -> Result<Option<Scc>, ()> {
    let need = |v: Option<u16>| v.ok_or(());
    if b.len() < HEADER_LEN {
        // Check what is there already.
        if let Some(len) = util::be16(b, 0) {
            if usize::from(len) != SCC_LEN {
                return Err(());
            }
        }
        if let Some(t) = util::be16(b, 2) {
            if t != PPTP_MESSAGE_CONTROL {
                return Err(());
            }
        }
        return Ok(None);
    }
    let len = usize::from(need(util::be16(b, 0))?);
    let msg_type = need(util::be16(b, 2))?;
    let cookie = util::be32(b, 4).ok_or(())?;
    let ctrl = need(util::be16(b, 8))?;
    if msg_type != PPTP_MESSAGE_CONTROL || cookie != MAGIC_COOKIE || ctrl == 0 || ctrl > CTRL_MAX {
        return Err(());
    }
    if !(ctrl == CTRL_SCCRQ || ctrl == CTRL_SCCRP) || len != SCC_LEN {
        return Err(());
    }
    if b.len() < SCC_LEN {
        return Ok(None);
    }
    Ok(Some(Scc {
        control_type: ctrl,
        version: need(util::be16(b, OFF_VERSION))?,
        host_name: text_field(b, OFF_HOST_NAME),
        vendor: text_field(b, OFF_VENDOR),
    }))
}

/// Detects PPTP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let (c, s) = (cx.c2s.bytes(), cx.s2c.bytes());
    if c.is_empty() && s.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let pc = if c.is_empty() {
        Ok(None)
    } else {
        parse_first(c)
    };
    let ps = if s.is_empty() {
        Ok(None)
    } else {
        parse_first(s)
    };
    let (Ok(pc), Ok(ps)) = (pc, ps) else {
        return Verdict::No;
    };
    // The request comes from the client, the reply from the server.
    if pc.as_ref().is_some_and(|m| m.control_type != CTRL_SCCRQ)
        || ps.as_ref().is_some_and(|m| m.control_type != CTRL_SCCRP)
    {
        return Verdict::No;
    }
    let Some(first) = pc.as_ref().or(ps.as_ref()) else {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    };
    let (rule, what) = if pc.is_some() {
        ("setten.pptp.sccrq", "Start-Control-Connection-Request")
    } else {
        ("setten.pptp.sccrp", "Start-Control-Connection-Reply")
    };
    let mut cl = Classification::new(
        "pptp",
        Some(Service::Pptp),
        rule,
        "pptp.magic_cookie",
        format!(
            "0x1a2b3c4d, {what}, protocol version {}.{}",
            first.version >> 8,
            first.version & 0xff
        ),
    );
    cl.extra.weak = Some("pptp".into());
    if first.version == PROTOCOL_VERSION_1_0 {
        cl.extra.meta.version = Some("1.0".into());
    }
    for (side, m) in [("client", &pc), ("server", &ps)] {
        if let Some(m) = m {
            if !m.host_name.is_empty() {
                cl.evidence.push(Evidence::new(
                    "setten.pptp.host-name",
                    format!("pptp.{side}.host_name"),
                    &m.host_name,
                ));
            }
            if !m.vendor.is_empty() {
                cl.evidence.push(Evidence::new(
                    "setten.pptp.vendor",
                    format!("pptp.{side}.vendor"),
                    &m.vendor,
                ));
            }
        }
    }
    Verdict::Yes(cl)
}

/// Names a GRE (IP protocol 47) flow from the header of one of its packets: PPTP's
/// enhanced GRE (RFC 2637 section 4.1) is version 1 with protocol type 0x880B (PPP), the
/// key present (payload length and call ID), checksum, routing, strict source route,
/// recursion control and the other flag bits all zero, and a payload length that fits
/// the packet. Plain GRE (version 0) carrying anything is not PPTP.
pub fn gre(ip_payload: &[u8]) -> Option<Classification> {
    // The header as the decoder reads it (version, protocol, key, what follows), then
    // the flag bits PPTP fixes: C R K S s Recur | A flags(4) Ver(3).
    let g = crate::decode::gre::parse(ip_payload)?;
    let (flags, ver) = (*ip_payload.first()?, *ip_payload.get(1)?);
    if flags & 0xef != 0x20 || ver & 0x7f != 0x01 || g.protocol != crate::decode::gre::PPP {
        return None;
    }
    // Enhanced GRE's key: payload length, then call id.
    let key = g.key?;
    if (key >> 16) as usize > g.payload.len() {
        return None;
    }
    let call = key & 0xffff;
    let mut cl = Classification::new(
        "gre",
        Some(Service::Pptp),
        "setten.pptp.enhanced-gre",
        "gre.header",
        format!("version 1, protocol 0x880b (PPP), call id {call}"),
    );
    cl.extra.weak = Some("pptp".into());
    Some(cl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[u8], s2c: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[c2s],
            &[s2c],
            (41366, 1723),
            last,
        )
    }

    /// Corpus ndpi-pptp.pcap frame 4 (192.168.43.22:41366 -> 191.101.61.1:1723): SCCRQ,
    /// version 1.0, framing and bearer capabilities 3, max channels 0xffff, firmware 1,
    /// host name "local", empty vendor.
    fn sccrq() -> Vec<u8> {
        let mut m = vec![
            0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0x00, 0x01,
        ];
        m.extend(b"local");
        m.resize(SCC_LEN, 0);
        m
    }

    /// Corpus ndpi-pptp.pcap frame 6: SCCRP, result code 1, host name and vendor empty.
    fn sccrp() -> Vec<u8> {
        let mut m = vec![
            0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x02, 0x00, 0x00, 0x01, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03,
        ];
        m.resize(SCC_LEN, 0);
        m
    }

    #[test]
    fn sccrq_from_corpus_is_weak_pptp() {
        match run(&sccrq(), &sccrp(), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Pptp));
                assert_eq!(c.extra.weak.as_deref(), Some("pptp"));
                assert_eq!(c.evidence[0].rule, "setten.pptp.sccrq");
                assert_eq!(c.extra.meta.version.as_deref(), Some("1.0"));
                assert!(c.evidence.iter().any(|e| e.value == "local"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn partial_request_waits_and_reply_alone_decides() {
        assert!(matches!(run(&sccrq()[..40], &[], false), Verdict::Wait));
        assert!(matches!(run(&[], &sccrp(), false), Verdict::Yes(_)));
    }

    #[test]
    fn wrong_cookie_type_or_role_is_no() {
        let mut m = sccrq();
        m[7] ^= 1;
        assert!(matches!(run(&m, &[], false), Verdict::No));
        // A reply sent by the client is not how PPTP starts.
        assert!(matches!(run(&sccrp(), &[], false), Verdict::No));
        // Outgoing-Call-Request (type 7, 168 bytes) first is not a fresh control connection.
        let mut o = sccrq();
        o[1] = 0xa8;
        o[9] = 7;
        o.resize(168, 0);
        assert!(matches!(run(&o, &[], false), Verdict::No));
    }

    #[test]
    fn other_protocols_are_no() {
        assert!(matches!(
            run(b"SSH-2.0-OpenSSH_9.6\r\n", b"", false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"", false),
            Verdict::No
        ));
        for cut in 0..sccrq().len() {
            let _ = parse_first(&sccrq()[..cut]);
        }
    }

    /// tests/fixtures/pptp.pcap frame 11 (pptp-linux 1.10.0 to pptpd 1.4.0): enhanced GRE,
    /// key and sequence present, protocol 0x880B, payload length 18, call id 0, sequence
    /// 1, then an LCP Configure-Request.
    const GRE_LCP: [u8; 30] = [
        0x30, 0x01, 0x88, 0x0b, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x03, 0xc0,
        0x21, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0xdc, 0x05, 0x06, 0xa1, 0xb2, 0xc3, 0xd4,
    ];

    #[test]
    fn enhanced_gre_from_pptp_linux_is_weak_pptp() {
        let c = gre(&GRE_LCP).expect("enhanced GRE");
        assert_eq!(c.service, Some(Service::Pptp));
        assert_eq!(c.protocol, "gre");
        assert_eq!(c.extra.weak.as_deref(), Some("pptp"));
        assert_eq!(c.evidence[0].rule, "setten.pptp.enhanced-gre");
        assert!(
            c.evidence[0].value.ends_with("call id 0"),
            "{:?}",
            c.evidence
        );
        // An acknowledgement alone: no sequence number, A set, no payload (RFC 2637
        // section 4.1).
        let ack = [0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0xe1, 0x1a, 0, 0, 0, 5];
        assert!(gre(&ack).is_some());
    }

    #[test]
    fn other_gre_is_not_pptp() {
        // Plain GRE (RFC 2784), version 0, carrying IPv4.
        assert!(gre(&[0x00, 0x00, 0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0]).is_none());
        // Version 1 with another protocol type, or a checksum or routing flag set.
        let mut m = GRE_LCP;
        m[3] = 0x0c;
        assert!(gre(&m).is_none());
        for flag in [0x80, 0x40, 0x08, 0x01] {
            let mut m = GRE_LCP;
            m[0] |= flag;
            assert!(gre(&m).is_none(), "flag {flag:#x}");
        }
        // No key (enhanced GRE always has one), or a payload longer than the packet.
        let mut m = GRE_LCP;
        m[0] &= !0x20;
        assert!(gre(&m).is_none());
        let mut m = GRE_LCP;
        m[5] = 0x13;
        assert!(gre(&m).is_none());
        for cut in 0..GRE_LCP.len() {
            assert!(gre(&GRE_LCP[..cut]).is_none(), "cut at {cut}");
        }
    }
}
