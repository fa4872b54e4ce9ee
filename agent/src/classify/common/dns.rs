//! DNS (RFC 1035 4.1) over UDP, and over TCP with its two-byte length prefix (RFC 1035
//! 4.2.2); mDNS (RFC 6762) and LLMNR (RFC 4795), which use the same wire format byte for
//! byte, are told apart by their ports (5353, 5355) and nothing else.
//!
//! Promises `Yes` only for a message whose header is sane (opcode QUERY, STATUS, NOTIFY
//! or UPDATE; the reserved Z bit zero; a query has RCODE 0), whose first question name
//! parses with a bounded label walk and no compression pointer (nothing precedes it to
//! point at), with a known type and class; and, when the whole message is present,
//! whose every record parses and ends exactly where the message ends. Direction must
//! agree: queries from the client, responses from the server (mDNS, where both ends are
//! often 5353, may send either). NetBIOS name service packets, which borrow the format,
//! are left to [`super::netbios`].

use super::super::{Classification, Cx, Verdict};
use super::{finish, netbios, opening, stream, Parse};
use crate::flow::reassembly::MAX_DATAGRAM;

/// Header octets (RFC 1035 4.1.1).
pub const HEADER_LEN: usize = 12;
/// Longest name in octets (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Compression pointers followed in one name; each must point backwards, so this only
/// bounds the work.
pub const MAX_POINTER_HOPS: usize = 16;
/// Questions accepted (RFC 9619: exactly one for QUERY; mDNS may ask several at once).
pub const MAX_QUESTIONS: u16 = 16;
/// Resource records walked before the rest is taken on trust.
pub const MAX_RECORDS: usize = 128;

/// DNS server port.
pub const PORT_DNS: u16 = 53;
/// mDNS port (RFC 6762 3).
pub const PORT_MDNS: u16 = 5353;
/// LLMNR port (RFC 4795 2).
pub const PORT_LLMNR: u16 = 5355;

/// Opcodes accepted (RFC 1035 4.1.1, RFC 1996, RFC 2136); IQUERY (1) is obsolete.
const OPCODES: [u8; 4] = [0, 2, 4, 5];
/// Classes accepted: IN, CH, HS, NONE (RFC 2136), ANY.
const CLASSES: [u16; 5] = [1, 3, 4, 254, 255];
/// QR flag.
const FLAG_QR: u16 = 0x8000;
/// Reserved Z flag (RFC 1035 4.1.1, what RFC 2535 left of it): must be zero.
const FLAG_Z: u16 = 0x0040;
/// Top bit of the class: mDNS unicast-response / cache-flush (RFC 6762 5.4, 10.2).
const CLASS_MDNS_BIT: u16 = 0x8000;
/// OPT pseudo-record (RFC 6891), whose class is a payload size.
const TYPE_OPT: u16 = 41;

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// Flags word.
    pub flags: u16,
    /// Question count.
    pub qd: u16,
    /// Answer count.
    pub an: u16,
    /// Authority count.
    pub ns: u16,
    /// Additional count.
    pub ar: u16,
}

impl Header {
    /// A response.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
    /// The response code.
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// A parsed message: its header and its first name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Header.
    pub header: Header,
    /// First question name (or, without questions, first record owner), dotted.
    pub name: String,
    /// Its type.
    pub rtype: u16,
    /// The name comes from a question.
    pub question: bool,
}

/// Parses the header (RFC 1035 4.1.1) and checks what every sane message obeys.
pub fn parse_header(b: &[u8]) -> Parse<Header> {
    let Some(h) = b
        .get(..HEADER_LEN)
        .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
    else {
        return Parse::Short;
    };
    let header = Header {
        id: u16::from_be_bytes([h[0], h[1]]),
        flags: u16::from_be_bytes([h[2], h[3]]),
        qd: u16::from_be_bytes([h[4], h[5]]),
        an: u16::from_be_bytes([h[6], h[7]]),
        ns: u16::from_be_bytes([h[8], h[9]]),
        ar: u16::from_be_bytes([h[10], h[11]]),
    };
    let sane = OPCODES.contains(&header.opcode())
        && header.flags & FLAG_Z == 0
        && (header.is_response() || header.rcode() == 0)
        && header.qd <= MAX_QUESTIONS
        && (header.qd > 0 || (header.is_response() && header.an > 0));
    if sane {
        Parse::Ok(header)
    } else {
        Parse::Bad
    }
}

/// A name read from a message: where it ends in place, and its dotted text (when asked).
struct Name {
    end: usize,
    text: String,
}

/// Reads the name at `off` (RFC 1035 4.1.4). With `pointers` false a compression pointer
/// is refused; otherwise each pointer must point strictly before itself. Labels must be
/// text when `strict`. `Short` when `msg` ends inside the name.
fn parse_name(msg: &[u8], off: usize, pointers: bool, strict: bool, text: bool) -> Parse<Name> {
    let mut pos = off;
    let mut end = None;
    let mut hops = 0;
    let mut len = 0usize;
    let mut out = String::new();
    loop {
        let Some(&l) = msg.get(pos) else {
            return Parse::Short;
        };
        match l & 0xc0 {
            0x00 => {
                let l = usize::from(l);
                if l == 0 {
                    if text && out.is_empty() {
                        out.push('.');
                    }
                    return Parse::Ok(Name {
                        end: end.unwrap_or(pos + 1),
                        text: out,
                    });
                }
                len += l + 1;
                if len > MAX_NAME_LEN {
                    return Parse::Bad;
                }
                let Some(label) = pos.checked_add(1).and_then(|s| msg.get(s..s + l)) else {
                    return Parse::Short;
                };
                if strict && label.iter().any(|&c| c < 0x20 || c == 0x7f) {
                    return Parse::Bad;
                }
                if text {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&super::super::util::printable(label));
                }
                pos += 1 + l;
            }
            0xc0 => {
                if !pointers {
                    return Parse::Bad;
                }
                let Some(&lo) = msg.get(pos + 1) else {
                    return Parse::Short;
                };
                let target = usize::from(u16::from_be_bytes([l & 0x3f, lo]));
                hops += 1;
                if target >= pos || target < HEADER_LEN || hops > MAX_POINTER_HOPS {
                    return Parse::Bad;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            // 0x40 and 0x80: extended and reserved label types (RFC 6891 5).
            _ => return Parse::Bad,
        }
    }
}

/// Known RR types: the assigned ranges of the IANA registry, meta-types and private use.
fn known_type(t: u16) -> bool {
    matches!(t, 1..=66 | 99..=109 | 249..=261 | 32768 | 32769 | 65280..=65534)
}

/// Class in the accepted set, after the mDNS top bit is masked off.
fn known_class(c: u16) -> bool {
    CLASSES.contains(&(c & !CLASS_MDNS_BIT))
}

/// Parses a message. `complete` says `msg` is the whole message: then every record must
/// parse and the last must end at its end; otherwise (a cut datagram, a TCP prefix) the
/// header and first question suffice and a record cut by the end is accepted.
pub fn parse_message(msg: &[u8], complete: bool) -> Parse<Message> {
    match parse_body(msg, complete) {
        // A whole message that ends inside a field is malformed, not short.
        Parse::Short if complete => Parse::Bad,
        p => p,
    }
}

fn parse_body(msg: &[u8], complete: bool) -> Parse<Message> {
    let header = match parse_header(msg) {
        Parse::Ok(h) => h,
        Parse::Short => return Parse::Short,
        Parse::Bad => return Parse::Bad,
    };
    let mut off = HEADER_LEN;
    let mut first: Option<(String, u16, bool)> = None;
    for i in 0..header.qd {
        let name = match parse_name(msg, off, i > 0, i == 0, i == 0) {
            Parse::Ok(n) => n,
            Parse::Short => return Parse::Short,
            Parse::Bad => return Parse::Bad,
        };
        let (Some(qtype), Some(qclass)) = (
            super::super::util::be16(msg, name.end),
            super::super::util::be16(msg, name.end + 2),
        ) else {
            return Parse::Short;
        };
        if !known_type(qtype) || !known_class(qclass) {
            return Parse::Bad;
        }
        if i == 0 {
            first = Some((name.text, qtype, true));
        }
        off = name.end + 4;
    }
    let records = usize::from(header.an) + usize::from(header.ns) + usize::from(header.ar);
    for i in 0..records.min(MAX_RECORDS) {
        let want_text = first.is_none() && i == 0;
        let name = match parse_name(msg, off, true, want_text, want_text) {
            Parse::Ok(n) => n,
            Parse::Short if complete || first.is_none() => return Parse::Short,
            Parse::Short => break,
            Parse::Bad => return Parse::Bad,
        };
        let fixed = name
            .end
            .checked_add(10)
            .and_then(|e| msg.get(name.end..e))
            .and_then(|f| <&[u8; 10]>::try_from(f).ok());
        let Some(fixed) = fixed else {
            if complete || first.is_none() {
                return Parse::Short;
            }
            break;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if !known_type(rtype) || (rtype != TYPE_OPT && !known_class(class)) {
            return Parse::Bad;
        }
        if rtype == TYPE_OPT && name.end != off + 1 {
            // OPT's owner is the root (RFC 6891 6.1.2).
            return Parse::Bad;
        }
        if first.is_none() {
            first = Some((name.text, rtype, false));
        }
        off = name.end + 10 + rdlen;
        if off > msg.len() {
            if complete {
                return Parse::Bad;
            }
            break;
        }
    }
    if complete && records <= MAX_RECORDS && off != msg.len() {
        return Parse::Bad;
    }
    match first {
        Some((name, rtype, question)) => Parse::Ok(Message {
            header,
            name,
            rtype,
            question,
        }),
        None => Parse::Short,
    }
}

/// Parses one UDP datagram as a message; a datagram filling the capture cap may be cut.
pub fn parse_datagram(d: &[u8]) -> Parse<Message> {
    parse_message(d, d.len() < MAX_DATAGRAM)
}

/// Parses the opening bytes of a TCP direction: a two-byte length (RFC 1035 4.2.2), then
/// the first message.
pub fn parse_tcp(b: &[u8]) -> Parse<Message> {
    let Some(len) = super::super::util::be16(b, 0) else {
        return Parse::Short;
    };
    let len = usize::from(len);
    if len < HEADER_LEN {
        return Parse::Bad;
    }
    let msg = b.get(2..b.len().min(2 + len)).unwrap_or(&[]);
    parse_message(msg, msg.len() == len)
}

/// Which of the three names this flow's port gives the format: protocol name, rule id,
/// and the fields of a question and of an answer.
struct Flavour {
    protocol: &'static str,
    rule: &'static str,
    query: &'static str,
    answer: &'static str,
}

const DNS: Flavour = Flavour {
    protocol: "dns",
    rule: "setten.dns.header",
    query: "dns.query",
    answer: "dns.answer",
};

/// The flavour a flow's ports name; plain DNS when none does.
fn flavour(cx: &Cx<'_>) -> Flavour {
    if cx.port_is(PORT_DNS) {
        DNS
    } else if cx.port_is(PORT_MDNS) {
        Flavour {
            protocol: "mdns",
            rule: "setten.mdns.header",
            query: "mdns.query",
            answer: "mdns.answer",
        }
    } else if cx.port_is(PORT_LLMNR) {
        Flavour {
            protocol: "llmnr",
            rule: "setten.llmnr.header",
            query: "llmnr.query",
            answer: "llmnr.answer",
        }
    } else {
        DNS
    }
}

/// The message fits its direction and flavour.
fn fits(m: &Message, protocol: &str, from_client: bool) -> bool {
    let h = &m.header;
    // NetBIOS name service borrows the format (RFC 1002 4.2); it is named there.
    if m.question
        && matches!(m.rtype, netbios::TYPE_NB | netbios::TYPE_NBSTAT)
        && netbios::is_encoded_name_text(&m.name)
    {
        return false;
    }
    if protocol == "mdns" {
        return true;
    }
    if h.is_response() == from_client || !m.question {
        return false;
    }
    // A standard query asks one question and carries no answers (RFC 9619; RFC 4795
    // 2.1.1 for LLMNR); NOTIFY and UPDATE also have exactly one question or zone.
    h.qd == 1 && (h.is_response() || h.opcode() != 0 || (h.an == 0 && h.ns == 0))
}

/// Human name of a type for evidence.
fn type_name(t: u16) -> String {
    let n = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        _ => return format!("TYPE{t}"),
    };
    n.to_owned()
}

/// Names DNS, mDNS or LLMNR.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let Flavour {
        protocol,
        rule,
        query,
        answer,
    } = flavour(cx);
    let p = if cx.is_udp() {
        opening(
            cx,
            |d| parse_datagram(d).and_then(|m| accept(m, protocol, true)),
            |d| parse_datagram(d).and_then(|m| accept(m, protocol, false)),
        )
    } else {
        stream(cx.c2s, parse_tcp)
            .and_then(|m| accept(m, protocol, true))
            .or_else(|| stream(cx.s2c, parse_tcp).and_then(|m| accept(m, protocol, false)))
    };
    finish(
        cx,
        p.map(|m| {
            let field = if m.question { query } else { answer };
            Classification::new(
                protocol,
                None,
                rule,
                field,
                format!("{} {}", m.name, type_name(m.rtype)),
            )
        }),
    )
}

fn accept(m: Message, protocol: &str, from_client: bool) -> Parse<Message> {
    if fits(&m, protocol, from_client) {
        Parse::Ok(m)
    } else {
        Parse::Bad
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// Query for example.com A with RD set (RFC 1035 4.1, as `dig example.com` sends it
    /// without EDNS).
    fn query() -> Vec<u8> {
        hex("1234 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001")
    }

    /// Its answer: one A record whose owner is a pointer to the question (4.1.4).
    fn answer() -> Vec<u8> {
        hex(
            "1234 8180 0001 0001 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001
             c00c 0001 0001 00000e10 0004 5db8d822",
        )
    }

    #[test]
    fn query_and_answer() {
        let m = parse_datagram(&query()).ok().unwrap();
        assert_eq!((m.name.as_str(), m.rtype), ("example.com", 1));
        assert!(!m.header.is_response());
        let m = parse_datagram(&answer()).ok().unwrap();
        assert!(m.header.is_response());
        let c = Flow::udp(40000, 53).c2s(&query()).yes(check);
        assert_eq!((c.protocol, c.service), ("dns", None));
        assert_eq!(c.evidence[0].value, "example.com A");
        assert_eq!(c.evidence[0].rule, "setten.dns.header");
        // Only the answer was captured.
        assert_eq!(
            Flow::udp(40000, 53).s2c(&answer()).yes(check).protocol,
            "dns"
        );
    }

    #[test]
    fn tcp_with_length_prefix() {
        let q = query();
        let mut b = (q.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(&q);
        assert_eq!(Flow::tcp(40000, 53).c2s(&b).yes(check).protocol, "dns");
        // Cut inside the question: wait for the rest.
        assert!(Flow::tcp(40000, 53).c2s(&b[..16]).is_wait(check));
        assert!(Flow::tcp(40000, 53).c2s(&b[..16]).is_no_at_end(check));
        // A length shorter than a header is not DNS.
        assert!(Flow::tcp(40000, 53)
            .c2s(b"\x00\x05hello")
            .s2c(b"\x00\x05world")
            .is_no(check));
    }

    #[test]
    fn ports_pick_mdns_and_llmnr() {
        // LLMNR query for "wpad" (RFC 4795 2.1.1), ndpi-1kxun.pcap.
        let q = hex("8d3a 0000 0001 0000 0000 0000 04 77706164 00 0001 0001");
        let c = Flow::udp(51234, PORT_LLMNR).c2s(&q).yes(check);
        assert_eq!(
            (c.protocol, &*c.evidence[0].rule),
            ("llmnr", "setten.llmnr.header")
        );
        // mDNS announcement: a response without questions, cache-flush class (RFC 6762
        // 10.2), sent from 5353 to 5353.
        let a =
            hex("0000 8400 0000 0001 0000 0000 05 6c6f63616c 00 0001 8001 00000078 0004 c0a80001");
        let c = Flow::udp(PORT_MDNS, PORT_MDNS).c2s(&a).yes(check);
        assert_eq!(c.protocol, "mdns");
        assert_eq!(c.evidence[0].value, "local A");
        // The same announcement between other ports is not a plain DNS message.
        assert!(Flow::udp(40000, 53).c2s(&a).is_no(check));
    }

    #[test]
    fn compression_pointer_in_first_question_refused() {
        // RFC 1035 4.1.4: nothing precedes the first question to point at.
        let q = hex("1234 0100 0001 0000 0000 0000 c00c 0001 0001");
        assert_eq!(parse_datagram(&q), Parse::Bad);
        // A forward or self pointer in a record is refused too.
        let a =
            hex("1234 8180 0001 0001 0000 0000 01 61 00 0001 0001 c01d 0001 0001 00000e10 0000");
        assert_eq!(parse_datagram(&a), Parse::Bad);
    }

    #[test]
    fn header_sanity() {
        let mut q = query();
        q[2] |= 0x08; // opcode 1, IQUERY
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        q[3] |= 0x40; // Z bit
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        q[3] |= 0x03; // RCODE in a query
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        q[5] = 0; // no question in a query
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        q.push(0); // a trailing byte after the last record
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        let n = q.len();
        q[n - 1] = 9; // unknown class
        assert_eq!(parse_datagram(&q), Parse::Bad);
        let mut q = query();
        q[12] = 0x47; // a label longer than 63 (0x40 label type)
        assert_eq!(parse_datagram(&q), Parse::Bad);
    }

    #[test]
    fn direction_must_agree() {
        // An answer sent by the client is not DNS (UDP: the client's first datagram decides),
        // nor a query sent by the server.
        assert!(Flow::udp(40000, 53).c2s(&answer()).is_no(check));
        assert!(Flow::udp(40000, 53)
            .c2s(&answer())
            .s2c(&query())
            .is_no(check));
    }

    #[test]
    fn edns_opt_record() {
        // dig +edns query (RFC 6891 6.1.2): OPT in the additional section.
        let q = hex(
            "1234 0120 0001 0000 0000 0001 07 6578616d706c65 03 636f6d 00 0001 0001
                     00 0029 04d0 00000000 000c 000a 0008 0102030405060708",
        );
        let c = Flow::udp(40000, 53).c2s(&q).yes(check);
        assert_eq!(c.evidence[0].value, "example.com A");
        // OPT with a non-root owner is refused.
        let bad = hex(
            "1234 0120 0001 0000 0000 0001 01 61 00 0001 0001 01 61 00 0029 04d0 00000000 0000",
        );
        assert_eq!(parse_datagram(&bad), Parse::Bad);
    }

    #[test]
    fn netbios_names_are_left_to_netbios() {
        // NBNS name query for "WORKGROUP<1b>"-style encoded name (RFC 1002 4.2.12),
        // ndpi-netbios.pcap frame 1.
        let q = hex("9a44 0110 0001 0000 0000 0000 20 4550464b454a434143414341434143414341434143414341434143414341424d 00 0020 0001");
        assert!(Flow::udp(137, 137).c2s(&q).is_no(check));
    }

    #[test]
    fn random_and_cut_bytes() {
        assert!(Flow::udp(40000, 53)
            .c2s(&[0xff; 40])
            .s2c(&[0; 3])
            .is_no(check));
        for n in 0..query().len() {
            assert!(
                !matches!(parse_datagram(&query()[..n]), Parse::Ok(_)),
                "cut at {n}"
            );
        }
        // A record owner pointing at itself: pointers only go backwards, so no loop.
        let a =
            hex("1234 8180 0001 0001 0000 0000 01 61 00 0001 0001 c013 0001 0001 00000e10 0000");
        assert!(!matches!(parse_datagram(&a), Parse::Ok(_)));
    }
}
