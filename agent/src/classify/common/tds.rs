//! TDS, Microsoft SQL Server's protocol (MS-TDS 2.2.3.1): every message travels in
//! packets with an 8-byte header (type, status, length, SPID, packet id, window).
//!
//! `Yes` when the first client packet has a valid header (a client packet type, defined
//! status bits, a length of 8..=32768 bytes, window 0) and its payload has the structure
//! of its type: PRELOGIN's option table with offsets inside the packet (2.2.6.5), LOGIN7's
//! own length and a known TDS version (2.2.6.4), or the ALL_HEADERS block that starts
//! SQL batches and RPC requests since TDS 7.2 (2.2.5.3), or an RPC procedure name in
//! UTF-16 (2.2.6.6). From the server, a tabular result (type 4) whose first token is a
//! known token, or a PRELOGIN response table. Captures that start mid-session show
//! batches and results, so those count too.

use super::super::{Classification, Cx, Meta, Verdict};
use super::{be16, byte, finish, le16, le32, require, stream, take, Parse};

/// Header octets (MS-TDS 2.2.3.1).
pub const HEADER_LEN: usize = 8;
/// Largest packet (the negotiated packet size tops out at 32767; 2.2.6.4).
pub const MAX_PACKET_LEN: usize = 32768;
/// Largest PRELOGIN option table walked.
const MAX_OPTIONS: usize = 32;
/// Fixed part of LOGIN7 (2.2.6.4: length through the offset/length table).
const LOGIN7_FIXED_LEN: usize = 94;
/// Largest LOGIN7 accepted (it may span packets).
const MAX_LOGIN7_LEN: usize = 128 * 1024;
/// Longest RPC procedure name in characters (sysname, 128).
const MAX_PROC_NAME: usize = 128;

/// Packet types (2.2.3.1.1).
const SQL_BATCH: u8 = 0x01;
const PRE_TDS7_LOGIN: u8 = 0x02;
const RPC: u8 = 0x03;
const TABULAR_RESULT: u8 = 0x04;
const ATTENTION: u8 = 0x06;
const BULK_LOAD: u8 = 0x07;
const FEDAUTH_TOKEN: u8 = 0x08;
const TRANSACTION_MANAGER: u8 = 0x0e;
const LOGIN7: u8 = 0x10;
const SSPI: u8 = 0x11;
const PRELOGIN: u8 = 0x12;
/// DONE token status bits (2.2.7.6): MORE, ERROR, INXACT, COUNT, ATTN, SRVERROR.
const DONE_STATUS_DEFINED: u16 = 0x0137;
/// Status bits defined (2.2.3.1.2): EOM, ignore, event notification (older versions
/// of the specification), reset connection, reset skip tran.
const STATUS_DEFINED: u8 = 0x1f;

/// A packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub kind: u8,
    /// Status.
    pub status: u8,
    /// Packet length, header included.
    pub len: usize,
}

/// Parses a header: defined type for the direction, status bits, length, window 0.
pub fn parse_header(b: &[u8], from_client: bool) -> Parse<Header> {
    let kind = need!(byte(b, 0));
    need!(require(if from_client {
        matches!(
            kind,
            SQL_BATCH
                | PRE_TDS7_LOGIN
                | RPC
                | ATTENTION
                | BULK_LOAD
                | FEDAUTH_TOKEN
                | TRANSACTION_MANAGER
                | LOGIN7
                | SSPI
                | PRELOGIN
        )
    } else {
        kind == TABULAR_RESULT
    }));
    let status = need!(byte(b, 1));
    need!(require(status & !STATUS_DEFINED == 0));
    let len = usize::from(need!(be16(b, 2)));
    need!(require((HEADER_LEN + 1..=MAX_PACKET_LEN).contains(&len)));
    let packet_id = need!(byte(b, 6));
    let window = need!(byte(b, 7));
    need!(require(packet_id <= 1 && window == 0));
    Parse::Ok(Header { kind, status, len })
}

/// PRELOGIN option table (2.2.6.5): tokens with offset and length inside the payload,
/// ending with 0xFF; VERSION (0) first. Returns the server/client version bytes.
fn parse_prelogin(p: &[u8], payload_len: usize) -> Parse<String> {
    let mut off = 0;
    let mut version = None;
    for i in 0..MAX_OPTIONS {
        let token = need!(byte(p, off));
        if token == 0xff {
            need!(require(i > 0));
            return Parse::Ok(version.unwrap_or_default());
        }
        need!(require(token <= 0x08 && (i > 0 || token == 0)));
        let o = usize::from(need!(be16(p, off + 1)));
        let l = usize::from(need!(be16(p, off + 3)));
        need!(require(o >= 6 && o + l <= payload_len));
        if token == 0 {
            need!(require(l == 6));
            if let Parse::Ok(&[major, minor, b0, b1]) = take(p, o, 4) {
                version = Some(format!("{major}.{minor}.{}", u16::from_be_bytes([b0, b1])));
            }
        }
        off += 5;
    }
    Parse::Bad
}

/// LOGIN7 (2.2.6.4): at least its fixed part, equal to the payload when the packet is
/// the last of the message, and a known TDS version.
fn parse_login7(p: &[u8], payload_len: usize, eom: bool) -> Parse<String> {
    let len = need!(le32(p, 0)) as usize;
    let version = need!(le32(p, 4));
    let name = match version {
        0x7000_0000 => "7.0",
        0x7100_0000 | 0x7100_0001 => "7.1",
        0x7209_0002 => "7.2",
        0x730a_0003 => "7.3A",
        0x730b_0003 => "7.3B",
        0x7400_0004 => "7.4",
        0x0800_0000 => "8.0",
        _ => return Parse::Bad,
    };
    need!(require(
        (LOGIN7_FIXED_LEN..=MAX_LOGIN7_LEN).contains(&len) && (!eom || len == payload_len)
    ));
    Parse::Ok(name.to_owned())
}

/// ALL_HEADERS (2.2.5.3): TotalLength, then headers each with its own length and a
/// type 1..=3 (query notifications, transaction descriptor, trace activity).
fn parse_all_headers(p: &[u8], payload_len: usize) -> Parse<()> {
    let total = need!(le32(p, 0)) as usize;
    need!(require(
        total >= 4 + 6 && total <= payload_len && total <= 1024
    ));
    let mut off = 4;
    while off < total {
        let l = need!(le32(p, off)) as usize;
        let t = need!(le16(p, off + 4));
        need!(require(l >= 6 && off + l <= total && (1..=3).contains(&t)));
        if t == 2 {
            // Transaction descriptor: 18 bytes (2.2.5.3.2).
            need!(require(l == 18));
        }
        off += l;
    }
    require(off == total)
}

/// An RPC request before TDS 7.2: a procedure name length and its UTF-16LE name of
/// printable ASCII, or 0xFFFF and a well-known procedure id 1..=15 (2.2.6.6).
fn parse_rpc_name(p: &[u8]) -> Parse<()> {
    let n = usize::from(need!(le16(p, 0)));
    if n == 0xffff {
        let id = need!(le16(p, 2));
        return require((1..=15).contains(&id));
    }
    need!(require((1..=MAX_PROC_NAME).contains(&n)));
    let name = need!(take(p, 2, 2 * n));
    require(
        name.chunks_exact(2)
            .all(|c| matches!(c, [lo, 0] if (0x21..0x7f).contains(lo))),
    )
}

/// A SQL batch before TDS 7.2: UTF-16LE text of printable ASCII and whitespace.
fn parse_batch_text(p: &[u8]) -> Parse<()> {
    let head = p.get(..p.len().min(64)).unwrap_or(p);
    require(
        head.len() >= 8
            && head.chunks_exact(2).all(
                |c| matches!(c, [lo, 0] if (0x20..0x7f).contains(lo) || matches!(lo, b'\t' | b'\r' | b'\n')),
            ),
    )
}

/// What the first client packet shows.
fn parse_client(b: &[u8]) -> Parse<(&'static str, Option<String>)> {
    let h = need!(parse_header(b, true));
    let payload_len = h.len - HEADER_LEN;
    let p = b.get(HEADER_LEN..b.len().min(h.len)).unwrap_or(&[]);
    match h.kind {
        PRELOGIN => parse_prelogin(p, payload_len)
            .map(|v| ("PRELOGIN", Some(v).filter(|v| !v.is_empty())))
            .or_else(|| {
                // After the PRELOGIN exchange, TLS handshake records travel inside
                // PRELOGIN packets (2.2.6.5, encryption).
                require(p.first() == Some(&0x16) && p.get(1) == Some(&0x03))
                    .map(|()| ("PRELOGIN (TLS handshake)", None))
            }),
        LOGIN7 => parse_login7(p, payload_len, h.status & 1 != 0).map(|v| ("LOGIN7", Some(v))),
        SQL_BATCH => parse_all_headers(p, payload_len)
            .or_else(|| parse_batch_text(p))
            .map(|()| ("SQL batch", None)),
        RPC => parse_all_headers(p, payload_len)
            .or_else(|| parse_rpc_name(p))
            .map(|()| ("RPC request", None)),
        _ => Parse::Bad,
    }
}

/// What the first server packet shows: a PRELOGIN response or a known first token.
fn parse_server(b: &[u8]) -> Parse<(&'static str, Option<String>)> {
    let h = need!(parse_header(b, false));
    let payload_len = h.len - HEADER_LEN;
    let p = b.get(HEADER_LEN..b.len().min(h.len)).unwrap_or(&[]);
    parse_prelogin(p, payload_len)
        .map(|v| ("PRELOGIN response", Some(v).filter(|v| !v.is_empty())))
        .or_else(|| {
            // Tokens (2.2.7): COLMETADATA, ERROR, INFO, LOGINACK, ENVCHANGE, DONE,
            // DONEPROC, DONEINPROC, RETURNSTATUS, ORDER, FEDAUTHINFO, SSPI.
            let t = need!(byte(p, 0));
            need!(require(matches!(
                t,
                0x81 | 0xaa | 0xab | 0xad | 0xe3 | 0xfd | 0xfe | 0xff | 0x79 | 0xa9 | 0xee | 0xed
            )));
            if matches!(t, 0xfd..=0xff) {
                // DONE, DONEPROC, DONEINPROC: Status with only defined bits (2.2.7.6).
                let status = need!(le16(p, 1));
                need!(require(status & !DONE_STATUS_DEFINED == 0));
            }
            Parse::Ok(("tabular result", None))
        })
}

/// Names TDS.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_client).or_else(|| stream(cx.s2c, parse_server));
    finish(
        cx,
        p.map(|(what, version)| {
            let mut c =
                Classification::new("tds", None, "setten.tds.packet", "tds.packet_type", what);
            c.extra.meta = Meta {
                version,
                ..Meta::default()
            };
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-mssql_tds.pcap frame 1 (first 48 bytes): a SQL batch with ALL_HEADERS
    /// (TotalLength 22, a transaction descriptor header of 18), then UTF-16 text.
    const BATCH: &str = "010100be000001001600000012000000020000000000000000000100000020007300650074002000740072006100";

    /// ndpi-mssql_tds.pcap frame 2: the server's tabular result, a DONE token.
    const DONE: &str = "0401002200350100fd0100f9000000000000000000fd0000ba000000000000000000";

    /// A PRELOGIN as SQL Server clients send it (MS-TDS 4.1 example layout): VERSION,
    /// ENCRYPTION, INSTOPT, THREADID, MARS, terminator, then the option data.
    const PRELOGIN_PKT: &str = "1201002f0000010000001a00060100200001020021000103002200040400260001ff0e000c2e000000000000000000";

    #[test]
    fn batch_and_done_from_capture() {
        let c = Flow::tcp(1111, 1433).c2s(&hex(BATCH)).yes(check);
        assert_eq!((c.protocol, c.service), ("tds", None));
        assert_eq!(c.evidence[0].value, "SQL batch");
        let c = Flow::tcp(1111, 1433).s2c(&hex(DONE)).yes(check);
        assert_eq!(c.evidence[0].value, "tabular result");
    }

    #[test]
    fn prelogin() {
        let (what, version) = parse_client(&hex(PRELOGIN_PKT)).ok().unwrap();
        assert_eq!((what, version.as_deref()), ("PRELOGIN", Some("14.0.3118")));
        // An option offset outside the packet.
        let mut b = hex(PRELOGIN_PKT);
        b[10] = 0xf0;
        assert_eq!(parse_client(&b), Parse::Bad);
    }

    #[test]
    fn rpc_without_all_headers() {
        // ndpi-mssql_tds.pcap frame 35 (first 90 bytes): RPC, name length 0x24, the
        // UTF-16 name "proc_GetMyExampleTableSampleMetaData".
        let b = hex(
            "030100da000001002400700072006f0063005f004700650074004d0079004500780061006d0070006c00
             65005400610062006c006500530061006d0070006c0065004d0065007400610044006100740061000000",
        );
        assert_eq!(parse_client(&b).ok().unwrap().0, "RPC request");
    }

    #[test]
    fn header_checks() {
        let mut b = hex(BATCH);
        b[7] = 1; // window
        assert_eq!(parse_client(&b), Parse::Bad);
        let mut b = hex(BATCH);
        b[1] = 0x20; // undefined status bit
        assert_eq!(parse_client(&b), Parse::Bad);
        let mut b = hex(BATCH);
        b[0] = 0x04; // a result from the client
        assert_eq!(parse_client(&b), Parse::Bad);
        // A batch whose payload is neither ALL_HEADERS nor UTF-16 text.
        let b = hex("01010020000001004142434445464748494a4b4c4d4e4f505152535455565758");
        assert_eq!(parse_client(&b), Parse::Bad);
        assert!(Flow::tcp(1, 1433).c2s(b"\x01\x01\x00").is_wait(check));
        assert!(Flow::tcp(1, 1433)
            .c2s(b"\x16\x03\x01\x00\x10")
            .s2c(b"\x16\x03\x01\x00\x10\x00\x00\x00")
            .is_no(check));
    }
}
