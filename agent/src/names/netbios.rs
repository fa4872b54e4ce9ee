//! NetBIOS name service (RFC 1001 section 15, RFC 1002 section 4.2): host names of
//! Windows machines and the things that imitate them.
//!
//! Two messages bind a name to an address: a registration (and its refreshes), which a
//! node broadcasts or sends to its WINS server with the address in an additional record
//! (RFC 1002 sections 4.2.2, 4.2.4), and a positive response, to a name query or from a
//! WINS server to a registration, with the addresses in an answer record (sections
//! 4.2.5, 4.2.13). [`harvest`] keeps unique names whose suffix marks a machine:
//! 0x00 (workstation) and 0x20 (file server); group names (G bit) are workgroups and
//! domains, not hosts.
//!
//! The message layout is DNS's, compression included (RFC 1002 section 4.1), so names
//! are read with [`super::dns::read_name`]. The first label is the NetBIOS name in
//! first-level encoding (RFC 1001 section 14.1): 16 bytes as 32 letters 'A'..'P', one per
//! nibble. Name bytes are in the sender's OEM code page, which the wire does not say;
//! names that are not ASCII or UTF-8 are dropped rather than guessed.

use super::dns::{self, Header, RrType, CLASS_IN, HEADER_LEN};
use super::{text_name, NameSource, Obs, Sink};
use std::net::{IpAddr, Ipv4Addr};

/// Length of a first-level encoded name label (RFC 1001 section 14.1).
pub const ENCODED_LEN: usize = 32;
/// Address entries read from one NB record (multi-homed hosts list several).
pub const MAX_ADDRESSES_PER_RECORD: usize = 8;
/// Records read from one message.
pub const MAX_RECORDS: usize = 8;
/// One NB_FLAGS + NB_ADDRESS entry of RDATA (RFC 1002 section 4.2.1.3).
const NB_ENTRY_LEN: usize = 6;
/// NB_FLAGS group bit.
const NB_FLAG_GROUP: u16 = 0x8000;

/// OPCODE of the header (RFC 1002 section 4.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Name query.
    pub const QUERY: Opcode = Opcode(0);
    /// Name registration.
    pub const REGISTRATION: Opcode = Opcode(5);
    /// Name release.
    pub const RELEASE: Opcode = Opcode(6);
    /// Wait for acknowledgement.
    pub const WACK: Opcode = Opcode(7);
    /// Name refresh.
    pub const REFRESH: Opcode = Opcode(8);
    /// Name refresh with the opcode RFC 1002 section 4.2.4 draws (section 4.2.1.1 lists
    /// 8); both are seen.
    pub const REFRESH_ALT: Opcode = Opcode(9);
    /// Multi-homed name registration (a Windows extension).
    pub const MULTIHOMED_REGISTRATION: Opcode = Opcode(15);

    /// Registration or refresh: the sender claims the name for its address.
    pub fn is_registration(self) -> bool {
        matches!(
            self,
            Opcode::REGISTRATION
                | Opcode::REFRESH
                | Opcode::REFRESH_ALT
                | Opcode::MULTIHOMED_REGISTRATION
        )
    }
}

/// Header fields of the NetBIOS name service (RFC 1002 section 4.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsHeader {
    /// R: a response.
    pub response: bool,
    /// OPCODE.
    pub opcode: Opcode,
    /// RCODE (0 = positive).
    pub rcode: u8,
    /// The counts, as in DNS.
    pub dns: Header,
}

impl NsHeader {
    /// Reads the header.
    pub fn parse(msg: &[u8]) -> Result<NsHeader, dns::Error> {
        let dns = Header::parse(msg)?;
        let f = dns.flags.0;
        Ok(NsHeader {
            response: f & 0x8000 != 0,
            opcode: Opcode(((f >> 11) & 0x0f) as u8),
            rcode: (f & 0x000f) as u8,
            dns,
        })
    }
}

/// A decoded NetBIOS name: 15 name bytes (padded with spaces) and the suffix byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NbName(pub [u8; 16]);

impl NbName {
    /// Workstation service suffix.
    pub const WORKSTATION: u8 = 0x00;
    /// File server service suffix.
    pub const SERVER: u8 = 0x20;

    /// First-level decoding of a 32-byte label (RFC 1001 section 14.1): each pair of
    /// letters 'A'..'P' is one byte, high nibble first. `None` for anything else.
    pub fn decode(label: &[u8]) -> Option<NbName> {
        if label.len() != ENCODED_LEN {
            return None;
        }
        let nibble = |c: u8| (b'A'..=b'P').contains(&c).then(|| c - b'A');
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(label.chunks_exact(2)) {
            let (hi, lo) = (*pair.first()?, *pair.get(1)?);
            *o = (nibble(hi)? << 4) | nibble(lo)?;
        }
        Some(NbName(out))
    }

    /// The 16th byte: the service the name stands for.
    pub fn suffix(&self) -> u8 {
        self.0[15]
    }

    /// The name without its padding, when printable.
    pub fn text(&self) -> Option<String> {
        text_name(&self.0[..15])
    }

    /// Whether the suffix marks a machine name (workstation or server).
    pub fn is_host(&self) -> bool {
        matches!(self.suffix(), NbName::WORKSTATION | NbName::SERVER)
    }
}

/// One NB record with its first-level name decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbRecord {
    /// The name (scope labels dropped).
    pub name: NbName,
    /// TTL in seconds.
    pub ttl: u32,
    /// Unique (not group) addresses in the record, at most
    /// [`MAX_ADDRESSES_PER_RECORD`].
    pub addresses: Vec<Ipv4Addr>,
}

/// Reads the record at `off` as an NB record (type NB, class IN). `Ok(None)` for any
/// other record, whose end is still returned.
pub fn read_nb_record(msg: &[u8], off: usize) -> Result<(Option<NbRecord>, usize), dns::Error> {
    let (rec, next) = dns::read_record(msg, off)?;
    if rec.rtype != RrType::NB || rec.class != CLASS_IN {
        return Ok((None, next));
    }
    let Some(name) = rec.name.labels().next().and_then(NbName::decode) else {
        return Ok((None, next));
    };
    let addresses = rec
        .rdata
        .chunks_exact(NB_ENTRY_LEN)
        .take(MAX_ADDRESSES_PER_RECORD)
        .filter_map(|e| match *e {
            [f0, f1, a, b, c, d] if u16::from_be_bytes([f0, f1]) & NB_FLAG_GROUP == 0 => {
                Some(Ipv4Addr::new(a, b, c, d))
            }
            _ => None,
        })
        .collect();
    let rec = NbRecord {
        name,
        ttl: rec.ttl,
        addresses,
    };
    Ok((Some(rec), next))
}

/// The NB records that bind names in one message: a registration's additional records,
/// or a positive response's answers. Empty for anything else.
pub fn bindings(msg: &[u8]) -> Vec<NbRecord> {
    let Ok(h) = NsHeader::parse(msg) else {
        return Vec::new();
    };
    let (section, skip_before) = match (h.response, h.opcode) {
        (false, op) if op.is_registration() => (h.dns.arcount, SectionStart::Additional),
        (true, Opcode::QUERY | Opcode::REGISTRATION) if h.rcode == 0 => {
            (h.dns.ancount, SectionStart::Answer)
        }
        _ => return Vec::new(),
    };
    let mut off = HEADER_LEN;
    // Questions (name, type, class) and, for a registration, answer and authority
    // records (normally none) stand before the records wanted.
    let skip_records = match skip_before {
        SectionStart::Answer => 0,
        SectionStart::Additional => {
            usize::from(h.dns.ancount).saturating_add(usize::from(h.dns.nscount))
        }
    };
    if usize::from(h.dns.qdcount).saturating_add(skip_records) > MAX_RECORDS {
        return Vec::new();
    }
    for _ in 0..h.dns.qdcount {
        match dns::read_question(msg, off) {
            Ok((_, next)) => off = next,
            Err(_) => return Vec::new(),
        }
    }
    for _ in 0..skip_records {
        match dns::read_record(msg, off) {
            Ok((_, next)) => off = next,
            Err(_) => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    for _ in 0..usize::from(section).min(MAX_RECORDS) {
        let Ok((rec, next)) = read_nb_record(msg, off) else {
            break;
        };
        off = next;
        out.extend(rec);
    }
    out
}

/// Where the wanted records start.
enum SectionStart {
    Answer,
    Additional,
}

/// Names from one NetBIOS name service datagram: see the module doc.
pub fn harvest(msg: &[u8], out: &mut Vec<Obs>) {
    let mut sink = Sink::new(out);
    for rec in bindings(msg) {
        if !rec.name.is_host() {
            continue;
        }
        let Some(text) = rec.name.text() else {
            continue;
        };
        for a in &rec.addresses {
            sink.name(
                IpAddr::V4(*a),
                text.clone(),
                NameSource::Netbios,
                Some(rec.ttl),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tests::hex;

    /// Corpus `ndpi-gnutella.pcap` frame 33 (UDP 137 → 137, to 10.0.2.255): broadcast
    /// registration (flags 0x2910: opcode 5, RD, B) of MSEDGEWIN10<00>, one question and
    /// one additional record (name c00c, NB, IN, TTL 300000, NB_FLAGS 0x6000 = H-node,
    /// unique, NB_ADDRESS 10.0.2.15).
    const REGISTRATION_00: &str = "9c292910000100000000000120454e464445464545454845464648454a454f
        44424441434143414341434141410000200001c00c00200001000493e0000600000a00020f";

    /// Corpus `ndpi-gnutella.pcap` frame 43: the same host registering MSEDGEWIN10<20>.
    const REGISTRATION_20: &str = "9c2b2910000100000000000120454e464445464545454845464648454a454f
        44424441434143414341434143410000200001c00c00200001000493e0000600000a00020f";

    /// Corpus `ndpi-gnutella.pcap` frame 34: the same host registering WORKGROUP<00>,
    /// NB_FLAGS 0x8000: the group bit.
    const REGISTRATION_GROUP: &str = "9c2a2910000100000000000120464845504643454c454846434550464646
        4143414341434143414341434141410000200001c00c00200001000493e0000680000a00020f";

    /// Corpus `ndpi-netbios.pcap` frame 69 (10.0.4.24 → 10.0.4.165): positive name query
    /// response (flags 0x8500: R, opcode 0, AA, RD, rcode 0) for GUNNAR<00>, TTL 300000,
    /// NB_FLAGS 0x0000, NB_ADDRESS 10.0.4.24.
    const QUERY_RESPONSE: &str = "8486850000000001000000002045484646454f454f4542464343414341434143
        414341434143414341434141410000200001000493e0000600000a000418";

    /// Corpus `ndpi-netbios.pcap` frame 68: the query GUNNAR<00> that response answers.
    const QUERY: &str = "8486011000010000000000002045484646454f454f454246434341434143414341434143
        4143414341434141410000200001";

    /// Corpus `ndpi-netbios.pcap` frame 55: node status response (NBSTAT, type 0x21),
    /// which lists names but not the address they belong to.
    const NODE_STATUS: &str = "20a88400000000010000000020434b414141414141414141414141414141414141
        41414141414141414141414100002100010000000000770447554e4e4152202020202020202020000400
        564947494c414e545f47524f55502000840047554e4e4152202020202020202020200400564947494c41
        4e545f47524f5550201e8400001cc410790f000000000000000000000000000000000000000000000000
        00000000000000000000000000000000";

    fn run(msg: &[u8]) -> Vec<(String, String, Option<u32>)> {
        let mut out = Vec::new();
        harvest(msg, &mut out);
        out.iter()
            .map(|o| match o {
                Obs::Name {
                    ip,
                    name,
                    ttl,
                    source: NameSource::Netbios,
                } => (ip.to_string(), name.clone(), *ttl),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn t(ip: &str, name: &str) -> (String, String, Option<u32>) {
        (ip.to_string(), name.to_string(), Some(300_000))
    }

    #[test]
    fn registrations_of_host_names() {
        assert_eq!(
            run(&hex(REGISTRATION_00)),
            vec![t("10.0.2.15", "MSEDGEWIN10")]
        );
        assert_eq!(
            run(&hex(REGISTRATION_20)),
            vec![t("10.0.2.15", "MSEDGEWIN10")]
        );
    }

    #[test]
    fn group_names_are_skipped() {
        assert!(run(&hex(REGISTRATION_GROUP)).is_empty());
        // The name itself decodes: it is the G bit that rules it out.
        let b = bindings(&hex(REGISTRATION_GROUP));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].name.text().as_deref(), Some("WORKGROUP"));
        assert!(b[0].addresses.is_empty());
    }

    #[test]
    fn positive_query_response() {
        assert_eq!(run(&hex(QUERY_RESPONSE)), vec![t("10.0.4.24", "GUNNAR")]);
    }

    #[test]
    fn queries_and_node_status_give_nothing() {
        assert!(run(&hex(QUERY)).is_empty());
        assert!(run(&hex(NODE_STATUS)).is_empty());
    }

    #[test]
    fn negative_response_and_release_give_nothing() {
        // RCODE 6 (ACT_ERR, RFC 1002 section 4.2.6): someone else holds the name.
        let mut m = hex(QUERY_RESPONSE);
        m[3] |= 0x06;
        assert!(run(&m).is_empty());
        // Opcode 6 (release), request.
        let mut m = hex(REGISTRATION_00);
        m[2] = (m[2] & 0x87) | (6 << 3);
        assert!(run(&m).is_empty());
    }

    #[test]
    fn refresh_opcodes_count() {
        for op in [8u8, 9, 15] {
            let mut m = hex(REGISTRATION_00);
            m[2] = (m[2] & 0x87) | (op << 3);
            assert_eq!(run(&m), vec![t("10.0.2.15", "MSEDGEWIN10")], "opcode {op}");
        }
    }

    #[test]
    fn other_suffixes_are_skipped() {
        // MSEDGEWIN10<1d> (master browser): last encoded pair "BN".
        let mut m = hex(REGISTRATION_00);
        let at = 13 + 30;
        m[at..at + 2].copy_from_slice(b"BN");
        assert!(run(&m).is_empty());
    }

    #[test]
    fn first_level_decoding() {
        // RFC 1001 section 14.1: "FRED" padded with spaces encodes as
        // EGFCEFEECACACACACACACACACACACACA.
        let n = NbName::decode(b"EGFCEFEECACACACACACACACACACACACA").unwrap();
        assert_eq!(n.text().as_deref(), Some("FRED"));
        assert_eq!(n.suffix(), 0x20);
        assert!(NbName::decode(b"EGFCEFEECACACACACACACACACACACAC").is_none());
        assert!(NbName::decode(b"EGFCEFEECACACACACACACACACACACACQ").is_none());
        assert!(NbName::decode(b"egfcefeecacacacacacacacacacacaca").is_none());
        // A control byte in the name ("\x01\x02__MSBROWSE__\x02"): not printable.
        let mut enc = Vec::new();
        for b in *b"\x01\x02__MSBROWSE__\x02\x00" {
            enc.extend([b'A' + (b >> 4), b'A' + (b & 0x0f)]);
        }
        assert_eq!(NbName::decode(&enc).unwrap().text(), None);
    }

    #[test]
    fn multihomed_response_lists_each_unique_address() {
        let mut m = hex(QUERY_RESPONSE);
        // RDLENGTH 6 → 18: add a group entry and a second unique one.
        let rdlen = m.len() - 8;
        m[rdlen..rdlen + 2].copy_from_slice(&18u16.to_be_bytes());
        m.extend([0x80, 0x00, 10, 0, 4, 25, 0x00, 0x00, 10, 0, 9, 24]);
        assert_eq!(
            run(&m),
            vec![t("10.0.4.24", "GUNNAR"), t("10.0.9.24", "GUNNAR")]
        );
    }

    #[test]
    fn cut_messages_never_panic() {
        for f in [REGISTRATION_00, QUERY_RESPONSE, NODE_STATUS] {
            let m = hex(f);
            for cut in 0..m.len() {
                let _ = run(&m[..cut]);
            }
        }
    }
}
