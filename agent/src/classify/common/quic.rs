//! QUIC: IETF QUIC long headers (RFC 9000 17.2, invariants RFC 8999) in versions 1, 2
//! (RFC 9369), the drafts, and Google's and Facebook's IETF-format versions; and Google
//! QUIC's client hello (Q0xx, public header with a plaintext CHLO).
//!
//! `Yes` for a client's first datagram that is an Initial packet of a known version, at
//! least 1200 bytes (RFC 9000 14.1), with a Destination Connection ID of 8..=20 bytes
//! (7.2), a Source Connection ID of at most 20, and token and length fields that fit the
//! datagram; or for a server's first datagram that answers such a client with the
//! connection IDs swapped (Initial, Retry, Handshake or Version Negotiation); or for a
//! lone server Initial of the same shape and size. Short-header packets alone are never
//! enough: they are random bytes by design.

use super::super::{Classification, Cx, Meta, Verdict};
use super::{be32, byte, finish, first_datagram, require, take, Parse};

/// Smallest datagram carrying a client Initial (RFC 9000 14.1), and a server's
/// ack-eliciting Initial.
pub const MIN_INITIAL_DATAGRAM: usize = 1200;
/// Longest connection ID in versions 1 and 2 (RFC 9000 17.2).
pub const MAX_CID_LEN: usize = 20;
/// Shortest client-chosen Destination Connection ID (RFC 9000 7.2).
pub const MIN_CLIENT_DCID_LEN: usize = 8;
/// Smallest packet Length: a packet number and the 16-byte header protection sample
/// taken 4 bytes after its start (RFC 9001 5.4.2).
pub const MIN_PACKET_LEN: u64 = 20;
/// Smallest Google QUIC client hello (Chromium `kClientHelloMinimumSize`).
pub const MIN_GQUIC_CHLO: usize = 1024;
/// Bytes searched for the gQUIC CHLO tag.
const GQUIC_CHLO_WINDOW: usize = 64;

/// QUIC version 1 (RFC 9000 15).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369 3.1).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// Version 2's draft codepoint (draft-ietf-quic-v2-01 to -08), with version 2's packet
/// types.
pub const VERSION_2_DRAFT: u32 = 0x709a_50c4;
/// Version 2's first draft (draft-ietf-quic-v2-00 3.1), which kept version 1's packet
/// types (nDPI's `quic-v2-00.pcapng` opens with a type 0 Initial).
pub const VERSION_2_DRAFT_00: u32 = 0xff02_0000;

/// Packet types of the long header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongType {
    /// Initial.
    Initial,
    /// 0-RTT.
    ZeroRtt,
    /// Handshake.
    Handshake,
    /// Retry.
    Retry,
}

/// A known IETF-format version's name, or `None`.
pub fn version_name(v: u32) -> Option<String> {
    Some(match v {
        VERSION_1 => "1".to_owned(),
        VERSION_2 => "2".to_owned(),
        VERSION_2_DRAFT => "2-draft".to_owned(),
        VERSION_2_DRAFT_00 => "2-draft-00".to_owned(),
        0xff00_0001..=0xff00_0022 => format!("draft-{}", v & 0xff),
        // Google's IETF-format versions (Chromium quic_versions.h): Q050, T050, T051.
        0x5130_3530 | 0x5430_3530 | 0x5430_3531 => {
            String::from_utf8_lossy(&v.to_be_bytes()).into_owned()
        }
        // Facebook mvfst.
        0xface_b001 | 0xface_b002 | 0xface_b00e => "mvfst".to_owned(),
        _ => return None,
    })
}

/// The long packet type from the first byte, per version (RFC 9369 3.2 swaps them).
fn long_type(first: u8, version: u32) -> LongType {
    let t = (first >> 4) & 3;
    let t = if version == VERSION_2 || version == VERSION_2_DRAFT {
        (t + 3) & 3
    } else {
        t
    };
    match t {
        0 => LongType::Initial,
        1 => LongType::ZeroRtt,
        2 => LongType::Handshake,
        _ => LongType::Retry,
    }
}

/// A variable-length integer (RFC 9000 16) at `off`: value and octets taken.
pub fn varint(b: &[u8], off: usize) -> Parse<(u64, usize)> {
    let first = need!(byte(b, off));
    let n = 1usize << (first >> 6);
    let s = need!(take(b, off, n));
    let v = s
        .iter()
        .skip(1)
        .fold(u64::from(first & 0x3f), |a, &x| (a << 8) | u64::from(x));
    Parse::Ok((v, n))
}

/// A parsed long header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongHeader<'a> {
    /// Version (0 for Version Negotiation).
    pub version: u32,
    /// Packet type (meaningless for Version Negotiation).
    pub kind: LongType,
    /// Destination Connection ID.
    pub dcid: &'a [u8],
    /// Source Connection ID.
    pub scid: &'a [u8],
}

/// Parses a long header packet at the start of a datagram (RFC 9000 17.2): the form and
/// fixed bits, a known version (or 0), connection IDs, and for Initial, 0-RTT and
/// Handshake the token and Length fields, which must fit the datagram.
pub fn parse_long(d: &[u8]) -> Parse<LongHeader<'_>> {
    let first = need!(byte(d, 0));
    need!(require(first & 0x80 != 0));
    let version = need!(be32(d, 1));
    let dcid_len = usize::from(need!(byte(d, 5)));
    let dcid = need!(take(d, 6, dcid_len));
    let scid_len = usize::from(need!(byte(d, 6 + dcid_len)));
    let scid = need!(take(d, 7 + dcid_len, scid_len));
    let mut off = 7 + dcid_len + scid_len;
    if version == 0 {
        // Version Negotiation (17.2.1): a non-empty list of versions fills the rest.
        let rest = d.len().saturating_sub(off);
        need!(require(rest >= 4 && rest % 4 == 0));
        return Parse::Ok(LongHeader {
            version,
            kind: LongType::Retry,
            dcid,
            scid,
        });
    }
    need!(require(
        first & 0x40 != 0
            && version_name(version).is_some()
            && dcid_len <= MAX_CID_LEN
            && scid_len <= MAX_CID_LEN
    ));
    let kind = long_type(first, version);
    if kind == LongType::Retry {
        // Retry (17.2.5): a token and the 16-byte integrity tag.
        need!(require(d.len() > off + 16));
    } else {
        if kind == LongType::Initial {
            let (token_len, n) = need!(varint(d, off));
            off += n;
            let token_len = need!(usize::try_from(token_len).map_or(Parse::Bad, Parse::Ok));
            need!(require(token_len <= d.len().saturating_sub(off)));
            off += token_len;
        }
        let (len, n) = need!(varint(d, off));
        off += n;
        need!(require(
            len >= MIN_PACKET_LEN && len <= (d.len().saturating_sub(off)) as u64
        ));
    }
    Parse::Ok(LongHeader {
        version,
        kind,
        dcid,
        scid,
    })
}

/// A client's first Initial datagram.
pub fn parse_client_initial(d: &[u8]) -> Parse<LongHeader<'_>> {
    let h = need!(parse_long(d));
    need!(require(
        h.version != 0
            && h.kind == LongType::Initial
            && d.len() >= MIN_INITIAL_DATAGRAM
            && h.dcid.len() >= MIN_CLIENT_DCID_LEN
    ));
    Parse::Ok(h)
}

/// A Google QUIC client hello (public header, versions Q001..=Q046): the version flag, an
/// 8-byte connection ID, "Q" and three digits, a plaintext CHLO tag near the start, and
/// the minimum client hello size. Returns the version.
pub fn parse_gquic_chlo(d: &[u8]) -> Parse<&[u8]> {
    let first = need!(byte(d, 0));
    let version = if first & 0x80 == 0 {
        // Public header (Q043 and older): version flag, 8-byte connection ID flag.
        need!(require(
            first & 0x01 != 0 && first & 0x08 != 0 && first & 0x40 == 0
        ));
        need!(take(d, 9, 4))
    } else {
        // Q046: IETF-style long header, then CID lengths in one byte.
        need!(take(d, 1, 4))
    };
    need!(require(
        version.first() == Some(&b'Q')
            && version.iter().skip(1).all(u8::is_ascii_digit)
            && version <= b"Q046".as_slice()
            && d.len() >= MIN_GQUIC_CHLO
    ));
    let window = d.get(..GQUIC_CHLO_WINDOW).unwrap_or(d);
    need!(require(window.windows(4).any(|w| w == b"CHLO")));
    Parse::Ok(version)
}

/// Names QUIC.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let client = first_datagram(cx, cx.c2s, parse_client_initial);
    let p = match client {
        Parse::Ok(c) => {
            let answer = first_datagram(cx, cx.s2c, parse_long).ok();
            // A server's answer must echo the client's IDs (RFC 9000 7.2, 17.2.1); one
            // that does not is not QUIC's answer to this Initial.
            if let Some(a) = &answer {
                if a.dcid != c.scid || (a.version == 0 && a.scid != c.dcid) {
                    return Verdict::No;
                }
            }
            let name = version_name(c.version).unwrap_or_default();
            let mut v = format!("version {name} Initial, DCID {} bytes", c.dcid.len());
            if let Some(a) = answer {
                v.push_str(match (a.version, a.kind) {
                    (0, _) => "; version negotiation",
                    (_, LongType::Retry) => "; server Retry",
                    _ => "; server answered",
                });
            }
            Parse::Ok(classification(
                "setten.quic.initial",
                "quic.long_header",
                v,
                name,
            ))
        }
        other => {
            let gquic = first_datagram(cx, cx.c2s, parse_gquic_chlo).map(|v| {
                let name = String::from_utf8_lossy(v).into_owned();
                classification(
                    "setten.quic.gquic_chlo",
                    "quic.gquic_chlo",
                    format!("version {name} CHLO"),
                    name,
                )
            });
            // Only a server Initial as large as the rule for ack-eliciting Initials
            // demands, when the client's side is missing.
            let server = || {
                if cx.datagrams(cx.c2s).next().is_some() {
                    return Parse::Bad;
                }
                first_datagram(cx, cx.s2c, |d| {
                    let h = need!(parse_long(d));
                    need!(require(
                        h.version != 0
                            && h.kind == LongType::Initial
                            && d.len() >= MIN_INITIAL_DATAGRAM
                    ));
                    Parse::Ok(h)
                })
                .map(|h| {
                    let name = version_name(h.version).unwrap_or_default();
                    classification(
                        "setten.quic.initial",
                        "quic.long_header",
                        format!("version {name} server Initial"),
                        name,
                    )
                })
            };
            match other {
                Parse::Short => gquic.or_else(|| Parse::Short).or_else(server),
                _ => gquic.or_else(server).or_else(|| probe(cx)),
            }
        }
    };
    finish(cx, p)
}

/// A client probing with a reserved version (0x?a?a?a?a, RFC 9000 15) to make the
/// server list its versions, and the server's Version Negotiation echoing both
/// connection IDs (17.2.1). The probe alone is not enough: its version is one no
/// implementation speaks, so only the answer shows a QUIC server was there.
fn probe(cx: &Cx<'_>) -> Parse<Classification> {
    let client = first_datagram(cx, cx.c2s, |d| {
        let first = need!(byte(d, 0));
        let version = need!(be32(d, 1));
        let dcid_len = usize::from(need!(byte(d, 5)));
        let dcid = need!(take(d, 6, dcid_len));
        let scid_len = usize::from(need!(byte(d, 6 + dcid_len)));
        let scid = need!(take(d, 7 + dcid_len, scid_len));
        need!(require(
            first & 0xc0 == 0xc0
                && version & 0x0f0f_0f0f == 0x0a0a_0a0a
                && (MIN_CLIENT_DCID_LEN..=MAX_CID_LEN).contains(&dcid_len)
                && scid_len <= MAX_CID_LEN
                && d.len() >= MIN_INITIAL_DATAGRAM
        ));
        Parse::Ok((version, dcid, scid))
    });
    let (version, dcid, scid) = need!(client);
    let answer = need!(first_datagram(cx, cx.s2c, parse_long));
    need!(require(
        answer.version == 0 && answer.dcid == scid && answer.scid == dcid
    ));
    Parse::Ok(classification(
        "setten.quic.version_probe",
        "quic.long_header",
        format!("reserved version {version:#010x} probe; version negotiation"),
        format!("{version:#010x} (reserved)"),
    ))
}

fn classification(
    rule: &'static str,
    field: &'static str,
    value: String,
    version: String,
) -> Classification {
    let mut c = Classification::new("quic", None, rule, field, value);
    c.extra.meta = Meta {
        version: Some(version),
        ..Meta::default()
    };
    c
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// The client Initial of RFC 9001 Appendix A.2: its unprotected-by-design prefix
    /// (first byte, version 1, DCID 8394c8f03e515708, no SCID, no token, Length 1182),
    /// with the protected rest replaced by filler of the same size.
    fn client_initial() -> Vec<u8> {
        let mut d = hex("c000000001088394c8f03e5157080000449e");
        d.resize(1200, 0x7b);
        d
    }

    #[test]
    fn rfc9001_client_initial() {
        let d = client_initial();
        let h = parse_client_initial(&d).ok().unwrap();
        assert_eq!((h.version, h.kind, h.dcid.len()), (1, LongType::Initial, 8));
        let c = Flow::udp(50000, 443).c2s(&client_initial()).yes(check);
        assert_eq!((c.protocol, c.service), ("quic", None));
        assert_eq!(c.evidence[0].value, "version 1 Initial, DCID 8 bytes");
        assert_eq!(c.extra.meta.version.as_deref(), Some("1"));
    }

    #[test]
    fn padding_and_lengths_matter() {
        // Under 1200 bytes: not a client Initial (RFC 9000 14.1).
        let d = client_initial();
        assert_eq!(parse_client_initial(&d[..1199]), Parse::Bad);
        // A Length reaching past the datagram.
        let mut d = client_initial();
        d[16] = 0x4f;
        assert_eq!(parse_client_initial(&d), Parse::Bad);
        // Unknown version.
        let mut d = client_initial();
        d[4] = 7;
        assert_eq!(parse_client_initial(&d), Parse::Bad);
        // DCID of 4 bytes from a client.
        let mut d = hex("c000000001048394c8f00000449e");
        d.resize(1200, 0);
        assert_eq!(parse_client_initial(&d), Parse::Bad);
        // Fixed bit clear.
        let mut d = client_initial();
        d[0] = 0x80;
        assert_eq!(parse_client_initial(&d), Parse::Bad);
    }

    #[test]
    fn version_2_initial_type() {
        // RFC 9369 3.2: Initial is type 0b01 in version 2.
        let mut d = hex("d06b3343cf088394c8f03e5157080000449e");
        d.resize(1200, 0);
        assert_eq!(parse_client_initial(&d).ok().unwrap().version, VERSION_2);
        d[0] = 0xc0; // type 0 is Retry in v2
        assert_eq!(parse_client_initial(&d), Parse::Bad);
        // The draft codepoint numbers the types as version 2 does.
        d[1..5].copy_from_slice(&VERSION_2_DRAFT.to_be_bytes());
        assert_eq!(parse_client_initial(&d), Parse::Bad);
        d[0] = 0xd0;
        assert_eq!(
            parse_client_initial(&d).ok().unwrap().version,
            VERSION_2_DRAFT
        );
    }

    #[test]
    fn a_reserved_version_probe_counts_with_the_servers_negotiation() {
        // nDPI's quic_interop_V.pcapng frames 3 and 14: a client Initial with version
        // 0x0a0a0a0a (its header; the 1232-byte datagram's rest as zeros) and the
        // server's Version Negotiation, echoing the client's DCID as its SCID.
        let mut probe = hex("cc0a0a0a0a0894699728cc80006d000044be");
        probe.resize(1232, 0);
        let vn = hex("c600000000000894699728cc80006dff00001dff00001cff00001b");
        let c = Flow::udp(37876, 443).c2s(&probe).s2c(&vn).yes(check);
        assert_eq!(c.protocol, "quic");
        assert_eq!(
            c.evidence[0].value,
            "reserved version 0x0a0a0a0a probe; version negotiation"
        );
        // Through the whole list of checks, in their order, too.
        let c = Flow::udp(37876, 443)
            .c2s(&probe)
            .s2c(&vn)
            .yes(super::super::detect);
        assert_eq!(c.evidence[0].rule, "setten.quic.version_probe");
        // Alone, the probe is not QUIC: no implementation speaks its version.
        assert!(Flow::udp(37876, 443).c2s(&probe).is_no_at_end(check));
        // An answer that does not echo the IDs.
        let mut other = vn.clone();
        other[8] ^= 1;
        assert!(Flow::udp(37876, 443)
            .c2s(&probe)
            .s2c(&other)
            .is_no_at_end(check));
        // Not a reserved version.
        let mut odd = probe.clone();
        odd[1] = 0x0b;
        assert!(Flow::udp(37876, 443).c2s(&odd).s2c(&vn).is_no_at_end(check));
    }

    #[test]
    fn version_2_draft_00_keeps_version_1_types() {
        // nDPI's quic-v2-00.pcapng, the client's first datagram (1252 bytes; its
        // header, then the protected rest as zeros): type 0 Initial, version 0xff020000.
        let mut d = hex("c2ff02000008ae3f3dd669a153b3084e8d17b73e5ea0d40044ca");
        d.resize(1252, 0);
        let init = parse_client_initial(&d).ok().unwrap();
        assert_eq!(init.version, VERSION_2_DRAFT_00);
        assert_eq!(version_name(init.version).as_deref(), Some("2-draft-00"));
    }

    #[test]
    fn server_answer_must_echo_ids() {
        // A Version Negotiation packet (RFC 9000 17.2.1) to a client whose SCID is
        // empty and DCID 8394c8f03e515708.
        let vn = hex("80 00000000 00 08 8394c8f03e515708 00000001 6b3343cf");
        let c = Flow::udp(50000, 443)
            .c2s(&client_initial())
            .s2c(&vn)
            .yes(check);
        assert!(c.evidence[0].value.ends_with("version negotiation"));
        let wrong = hex("80 00000000 00 08 0000000000000000 00000001");
        assert!(Flow::udp(50000, 443)
            .c2s(&client_initial())
            .s2c(&wrong)
            .is_no(check));
    }

    #[test]
    fn gquic_chlo_from_capture() {
        // ndpi-quic.pcap frame 1: public flags 0x0d, CID, "Q024", packet number, hash,
        // stream frame with "CHLO" (first 36 bytes), padded to 1350 in the capture.
        let mut d = hex("0db2de5df14f5545eb51303234013b6e8986f83cf3b7a6ab5d0501a001000443484c4f");
        d.resize(1350, 0);
        let c = Flow::udp(57833, 443).c2s(&d).yes(check);
        assert_eq!(c.evidence[0].value, "version Q024 CHLO");
        assert_eq!(c.evidence[0].rule, "setten.quic.gquic_chlo");
        // Without the tag, or too small, it is not a client hello.
        let mut e = d.clone();
        e[33] = b'X';
        assert_eq!(parse_gquic_chlo(&e), Parse::Bad);
        assert_eq!(parse_gquic_chlo(&d[..900]), Parse::Bad);
    }

    #[test]
    fn short_headers_and_noise_are_not_enough() {
        // ndpi-quic.pcap frame 421: a short-header packet.
        let mut d = hex("0ca336aca5c011def022ddea0aae66dd36afa40b130db02c146c66423acc3468");
        d.resize(120, 0x33);
        assert!(Flow::udp(40461, 443).c2s(&d).s2c(&[0x40; 81]).is_no(check));
        // Long-header form bits on noise: no known version.
        assert!(Flow::udp(1, 2).c2s(&[0xc0; 1300]).is_no(check));
    }

    #[test]
    fn varints() {
        // RFC 9000 A.1 examples.
        assert_eq!(
            varint(&hex("c2197c5eff14e88c"), 0),
            Parse::Ok((151_288_809_941_952_652, 8))
        );
        assert_eq!(varint(&hex("9d7f3e7d"), 0), Parse::Ok((494_878_333, 4)));
        assert_eq!(varint(&hex("7bbd"), 0), Parse::Ok((15_293, 2)));
        assert_eq!(varint(&hex("25"), 0), Parse::Ok((37, 1)));
        assert_eq!(varint(&hex("7b"), 0), Parse::Short);
    }
}
