//! XDMCP, the X Display Manager Control Protocol (X.Org, "XDMCP" specification version
//! 1.1), over UDP 177.
//!
//! Promise: `Yes` only when whole datagrams parse as XDMCP messages: version 1, a known
//! opcode, a length equal to the bytes that follow the 6-byte header, and a body whose
//! fields (section "Protocol Encoding") account for exactly that length. Each direction's
//! first datagram must parse. One message is enough on UDP 177 (the detector waits for
//! the display manager's answer, which names its host, while it may still come);
//! elsewhere both directions must exchange messages, since a short message such as a
//! Query with no authentication names is only seven bytes.
//!
//! Opcodes are those of `X11/Xdmcp.h` (`xdmOpCode`: BroadcastQuery = 1, Query = 2,
//! IndirectQuery = 3, ForwardQuery = 4, Willing = 5 … Alive = 14), which the Wireshark
//! dissector (`epan/dissectors/packet-xdmcp.c`) and every display manager use.

use super::{util, Classification, Cx, Evidence, Service, Verdict};
use crate::flow::reassembly::MAX_DATAGRAM;

/// The only protocol version (spec, "Protocol Encoding": CARD16 version = 1).
pub const VERSION: u16 = 1;
/// Header: version, opcode, length, each a CARD16 in network order.
pub const HEADER_LEN: usize = 6;
/// Largest message (`XDM_MAX_MSGLEN` in `X11/Xdmcp.h`).
pub const MAX_MESSAGE: usize = 8192;
/// Standard port (spec, "Transport": UDP 177).
pub const PORT: u16 = 177;
/// ARRAY8 entries walked at most in one ARRAYofARRAY8 (the count is a CARD8).
const MAX_ARRAY_ENTRIES: usize = 255;

/// An XDMCP opcode (`xdmOpCode` in `X11/Xdmcp.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opcode(pub u16);

impl Opcode {
    /// BroadcastQuery.
    pub const BROADCAST_QUERY: Opcode = Opcode(1);
    /// Query.
    pub const QUERY: Opcode = Opcode(2);
    /// IndirectQuery.
    pub const INDIRECT_QUERY: Opcode = Opcode(3);
    /// ForwardQuery.
    pub const FORWARD_QUERY: Opcode = Opcode(4);
    /// Willing.
    pub const WILLING: Opcode = Opcode(5);
    /// Unwilling.
    pub const UNWILLING: Opcode = Opcode(6);
    /// Request.
    pub const REQUEST: Opcode = Opcode(7);
    /// Accept.
    pub const ACCEPT: Opcode = Opcode(8);
    /// Decline.
    pub const DECLINE: Opcode = Opcode(9);
    /// Manage.
    pub const MANAGE: Opcode = Opcode(10);
    /// Refuse.
    pub const REFUSE: Opcode = Opcode(11);
    /// Failed.
    pub const FAILED: Opcode = Opcode(12);
    /// KeepAlive.
    pub const KEEPALIVE: Opcode = Opcode(13);
    /// Alive.
    pub const ALIVE: Opcode = Opcode(14);

    /// Name, or `None` for an unknown opcode.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "BroadcastQuery",
            2 => "Query",
            3 => "IndirectQuery",
            4 => "ForwardQuery",
            5 => "Willing",
            6 => "Unwilling",
            7 => "Request",
            8 => "Accept",
            9 => "Decline",
            10 => "Manage",
            11 => "Refuse",
            12 => "Failed",
            13 => "KeepAlive",
            14 => "Alive",
            _ => return None,
        })
    }
}

/// A parsed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Opcode.
    pub opcode: Opcode,
    /// The Willing/Unwilling hostname field, when the message has one.
    pub hostname: Option<&'a [u8]>,
}

/// Reads the encoding's field types (spec, "Data Types") from a body.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.b.get(..n)?, self.b.get(n..)?);
        self.b = rest;
        Some(head)
    }
    fn card8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn card16(&mut self) -> Option<u16> {
        util::be16(self.take(2)?, 0)
    }
    fn card32(&mut self) -> Option<u32> {
        util::be32(self.take(4)?, 0)
    }
    /// ARRAY8: CARD16 length, then that many bytes.
    fn array8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.card16()?);
        self.take(n)
    }
    /// ARRAY16: CARD8 count, then that many CARD16.
    fn array16(&mut self) -> Option<u8> {
        let n = self.card8()?;
        self.take(usize::from(n).checked_mul(2)?)?;
        Some(n)
    }
    /// ARRAYofARRAY8: CARD8 count, then that many ARRAY8.
    fn array_of_array8(&mut self) -> Option<u8> {
        let n = self.card8()?;
        for _ in 0..usize::from(n).min(MAX_ARRAY_ENTRIES) {
            self.array8()?;
        }
        Some(n)
    }
}

/// Parses one datagram as exactly one XDMCP message.
pub fn parse_message(d: &[u8]) -> Option<Message<'_>> {
    if d.len() > MAX_MESSAGE {
        return None;
    }
    let version = util::be16(d, 0)?;
    let opcode = Opcode(util::be16(d, 2)?);
    let length = usize::from(util::be16(d, 4)?);
    let body = d.get(HEADER_LEN..)?;
    if version != VERSION || opcode.name().is_none() || length != body.len() {
        return None;
    }
    let mut r = Reader { b: body };
    let mut hostname = None;
    match opcode {
        Opcode::BROADCAST_QUERY | Opcode::QUERY | Opcode::INDIRECT_QUERY => {
            r.array_of_array8()?; // authentication names
        }
        Opcode::FORWARD_QUERY => {
            r.array8()?; // client address
            r.array8()?; // client port
            r.array_of_array8()?; // authentication names
        }
        Opcode::WILLING => {
            r.array8()?; // authentication name
            hostname = Some(r.array8()?);
            r.array8()?; // status
        }
        Opcode::UNWILLING => {
            hostname = Some(r.array8()?);
            r.array8()?; // status
        }
        Opcode::REQUEST => {
            r.card16()?; // display number
            let types = r.array16()?; // connection types
            let addresses = r.array_of_array8()?; // connection addresses
            if types != addresses {
                return None;
            }
            r.array8()?; // authentication name
            r.array8()?; // authentication data
            r.array_of_array8()?; // authorization names
            r.array8()?; // manufacturer display ID
        }
        Opcode::ACCEPT => {
            r.card32()?; // session ID
            for _ in 0..4 {
                r.array8()?; // authentication name/data, authorization name/data
            }
        }
        Opcode::DECLINE => {
            for _ in 0..3 {
                r.array8()?; // status, authentication name, authentication data
            }
        }
        Opcode::MANAGE => {
            r.card32()?; // session ID
            r.card16()?; // display number
            r.array8()?; // display class
        }
        Opcode::REFUSE => {
            r.card32()?; // session ID
        }
        Opcode::FAILED => {
            r.card32()?; // session ID
            r.array8()?; // status
        }
        Opcode::KEEPALIVE => {
            r.card16()?; // display number
            r.card32()?; // session ID
        }
        Opcode::ALIVE => {
            r.card8()?; // session running
            r.card32()?; // session ID
        }
        _ => return None,
    }
    // The fields must account for the whole length.
    r.b.is_empty().then_some(Message { opcode, hostname })
}

/// Detects XDMCP.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let mut opcodes: Vec<&'static str> = Vec::new();
    let mut hostname = None;
    let mut directions = 0usize;
    for dir in [cx.c2s, cx.s2c] {
        let mut seen = false;
        for (i, d) in cx.datagrams(dir).enumerate() {
            match parse_message(d) {
                Some(m) => {
                    seen = true;
                    // At most 8 datagrams per direction: the list stays short.
                    opcodes.push(m.opcode.name().unwrap_or("?"));
                    hostname = hostname.or(m.hostname);
                }
                // A datagram cut to MAX_DATAGRAM cannot be checked; anything else that
                // opens a direction and is not XDMCP proves the flow is something else.
                None if i == 0 && d.len() < MAX_DATAGRAM => return Verdict::No,
                None => {}
            }
        }
        directions += usize::from(seen);
    }
    let enough = directions == 2 || (directions == 1 && cx.port_is(PORT));
    // On UDP 177 the query alone is enough, but the display manager's answer (Willing)
    // names the host that offers logins: wait for it while it may still come.
    let unanswered = cx.c2s.bytes().is_empty() || cx.s2c.bytes().is_empty();
    if enough && directions == 1 && unanswered && !cx.last {
        return Verdict::Wait;
    }
    if enough {
        let mut c = Classification::new(
            "xdmcp",
            Some(Service::Xdmcp),
            "setten.xdmcp.message",
            "xdmcp.opcodes",
            opcodes.join(", "),
        );
        if let Some(h) = hostname.filter(|h| !h.is_empty()) {
            c.evidence.push(Evidence::new(
                "setten.xdmcp.message",
                "xdmcp.hostname",
                util::printable(h),
            ));
        }
        return Verdict::Yes(c);
    }
    if cx.last || (directions == 0 && !cx.c2s.bytes().is_empty() && !cx.s2c.bytes().is_empty()) {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], ports: (u16, u16), last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::UDP, c2s, s2c, ports, last)
    }

    // XDMCP spec, "Protocol Encoding": Query with no authentication names
    // (version 1, opcode 2, length 1, CARD8 count 0), what `X -query host` sends.
    const QUERY: &[u8] = &[0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00];
    // Willing: authentication name "", hostname "dm1", status "Linux 6.1".
    const WILLING: &[u8] = &[
        0x00, 0x01, 0x00, 0x05, 0x00, 0x12, // header, length 18
        0x00, 0x00, // authentication name: empty
        0x00, 0x03, b'd', b'm', b'1', // hostname
        0x00, 0x09, b'L', b'i', b'n', b'u', b'x', b' ', b'6', b'.', b'1', // status
    ];
    // KeepAlive: display number 0, session ID 0x12345678.
    const KEEPALIVE: &[u8] = &[0, 1, 0, 13, 0, 6, 0, 0, 0x12, 0x34, 0x56, 0x78];
    // Request: display 1, one connection (type 0 = Internet, address 192.0.2.7),
    // authentication "" / "", authorization names ["MIT-MAGIC-COOKIE-1"], display ID "".
    fn request() -> Vec<u8> {
        let mut body = vec![0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x04, 192, 0, 2, 7];
        body.extend([0, 0, 0, 0, 1, 0, 18]);
        body.extend(b"MIT-MAGIC-COOKIE-1");
        body.extend([0, 0]);
        let mut m = vec![0, 1, 0, 7];
        m.extend((body.len() as u16).to_be_bytes());
        m.extend(body);
        m
    }

    #[test]
    fn query_and_willing() {
        let v = run(&[QUERY], &[WILLING], (40000, 177), false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.service, Some(Service::Xdmcp));
        assert_eq!(c.evidence[0].value, "Query, Willing");
        assert_eq!(c.evidence[1].value, "dm1");
    }

    #[test]
    fn every_opcode_layout() {
        assert_eq!(
            parse_message(&request()).map(|m| m.opcode),
            Some(Opcode::REQUEST)
        );
        assert_eq!(
            parse_message(KEEPALIVE).map(|m| m.opcode),
            Some(Opcode::KEEPALIVE)
        );
        let alive = [0, 1, 0, 14, 0, 5, 1, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(parse_message(&alive).map(|m| m.opcode), Some(Opcode::ALIVE));
        let refuse = [0, 1, 0, 11, 0, 4, 0, 0, 0, 9];
        assert_eq!(
            parse_message(&refuse).map(|m| m.opcode),
            Some(Opcode::REFUSE)
        );
        let manage = [0, 1, 0, 10, 0, 8, 0, 0, 0, 9, 0, 1, 0, 0];
        assert_eq!(
            parse_message(&manage).map(|m| m.opcode),
            Some(Opcode::MANAGE)
        );
        let accept = [0, 1, 0, 8, 0, 12, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_message(&accept).map(|m| m.opcode),
            Some(Opcode::ACCEPT)
        );
        let broadcast = [0, 1, 0, 1, 0, 1, 0];
        assert_eq!(
            parse_message(&broadcast).map(|m| m.opcode),
            Some(Opcode::BROADCAST_QUERY)
        );
    }

    #[test]
    fn length_and_fields_must_agree() {
        // Length one too long, one too short; fields that stop short of the length.
        assert_eq!(parse_message(&[0, 1, 0, 2, 0, 2, 0]), None);
        assert_eq!(parse_message(&[0, 1, 0, 2, 0, 0, 0]), None);
        assert_eq!(parse_message(&[0, 1, 0, 2, 0, 2, 0, 0]), None);
        // Version 2, opcode 15.
        assert_eq!(parse_message(&[0, 2, 0, 2, 0, 1, 0]), None);
        assert_eq!(parse_message(&[0, 1, 0, 15, 0, 1, 0]), None);
        // Request whose connection types and addresses disagree in number.
        let mut r = request();
        r[8] = 2;
        assert_eq!(parse_message(&r), None);
    }

    #[test]
    fn port_breaks_ties() {
        // One message on 177 is enough (once no answer can come); elsewhere both sides
        // must speak.
        assert!(matches!(
            run(&[QUERY], &[], (40000, 177), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[QUERY], &[], (40000, 177), true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(&[QUERY], &[], (40000, 5000), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&[QUERY], &[], (40000, 5000), true),
            Verdict::No
        ));
        assert!(matches!(
            run(
                &[KEEPALIVE],
                &[&[0, 1, 0, 14, 0, 5, 1, 0x12, 0x34, 0x56, 0x78]],
                (40000, 5000),
                false
            ),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn other_protocols_are_not_xdmcp() {
        // DNS query, STUN binding request (RFC 8489: type 0x0001, magic cookie), NTP.
        let dns: &[u8] = &[
            0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'a',
            0x00, 0x00, 0x01, 0x00, 0x01,
        ];
        let stun: &[u8] = &[
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let mut ntp = vec![0x23u8];
        ntp.resize(48, 0);
        for d in [dns, stun, &ntp] {
            assert!(matches!(run(&[d], &[], (40000, 177), false), Verdict::No));
        }
        // A client datagram that is not XDMCP decides, whatever the server answers.
        assert!(matches!(
            run(&[dns], &[WILLING], (40000, 177), false),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic; no truncated message parses.
    #[test]
    fn mutations_never_panic() {
        let req = request();
        for m in [QUERY, WILLING, KEEPALIVE, &req] {
            for cut in 0..m.len() {
                assert_eq!(parse_message(&m[..cut]), None);
            }
            for i in 0..m.len() {
                let mut bad = m.to_vec();
                bad[i] ^= 0xff;
                let _ = parse_message(&bad);
                let _ = run(&[&bad], &[m], (40000, 177), true);
            }
        }
    }
}
