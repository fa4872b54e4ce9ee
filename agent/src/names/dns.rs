//! The DNS message format (RFC 1035 section 4), and names from its answers.
//!
//! Unicast DNS, LLMNR (RFC 4795 section 2.1) and mDNS (RFC 6762 section 18) share the
//! format; [`harvest`] takes A and AAAA answers from all three. In a DNS or LLMNR answer
//! the address gets the name the client asked for, reached through the answer's CNAME
//! chain, and the A/AAAA record's own name when it differs; records off that chain are
//! ignored, as a resolver would. mDNS responders announce their own names, usually
//! without a question, in the answer and additional sections alike.
//!
//! Names are read with compression (RFC 1035 section 4.1.4): every pointer must go to an
//! offset before the part of the name read so far, so the walk always ends; hops are
//! capped besides. Names are lowercased (DNS compares ASCII case-insensitively, RFC 4343,
//! and resolvers randomise the case of queries), without the trailing dot.

use super::{printable, NameSource, Obs, Sink, MAX_NAME_LEN};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Header length (RFC 1035 section 4.1.1).
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire, length octets and root label included (RFC 1035 section 3.1).
pub const MAX_WIRE_NAME: usize = 255;
/// Longest label (RFC 1035 section 2.3.4); the length octet's two top bits are its type.
pub const MAX_LABEL: usize = 63;
/// Compression pointers followed in one name (each must also go further back).
pub const MAX_POINTER_HOPS: usize = 16;
/// Questions skipped to reach the answers; real messages carry one.
pub const MAX_QUESTIONS: u16 = 4;
/// Resource records read from one message, all sections together.
pub const MAX_RECORDS: usize = 64;
/// CNAME records kept from one message, and links followed from the question.
pub const MAX_CNAMES: usize = 16;
/// A/AAAA records kept from one message.
pub const MAX_ADDRESS_RECORDS: usize = 32;

/// Why a message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The message ends inside a field.
    #[error("truncated")]
    Truncated,
    /// A label type other than plain (00) or pointer (11) (RFC 1035 section 4.1.4;
    /// RFC 6891 section 5 retired the extended types).
    #[error("unknown label type")]
    BadLabel,
    /// A pointer into the header, forward, or one hop too many.
    #[error("bad compression pointer")]
    BadPointer,
    /// Longer than [`MAX_WIRE_NAME`] octets.
    #[error("name too long")]
    NameTooLong,
    /// A record's data runs past the message, or a name in it past the data.
    #[error("record data out of bounds")]
    BadRdata,
}

/// Resource record type (RFC 1035 section 3.2.2; later RFCs as cited).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RrType(pub u16);

impl RrType {
    /// IPv4 address.
    pub const A: RrType = RrType(1);
    /// Name server.
    pub const NS: RrType = RrType(2);
    /// Alias (RFC 1035 section 3.3.1).
    pub const CNAME: RrType = RrType(5);
    /// Pointer (reverse lookups, DNS-SD).
    pub const PTR: RrType = RrType(12);
    /// IPv6 address (RFC 3596 section 2.1).
    pub const AAAA: RrType = RrType(28);
    /// NetBIOS general name service record (RFC 1002 section 4.2.1.3).
    pub const NB: RrType = RrType(32);
    /// NetBIOS node status (RFC 1002 section 4.2.1.3).
    pub const NBSTAT: RrType = RrType(33);
}

/// Class IN (RFC 1035 section 3.2.4).
pub const CLASS_IN: u16 = 1;
/// mDNS: the class's top bit is the cache-flush flag in records (RFC 6762 section 10.2)
/// and the unicast-response flag in questions (section 5.4).
pub const MDNS_CLASS_FLAG: u16 = 0x8000;

/// Header flags (RFC 1035 section 4.1.1; LLMNR reuses the layout with its own bits,
/// RFC 4795 section 2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub u16);

impl Flags {
    /// QR: a response.
    pub fn is_response(self) -> bool {
        self.0 & 0x8000 != 0
    }
    /// OPCODE (0 = standard query).
    pub fn opcode(self) -> u8 {
        ((self.0 >> 11) & 0x0f) as u8
    }
    /// TC: truncated.
    pub fn is_truncated(self) -> bool {
        self.0 & 0x0200 != 0
    }
    /// RCODE (0 = no error).
    pub fn rcode(self) -> u8 {
        (self.0 & 0x000f) as u8
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// Flags.
    pub flags: Flags,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

/// Big-endian u16 at `off`.
fn u16_at(msg: &[u8], off: usize) -> Result<u16, Error> {
    match *msg
        .get(off..off.checked_add(2).ok_or(Error::Truncated)?)
        .ok_or(Error::Truncated)?
    {
        [a, b] => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Error::Truncated),
    }
}

/// Big-endian u32 at `off`.
fn u32_at(msg: &[u8], off: usize) -> Result<u32, Error> {
    match *msg
        .get(off..off.checked_add(4).ok_or(Error::Truncated)?)
        .ok_or(Error::Truncated)?
    {
        [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Error::Truncated),
    }
}

impl Header {
    /// Reads the header at the start of `msg`.
    pub fn parse(msg: &[u8]) -> Result<Header, Error> {
        Ok(Header {
            id: u16_at(msg, 0)?,
            flags: Flags(u16_at(msg, 2)?),
            qdcount: u16_at(msg, 4)?,
            ancount: u16_at(msg, 6)?,
            nscount: u16_at(msg, 8)?,
            arcount: u16_at(msg, 10)?,
        })
    }
}

/// A name decompressed into its wire form: length-prefixed labels, without the root
/// label. Fixed size, so reading one allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WireName {
    buf: [u8; MAX_WIRE_NAME],
    len: u8,
}

impl std::fmt::Debug for WireName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .labels()
            .map(|l| l.escape_ascii().to_string())
            .collect();
        write!(f, "WireName({:?})", labels.join("."))
    }
}

impl Default for WireName {
    fn default() -> WireName {
        WireName {
            buf: [0; MAX_WIRE_NAME],
            len: 0,
        }
    }
}

impl WireName {
    /// Appends a label (at most [`MAX_LABEL`] octets), keeping room for the root label.
    pub fn push_label(&mut self, label: &[u8]) -> Result<(), Error> {
        let n = u8::try_from(label.len())
            .ok()
            .filter(|n| usize::from(*n) <= MAX_LABEL)
            .ok_or(Error::BadLabel)?;
        let at = usize::from(self.len);
        let end = at + 1 + label.len();
        // +1: the root label still has to fit.
        if end + 1 > MAX_WIRE_NAME {
            return Err(Error::NameTooLong);
        }
        let dst = self.buf.get_mut(at..end).ok_or(Error::NameTooLong)?;
        if let Some((first, rest)) = dst.split_first_mut() {
            *first = n;
            rest.iter_mut().zip(label).for_each(|(d, s)| *d = *s);
        }
        self.len = u8::try_from(end).map_err(|_| Error::NameTooLong)?;
        Ok(())
    }

    /// The labels, first (leftmost) to last.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.buf.get(..usize::from(self.len)).unwrap_or(&[]);
        std::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let (label, tail) = tail.split_at_checked(usize::from(n))?;
            rest = tail;
            Some(label)
        })
    }

    /// The root name (no labels).
    pub fn is_root(&self) -> bool {
        self.len == 0
    }

    /// Equal ignoring ASCII case (RFC 4343). Length octets are at most 63, below any
    /// letter, so they compare exactly.
    pub fn eq_ignore_case(&self, other: &WireName) -> bool {
        let a = self.buf.get(..usize::from(self.len)).unwrap_or(&[]);
        let b = other.buf.get(..usize::from(other.len)).unwrap_or(&[]);
        a.eq_ignore_ascii_case(b)
    }

    /// The name as text: labels joined by dots, ASCII lowercased, no trailing dot.
    /// `None` for the root, for a label that is not UTF-8 or holds a dot (it would read
    /// as two labels), and for a name that is not [`printable`].
    pub fn to_text(&self) -> Option<String> {
        let mut b = Vec::with_capacity(usize::from(self.len));
        for label in self.labels() {
            if label.is_empty() || label.contains(&b'.') {
                return None;
            }
            if !b.is_empty() {
                b.push(b'.');
            }
            b.extend_from_slice(label);
        }
        b.make_ascii_lowercase();
        // Checked whole: a character cut across two labels is cut by the dot between
        // them too, so the text is UTF-8 exactly when every label is.
        let s = String::from_utf8(b).ok()?;
        (s.len() <= MAX_NAME_LEN && printable(&s)).then_some(s)
    }
}

/// Reads the name at `off`, following compression pointers. Returns the name and the
/// offset just after it where it began (after the first pointer, if any).
pub fn read_name(msg: &[u8], off: usize) -> Result<(WireName, usize), Error> {
    let mut name = WireName::default();
    let mut pos = off;
    // Pointers must go before this: the start of the stretch being read.
    let mut limit = off;
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *msg.get(pos).ok_or(Error::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok((name, end.unwrap_or(pos + 1))),
            0x00 => {
                let start = pos + 1;
                let stop = start + usize::from(len);
                name.push_label(msg.get(start..stop).ok_or(Error::Truncated)?)?;
                pos = stop;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(Error::Truncated)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                end.get_or_insert(pos + 2);
                hops += 1;
                if hops > MAX_POINTER_HOPS || target >= limit || target < HEADER_LEN {
                    return Err(Error::BadPointer);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(Error::BadLabel),
        }
    }
}

/// One entry of the question section (RFC 1035 section 4.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    /// QNAME.
    pub name: WireName,
    /// QTYPE.
    pub qtype: RrType,
    /// QCLASS (mDNS: top bit is the unicast-response flag).
    pub qclass: u16,
}

/// Reads the question at `off`; returns it and the offset after it.
pub fn read_question(msg: &[u8], off: usize) -> Result<(Question, usize), Error> {
    let (name, at) = read_name(msg, off)?;
    let q = Question {
        name,
        qtype: RrType(u16_at(msg, at)?),
        qclass: u16_at(msg, at + 2)?,
    };
    Ok((q, at + 4))
}

/// A resource record (RFC 1035 section 4.1.3), its data still in the message (names in
/// it may point anywhere before them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Owner name.
    pub name: WireName,
    /// TYPE.
    pub rtype: RrType,
    /// CLASS (mDNS: top bit is the cache-flush flag).
    pub class: u16,
    /// TTL in seconds; values with the top bit set count as 0 (RFC 2181 section 8).
    pub ttl: u32,
    /// RDATA.
    pub rdata: &'a [u8],
    /// Offset of RDATA in the message.
    pub rdata_off: usize,
}

/// Reads the resource record at `off`; returns it and the offset after it.
pub fn read_record(msg: &[u8], off: usize) -> Result<(Record<'_>, usize), Error> {
    let (name, at) = read_name(msg, off)?;
    let rtype = RrType(u16_at(msg, at)?);
    let class = u16_at(msg, at + 2)?;
    let ttl = u32_at(msg, at + 4)?;
    let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
    let rdlen = usize::from(u16_at(msg, at + 8)?);
    let rdata_off = at + 10;
    let next = rdata_off + rdlen;
    let rdata = msg.get(rdata_off..next).ok_or(Error::BadRdata)?;
    let rec = Record {
        name,
        rtype,
        class,
        ttl,
        rdata,
        rdata_off,
    };
    Ok((rec, next))
}

impl Record<'_> {
    /// The address of an A or AAAA record of class IN (`mdns`: ignoring the cache-flush
    /// bit), when its data has the right length.
    pub fn address(&self, mdns: bool) -> Option<IpAddr> {
        let class = if mdns {
            self.class & !MDNS_CLASS_FLAG
        } else {
            self.class
        };
        if class != CLASS_IN {
            return None;
        }
        match self.rtype {
            RrType::A => <[u8; 4]>::try_from(self.rdata)
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            RrType::AAAA => <[u8; 16]>::try_from(self.rdata)
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }

    /// The target of a CNAME record, which must lie inside the record's data.
    pub fn cname_target(&self, msg: &[u8]) -> Result<Option<WireName>, Error> {
        if self.rtype != RrType::CNAME {
            return Ok(None);
        }
        let (target, end) = read_name(msg, self.rdata_off)?;
        if end > self.rdata_off + self.rdata.len() {
            return Err(Error::BadRdata);
        }
        Ok(Some(target))
    }
}

/// Reads a response's question and records, in order, for [`harvest`]. `None` when the
/// message is no usable answer: not a response, not a standard query, an error rcode
/// (RFC 6762 section 18.11 asks the same for mDNS), or unreadable before its records.
/// Records after a malformed one are not read; the ones before are kept.
pub fn answer_view(msg: &[u8], mdns: bool) -> Option<AnswerView> {
    let h = Header::parse(msg).ok()?;
    if !h.flags.is_response() || h.flags.opcode() != 0 || h.flags.rcode() != 0 {
        return None;
    }
    if h.qdcount > MAX_QUESTIONS {
        return None;
    }
    let mut off = HEADER_LEN;
    let mut view = AnswerView::default();
    for i in 0..h.qdcount {
        let (q, next) = read_question(msg, off).ok()?;
        if i == 0 {
            view.question = Some(q.name);
        }
        off = next;
    }
    // Unicast DNS and LLMNR answer in the answer section; mDNS responders also put
    // their addresses in the additional section (RFC 6762 section 12).
    let sections = [(h.ancount, true), (h.nscount, false), (h.arcount, mdns)];
    let mut read = 0;
    'sections: for (count, wanted) in sections {
        for _ in 0..count {
            if read >= MAX_RECORDS {
                break 'sections;
            }
            read += 1;
            let Ok((rec, next)) = read_record(msg, off) else {
                break 'sections;
            };
            off = next;
            if !wanted {
                continue;
            }
            if let Some(ip) = rec.address(mdns) {
                if view.addresses.len() < MAX_ADDRESS_RECORDS {
                    view.addresses.push((rec.name, ip, rec.ttl));
                }
            } else if let Ok(Some(target)) = rec.cname_target(msg) {
                if view.cnames.len() < MAX_CNAMES {
                    view.cnames.push((rec.name, target));
                }
            }
        }
    }
    Some(view)
}

/// What [`answer_view`] keeps of a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerView {
    /// The first question's name.
    pub question: Option<WireName>,
    /// CNAME records: owner and target.
    pub cnames: Vec<(WireName, WireName)>,
    /// A and AAAA records: owner, address, TTL.
    pub addresses: Vec<(WireName, IpAddr, u32)>,
}

impl AnswerView {
    /// The names the question leads to through CNAME records, the question first; a name
    /// already on the chain ends it (a CNAME loop).
    pub fn chain(&self) -> Vec<WireName> {
        let Some(q) = self.question else {
            return Vec::new();
        };
        let mut chain = vec![q];
        while chain.len() <= MAX_CNAMES {
            let Some(last) = chain.last() else { break };
            let next = self
                .cnames
                .iter()
                .find(|(owner, _)| owner.eq_ignore_case(last))
                .map(|(_, target)| *target);
            match next {
                Some(t) if !chain.iter().any(|c| c.eq_ignore_case(&t)) => chain.push(t),
                _ => break,
            }
        }
        chain
    }
}

/// Names from one DNS, LLMNR or mDNS response (`source` says which): see the module doc.
pub fn harvest(msg: &[u8], source: NameSource, out: &mut Vec<Obs>) {
    let mdns = source == NameSource::Mdns;
    let Some(view) = answer_view(msg, mdns) else {
        return;
    };
    if view.addresses.is_empty() {
        return;
    }
    // Unicast DNS answers without a question answer nothing anyone asked.
    if view.question.is_none() && source == NameSource::Dns {
        return;
    }
    let chain = view.chain();
    let question = view.question.and_then(|q| q.to_text());
    let mut sink = Sink::new(out);
    for (owner, ip, ttl) in &view.addresses {
        if sink.is_full() {
            break;
        }
        let on_chain = chain.iter().any(|c| c.eq_ignore_case(owner));
        if view.question.is_some() && !on_chain && !mdns {
            continue;
        }
        let own = owner.to_text();
        if on_chain {
            if let Some(q) = &question {
                sink.name(*ip, q.clone(), source, Some(*ttl));
            }
        }
        if let Some(own) = own {
            if !(on_chain && question.as_deref() == Some(own.as_str())) {
                sink.name(*ip, own, source, Some(*ttl));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::names::tests::hex;

    /// Corpus `ndpi-1kxun.pcap` frame 474 (UDP 53 → 54420): vv.video.qq.com A, answered
    /// CNAME proxy-set1.video.qq.com (TTL 299), A 203.205.151.234 (TTL 299). Owner names
    /// compressed (RFC 1035 section 4.1.4): c00c, c02d, and the CNAME target "proxy-set1"
    /// + c00f.
    pub(crate) const CNAME_ANSWER: &str = "a5388180000100020000000002767605766964656f02717103636f
        6d0000010001c00c000500010000012b000d0a70726f78792d73657431c00fc02d000100010000012b00
        04cbcd97ea";

    /// Corpus `ndpi-1kxun.pcap` frame 859: a three-link CNAME chain
    /// (dl-obs.official.line.naver.jp → …edgesuite.net → …akadns.net → a1867.g2.akamai.net)
    /// and three A records, TTL 5.
    const CHAIN_ANSWER: &str = "6d8c8180000100060000000006646c2d6f6273086f6666696369616c046c696e65
        056e61766572026a700000010001c00c0005000100014c43002d06646c2d6f6273086f6666696369616c
        046c696e65056e61766572026a7009656467657375697465036e657400c03b00050001000000b000350a
        6361632d646c2d6f6273086f6666696369616c046c696e65056e61766572026a70096c696e652d7a6572
        6f06616b61646e73c063c0740005000100000100001205613138363702673206616b616d6169c063c0b5
        00010001000000050004cb455149c0b500010001000000050004cb455142c0b500010001000000050004
        3ddc3eda";

    /// Corpus `ndpi-teams.pcap` frame 720: AAAA trouter2-asse-a.trouter.teams.microsoft.com,
    /// CNAME trouter2-asse-a.cloudapp.net (TTL 3467), AAAA 2a01:111:f100:7000::6fdd:54a1
    /// (TTL 5).
    const AAAA_ANSWER: &str = "f401818000010002000000000f74726f75746572322d617373652d610774726f75
        746572057465616d73096d6963726f736f667403636f6d00001c0001c00c0005000100000d8b001e0f74
        726f75746572322d617373652d6108636c6f7564617070036e657400c049001c00010000000500102a01
        0111f1007000000000006fdd54a1";

    /// Corpus `ndpi-gnutella.pcap` frame 21 (UDP 5353 → 5353): an unsolicited mDNS
    /// response, no question; MSEDGEWIN10.local AAAA fe80::c50d:519f:96a4:e108 and A
    /// 10.0.2.15 (compressed c00c), TTL 60, class IN without the cache-flush bit.
    const MDNS_ANNOUNCE: &str = "0000840000000002000000000b4d534544474557494e3130056c6f63616c0000
        1c00010000003c0010fe80000000000000c50d519f96a4e108c00c000100010000003c00040a00020f";

    fn names(out: &[Obs]) -> Vec<(String, String, Option<u32>)> {
        out.iter()
            .filter_map(|o| match o {
                Obs::Name { ip, name, ttl, .. } => Some((ip.to_string(), name.clone(), *ttl)),
                Obs::Mac { .. } => None,
            })
            .collect()
    }

    fn run(msg: &[u8], source: NameSource) -> Vec<(String, String, Option<u32>)> {
        let mut out = Vec::new();
        harvest(msg, source, &mut out);
        assert!(out.len() <= crate::names::MAX_OBS_PER_DATAGRAM);
        names(&out)
    }

    fn t(ip: &str, name: &str, ttl: u32) -> (String, String, Option<u32>) {
        (ip.to_string(), name.to_string(), Some(ttl))
    }

    /// A response with one question and the given records (names uncompressed).
    pub(crate) fn response(
        flags: u16,
        q: &[&str],
        records: &[(&str, u16, u16, u32, &[u8])],
    ) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(0x1234u16.to_be_bytes());
        m.extend(flags.to_be_bytes());
        m.extend(u16::try_from(q.len()).unwrap().to_be_bytes());
        m.extend(u16::try_from(records.len()).unwrap().to_be_bytes());
        m.extend([0, 0, 0, 0]);
        let name = |m: &mut Vec<u8>, n: &str| {
            for l in n.split('.').filter(|l| !l.is_empty()) {
                m.push(u8::try_from(l.len()).unwrap());
                m.extend(l.as_bytes());
            }
            m.push(0);
        };
        for n in q {
            name(&mut m, n);
            m.extend([0, 1, 0, 1]);
        }
        for (n, ty, class, ttl, rdata) in records {
            name(&mut m, n);
            m.extend(ty.to_be_bytes());
            m.extend(class.to_be_bytes());
            m.extend(ttl.to_be_bytes());
            m.extend(u16::try_from(rdata.len()).unwrap().to_be_bytes());
            m.extend(*rdata);
        }
        m
    }

    #[test]
    fn cname_answer_names_the_address_twice() {
        assert_eq!(
            run(&hex(CNAME_ANSWER), NameSource::Dns),
            vec![
                t("203.205.151.234", "vv.video.qq.com", 299),
                t("203.205.151.234", "proxy-set1.video.qq.com", 299),
            ]
        );
    }

    #[test]
    fn long_chain_gives_question_and_owner() {
        let got = run(&hex(CHAIN_ANSWER), NameSource::Dns);
        let mut want = Vec::new();
        for ip in ["203.69.81.73", "203.69.81.66", "61.220.62.218"] {
            want.push(t(ip, "dl-obs.official.line.naver.jp", 5));
            want.push(t(ip, "a1867.g2.akamai.net", 5));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn aaaa_answer() {
        assert_eq!(
            run(&hex(AAAA_ANSWER), NameSource::Dns),
            vec![
                t(
                    "2a01:111:f100:7000::6fdd:54a1",
                    "trouter2-asse-a.trouter.teams.microsoft.com",
                    5
                ),
                t(
                    "2a01:111:f100:7000::6fdd:54a1",
                    "trouter2-asse-a.cloudapp.net",
                    5
                ),
            ]
        );
    }

    #[test]
    fn mdns_announcement_without_question() {
        assert_eq!(
            run(&hex(MDNS_ANNOUNCE), NameSource::Mdns),
            vec![
                t("fe80::c50d:519f:96a4:e108", "msedgewin10.local", 60),
                t("10.0.2.15", "msedgewin10.local", 60),
            ]
        );
        // As unicast DNS it answers no question.
        assert!(run(&hex(MDNS_ANNOUNCE), NameSource::Dns).is_empty());
    }

    #[test]
    fn mdns_cache_flush_bit_is_ignored() {
        // RFC 6762 section 10.2: class 0x8001 = IN with cache-flush.
        let m = response(
            0x8400,
            &[],
            &[("printer.local", 1, 0x8001, 120, &[192, 168, 1, 9])],
        );
        assert_eq!(
            run(&m, NameSource::Mdns),
            vec![t("192.168.1.9", "printer.local", 120)]
        );
        // Elsewhere 0x8001 is no class IN.
        let m = response(
            0x8400,
            &["printer.local"],
            &[("printer.local", 1, 0x8001, 120, &[192, 168, 1, 9])],
        );
        assert!(run(&m, NameSource::Llmnr).is_empty());
    }

    #[test]
    fn mdns_additional_section_counts() {
        // A PTR answer with the host's A record in the additional section (RFC 6762
        // section 12).
        let mut m = response(0x8400, &[], &[("host.local", 1, 1, 120, &[10, 1, 1, 1])]);
        m[6..8].copy_from_slice(&0u16.to_be_bytes()); // ancount 0
        m[10..12].copy_from_slice(&1u16.to_be_bytes()); // arcount 1
        assert_eq!(
            run(&m, NameSource::Mdns),
            vec![t("10.1.1.1", "host.local", 120)]
        );
        // Unicast DNS ignores additional records (glue is not an answer).
        let mut d = response(
            0x8180,
            &["host.local"],
            &[("host.local", 1, 1, 120, &[10, 1, 1, 1])],
        );
        d[6..8].copy_from_slice(&0u16.to_be_bytes());
        d[10..12].copy_from_slice(&1u16.to_be_bytes());
        assert!(run(&d, NameSource::Dns).is_empty());
    }

    #[test]
    fn llmnr_response() {
        // RFC 4795 section 2.1.1: a response (QR) copying the question, opcode 0, one
        // A answer; LLMNR answers carry a short TTL (section 2.8 suggests 30 s).
        let m = response(
            0x8000,
            &["WANGS-LTW"],
            &[("WANGS-LTW", 1, 1, 30, &[192, 168, 5, 20])],
        );
        assert_eq!(
            run(&m, NameSource::Llmnr),
            vec![t("192.168.5.20", "wangs-ltw", 30)]
        );
    }

    #[test]
    fn utf8_names_kept_controls_rejected() {
        // LLMNR carries UTF-8 host names (RFC 4795 section 2.1; corpus `ndpi-1kxun.pcap`
        // queries for 小佛專機).
        let m = response(
            0x8000,
            &["小佛專機"],
            &[("小佛專機", 1, 1, 30, &[192, 168, 5, 21])],
        );
        assert_eq!(
            run(&m, NameSource::Llmnr),
            vec![t("192.168.5.21", "小佛專機", 30)]
        );
        let m = response(
            0x8180,
            &["a\x01b.example"],
            &[("a\x01b.example", 1, 1, 30, &[8, 8, 8, 8])],
        );
        assert!(run(&m, NameSource::Dns).is_empty());
        // A label holding a dot would read as two labels.
        let mut m = response(
            0x8180,
            &["ab.example"],
            &[("ab.example", 1, 1, 30, &[8, 8, 8, 8])],
        );
        let at = m.windows(2).position(|w| w == b"ab").unwrap();
        m[at] = b'.';
        assert!(run(&m, NameSource::Dns).is_empty());
    }

    #[test]
    fn records_off_the_chain_are_ignored() {
        let m = response(
            0x8180,
            &["bank.example"],
            &[
                ("bank.example", 1, 1, 60, &[192, 0, 2, 1]),
                ("other.example", 1, 1, 60, &[192, 0, 2, 66]),
            ],
        );
        assert_eq!(
            run(&m, NameSource::Dns),
            vec![t("192.0.2.1", "bank.example", 60)]
        );
    }

    #[test]
    fn case_is_folded_for_chain_and_text() {
        // Resolvers randomise query case (the "0x20" trick); answers echo it.
        let m = response(
            0x8180,
            &["WwW.ExAmple.COM"],
            &[("www.example.com", 1, 1, 60, &[192, 0, 2, 7])],
        );
        assert_eq!(
            run(&m, NameSource::Dns),
            vec![t("192.0.2.7", "www.example.com", 60)]
        );
    }

    #[test]
    fn errors_queries_and_sinkholes_give_nothing() {
        let rec: &[(&str, u16, u16, u32, &[u8])] = &[("x.example", 1, 1, 60, &[192, 0, 2, 1])];
        // A query (QR clear).
        assert!(run(&response(0x0100, &["x.example"], rec), NameSource::Dns).is_empty());
        // NXDOMAIN (rcode 3).
        assert!(run(&response(0x8183, &["x.example"], rec), NameSource::Dns).is_empty());
        // Opcode 2 (status).
        assert!(run(&response(0x9000, &["x.example"], rec), NameSource::Dns).is_empty());
        // Blocked names answered with 0.0.0.0 or 127.0.0.1.
        let sink: &[(&str, u16, u16, u32, &[u8])] = &[
            ("x.example", 1, 1, 60, &[0, 0, 0, 0]),
            ("x.example", 1, 1, 60, &[127, 0, 0, 1]),
        ];
        assert!(run(&response(0x8180, &["x.example"], sink), NameSource::Dns).is_empty());
        // A record with 5 bytes of data is no address.
        let bad: &[(&str, u16, u16, u32, &[u8])] = &[("x.example", 1, 1, 60, &[1, 2, 3, 4, 5])];
        assert!(run(&response(0x8180, &["x.example"], bad), NameSource::Dns).is_empty());
    }

    #[test]
    fn ttl_with_top_bit_counts_as_zero() {
        // RFC 2181 section 8.
        let m = response(
            0x8180,
            &["x.example"],
            &[("x.example", 1, 1, 0x8000_0001, &[192, 0, 2, 1])],
        );
        assert_eq!(
            run(&m, NameSource::Dns),
            vec![t("192.0.2.1", "x.example", 0)]
        );
    }

    #[test]
    fn pointer_loops_end() {
        // Header, then a question whose name is a pointer to itself (offset 12).
        let mut m = hex("0000 8180 0001 0001 0000 0000");
        m.extend([0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(read_name(&m, 12).unwrap_err(), Error::BadPointer);
        // Two pointers pointing at each other: the second goes forward.
        let mut m = hex("0000 8180 0001 0000 0000 0000");
        m.extend([0xc0, 0x0e, 0xc0, 0x0c]);
        assert_eq!(read_name(&m, 12).unwrap_err(), Error::BadPointer);
        // A label run that leads back onto the pointer that jumped to it: "a" at 12,
        // then at 14 a pointer to 12. Reading from 14 jumps to 12, reads "a", meets the
        // pointer at 14 again, which is not before 12.
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        m.extend([1, b'a', 0xc0, 0x0c]);
        assert_eq!(read_name(&m, 14).unwrap_err(), Error::BadPointer);
        // Into the header.
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        m.extend([0xc0, 0x02]);
        assert_eq!(read_name(&m, 12).unwrap_err(), Error::BadPointer);
    }

    #[test]
    fn compressed_names_resolve() {
        let m = hex(CNAME_ANSWER);
        // The CNAME target at 45: "proxy-set1" then a pointer to "video.qq.com" at 15.
        let (n, end) = read_name(&m, 45).unwrap();
        assert_eq!(n.to_text().as_deref(), Some("proxy-set1.video.qq.com"));
        assert_eq!(end, 45 + 11 + 2);
    }

    /// Names as text: lowercased; a UTF-8 character cut across two labels, invalid
    /// bytes, a dot inside a label and an empty label give none.
    #[test]
    fn names_as_text() {
        let name = |labels: &[&[u8]]| {
            let mut n = WireName::default();
            for l in labels {
                n.push_label(l).unwrap();
            }
            n.to_text()
        };
        assert_eq!(
            name(&[b"WWW", b"Example", b"JP"]).as_deref(),
            Some("www.example.jp")
        );
        assert_eq!(
            name(&["病院".as_bytes(), b"jp"]).as_deref(),
            Some("病院.jp")
        );
        let e = "é".as_bytes();
        assert_eq!(name(&[&e[..1], &e[1..]]), None);
        assert_eq!(name(&[b"a\xff", b"jp"]), None);
        assert_eq!(name(&[b"a.b", b"jp"]), None);
        assert_eq!(name(&[b"a", b"", b"jp"]), None);
        assert_eq!(name(&[b"bell\x07", b"jp"]), None);
    }

    #[test]
    fn name_limits() {
        // 63-octet labels are fine, 64 is a reserved label type (0x40).
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        m.push(63);
        m.extend([b'a'; 63]);
        m.push(0);
        assert!(read_name(&m, 12).is_ok());
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        m.push(64);
        m.extend([b'a'; 64]);
        m.push(0);
        assert_eq!(read_name(&m, 12).unwrap_err(), Error::BadLabel);
        // Four 63-octet labels: 256 octets with the root, one too many.
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        for _ in 0..4 {
            m.push(63);
            m.extend([b'a'; 63]);
        }
        m.push(0);
        assert_eq!(read_name(&m, 12).unwrap_err(), Error::NameTooLong);
        // Three 63s and a 61: exactly 255, and 253 characters of text.
        let mut m = hex("0000 8180 0000 0000 0000 0000");
        for _ in 0..3 {
            m.push(63);
            m.extend([b'a'; 63]);
        }
        m.push(61);
        m.extend([b'a'; 61]);
        m.push(0);
        let (n, _) = read_name(&m, 12).unwrap();
        assert_eq!(n.to_text().unwrap().len(), MAX_NAME_LEN);
        // Cut short.
        assert_eq!(read_name(&m[..40], 12).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn cname_loop_ends() {
        let a = |s: &str| {
            let mut n = WireName::default();
            for l in s.split('.') {
                n.push_label(l.as_bytes()).unwrap();
            }
            n
        };
        let view = AnswerView {
            question: Some(a("x.example")),
            cnames: vec![
                (a("x.example"), a("y.example")),
                (a("y.example"), a("x.example")),
            ],
            addresses: vec![],
        };
        assert_eq!(view.chain().len(), 2);
    }

    #[test]
    fn many_answers_are_capped() {
        let ip = [192u8, 0, 2, 1];
        let recs: Vec<(&str, u16, u16, u32, &[u8])> =
            (0..200).map(|_| ("x.example", 1, 1, 60, &ip[..])).collect();
        let m = response(0x8180, &["x.example"], &recs);
        let mut out = Vec::new();
        harvest(&m, NameSource::Dns, &mut out);
        assert_eq!(out.len(), crate::names::MAX_OBS_PER_DATAGRAM);
    }

    #[test]
    fn truncated_messages_keep_what_was_read() {
        let m = hex(CHAIN_ANSWER);
        // Cut inside the last A record: the first two addresses remain.
        let got = run(&m[..m.len() - 2], NameSource::Dns);
        assert_eq!(got.len(), 4);
        for cut in 0..m.len() {
            let _ = run(&m[..cut], NameSource::Dns);
            let _ = run(&m[..cut], NameSource::Mdns);
        }
    }
}
