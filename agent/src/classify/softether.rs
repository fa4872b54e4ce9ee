//! SoftEther VPN: its binary "PACK" serialisation and its UDP NAT-traversal exchange.
//!
//! SoftEther's main session is TLS (seen by the TLS detector; plain `POST
//! /vpnsvc/connect.cgi` is matched by the HTTP detector and a rule). What only this module
//! sees:
//!
//! * a datagram that is one complete PACK — element count, then per element a name
//!   (length + 1, then the name), a value type 0..=4, a value count and the values
//!   (SoftEther `src/Mayaqua/Pack.c`, `WriteElement`/`WriteValue`) — consumed to the last
//!   byte, with at least two elements, printable unique names and sane lengths;
//! * the NAT-T server exchange on UDP: the client's one-byte query `A` answered with
//!   `IP=<address>,PORT=<port>` (SoftEther `Network.c`, `RUDPParseIPAndPortStr`; the
//!   NAT-T server port is 5004, `UDP_NAT_T_PORT`) — the answer alone counts only on 5004
//!   at the end of the flow;
//! * HTTP whose body is a PACK: the WPC form (`PACK` + 10-digit size + Safe64 text,
//!   SoftEther `Wpc.c`, `WpcAddDataEntry`, `Base64ToSafe64`) used by the DDNS and
//!   VPN Azure clients, or a binary PACK answer.
//!
//! Facts from nDPI `src/lib/protocols/softether.c` as well; the code is our own.

use super::{util, Classification, Cx, Evidence, Service, Verdict};
use std::net::IpAddr;

/// Value types of a PACK element (SoftEther `Pack.h`).
const VALUE_INT: u32 = 0;
/// Length-prefixed bytes.
const VALUE_DATA: u32 = 1;
/// Length-prefixed ANSI string.
const VALUE_STR: u32 = 2;
/// Length-prefixed UTF-8 string including its terminating NUL.
const VALUE_UNISTR: u32 = 3;
/// 64-bit integer.
const VALUE_INT64: u32 = 4;
/// Longest element name (SoftEther `Pack.h`, MAX_ELEMENT_NAME_LEN).
const MAX_ELEMENT_NAME_LEN: usize = 63;
/// Elements accepted in one PACK (SoftEther allows far more; opening messages are small).
const MAX_ELEMENTS: u32 = 512;
/// Values per element accepted.
const MAX_VALUES_PER_ELEMENT: u32 = 4096;
/// Values walked in total before giving up.
const MAX_VALUES_WALKED: usize = 8192;
/// Element names kept for the evidence.
const MAX_NAMES_SHOWN: usize = 6;
/// Elements a PACK needs to count as evidence.
const MIN_ELEMENTS: usize = 2;
/// Elements a truncated (TCP prefix) PACK must show complete.
const MIN_ELEMENTS_PREFIX: usize = 3;
/// NAT-T query: one byte `A`.
const NAT_T_QUERY: &[u8] = b"A";
/// NAT-T answer prefix.
const NAT_T_ANSWER_PREFIX: &[u8] = b"IP=";
/// Separator before the port in the answer.
const NAT_T_PORT_SEPARATOR: &[u8] = b",PORT=";
/// Longest NAT-T answer accepted.
const MAX_NAT_T_ANSWER: usize = 128;
/// SoftEther's NAT-T server port (`UDP_NAT_T_PORT`), tie-breaker only.
const PORT_NAT_T_SERVER: u16 = 5004;
/// Longest HTTP header searched for its end.
const MAX_HTTP_HEADER: usize = 4096;
/// WPC entry: 4-byte name + 10 decimal digits of size (`WpcAddDataEntry`).
const WPC_NAME: &[u8] = b"PACK";
/// Digits of the WPC size field.
const WPC_SIZE_DIGITS: usize = 10;
/// Safe64 characters decoded from a WPC entry.
const MAX_WPC_DECODE: usize = 4096;

/// What a (possibly truncated) PACK showed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pack<'a> {
    declared: u32,
    parsed: usize,
    complete: bool,
    names: Vec<&'a [u8]>,
}

/// Reads one element's values; `Ok(None)` when the data ends inside them.
fn skip_values(
    b: &[u8],
    mut off: usize,
    ty: u32,
    n: u32,
    walked: &mut usize,
) -> Result<Option<usize>, ()> {
    for _ in 0..n {
        *walked += 1;
        if *walked > MAX_VALUES_WALKED {
            return Err(());
        }
        let size = match ty {
            VALUE_INT => 4,
            VALUE_INT64 => 8,
            VALUE_DATA | VALUE_STR | VALUE_UNISTR => {
                let Some(len) = util::be32(b, off) else {
                    return Ok(None);
                };
                let len = usize::try_from(len).map_err(|_| ())?;
                if ty == VALUE_UNISTR {
                    // UTF-8 with its NUL: at least one byte, and the last one is 0.
                    if len == 0 {
                        return Err(());
                    }
                    let last_at = off.checked_add(4).and_then(|x| x.checked_add(len - 1));
                    if let Some(&last) = last_at.and_then(|i| b.get(i)) {
                        if last != 0 {
                            return Err(());
                        }
                    }
                }
                off += 4;
                len
            }
            _ => return Err(()),
        };
        match off.checked_add(size) {
            Some(end) if end <= b.len() => off = end,
            Some(_) => return Ok(None),
            None => return Err(()),
        }
    }
    Ok(Some(off))
}

/// Parses a PACK. With `complete`, the bytes must hold exactly one whole PACK; without,
/// a truncated tail is accepted and the whole elements before it are counted.
fn parse_pack(b: &[u8], complete: bool) -> Option<Pack<'_>> {
    let declared = util::be32(b, 0)?;
    if declared == 0 || declared > MAX_ELEMENTS {
        return None;
    }
    let mut p = Pack {
        declared,
        parsed: 0,
        complete: false,
        names: Vec::new(),
    };
    let mut off = 4usize;
    let mut walked = 0usize;
    for _ in 0..declared {
        // Name: length + 1, then the name without its NUL (`WriteBufStr`).
        let Some(len1) = util::be32(b, off) else {
            return (!complete).then_some(p);
        };
        let len = usize::try_from(len1).ok()?.checked_sub(1)?;
        if len == 0 || len > MAX_ELEMENT_NAME_LEN {
            return None;
        }
        let Some(name) = b.get(off + 4..off + 4 + len) else {
            return (!complete).then_some(p);
        };
        if !name.iter().all(|c| c.is_ascii_graphic()) || p.names.contains(&name) {
            return None;
        }
        off += 4 + len;
        let (Some(ty), Some(n)) = (util::be32(b, off), util::be32(b, off + 4)) else {
            return (!complete).then_some(p);
        };
        if ty > VALUE_INT64 || n == 0 || n > MAX_VALUES_PER_ELEMENT {
            return None;
        }
        off += 8;
        match skip_values(b, off, ty, n, &mut walked) {
            Err(()) => return None,
            Ok(None) => return (!complete).then_some(p),
            Ok(Some(end)) => off = end,
        }
        p.names.push(name);
        p.parsed += 1;
    }
    p.complete = true;
    if complete && off != b.len() {
        return None;
    }
    Some(p)
}

fn names_shown(p: &Pack<'_>) -> String {
    let mut s: Vec<String> = p
        .names
        .iter()
        .take(MAX_NAMES_SHOWN)
        .map(|n| util::printable(n))
        .collect();
    if p.names.len() > MAX_NAMES_SHOWN {
        s.push("…".into());
    }
    s.join(", ")
}

/// Parses a NAT-T answer `IP=<addr>,PORT=<port>[#…]`.
fn parse_nat_t_answer(d: &[u8]) -> Option<(IpAddr, u16)> {
    if d.len() > MAX_NAT_T_ANSWER || !d.iter().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    let rest = d.strip_prefix(NAT_T_ANSWER_PREFIX)?;
    let rest = match rest.iter().position(|&c| c == b'#') {
        Some(i) => rest.get(..i)?,
        None => rest,
    };
    let sep = rest
        .windows(NAT_T_PORT_SEPARATOR.len())
        .position(|w| w == NAT_T_PORT_SEPARATOR)?;
    let ip: IpAddr = std::str::from_utf8(rest.get(..sep)?).ok()?.parse().ok()?;
    let port_s = rest.get(sep + NAT_T_PORT_SEPARATOR.len()..)?;
    if port_s.is_empty() || port_s.len() > 5 || !port_s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port: u16 = std::str::from_utf8(port_s).ok()?.parse().ok()?;
    (port != 0).then_some((ip, port))
}

fn classification(rule: &'static str, field: &'static str, value: String) -> Classification {
    let mut c = Classification::new("softether", Some(Service::Softether), rule, field, value);
    c.extra.vendor = Some("SoftEther".into());
    c.extra.product = Some("SoftEther VPN".into());
    c
}

/// What one datagram is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Datagram<'a> {
    Pack(Pack<'a>),
    Answer(IpAddr, u16),
    Query,
    Other,
}

fn classify_datagram(d: &[u8]) -> Datagram<'_> {
    if d == NAT_T_QUERY {
        return Datagram::Query;
    }
    if let Some((ip, port)) = parse_nat_t_answer(d) {
        return Datagram::Answer(ip, port);
    }
    match parse_pack(d, true) {
        Some(p) if p.parsed >= MIN_ELEMENTS => Datagram::Pack(p),
        _ => Datagram::Other,
    }
}

fn detect_udp(cx: &Cx<'_>) -> Verdict {
    let a: Vec<Datagram<'_>> = cx.datagrams(cx.c2s).map(classify_datagram).collect();
    let b: Vec<Datagram<'_>> = cx.datagrams(cx.s2c).map(classify_datagram).collect();
    if let Some(p) = a.iter().chain(&b).find_map(|d| match d {
        Datagram::Pack(p) => Some(p),
        _ => None,
    }) {
        return Verdict::Yes(classification(
            "setten.softether.pack",
            "softether.pack",
            format!(
                "one complete PACK of {} elements: {}",
                p.declared,
                names_shown(p)
            ),
        ));
    }
    let answer = |v: &[Datagram<'_>]| {
        v.iter().find_map(|d| match d {
            Datagram::Answer(ip, port) => Some((*ip, *port)),
            _ => None,
        })
    };
    let query = |v: &[Datagram<'_>]| v.contains(&Datagram::Query);
    for (asks, answers) in [(&a, &b), (&b, &a)] {
        if let (true, Some((ip, port))) = (query(asks), answer(answers)) {
            return Verdict::Yes(classification(
                "setten.softether.nat-t-query",
                "softether.nat_t",
                format!("query \"A\" answered with IP={ip},PORT={port}"),
            ));
        }
    }
    // The first datagram of each side must be one of SoftEther's.
    let first_other = |v: &[Datagram<'_>]| v.first() == Some(&Datagram::Other);
    if first_other(&a) || first_other(&b) {
        return Verdict::No;
    }
    if cx.last {
        if let Some((ip, port)) = answer(&a).or(answer(&b)) {
            if cx.port_is(PORT_NAT_T_SERVER) {
                return Verdict::Yes(classification(
                    "setten.softether.nat-t-answer-port",
                    "softether.nat_t",
                    format!("IP={ip},PORT={port} from UDP 5004"),
                ));
            }
        }
        return Verdict::No;
    }
    Verdict::Wait
}

/// Decodes SoftEther's Safe64 (Base64 with `(` for `=`, `)` for `+`, `_` for `/`;
/// `Wpc.c`, `Base64ToSafe64`) until the first character outside the alphabet.
fn decode_safe64(s: &[u8]) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' | b')' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        })
    };
    let s = s.get(..s.len().min(MAX_WPC_DECODE)).unwrap_or(&[]);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let vals: Vec<u32> = chunk.iter().map_while(|&c| val(c)).collect();
        let n = vals.len();
        let acc = vals.iter().fold(0u32, |a, v| (a << 6) | v) << (6 * (4 - n as u32));
        let bytes = acc.to_be_bytes();
        let take = match n {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => 0,
        };
        out.extend_from_slice(bytes.get(1..1 + take).unwrap_or(&[]));
        if n < 4 {
            break;
        }
    }
    out
}

/// What the HTTP body of one direction shows.
enum Body {
    /// Header not complete yet.
    Incomplete,
    /// Not HTTP, or HTTP without a PACK body.
    NotPack,
    /// The evidence rule and value.
    Pack(&'static str, String),
}

fn http_body(b: &[u8]) -> Body {
    let is_http = b.starts_with(b"POST ") || b.starts_with(b"HTTP/1.");
    if !is_http {
        // A prefix of either start still counts as incomplete.
        let short = b.len() < 7 && (b"POST ".starts_with(b) || b"HTTP/1.".starts_with(b));
        return if short {
            Body::Incomplete
        } else {
            Body::NotPack
        };
    }
    let window = b.get(..b.len().min(MAX_HTTP_HEADER)).unwrap_or(b);
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if b.len() >= MAX_HTTP_HEADER {
            Body::NotPack
        } else {
            Body::Incomplete
        };
    };
    let body = b.get(end + 4..).unwrap_or(&[]);
    if body.is_empty() {
        return Body::Incomplete;
    }
    if let Some(rest) = body.strip_prefix(WPC_NAME) {
        let Some(digits) = rest.get(..WPC_SIZE_DIGITS) else {
            return Body::Incomplete;
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Body::NotPack;
        }
        let data = rest.get(WPC_SIZE_DIGITS..).unwrap_or(&[]);
        let decoded = decode_safe64(data);
        return match parse_pack(&decoded, false) {
            Some(p)
                if p.parsed >= MIN_ELEMENTS_PREFIX || (p.complete && p.parsed >= MIN_ELEMENTS) =>
            {
                Body::Pack(
                    "setten.softether.wpc-pack",
                    format!(
                        "HTTP body is a WPC PACK entry of {} elements: {}",
                        p.declared,
                        names_shown(&p)
                    ),
                )
            }
            _ if decoded.len() < 64 => Body::Incomplete,
            _ => Body::NotPack,
        };
    }
    match parse_pack(body, false) {
        Some(p) if p.parsed >= MIN_ELEMENTS_PREFIX || (p.complete && p.parsed >= MIN_ELEMENTS) => {
            Body::Pack(
                "setten.softether.http-pack",
                format!(
                    "HTTP body is a binary PACK of {} elements: {}",
                    p.declared,
                    names_shown(&p)
                ),
            )
        }
        Some(_) if body.len() < 64 => Body::Incomplete,
        _ => Body::NotPack,
    }
}

fn detect_tcp(cx: &Cx<'_>) -> Verdict {
    let (c, s) = (cx.c2s.bytes(), cx.s2c.bytes());
    let bc = if c.is_empty() {
        Body::Incomplete
    } else {
        http_body(c)
    };
    let bs = if s.is_empty() {
        Body::Incomplete
    } else {
        http_body(s)
    };
    for (side, body) in [("request", &bc), ("response", &bs)] {
        if let Body::Pack(rule, value) = body {
            let mut cl = classification(rule, "http.body", value.clone());
            cl.evidence
                .push(Evidence::new(*rule, "http.direction", side));
            return Verdict::Yes(cl);
        }
    }
    match (&bc, &bs) {
        (Body::NotPack, Body::NotPack) => Verdict::No,
        (Body::NotPack, Body::Incomplete) if !c.starts_with(b"POST ") => Verdict::No,
        _ if cx.last => Verdict::No,
        _ => Verdict::Wait,
    }
}

/// Detects SoftEther VPN.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if cx.c2s.bytes().is_empty() && cx.s2c.bytes().is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    if cx.is_udp() {
        detect_udp(cx)
    } else if cx.is_tcp() {
        detect_tcp(cx)
    } else {
        Verdict::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(c2s: &[Vec<u8>], s2c: &[Vec<u8>], ports: (u16, u16), last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, &c, &s, ports, last)
    }

    fn tcp(c2s: &[u8], s2c: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[c2s],
            &[s2c],
            (37504, 80),
            last,
        )
    }

    /// Builds a PACK the way `WritePack` does (SoftEther `Pack.c`).
    fn pack(elems: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut b = u32::try_from(elems.len()).unwrap().to_be_bytes().to_vec();
        for (name, ty, v) in elems {
            b.extend(u32::try_from(name.len() + 1).unwrap().to_be_bytes());
            b.extend(name.as_bytes());
            b.extend(ty.to_be_bytes());
            b.extend(1u32.to_be_bytes());
            match *ty {
                VALUE_INT | VALUE_INT64 => b.extend(*v),
                _ => {
                    b.extend(u32::try_from(v.len()).unwrap().to_be_bytes());
                    b.extend(*v);
                }
            }
        }
        b
    }

    /// Corpus ndpi-softether.pcap frame 41 (192.168.2.100:51381 -> 130.158.6.105:5004),
    /// the elements as captured: opcode "get_token", tran_id, nat_traversal_version.
    fn get_token() -> Vec<u8> {
        pack(&[
            ("opcode", VALUE_STR, b"get_token"),
            (
                "tran_id",
                VALUE_INT64,
                &[0x55, 0xca, 0x14, 0xe5, 0x4b, 0xbd, 0x17, 0x7a],
            ),
            ("nat_traversal_version", VALUE_INT, &[0, 0, 0, 1]),
        ])
    }

    #[test]
    fn pack_datagram_from_corpus_is_yes() {
        let d = get_token();
        assert_eq!(d.len(), 99);
        match udp(&[d], &[], (51381, 5004), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Softether));
                assert_eq!(c.evidence[0].rule, "setten.softether.pack");
                assert!(c.evidence[0].value.contains("opcode, tran_id"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn nat_t_query_and_answer_from_corpus_is_yes() {
        // Corpus frames 1 and 2: "A" and "IP=90.186.132.133,PORT=51381".
        let q = b"A".to_vec();
        let a = b"IP=90.186.132.133,PORT=51381".to_vec();
        assert!(matches!(
            udp(
                std::slice::from_ref(&q),
                std::slice::from_ref(&a),
                (51381, 5004),
                false
            ),
            Verdict::Yes(_)
        ));
        // The query alone waits; the answer alone counts only from 5004 at the end.
        assert!(matches!(
            udp(&[q], &[], (51381, 5004), false),
            Verdict::Wait
        ));
        assert!(matches!(
            udp(&[], std::slice::from_ref(&a), (51381, 5004), true),
            Verdict::Yes(_)
        ));
        assert!(matches!(udp(&[], &[a], (51381, 5005), true), Verdict::No));
    }

    #[test]
    fn malformed_answers_and_packs_are_rejected() {
        assert!(parse_nat_t_answer(b"IP=1.2.3.4,PORT=99999").is_none());
        assert!(parse_nat_t_answer(b"IP=1.2.3,PORT=1").is_none());
        assert!(parse_nat_t_answer(b"IP=::1,PORT=5#x").is_some());
        let mut p = get_token();
        p.push(0); // trailing byte: not exactly one PACK
        assert!(parse_pack(&p, true).is_none());
        let mut q = get_token();
        q[7] = 0x40; // name length 0x40000007
        assert!(parse_pack(&q, true).is_none());
        let dup = pack(&[("a", VALUE_INT, &[0; 4]), ("a", VALUE_INT, &[0; 4])]);
        assert!(parse_pack(&dup, true).is_none());
        for cut in 0..get_token().len() {
            assert!(parse_pack(&get_token()[..cut], true).is_none());
            let _ = parse_pack(&get_token()[..cut], false);
        }
    }

    /// Corpus ndpi-softether.pcap, TCP 192.168.2.100:37504 -> 130.158.75.45:80: the DDNS
    /// client's POST with a WPC body ("PACK" + size + Safe64), first bytes as captured.
    fn wpc_post() -> Vec<u8> {
        let mut req = b"POST /ddns/ddns.aspx?v=9291257684825389030 HTTP/1.1\r\n\
Content-Length: 724\r\nHost: x0.x0.dev.open.servers.ddns.softether-network.net\r\n\r\n"
            .to_vec();
        req.extend(b"PACK0000000668AAAADwAAAAZidWlsZAAAAAAAAAABAAAlygAAAAlkZG5zX29zcwAAAAAAAAAB");
        req.extend(b"AAAAAQAAABZkZG5zX3Byb3RvY29sX3ZlcnNpb24AAAAAAAAAAQAAAAEAAAAJaXNfNjRiaXQAAAAA");
        req
    }

    fn http(req: &[u8]) -> Classification {
        match crate::classify::testing::run(
            crate::classify::http::detect,
            crate::decode::ipproto::TCP,
            &[req],
            &[],
            (37504, 80),
            false,
        ) {
            Verdict::Yes(c) => c,
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_wpc_post_is_softether_over_http_by_its_host_or_else_by_its_body() {
        // The catalogue knows the DDNS host: its more precise product stands.
        let c = http(&wpc_post());
        assert_eq!((c.protocol, c.service), ("http", Some(Service::Softether)));
        assert_eq!(
            c.extra.product.as_deref(),
            Some("SoftEther VPN (dynamic DNS client)")
        );
        assert_eq!(c.evidence[0].rule, "setten.http.request-line");
        // Elsewhere the body alone decides, and the request is still described.
        let req = String::from_utf8_lossy(&wpc_post())
            .replace(
                "x0.x0.dev.open.servers.ddns.softether-network.net",
                "example.org",
            )
            .replace("/ddns/ddns.aspx", "/x");
        let c = http(req.as_bytes());
        assert_eq!((c.protocol, c.service), ("http", Some(Service::Softether)));
        assert_eq!(c.evidence[0].rule, "setten.softether.wpc-pack");
        let meta = c.extra.meta.http.clone().expect("request metadata");
        assert_eq!(
            (meta.uri.as_str(), meta.host.as_deref()),
            ("/x?v=9291257684825389030", Some("example.org"))
        );
    }

    #[test]
    fn wpc_body_from_corpus_is_yes() {
        let req = wpc_post();
        match tcp(&req, b"", false) {
            Verdict::Yes(c) => {
                assert_eq!(c.evidence[0].rule, "setten.softether.wpc-pack");
                assert!(
                    c.evidence[0].value.contains("build, ddns_oss"),
                    "{}",
                    c.evidence[0].value
                );
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn ordinary_http_and_other_tcp_are_no() {
        let get = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert!(matches!(tcp(get, b"", false), Verdict::No));
        let post = b"POST /form HTTP/1.1\r\nContent-Length: 90\r\n\r\nname=value&x=1234567890123456789012345678901234567890123456789012345678901234567890";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n<html><body>hello hello hello hello hello hello hello</body></html>!!";
        assert!(matches!(tcp(post, ok, false), Verdict::No));
        assert!(matches!(tcp(b"SSH-2.0-x\r\n", b"", false), Verdict::No));
    }

    #[test]
    fn other_udp_is_no() {
        // DNS query (RFC 1035 section 4.1.1).
        let dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01".to_vec();
        assert!(matches!(udp(&[dns], &[], (5353, 53), false), Verdict::No));
    }

    #[test]
    fn safe64_decodes_like_base64() {
        assert_eq!(decode_safe64(b"AAAADw(("), vec![0, 0, 0, 0x0f]);
        assert_eq!(decode_safe64(b"aGk)"), vec![0x68, 0x69, 0x3e]);
    }
}
