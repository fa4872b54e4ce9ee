//! IPsec over UDP: IKEv1 / IKEv2 messages (UDP 500, and 4500 behind the RFC 3948 non-ESP
//! marker) and ESP-in-UDP on 4500.
//!
//! Promise: `Yes` only for a datagram whose ISAKMP header is self-consistent — version
//! 1.0 or 2.0, an exchange type defined for that version, a non-zero initiator SPI, a
//! length field equal to the datagram's length, and a payload chain whose generic headers
//! add up exactly to that length — or, on port 4500 only (ESP is structurally weak, so the
//! port breaks the tie), for ESP packets whose SPI stays constant and whose sequence
//! numbers grow. On the IKE ports themselves (500 and 4500) a datagram is also taken as
//! IKE when only its version byte, a non-zero initiator SPI and its length field hold,
//! as nDPI does (ipsec.c, `ndpi_int_check_ports`: such a header is "most likely
//! malformed, not IPSec/ISAKMP otherwise"); the evidence then says the rest did not
//! parse. Vendor ID payloads are looked up in the catalogue
//! (`rules/ike_vendor_ids.toml`) and reported in [`IkeMeta`]; a matched entry may name the
//! vendor, product and service. When only the initiator has spoken the detector waits
//! for the responder's first message, because the responder's vendor IDs name the far
//! side of the connection point.

use super::{util, Classification, Cx, Evidence, IkeMeta, Service, VendorId, Verdict};

/// ISAKMP fixed header: two 8-byte SPIs, next payload, version, exchange type, flags,
/// message id, length (RFC 2408 section 3.1, RFC 7296 section 3.1).
const IKE_HEADER_LEN: usize = 28;
/// Generic payload header: next payload, critical/reserved, payload length (RFC 2408
/// section 3.2, RFC 7296 section 3.2).
const GENERIC_PAYLOAD_HEADER_LEN: usize = 4;
/// Version byte of IKEv1: major 1, minor 0 (RFC 2408 section 3.1).
const VERSION_IKEV1: u8 = 0x10;
/// Version byte of IKEv2: major 2, minor 0 (RFC 7296 section 3.1).
const VERSION_IKEV2: u8 = 0x20;
/// IKEv1 header flag: the payloads after the header are encrypted (RFC 2408 section 3.1).
const FLAG_IKEV1_ENCRYPTED: u8 = 0x01;
/// Vendor ID payload type in IKEv1 (RFC 2408 section 3.16).
const PAYLOAD_VENDOR_ID_V1: u8 = 13;
/// Vendor ID payload type in IKEv2 (RFC 7296 section 3.12).
const PAYLOAD_VENDOR_ID_V2: u8 = 43;
/// Encrypted and Authenticated payload of IKEv2; it is always the last payload and its
/// "next payload" names the first inner payload (RFC 7296 section 3.14).
const PAYLOAD_SK: u8 = 46;
/// Encrypted Fragment payload of IKEv2; like SK it is last (RFC 7383 section 2.5).
const PAYLOAD_SKF: u8 = 53;
/// Non-ESP marker: four zero bytes where an ESP SPI would be (RFC 3948 section 2.2).
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// NAT-keepalive: a single 0xFF byte (RFC 3948 section 2.3).
const NAT_KEEPALIVE: u8 = 0xff;
/// UDP encapsulation port (RFC 3948 section 2).
const PORT_NAT_T: u16 = 4500;
/// ISAKMP's own port (RFC 2408 section 2.5.1, RFC 7296 section 2).
const PORT_IKE: u16 = 500;
/// SPI values 1..=255 are reserved by IANA (RFC 4303 section 2.1); 0 is the marker.
const ESP_SPI_RESERVED_MAX: u32 = 255;
/// ESP header (SPI, sequence number) plus at least an 8-byte IV/payload and a 4-byte
/// trailer/ICV (RFC 4303 section 2).
const MIN_ESP_LEN: usize = 20;
/// A flow's first ESP sequence number seen in the opening window is small: the counter
/// starts at 1 for each SA (RFC 4303 section 3.3.3). Generous, for late-started captures
/// of long-lived SAs the flow table already split.
const MAX_ESP_FIRST_SEQ: u32 = 1 << 24;
/// Largest step between consecutive ESP sequence numbers of one direction in the
/// opening window (losses, or packets the capture missed).
const MAX_ESP_SEQ_GAP: u32 = 1024;
/// ESP packets from one SA (one direction) needed when no IKE is seen: the repeated SPI
/// is what makes the structure evidence.
const MIN_ESP_PACKETS: usize = 2;
/// Payloads walked per message before giving up.
const MAX_PAYLOADS: usize = 64;
/// Vendor IDs kept per flow.
const MAX_VENDOR_IDS: usize = 16;
/// Vendor ID bytes rendered as hex.
const MAX_VENDOR_ID_HEX_BYTES: usize = 64;
/// Datagrams are cut to this length by the flow table; an IKE length beyond it is fine.
const DATAGRAM_CUT: usize = crate::flow::reassembly::MAX_DATAGRAM;

/// An ISAKMP header that passed the structural checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IkeHeader {
    /// 1 or 2.
    version: u8,
    exchange: u8,
    next_payload: u8,
    flags: u8,
    length: u32,
}

/// One IKE message: header and the Vendor ID payloads found in its clear-text chain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IkeMessage<'a> {
    header: IkeHeader,
    vendor_ids: Vec<&'a [u8]>,
}

/// What one datagram of the flow is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Datagram<'a> {
    Ike {
        msg: IkeMessage<'a>,
        nat_t: bool,
    },
    /// On an IKE port: an ISAKMP version and a length that matches, but an exchange type
    /// or payload chain that does not parse.
    Malformed {
        version: u8,
        exchange: u8,
        nat_t: bool,
    },
    Keepalive,
    Esp {
        spi: u32,
        seq: u32,
    },
    Other,
}

/// Exchange type name, or `None` when the value is not defined for the version.
/// IKEv1: RFC 2408 section 3.1 and RFC 2409 sections 5.5/5.6 (Quick Mode, New Group
/// Mode), plus Transaction (mode-config draft, value 6 in the IANA registry).
/// IKEv2: RFC 7296 section 3.1, RFC 5723 (38), RFC 9242 (43 IKE_INTERMEDIATE),
/// RFC 9370 (44 IKE_FOLLOWUP_KE).
fn exchange_name(version: u8, exchange: u8) -> Option<&'static str> {
    match (version, exchange) {
        (1, 1) => Some("Base"),
        (1, 2) => Some("Identity Protection (Main Mode)"),
        (1, 3) => Some("Authentication Only"),
        (1, 4) => Some("Aggressive"),
        (1, 5) => Some("Informational"),
        (1, 6) => Some("Transaction (Mode Config)"),
        (1, 32) => Some("Quick Mode"),
        (1, 33) => Some("New Group Mode"),
        (2, 34) => Some("IKE_SA_INIT"),
        (2, 35) => Some("IKE_AUTH"),
        (2, 36) => Some("CREATE_CHILD_SA"),
        (2, 37) => Some("INFORMATIONAL"),
        (2, 38) => Some("IKE_SESSION_RESUME"),
        (2, 43) => Some("IKE_INTERMEDIATE"),
        (2, 44) => Some("IKE_FOLLOWUP_KE"),
        // "240 - 255 Private Use" (RFC 2408 section 3.1); "240-255 Reserved for private
        // use" (RFC 7296 section 3.1).
        (1 | 2, 240..=255) => Some("private use"),
        _ => None,
    }
}

/// Parses the ISAKMP header at the start of `b`, the whole IKE message (after any
/// non-ESP marker), with an exchange type defined for its version. `cut` says the
/// datagram may have been truncated by the flow table.
fn parse_header(b: &[u8], cut: bool) -> Option<IkeHeader> {
    let h = parse_lax(b, cut)?;
    exchange_name(h.version, h.exchange)?;
    Some(h)
}

/// The header checks that hold on the IKE ports even for a message that does not parse
/// further: the version byte is 1.0 or 2.0, the initiator SPI is not zero ("This value
/// MUST NOT be zero", RFC 7296 section 3.1) and the length field is at least a header and
/// the datagram's (or beyond a datagram the flow table cut).
fn parse_lax(b: &[u8], cut: bool) -> Option<IkeHeader> {
    let version = match *b.get(17)? {
        VERSION_IKEV1 => 1,
        VERSION_IKEV2 => 2,
        _ => return None,
    };
    if b.get(0..8)?.iter().all(|&x| x == 0) {
        return None;
    }
    let length = util::be32(b, 24)?;
    let len = usize::try_from(length).ok()?;
    let fits = len == b.len() || (cut && len > b.len());
    if len < IKE_HEADER_LEN || !fits {
        return None;
    }
    Some(IkeHeader {
        version,
        exchange: *b.get(18)?,
        next_payload: *b.get(16)?,
        flags: *b.get(19)?,
        length,
    })
}

/// Walks the payload chain (bounded) and collects Vendor ID payloads. The chain must
/// add up exactly to the message length, or run past the cut of a truncated datagram.
/// Encrypted IKEv1 bodies are not walked; IKEv2's SK/SKF payload ends the walk.
fn parse_message(b: &[u8], cut: bool) -> Option<IkeMessage<'_>> {
    let header = parse_header(b, cut)?;
    let mut msg = IkeMessage {
        header,
        vendor_ids: Vec::new(),
    };
    if header.version == 1 && header.flags & FLAG_IKEV1_ENCRYPTED != 0 {
        return Some(msg);
    }
    let msg_len = usize::try_from(header.length).ok()?;
    let vid_type = if header.version == 1 {
        PAYLOAD_VENDOR_ID_V1
    } else {
        PAYLOAD_VENDOR_ID_V2
    };
    let mut off = IKE_HEADER_LEN;
    let mut current = header.next_payload;
    for _ in 0..MAX_PAYLOADS {
        if current == 0 {
            return (off == msg_len || padded_v1(&header, b, off, msg_len)).then_some(msg);
        }
        if off >= b.len() {
            // Ran into the flow table's cut before the chain ended.
            return (msg_len > b.len()).then_some(msg);
        }
        let next = *b.get(off)?;
        let plen = usize::from(util::be16(b, off.checked_add(2)?)?);
        if plen < GENERIC_PAYLOAD_HEADER_LEN {
            return None;
        }
        let end = off.checked_add(plen)?;
        if end > msg_len {
            return None;
        }
        if current == vid_type && msg.vendor_ids.len() < MAX_VENDOR_IDS {
            if let Some(body) = b.get(off + GENERIC_PAYLOAD_HEADER_LEN..end) {
                msg.vendor_ids.push(body);
            }
        }
        if header.version == 2 && (current == PAYLOAD_SK || current == PAYLOAD_SKF) {
            return (end == msg_len).then_some(msg);
        }
        off = end;
        current = next;
    }
    None
}

/// Whether an IKEv1 message ends in zero padding to a multiple of four bytes after its
/// last payload: Libreswan pads by default (its `ikepad=` setting, "pads messages to a
/// minimum of 4-bytes"), so a message with an odd-sized Vendor ID is up to three bytes
/// longer than its payloads. The header length still counts the padding.
fn padded_v1(header: &IkeHeader, b: &[u8], off: usize, msg_len: usize) -> bool {
    header.version == 1
        && msg_len % 4 == 0
        && msg_len > off
        && msg_len - off <= 3
        && b.get(off..msg_len)
            .is_some_and(|p| p.iter().all(|&x| x == 0))
}

/// Classifies one datagram of a flow; `ike_port`: the flow is on UDP 500 or 4500.
fn classify_datagram(d: &[u8], port_4500: bool, ike_port: bool) -> Datagram<'_> {
    let cut = d.len() >= DATAGRAM_CUT;
    if d == [NAT_KEEPALIVE] {
        return Datagram::Keepalive;
    }
    let (rest, nat_t) = match d.strip_prefix(&NON_ESP_MARKER) {
        Some(rest) => (rest, true),
        None => (d, false),
    };
    if let Some(msg) = parse_message(rest, cut) {
        return Datagram::Ike { msg, nat_t };
    }
    if ike_port {
        if let Some(h) = parse_lax(rest, cut) {
            return Datagram::Malformed {
                version: h.version,
                exchange: h.exchange,
                nat_t,
            };
        }
    }
    if nat_t {
        return Datagram::Other;
    }
    if port_4500 && d.len() >= MIN_ESP_LEN {
        if let (Some(spi), Some(seq)) = (util::be32(d, 0), util::be32(d, 4)) {
            if spi > ESP_SPI_RESERVED_MAX && seq != 0 {
                return Datagram::Esp { spi, seq };
            }
        }
    }
    Datagram::Other
}

/// ESP consistency of one direction: every ESP packet carries the same SPI and the
/// sequence numbers grow by small steps from a small start. Returns the number of such
/// packets and the SPI, or `None` when the direction contradicts ESP.
fn esp_direction(dgrams: &[Datagram<'_>]) -> Option<(usize, Option<u32>)> {
    let mut spi0 = None;
    let mut last_seq = 0u32;
    let mut n = 0usize;
    for d in dgrams {
        if let Datagram::Esp { spi, seq } = *d {
            match spi0 {
                None => {
                    if seq > MAX_ESP_FIRST_SEQ {
                        return None;
                    }
                    spi0 = Some(spi);
                }
                Some(s) if s != spi || seq <= last_seq || seq - last_seq > MAX_ESP_SEQ_GAP => {
                    return None
                }
                Some(_) => {}
            }
            last_seq = seq;
            n += 1;
        }
    }
    Some((n, spi0))
}

/// Detects IKE and ESP-in-UDP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let port_4500 = cx.port_is(PORT_NAT_T);
    let ike_port = port_4500 || cx.port_is(PORT_IKE);
    let c2s: Vec<Datagram<'_>> = cx
        .datagrams(cx.c2s)
        .map(|d| classify_datagram(d, port_4500, ike_port))
        .collect();
    let s2c: Vec<Datagram<'_>> = cx
        .datagrams(cx.s2c)
        .map(|d| classify_datagram(d, port_4500, ike_port))
        .collect();
    if c2s.is_empty() && s2c.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let is_ike = |d: &Datagram<'_>| matches!(d, Datagram::Ike { .. });
    let has_ike = c2s.iter().chain(&s2c).any(is_ike);
    // A datagram that is neither IKE nor (on 4500) ESP or a keepalive proves the flow is
    // something else — unless IKE was already seen (a peer's garbage does not undo it).
    if !has_ike && c2s.iter().chain(&s2c).any(|d| *d == Datagram::Other) {
        return Verdict::No;
    }
    if has_ike {
        // The responder's first message carries its own vendor IDs: wait for it.
        let answered = c2s.iter().any(is_ike) && s2c.iter().any(is_ike);
        if !answered && !cx.last && (c2s.is_empty() || s2c.is_empty()) {
            return Verdict::Wait;
        }
        return Verdict::Yes(ike_classification(cx, &c2s, &s2c));
    }
    let malformed = c2s.iter().chain(&s2c).find_map(|d| match *d {
        Datagram::Malformed {
            version,
            exchange,
            nat_t,
        } => Some((version, exchange, nat_t)),
        _ => None,
    });
    if let Some((version, exchange, nat_t)) = malformed {
        // A well-formed message of either side would say more: wait for the other side.
        if !cx.last && (c2s.is_empty() || s2c.is_empty()) {
            return Verdict::Wait;
        }
        return Verdict::Yes(malformed_classification(cx, version, exchange, nat_t));
    }
    // No IKE: ESP-in-UDP, only on the NAT-T port.
    if !port_4500 {
        return Verdict::No;
    }
    let (Some((n_c, spi_c)), Some((n_s, spi_s))) = (esp_direction(&c2s), esp_direction(&s2c))
    else {
        return Verdict::No;
    };
    // Each direction is its own SA (RFC 4301 section 4.1): one SPI for both is not ESP.
    if spi_c.is_some() && spi_c == spi_s {
        return Verdict::No;
    }
    if n_c >= MIN_ESP_PACKETS || n_s >= MIN_ESP_PACKETS {
        let spi = spi_c.or(spi_s).unwrap_or(0);
        let mut c = Classification::new(
            "esp",
            Some(Service::Ipsec),
            "setten.ipsec.esp-in-udp",
            "esp.spi",
            format!("0x{spi:08x}, sequence numbers increasing, UDP 4500"),
        );
        c.extra.meta.version = Some("ESP-in-UDP (RFC 3948)".into());
        return Verdict::Yes(c);
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

/// The classification of a flow on an IKE port whose ISAKMP headers only partly parse.
fn malformed_classification(cx: &Cx<'_>, version: u8, exchange: u8, nat_t: bool) -> Classification {
    let port = if cx.port_is(PORT_NAT_T) {
        PORT_NAT_T
    } else {
        PORT_IKE
    };
    let mut c = Classification::new(
        "ike",
        Some(Service::Ipsec),
        "setten.ipsec.ike-malformed",
        "ike.header",
        format!(
            "IKEv{version} header on UDP {port}{}, length matches the datagram; exchange type \
             {exchange} or its payload chain does not parse",
            if nat_t {
                " after the non-ESP marker"
            } else {
                ""
            }
        ),
    );
    c.extra.meta.version = Some(format!("IKEv{version}"));
    c.extra.meta.ike = Some(Box::new(IkeMeta {
        version,
        exchange: exchange_name(version, exchange)
            .map_or_else(|| format!("undefined ({exchange})"), str::to_owned),
        nat_t,
        vendor_ids: Vec::new(),
    }));
    c
}

/// Builds the classification from the IKE messages of both directions.
fn ike_classification(cx: &Cx<'_>, c2s: &[Datagram<'_>], s2c: &[Datagram<'_>]) -> Classification {
    let mut first: Option<IkeHeader> = None;
    let mut nat_t = false;
    let mut vids: Vec<&[u8]> = Vec::new();
    // Responder's vendor IDs first: they name the far side.
    for d in s2c.iter().chain(c2s) {
        if let Datagram::Ike { msg, nat_t: n } = d {
            nat_t |= *n;
            for v in &msg.vendor_ids {
                if vids.len() < MAX_VENDOR_IDS && !vids.contains(v) {
                    vids.push(v);
                }
            }
        }
    }
    // The header reported is the flow's first IKE message (the initiator's, normally).
    for d in c2s.iter().chain(s2c) {
        if let Datagram::Ike { msg, .. } = d {
            first = Some(msg.header);
            break;
        }
    }
    let h = first.unwrap_or(IkeHeader {
        version: 0,
        exchange: 0,
        next_payload: 0,
        flags: 0,
        length: 0,
    });
    let exchange = exchange_name(h.version, h.exchange).unwrap_or("unknown");
    let (rule, field) = if nat_t {
        ("setten.ipsec.ike-nat-t", "ike.header")
    } else {
        ("setten.ipsec.ike", "ike.header")
    };
    let mut c = Classification::new(
        "ike",
        Some(Service::Ipsec),
        rule,
        field,
        format!(
            "IKEv{} {} (exchange {}), length {} matches the datagram{}",
            h.version,
            exchange,
            h.exchange,
            h.length,
            if nat_t {
                ", after the non-ESP marker"
            } else {
                ""
            }
        ),
    );
    let mut meta = IkeMeta {
        version: h.version,
        exchange: exchange.to_owned(),
        nat_t,
        vendor_ids: Vec::new(),
    };
    let mut service_from_vendor = None;
    for v in vids {
        let shown = v.get(..MAX_VENDOR_ID_HEX_BYTES).unwrap_or(v);
        let known = cx.rules.ike_vendor(v);
        meta.vendor_ids.push(VendorId {
            hex: util::hex(shown),
            name: known.map(|k| k.name.clone()),
        });
        if let Some(k) = known {
            c.evidence.push(Evidence::new(
                k.id.clone(),
                "ike.vendor_id",
                k.name.as_str(),
            ));
            if c.extra.vendor.is_none() {
                c.extra.vendor.clone_from(&k.vendor);
            }
            if c.extra.product.is_none() {
                c.extra.product.clone_from(&k.product);
            }
            if service_from_vendor.is_none() {
                service_from_vendor = k.service;
            }
        }
    }
    if let Some(s) = service_from_vendor {
        c.service = Some(s);
    }
    c.extra.meta.version = Some(format!("IKEv{}", h.version));
    c.extra.meta.ike = Some(Box::new(meta));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], ports: (u16, u16), last: bool) -> Verdict {
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, c2s, s2c, ports, last)
    }

    /// Corpus ndpi-ipsec_isakmp_esp.pcap frame 17: IKEv2 IKE_SA_INIT response
    /// (192.168.2.100:10500 <- 109.237.187.193:500, 52 bytes, one Notify COOKIE payload).
    const SA_INIT_COOKIE: &str = "b64ef32131a4895200000000000000002920222000000000\
        000000340000001800004006000155739f613a70f771484cb7a6aa3f";

    /// An IKEv1 Main Mode first message built per RFC 2408 section 3.1/3.16: header,
    /// one SA payload (minimal, 12 bytes), then Vendor IDs RFC 3947 (MD5 "RFC 3947",
    /// RFC 3947 section 3.1) and FortiGate (Wireshark packet-isakmp.c VID_FORTINET_FORTIGATE
    /// plus 4 version bytes).
    fn ikev1_main_mode_with_vids() -> Vec<u8> {
        let sa = hex("0d00000c 00000001 00000001"); // next=VID, len 12, DOI 1, SIT 1
        let vid1 = hex("0d000014 4a131c81070358455c5728f20e95452f"); // next=VID
        let vid2 = hex("00000014 8299031757a36082c6a621de000500b3"); // last
        let body_len = sa.len() + vid1.len() + vid2.len();
        let mut m = hex("1122334455667788 0000000000000000 01 10 02 00 00000000");
        m.extend_from_slice(
            &u32::try_from(IKE_HEADER_LEN + body_len)
                .unwrap()
                .to_be_bytes(),
        );
        m.extend(sa);
        m.extend(vid1);
        m.extend(vid2);
        m
    }

    #[test]
    fn ikev2_sa_init_response_from_corpus_parses() {
        let d = hex(SA_INIT_COOKIE);
        let m = parse_message(&d, false).unwrap();
        assert_eq!(m.header.version, 2);
        assert_eq!(exchange_name(2, m.header.exchange), Some("IKE_SA_INIT"));
        assert!(m.vendor_ids.is_empty());
    }

    #[test]
    fn nat_t_ike_auth_from_corpus_is_yes_with_nat_t() {
        // Corpus frames 1 and 2 (UDP 14500 <-> 4500): non-ESP marker + IKEv2 IKE_AUTH,
        // header only here with an SK payload filling the message.
        let mut req = hex("00000000 b64ef32131a4895286babd39048869552e202308 00000001");
        req.extend_from_slice(&(28u32 + 8).to_be_bytes());
        req.extend(hex("23000008 deadbeef")); // SK payload, 8 bytes
        let mut resp = hex("00000000 b64ef32131a4895286babd39048869552e202320 00000001");
        resp.extend_from_slice(&(28u32 + 8).to_be_bytes());
        resp.extend(hex("24000008 cafebabe"));
        match run(&[&req], &[&resp], (14500, 4500), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Ipsec));
                assert_eq!(c.evidence[0].rule, "setten.ipsec.ike-nat-t");
                let ike = c.extra.meta.ike.clone().unwrap();
                assert!(ike.nat_t);
                assert_eq!(ike.version, 2);
                assert_eq!(ike.exchange, "IKE_AUTH");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn vendor_ids_are_collected_and_named() {
        let m = ikev1_main_mode_with_vids();
        let resp = hex(SA_INIT_COOKIE); // any valid IKE answer
        match run(&[&m], &[&resp], (500, 500), false) {
            Verdict::Yes(c) => {
                let ike = c.extra.meta.ike.as_ref().unwrap();
                assert_eq!(ike.version, 1);
                assert_eq!(ike.exchange, "Identity Protection (Main Mode)");
                assert_eq!(ike.vendor_ids.len(), 2);
                assert_eq!(ike.vendor_ids[0].name.as_deref(), Some("RFC 3947 NAT-T"));
                assert_eq!(ike.vendor_ids[1].hex, "8299031757a36082c6a621de000500b3");
                assert_eq!(c.extra.vendor.as_deref(), Some("Fortinet"));
                assert!(c.evidence.iter().any(|e| e.field == "ike.vendor_id"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn initiator_alone_waits_for_the_responder_then_decides_at_the_end() {
        let m = ikev1_main_mode_with_vids();
        assert!(matches!(run(&[&m], &[], (500, 500), false), Verdict::Wait));
        assert!(matches!(run(&[&m], &[], (500, 500), true), Verdict::Yes(_)));
    }

    #[test]
    fn length_mismatch_and_bad_version_are_not_ike() {
        let mut d = hex(SA_INIT_COOKIE);
        d.push(0); // one byte more than the length field says
        assert!(parse_message(&d, false).is_none());
        let mut v = hex(SA_INIT_COOKIE);
        v[17] = 0x30;
        assert!(parse_message(&v, false).is_none());
        let mut x = hex(SA_INIT_COOKIE);
        x[18] = 34 - 30; // IKEv2 with an IKEv1 exchange type
        assert!(parse_message(&x, false).is_none());
    }

    /// The corpus IKE_SA_INIT answer with its exchange type set to `exchange`.
    fn sa_init_with_exchange(exchange: u8) -> Vec<u8> {
        let mut d = hex(SA_INIT_COOKIE);
        d[18] = exchange;
        d
    }

    #[test]
    fn private_use_exchange_types_parse() {
        let d = sa_init_with_exchange(243);
        let m = parse_message(&d, false).unwrap();
        assert_eq!(exchange_name(2, m.header.exchange), Some("private use"));
    }

    #[test]
    fn an_unparsed_header_counts_on_the_ike_ports_only() {
        // IKEv2 with exchange type 7 (undefined): the strict reading refuses it.
        let d = sa_init_with_exchange(7);
        assert!(parse_message(&d, false).is_none());
        for ports in [(500, 500), (40000, 500), (14500, 4500)] {
            match run(&[&d], &[&d], ports, false) {
                Verdict::Yes(c) => {
                    assert_eq!(c.service, Some(Service::Ipsec));
                    assert_eq!(c.evidence[0].rule, "setten.ipsec.ike-malformed");
                    assert!(
                        c.evidence[0].value.contains("exchange type 7"),
                        "{:?}",
                        c.evidence
                    );
                    let ike = c.extra.meta.ike.clone().unwrap();
                    assert_eq!((ike.version, ike.exchange.as_str()), (2, "undefined (7)"));
                    assert!(!ike.nat_t);
                }
                v => panic!("{ports:?}: {v:?}"),
            }
        }
        assert!(matches!(
            run(&[&d], &[&d], (40000, 40001), true),
            Verdict::No
        ));
        // Behind the non-ESP marker on 4500.
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&d);
        match run(&[&m], &[], (14500, 4500), true) {
            Verdict::Yes(c) => assert!(c.extra.meta.ike.clone().unwrap().nat_t),
            v => panic!("{v:?}"),
        }
        // One side only: wait for the other, then decide at the end.
        assert!(matches!(
            run(&[&d], &[], (40000, 500), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[&d], &[], (40000, 500), true),
            Verdict::Yes(_)
        ));
    }

    /// Corpus ndpi-ipsec_isakmp_esp.pcap frame 192 (UDP 14500 -> 4500, 816 bytes): an
    /// IKE_AUTH request whose single payload has type 127 and, like SK, names an inner
    /// payload (35) as its next; the body is replaced by filler here.
    fn frame_192() -> Vec<u8> {
        let mut d = hex(
            "00000000 7945f76350396b59 45569f200354dde7 7f202308 00000001 0000032c \
             23000310",
        );
        d.resize(816, 0xa5);
        d
    }

    #[test]
    fn a_payload_chain_the_strict_reading_refuses_waits_for_the_answer() {
        let req = frame_192();
        assert!(parse_message(&req[4..], false).is_none());
        // Before, this first datagram alone made the flow "not IPsec" at once.
        assert!(matches!(
            run(&[&req], &[], (14500, 4500), false),
            Verdict::Wait
        ));
        let mut resp = hex("00000000 7945f76350396b59 45569f200354dde7 2e202320 00000001");
        resp.extend_from_slice(&(28u32 + 8).to_be_bytes());
        resp.extend(hex("24000008 cafebabe"));
        match run(&[&req], &[&resp], (14500, 4500), false) {
            Verdict::Yes(c) => assert_eq!(c.evidence[0].rule, "setten.ipsec.ike-nat-t"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_loose_reading_still_needs_version_spi_and_length() {
        let mut long = sa_init_with_exchange(7);
        long.push(0);
        let mut version = sa_init_with_exchange(7);
        version[17] = 0x30;
        let mut spi = sa_init_with_exchange(7);
        spi[..8].fill(0);
        for d in [long, version, spi] {
            assert!(matches!(run(&[&d], &[&d], (500, 500), true), Verdict::No));
        }
    }

    #[test]
    fn broken_payload_chain_is_not_ike() {
        let mut d = hex(SA_INIT_COOKIE);
        d[30] = 0x00;
        d[31] = 0x10; // first payload claims 16 bytes, chain no longer adds up
        assert!(parse_message(&d, false).is_none());
    }

    #[test]
    fn esp_in_udp_on_4500_needs_consistent_spi_and_sequence() {
        let e = |seq: u32| {
            let mut p = hex("c0ffee01");
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&[0x5a; 40]);
            p
        };
        let (a, b, c) = (e(1), e(2), e(3));
        assert!(matches!(
            run(&[&a, &b, &c], &[], (14500, 4500), false),
            Verdict::Yes(_)
        ));
        // Same bytes on another port: ESP alone is too weak.
        assert!(matches!(
            run(&[&a, &b, &c], &[], (14500, 4501), false),
            Verdict::No
        ));
        // Sequence going backwards is not one SA.
        assert!(matches!(
            run(&[&c, &a], &[], (14500, 4500), false),
            Verdict::No
        ));
        // One packet each way is too little; at the end it is not ESP.
        let mut other = e(1);
        other[0] = 0xd0;
        assert!(matches!(
            run(&[&a], &[&other], (14500, 4500), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[&a], &[&other], (14500, 4500), true),
            Verdict::No
        ));
        // The same SPI both ways is not two SAs.
        assert!(matches!(
            run(&[&a, &b], &[&c], (14500, 4500), false),
            Verdict::No
        ));
    }

    #[test]
    fn keepalive_alone_is_not_enough() {
        let k = [NAT_KEEPALIVE];
        assert!(matches!(
            run(&[&k], &[], (14500, 4500), false),
            Verdict::Wait
        ));
        assert!(matches!(run(&[&k], &[], (14500, 4500), true), Verdict::No));
    }

    #[test]
    fn random_and_other_protocols_are_no() {
        // DNS query (RFC 1035 section 4.1.1) on port 500 and pseudo-random bytes.
        let dns = hex("abcd01000001000000000000076578616d706c6503636f6d0000010001");
        assert!(matches!(run(&[&dns], &[], (5353, 500), false), Verdict::No));
        let mut x = 0x1234_5678u32;
        let rnd: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(matches!(
            run(&[&rnd], &[], (40000, 500), false),
            Verdict::No
        ));
        for cut in 0..rnd.len() {
            let _ = classify_datagram(&rnd[..cut], true, true);
        }
    }

    /// Libreswan 4.10 pluto, IKEv1 Main Mode first message (228 bytes on udp 500): SA,
    /// seven Vendor IDs ("OE-Libreswan-4.10", 21 bytes with its header, then XAUTH, DPD,
    /// RFC 3947 and NAT-T drafts); the payloads end at 225 and three zero bytes pad the
    /// message to the 228 its header says (Libreswan's default `ikepad`).
    const LIBRESWAN_MM1: &str = "e2f684e809b95e800000000000000000\
        0110020000000000000000e40d000038 00000001000000010000002c00010001\
        0000002400010000800b0001800c7080 8001000780020004800300018004000e\
        800e00800d0000154f452d4c69627265 7377616e2d342e31300d0000144048b7\
        d56ebce88525e7de7f00d6c2d30d0000 14afcad71368a1f1c96b8696fc775701\
        000d0000144a131c81070358455c5728 f20e95452f0d0000147d9419a65310ca\
        6f2c179d9215529d560d00001490cb80 913ebb696e086381b5ec427b1f000000\
        14cd60464335df21f87cfdb2fc68b6a4 48000000";

    #[test]
    fn libreswan_main_mode_padded_to_four_bytes_is_ike_with_its_vendor() {
        let d = hex(LIBRESWAN_MM1);
        assert_eq!(d.len(), 228);
        let m = parse_message(&d, false).expect("padded IKEv1 message");
        assert_eq!(m.vendor_ids.len(), 7);
        assert_eq!(m.vendor_ids[0], b"OE-Libreswan-4.10");
        let resp = hex(SA_INIT_COOKIE);
        match run(&[&d], &[&resp], (500, 500), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Ipsec));
                assert_eq!(c.extra.vendor.as_deref(), Some("Libreswan project"));
                assert_eq!(c.extra.product.as_deref(), Some("Libreswan"));
            }
            v => panic!("{v:?}"),
        }
        // Padding that is not zero, longer than three bytes, to a length that is no
        // multiple of four, or in IKEv2 is not accepted.
        let mut nonzero = d.clone();
        nonzero[227] = 1;
        assert!(parse_message(&nonzero, false).is_none());
        let mut long = d.clone();
        long.extend([0; 4]);
        long[24..28].copy_from_slice(&232u32.to_be_bytes());
        assert!(parse_message(&long, false).is_none());
        let mut odd = d.clone();
        odd.pop();
        odd[24..28].copy_from_slice(&227u32.to_be_bytes());
        assert!(parse_message(&odd, false).is_none());
        let mut v2 = d;
        v2[17] = 0x20;
        assert!(parse_message(&v2, false).is_none());
    }
}
