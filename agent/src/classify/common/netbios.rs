//! NetBIOS over TCP/IP (RFC 1002): the name service (UDP, 4.2), the datagram service
//! (UDP, 4.4) and the session service's session request (TCP, 4.3.2).
//!
//! All three carry NetBIOS names in the first-level encoding (RFC 1001 14.1): a label of
//! 32 characters 'A'..='P', two per byte of the 16-byte name. That encoding, plus the
//! header fields each packet type fixes (opcode and counts; message type, flags and
//! datagram length; session packet type and length), is what `Yes` rests on. A session
//! followed by SMB is named by [`super::smb`]; here only a session that shows no SMB.

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, opening, require, smb, stream, take, Parse};

/// Name service record type NB (RFC 1002 4.2.1.3).
pub const TYPE_NB: u16 = 0x0020;
/// Name service record type NBSTAT.
pub const TYPE_NBSTAT: u16 = 0x0021;
/// Class IN.
const CLASS_IN: u16 = 0x0001;
/// Octets of an encoded name label (RFC 1001 14.1).
pub const ENCODED_LEN: usize = 32;
/// Longest encoded name with its scope (RFC 1002 4.1: at most 255 octets, like DNS).
pub const MAX_NAME_LEN: usize = 255;
/// Name service header octets.
const NS_HEADER_LEN: usize = 12;
/// Datagram service header octets before the names (RFC 1002 4.4.1, 4.4.2).
const DGM_HEADER_LEN: usize = 14;
/// Session service: SESSION REQUEST packet type (RFC 1002 4.3.1).
pub const SESSION_REQUEST: u8 = 0x81;
/// POSITIVE SESSION RESPONSE.
pub const SESSION_POSITIVE: u8 = 0x82;
/// NEGATIVE SESSION RESPONSE.
pub const SESSION_NEGATIVE: u8 = 0x83;

/// A first-level encoded name: 32 characters 'A'..='P'.
pub fn is_encoded_label(label: &[u8]) -> bool {
    label.len() == ENCODED_LEN && label.iter().all(|c| (b'A'..=b'P').contains(c))
}

/// A dotted DNS name whose first label is a first-level encoded NetBIOS name.
pub fn is_encoded_name_text(name: &str) -> bool {
    is_encoded_label(name.split('.').next().unwrap_or("").as_bytes())
}

/// Decodes an encoded label to "NAME<xx>" (15 characters trimmed, then the suffix).
pub fn decode_label(label: &[u8]) -> String {
    let bytes: Vec<u8> = label
        .chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => (hi.wrapping_sub(b'A') << 4) | (lo.wrapping_sub(b'A') & 0x0f),
            _ => 0,
        })
        .collect();
    let (name, suffix) = bytes.split_at(bytes.len().saturating_sub(1));
    let name = super::super::util::printable(name);
    format!(
        "{}<{:02x}>",
        name.trim_end(),
        suffix.first().copied().unwrap_or(0)
    )
}

/// Reads an encoded name with its scope labels at `off`: where it ends and its decoded
/// first label. No compression pointers (the caller handles the one place they occur).
pub fn parse_name(b: &[u8], off: usize) -> Parse<(usize, String)> {
    need!(byte(b, off).and_then(|l| require(usize::from(l) == ENCODED_LEN)));
    let label = need!(take(b, off + 1, ENCODED_LEN));
    need!(require(is_encoded_label(label)));
    let mut pos = off + 1 + ENCODED_LEN;
    loop {
        let l = usize::from(need!(byte(b, pos)));
        if l == 0 {
            return Parse::Ok((pos + 1, decode_label(label)));
        }
        if l > 63 || pos + 1 + l - off > MAX_NAME_LEN {
            return Parse::Bad;
        }
        pos += 1 + l;
    }
}

/// A name service packet (RFC 1002 4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePacket {
    /// Response (R bit).
    pub response: bool,
    /// Opcode (0 query, 5 registration, 6 release, 7 WACK, 8 refresh).
    pub opcode: u8,
    /// The name asked about, decoded.
    pub name: String,
    /// NB or NBSTAT.
    pub rtype: u16,
}

/// Parses a name service packet: header (4.2.1.1), then a question (requests) or one
/// resource record (responses) whose name is encoded, with type NB or NBSTAT and class
/// IN, ending exactly at the end of the datagram.
pub fn parse_name_packet(d: &[u8]) -> Parse<NamePacket> {
    let flags = need!(be16(d, 2));
    let (qd, an, ns, ar) = (
        need!(be16(d, 4)),
        need!(be16(d, 6)),
        need!(be16(d, 8)),
        need!(be16(d, 10)),
    );
    let response = flags & 0x8000 != 0;
    let opcode = ((flags >> 11) & 0x0f) as u8;
    // Opcodes of 4.2.1.1 plus 15, multi-homed registration; NM_FLAGS bits 5 and 6 are
    // reserved zero.
    need!(require(
        matches!(opcode, 0 | 5..=8 | 15) && flags & 0x0060 == 0
    ));
    need!(require(if response {
        qd == 0 && an == 1 && ns == 0 && ar == 0
    } else {
        qd == 1 && an == 0 && ns == 0 && ar <= 1
    }));
    let (end, name) = need!(parse_name(d, NS_HEADER_LEN));
    let rtype = need!(be16(d, end));
    need!(require(
        matches!(rtype, TYPE_NB | TYPE_NBSTAT) && need!(be16(d, end + 2)) == CLASS_IN
    ));
    let mut off = end + 4;
    if ar == 1 {
        // A registration's additional record names the question, by pointer (0xC00C)
        // or in full, with the same type and class (4.2.2).
        off = if need!(be16(d, off)) == 0xc00c {
            off + 2
        } else {
            need!(parse_name(d, off)).0
        };
        need!(require(
            need!(be16(d, off)) == rtype && need!(be16(d, off + 2)) == CLASS_IN
        ));
        off += 4;
    }
    if response || ar == 1 {
        // TTL, RDLENGTH, RDATA.
        let rdlen = need!(be16(d, off + 4));
        off += 6 + usize::from(rdlen);
    }
    need!(require(off == d.len()));
    Parse::Ok(NamePacket {
        response,
        opcode,
        name,
        rtype,
    })
}

/// A datagram service packet (RFC 1002 4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatagramPacket {
    /// MSG_TYPE.
    pub msg_type: u8,
    /// Source name, decoded (direct and broadcast datagrams).
    pub source: Option<String>,
    /// Destination name, decoded.
    pub destination: String,
}

/// Parses a datagram service packet: type 0x10..=0x16, reserved flag bits zero, and per
/// type the length and names (4.4.2 ff.).
pub fn parse_datagram_packet(d: &[u8]) -> Parse<DatagramPacket> {
    let (Some(&msg_type), Some(&flags)) = (d.first(), d.get(1)) else {
        return Parse::Short;
    };
    // Flags: bits 4..7 reserved zero (SNT, F and M take the rest).
    if !(0x10..=0x16).contains(&msg_type) || flags & 0xf0 != 0 {
        return Parse::Bad;
    }
    match msg_type {
        0x10..=0x12 => {
            // DIRECT_UNIQUE, DIRECT_GROUP, BROADCAST: DGM_LENGTH counts the bytes after
            // PACKET_OFFSET; a first fragment starts at offset 0.
            let (len, offset) = (need!(be16(d, 10)), need!(be16(d, 12)));
            let first = flags & 0x02 != 0;
            if usize::from(len) != d.len().saturating_sub(DGM_HEADER_LEN) || (first && offset != 0)
            {
                return Parse::Bad;
            }
            if !first {
                // A later fragment carries no names to check.
                return Parse::Bad;
            }
            let (end, source) = need!(parse_name(d, DGM_HEADER_LEN));
            let (_, destination) = need!(parse_name(d, end));
            Parse::Ok(DatagramPacket {
                msg_type,
                source: Some(source),
                destination,
            })
        }
        0x13 => Parse::Bad, // DATAGRAM ERROR: 11 bytes, too little to be sure of.
        _ => {
            // Query request and responses: header (10 bytes), then the destination name.
            match parse_name(d, 10) {
                Parse::Ok((end, destination)) if end == d.len() => Parse::Ok(DatagramPacket {
                    msg_type,
                    source: None,
                    destination,
                }),
                _ => Parse::Bad,
            }
        }
    }
}

/// A session request (RFC 1002 4.3.2): called and calling names, and where it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    /// Called name, decoded.
    pub called: String,
    /// Calling name, decoded.
    pub calling: String,
    /// Octets the request takes.
    pub len: usize,
}

/// Parses a SESSION REQUEST: type 0x81, flags with only the length extension bit, and a
/// length that is exactly the two encoded names.
pub fn parse_session_request(b: &[u8]) -> Parse<SessionRequest> {
    need!(require(need!(byte(b, 0)) == SESSION_REQUEST));
    let flags = need!(byte(b, 1));
    need!(require(flags & 0xfe == 0));
    let len = usize::from(need!(be16(b, 2))) | (usize::from(flags & 1) << 16);
    need!(require(
        (2 * (ENCODED_LEN + 2)..=2 * MAX_NAME_LEN).contains(&len)
    ));
    let (end, called) = need!(parse_name(b, 4));
    let (end, calling) = need!(parse_name(b, end));
    need!(require(end == 4 + len));
    Parse::Ok(SessionRequest {
        called,
        calling,
        len: end,
    })
}

fn op_name(p: &NamePacket) -> &'static str {
    match (p.opcode, p.response) {
        (0, false) => "name query",
        (0, true) => "name query response",
        (5 | 15, false) => "name registration",
        (5 | 15, true) => "name registration response",
        (6, _) => "name release",
        (7, _) => "wait for acknowledgement",
        (8, _) => "name refresh",
        _ => "name service",
    }
}

/// Names NetBIOS name, datagram or session service traffic.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if cx.is_udp() {
        let ns = |d: &[u8]| {
            parse_name_packet(d).map(|p| {
                let rule = "setten.netbios.ns";
                let what = if p.rtype == TYPE_NBSTAT {
                    "NBSTAT"
                } else {
                    "NB"
                };
                Classification::new(
                    "netbios",
                    None,
                    rule,
                    "netbios.ns",
                    format!("{} {} {}", p.name, what, op_name(&p)),
                )
            })
        };
        let dgm = |d: &[u8]| {
            parse_datagram_packet(d).map(|p| {
                let v = match p.source {
                    Some(s) => format!("{s} to {} (type {:#04x})", p.destination, p.msg_type),
                    None => format!("{} (type {:#04x})", p.destination, p.msg_type),
                };
                Classification::new("netbios", None, "setten.netbios.dgm", "netbios.dgm", v)
            })
        };
        let p = opening(
            cx,
            |d| ns(d).or_else(|| dgm(d)),
            |d| ns(d).or_else(|| dgm(d)),
        );
        return finish(cx, p);
    }
    // TCP: a session request with nothing after it yet that could be SMB.
    let p = stream(cx.c2s, parse_session_request).and_then(|r| {
        let rest = cx.c2s.bytes().get(r.len..).unwrap_or(&[]);
        if rest.is_empty() && !cx.last && !cx.c2s.is_done() {
            return Parse::Short;
        }
        if !rest.is_empty() && !smb::parse_messages(rest, true).is_bad() {
            return Parse::Bad; // SMB follows: named there.
        }
        let answer = match cx.s2c.bytes().first() {
            Some(&SESSION_POSITIVE) => " accepted",
            Some(&SESSION_NEGATIVE) => " refused",
            _ => "",
        };
        Parse::Ok(Classification::new(
            "netbios",
            None,
            "setten.netbios.session",
            "netbios.session_request",
            format!("called={} calling={}{answer}", r.called, r.calling),
        ))
    });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// First-level encoding of a 15-character name and its suffix (RFC 1001 14.1).
    fn encode(name: &str, suffix: u8) -> String {
        let mut n = format!("{name:<15}").into_bytes();
        n.push(suffix);
        n.iter()
            .map(|b| format!("{:02x}{:02x}", b'A' + (b >> 4), b'A' + (b & 15)))
            .collect()
    }

    #[test]
    fn name_query() {
        // ndpi-netbios.pcap frame 1 (10.0.5.233 to 10.0.5.255): broadcast name query.
        let q = hex("9a44 0110 0001 0000 0000 0000
                     20 4550464b454a434143414341434143414341434143414341434143414341424d 00
                     0020 0001");
        let p = parse_name_packet(&q).ok().unwrap();
        assert_eq!((p.name.as_str(), p.response), ("OZI<1c>", false));
        let c = Flow::udp(137, 137).c2s(&q).yes(check);
        assert_eq!((c.protocol, c.service), ("netbios", None));
        assert_eq!(c.evidence[0].value, "OZI<1c> NB name query");
        // One extra byte, or a name character outside 'A'..='P', is not NetBIOS.
        let mut long = q.clone();
        long.push(0);
        assert_eq!(parse_name_packet(&long), Parse::Bad);
        let mut bad = q.clone();
        bad[13] = b'Z';
        assert_eq!(parse_name_packet(&bad), Parse::Bad);
        assert_eq!(parse_name_packet(&q[..30]), Parse::Short);
    }

    #[test]
    fn registration_with_additional_record() {
        // RFC 1002 4.2.2 NAME REGISTRATION REQUEST: the additional record names the
        // question by pointer; TTL, then 6 bytes of RDATA (NB_FLAGS, address).
        let r = hex(&format!(
            "1234 2910 0001 0000 0000 0001 20 {} 00 0020 0001
             c00c 0020 0001 000493e0 0006 6000 0a000483",
            encode("WORKGROUP", 0x1b)
        ));
        let p = parse_name_packet(&r).ok().unwrap();
        assert_eq!((p.opcode, p.name.as_str()), (5, "WORKGROUP<1b>"));
        let mut bad = r.clone();
        bad.pop();
        assert_eq!(parse_name_packet(&bad), Parse::Bad);
    }

    #[test]
    fn positive_query_response() {
        // RFC 1002 4.2.13 POSITIVE NAME QUERY RESPONSE: one answer record.
        let r = hex(&format!(
            "9a44 8500 0000 0001 0000 0000 20 {} 00 0020 0001 000493e0 0006 0000 0a000418",
            encode("FILESRV", 0x20)
        ));
        let c = Flow::udp(137, 137).s2c(&r).yes(check);
        assert_eq!(c.evidence[0].value, "FILESRV<20> NB name query response");
    }

    #[test]
    fn datagram_service_broadcast() {
        // RFC 1002 4.4.2 BROADCAST DATAGRAM: first fragment, DGM_LENGTH counting the
        // bytes after PACKET_OFFSET, source and destination names, then the body.
        let body = b"\xffSMB%";
        let names = format!(
            "20 {} 00 20 {} 00",
            encode("PC1", 0x00),
            encode("WORKGROUP", 0x1d)
        );
        let len = 68 + body.len();
        let d = [
            hex(&format!("12 02 8123 0a000505 008a {len:04x} 0000 {names}")),
            body.to_vec(),
        ]
        .concat();
        let p = parse_datagram_packet(&d).ok().unwrap();
        assert_eq!(p.source.as_deref(), Some("PC1<00>"));
        assert_eq!(p.destination, "WORKGROUP<1d>");
        let c = Flow::udp(138, 138).c2s(&d).yes(check);
        assert_eq!(c.evidence[0].rule, "setten.netbios.dgm");
        let mut bad = d.clone();
        bad[11] ^= 1; // DGM_LENGTH off by one
        assert_eq!(parse_datagram_packet(&bad), Parse::Bad);
        let mut bad = d.clone();
        bad[1] = 0x12; // a reserved flag bit
        assert_eq!(parse_datagram_packet(&bad), Parse::Bad);
        // ndpi-netbios.pcap frame 20 (header): DIRECT_GROUP from an NBDD-type node
        // (SNT 3), first fragment.
        let mut h = d.clone();
        h[0] = 0x11;
        h[1] = 0x0e;
        assert!(parse_datagram_packet(&h).ok().is_some());
    }

    #[test]
    fn session_request_alone() {
        // RFC 1002 4.3.2 SESSION REQUEST, then a positive response (4.3.3).
        let req = hex(&format!(
            "81 00 0044 20 {} 00 20 {} 00",
            encode("FILESRV", 0x20),
            encode("PC1", 0x00)
        ));
        assert_eq!(parse_session_request(&req).ok().unwrap().len, 72);
        let f = Flow::tcp(1398, 139).c2s(&req);
        assert!(f.is_wait(check));
        let f = f.s2c(b"\x82\x00\x00\x00");
        let c = match f.run(check, true) {
            Verdict::Yes(c) => c,
            v => panic!("{v:?}"),
        };
        assert_eq!(
            c.evidence[0].value,
            "called=FILESRV<20> calling=PC1<00> accepted"
        );
        let mut bad = req.clone();
        bad[3] = 0x45; // a length that is not the two names
        assert_eq!(parse_session_request(&bad), Parse::Bad);
    }

    #[test]
    fn other_bytes_are_not_netbios() {
        assert!(Flow::udp(137, 137)
            .c2s(&[0u8; 50])
            .s2c(&[1u8; 50])
            .is_no(check));
        assert!(Flow::tcp(5000, 139)
            .c2s(b"\x81\x00\x00\x44 AAAA")
            .is_wait(check));
        assert!(Flow::tcp(5000, 139)
            .c2s(b"\x81\x00\x00\x44 AAAA")
            .is_no_at_end(check));
        assert!(Flow::tcp(5000, 139).c2s(b"GET / HTTP/1.1\r\n").is_no(check));
        assert!(is_encoded_name_text(
            "EPFKEJCACACACACACACACACACACACABM.scope"
        ));
        assert!(!is_encoded_name_text("example.com"));
    }
}
