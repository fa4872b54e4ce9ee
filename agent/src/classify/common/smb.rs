//! SMB over TCP: the direct-hosted transport (445) and NetBIOS sessions (139) both frame
//! each message with a four-byte session header, type 0 and a length (RFC 1002 4.3.1,
//! MS-SMB2 2.1). What follows must be an SMB1 header (MS-CIFS 2.2.3.1), an SMB2/3 header
//! (MS-SMB2 2.2.1) with its fixed structure size, a command in range, reply flag as the
//! direction demands and a body structure size that fits the command, or an SMB3
//! transform (2.2.41) or compression (2.2.42) header whose sizes agree with the frame.
//!
//! Either direction may prove it, because captures often start mid-session. A NetBIOS
//! session request before the first message (139) is skipped. SMB1 is flagged weak: it
//! is the dialect EternalBlue and WannaCry used.

use super::super::{Classification, Cx, Meta, Verdict};
use super::{byte, finish, le16, le32, netbios, require, stream, take, Parse};

/// Largest message length accepted; the direct-TCP length field has 24 bits (MS-SMB2
/// 2.1), so this is its maximum.
pub const MAX_MESSAGE_LEN: usize = 0x00ff_ffff;
/// SMB1 protocol id.
pub const SMB1_ID: &[u8; 4] = b"\xffSMB";
/// SMB2/3 protocol id.
pub const SMB2_ID: &[u8; 4] = b"\xfeSMB";
/// SMB3 transform header protocol id (MS-SMB2 2.2.41).
pub const TRANSFORM_ID: &[u8; 4] = b"\xfdSMB";
/// SMB3.1.1 compression transform protocol id (MS-SMB2 2.2.42).
pub const COMPRESSION_ID: &[u8; 4] = b"\xfcSMB";
/// SMB1 header octets.
const SMB1_HEADER_LEN: usize = 32;
/// SMB2 header octets, also its StructureSize.
const SMB2_HEADER_LEN: usize = 64;
/// Transform header octets.
const TRANSFORM_HEADER_LEN: usize = 52;
/// SMB2 flags defined by MS-SMB2 2.2.1.2 (reply, async, related, signed, priority,
/// DFS, replay); others are reserved zero.
const SMB2_FLAGS_DEFINED: u32 = 0x3000_007f;
/// SMB1 reply flag (MS-CIFS 2.2.3.1 SMB_FLAGS_REPLY).
const SMB1_FLAGS_REPLY: u8 = 0x80;

/// SMB2 commands (MS-SMB2 2.2.1.2) with the body StructureSize of the request and of
/// the response (2.2.3 ff.); 0 where there is none (CANCEL has no response).
const SMB2_COMMANDS: [(&str, u16, u16); 19] = [
    ("NEGOTIATE", 36, 65),
    ("SESSION_SETUP", 25, 9),
    ("LOGOFF", 4, 4),
    ("TREE_CONNECT", 9, 16),
    ("TREE_DISCONNECT", 4, 4),
    ("CREATE", 57, 89),
    ("CLOSE", 24, 60),
    ("FLUSH", 24, 4),
    ("READ", 49, 17),
    ("WRITE", 49, 17),
    ("LOCK", 48, 4),
    ("IOCTL", 57, 49),
    ("CANCEL", 4, 0),
    ("ECHO", 4, 4),
    ("QUERY_DIRECTORY", 33, 9),
    ("CHANGE_NOTIFY", 32, 9),
    ("QUERY_INFO", 41, 9),
    ("SET_INFO", 33, 2),
    ("OPLOCK_BREAK", 24, 24),
];
/// Body StructureSize of an error response, for any command (MS-SMB2 2.2.2).
const SMB2_ERROR_BODY: u16 = 9;
/// Lease break acknowledgment / notification sizes (2.2.24.2, 2.2.23.2).
const SMB2_LEASE_BREAK: [u16; 2] = [36, 44];

/// SMB1 commands seen at the start of a session or mid-way (MS-CIFS 2.2.2.1).
fn smb1_command(c: u8) -> Option<&'static str> {
    Some(match c {
        0x04 => "CLOSE",
        0x24 => "LOCKING_ANDX",
        0x25 => "TRANSACTION",
        0x2b => "ECHO",
        0x2d => "OPEN_ANDX",
        0x2e => "READ_ANDX",
        0x2f => "WRITE_ANDX",
        0x32 => "TRANSACTION2",
        0x71 => "TREE_DISCONNECT",
        0x72 => "NEGOTIATE",
        0x73 => "SESSION_SETUP_ANDX",
        0x74 => "LOGOFF_ANDX",
        0x75 => "TREE_CONNECT_ANDX",
        0xa0 => "NT_TRANSACT",
        0xa2 => "NT_CREATE_ANDX",
        _ => return None,
    })
}

/// What the first message showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// "SMB1", "SMB2" or "SMB3" (transform and compression headers).
    pub dialect_family: &'static str,
    /// Command name, or the header kind for transforms.
    pub command: &'static str,
    /// A response.
    pub response: Option<bool>,
    /// Dialect from a NEGOTIATE response ("3.1.1", …), or offered by a request.
    pub dialect: Option<String>,
}

/// Parses the SMB1 header and word/byte counts of a message of `len` octets.
fn parse_smb1(m: &[u8], len: usize, from_client: bool) -> Parse<Message> {
    let command = need!(byte(m, 4));
    let name = need!(smb1_command(command).map_or(Parse::Bad, Parse::Ok));
    let flags = need!(byte(m, 9));
    need!(require((flags & SMB1_FLAGS_REPLY == 0) == from_client));
    // Word count, words, byte count must fit the message (MS-CIFS 2.2.3.2, 2.2.3.3).
    let wc = usize::from(need!(byte(m, SMB1_HEADER_LEN)));
    let bc_at = SMB1_HEADER_LEN + 1 + 2 * wc;
    let bc = usize::from(need!(le16(m, bc_at)));
    need!(require(bc_at + 2 + bc <= len));
    let mut dialect = None;
    if command == 0x72 && from_client {
        // NEGOTIATE request: no words; dialect strings, each 0x02 then NUL-terminated
        // ASCII, fill the bytes exactly (MS-CIFS 2.2.4.52.1).
        need!(require(wc == 0 && bc_at + 2 + bc == len));
        let mut d = need!(take(m, bc_at + 2, bc));
        let mut last = None;
        while let Some((&0x02, rest)) = d.split_first() {
            let end = need!(rest
                .iter()
                .position(|&c| c == 0)
                .map_or(Parse::Bad, Parse::Ok));
            let s = rest.get(..end).unwrap_or(&[]);
            need!(require(super::text::is_printable(s)));
            last = Some(super::super::util::printable(s));
            d = rest.get(end + 1..).unwrap_or(&[]);
        }
        need!(require(d.is_empty() && last.is_some()));
        dialect = last;
    }
    Parse::Ok(Message {
        dialect_family: "SMB1",
        command: name,
        response: Some(!from_client),
        dialect,
    })
}

/// Parses an SMB2 header and the body's StructureSize.
fn parse_smb2(m: &[u8], len: usize, from_client: bool) -> Parse<Message> {
    need!(require(need!(le16(m, 4)) == SMB2_HEADER_LEN as u16));
    let command = need!(le16(m, 12));
    let (name, req_size, resp_size) = need!(SMB2_COMMANDS
        .get(usize::from(command))
        .map_or(Parse::Bad, |c| Parse::Ok(*c)));
    let flags = need!(le32(m, 16));
    need!(require(flags & !SMB2_FLAGS_DEFINED == 0));
    let response = flags & 1 != 0;
    need!(require(response != from_client));
    // NextCommand: zero, or an 8-aligned offset inside the message (2.2.1.2).
    let next = need!(le32(m, 20)) as usize;
    need!(require(
        next == 0 || (next % 8 == 0 && next >= SMB2_HEADER_LEN + 2 && next < len)
    ));
    let body = need!(le16(m, SMB2_HEADER_LEN));
    let status = need!(le32(m, 8));
    let size_ok = if response {
        body == resp_size
            || (status != 0 && body == SMB2_ERROR_BODY)
            || (command == 18 && SMB2_LEASE_BREAK.contains(&body))
    } else {
        body == req_size || (command == 18 && SMB2_LEASE_BREAK.contains(&body))
    };
    need!(require(size_ok));
    let mut dialect = None;
    if command == 0 && response && body == resp_size {
        // NEGOTIATE response: DialectRevision (2.2.4).
        dialect = smb2_dialect(need!(le16(m, SMB2_HEADER_LEN + 4)));
    } else if command == 0 && !response {
        // NEGOTIATE request: DialectCount, then the dialects from offset 36 (2.2.3).
        let count = usize::from(need!(le16(m, SMB2_HEADER_LEN + 2)));
        need!(require((1..=64).contains(&count)));
        let highest = (0..count)
            .filter_map(|i| le16(m, SMB2_HEADER_LEN + 36 + 2 * i).ok())
            .max();
        dialect = highest.and_then(smb2_dialect);
    }
    Parse::Ok(Message {
        dialect_family: "SMB2",
        command: name,
        response: Some(response),
        dialect,
    })
}

/// Dialect revision name (MS-SMB2 2.2.3).
fn smb2_dialect(d: u16) -> Option<String> {
    Some(
        match d {
            0x0202 => "2.0.2",
            0x0210 => "2.1",
            0x0300 => "3.0",
            0x0302 => "3.0.2",
            0x0311 => "3.1.1",
            0x02ff => "2.x (wildcard)",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Parses the SMB message of a session message of `len` octets (the header stripped).
pub fn parse_message(m: &[u8], len: usize, from_client: bool) -> Parse<Message> {
    let id = need!(take(m, 0, 4));
    if id == SMB1_ID {
        need!(require(len >= SMB1_HEADER_LEN + 3));
        parse_smb1(m, len, from_client)
    } else if id == SMB2_ID {
        need!(require(len >= SMB2_HEADER_LEN + 2));
        parse_smb2(m, len, from_client)
    } else if id == TRANSFORM_ID {
        // OriginalMessageSize, Reserved zero, Flags = Encrypted (2.2.41).
        let original = need!(le32(m, 36)) as usize;
        need!(require(need!(le16(m, 40)) == 0 && need!(le16(m, 42)) == 1));
        need!(require(len == TRANSFORM_HEADER_LEN + original));
        Parse::Ok(Message {
            dialect_family: "SMB3",
            command: "TRANSFORM (encrypted)",
            response: None,
            dialect: None,
        })
    } else if id == COMPRESSION_ID {
        // Algorithm none/LZNT1/LZ77/LZ77+Huffman/Pattern_V1, flags none or chained
        // (2.2.42).
        let alg = need!(le16(m, 8));
        let flags = need!(le16(m, 10));
        need!(require(alg <= 4 && flags <= 1));
        let original = need!(le32(m, 4)) as usize;
        need!(require(
            (SMB2_HEADER_LEN..=MAX_MESSAGE_LEN).contains(&original)
        ));
        Parse::Ok(Message {
            dialect_family: "SMB3",
            command: "COMPRESSION_TRANSFORM",
            response: None,
            dialect: None,
        })
    } else {
        Parse::Bad
    }
}

/// Parses a direction's opening bytes: an optional NetBIOS session request (client) or
/// positive response (server), then one session message (type 0, length) holding SMB.
pub fn parse_messages(b: &[u8], from_client: bool) -> Parse<Message> {
    let mut b = b;
    if from_client && b.first() == Some(&netbios::SESSION_REQUEST) {
        let r = need!(netbios::parse_session_request(b));
        b = b.get(r.len..).unwrap_or(&[]);
    } else if !from_client && b.starts_with(&[netbios::SESSION_POSITIVE, 0, 0, 0]) {
        b = b.get(4..).unwrap_or(&[]);
    }
    let hdr = need!(take(b, 0, 4));
    need!(require(hdr.first() == Some(&0)));
    let len = hdr
        .get(1..)
        .unwrap_or(&[])
        .iter()
        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
    need!(require(len <= MAX_MESSAGE_LEN));
    let m = b.get(4..).unwrap_or(&[]);
    parse_message(m, len, from_client)
}

/// Names SMB.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, |b| parse_messages(b, true))
        .or_else(|| stream(cx.s2c, |b| parse_messages(b, false)));
    finish(
        cx,
        p.map(|m| {
            let dir = match m.response {
                Some(true) => " response",
                Some(false) => " request",
                None => "",
            };
            let mut c = Classification::new(
                "smb",
                None,
                if m.dialect_family == "SMB1" {
                    "setten.smb.smb1"
                } else {
                    "setten.smb.smb2"
                },
                "smb.header",
                format!("{} {}{dir}", m.dialect_family, m.command),
            );
            if m.dialect_family == "SMB1" {
                c.extra.weak = Some("SMBv1".to_owned());
            }
            c.extra.meta = Meta {
                version: m.dialect,
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

    /// SMB2 NEGOTIATE request offering 2.0.2 to 3.1.1 (MS-SMB2 2.2.3; layout as in
    /// ndpi-kerberos.pcap's SMB flows), behind its direct-TCP header.
    fn negotiate_request() -> Vec<u8> {
        let header = hex(
            "fe534d42 4000 0000 00000000 0000 0000 00000000 00000000 0000000000000000
             00000000 00000000 0000000000000000 00000000000000000000000000000000",
        );
        let body = hex(
            "2400 0500 0100 0000 7f000000 00000000000000000000000000000000
             00000000 0000 0000 0202 1002 0003 0203 1103",
        );
        let len = (header.len() + body.len()) as u32;
        [len.to_be_bytes().to_vec(), header, body].concat()
    }

    #[test]
    fn smb2_negotiate() {
        let m = parse_messages(&negotiate_request(), true).ok().unwrap();
        assert_eq!(m.command, "NEGOTIATE");
        assert_eq!(m.dialect.as_deref(), Some("3.1.1"));
        let c = Flow::tcp(50000, 445).c2s(&negotiate_request()).yes(check);
        assert_eq!(
            (c.protocol, c.service, c.extra.weak.clone()),
            ("smb", None, None)
        );
        assert_eq!(c.evidence[0].value, "SMB2 NEGOTIATE request");
        // The same bytes from the server are not a response.
        assert_eq!(parse_messages(&negotiate_request(), false), Parse::Bad);
    }

    #[test]
    fn smb2_create_request_and_response_from_capture() {
        // ndpi-smb_deletefile.pcap frames 1 and 2 (first 100 bytes): CREATE request
        // (body StructureSize 57) and response (89, SERVER_TO_REDIR set).
        let req = hex(
            "00000178fe534d4240000100000000000500000100000000980000009c0f000000000000fffe00001100
             00001d0000000028000000000000000000000000000000000000390000000200000000000000000000
             00000000000000",
        );
        let resp = hex(
            "000001f0fe534d4240000100000000000500000001000000980000009c0f000000000000fffe00001100
             00001d00000000280000000000000000000000000000000000005900000001000000f25a77eb348ad4
             01782f0f729cfb",
        );
        let m = parse_messages(&req, true).ok().unwrap();
        assert_eq!((m.command, m.response), ("CREATE", Some(false)));
        let m = parse_messages(&resp, false).ok().unwrap();
        assert_eq!((m.command, m.response), ("CREATE", Some(true)));
        assert_eq!(parse_messages(&resp, true), Parse::Bad);
    }

    #[test]
    fn smb2_response_alone_mid_session() {
        // ndpi-kerberos.pcap frames 9-10: the capture starts mid-stream, the client's
        // bytes are the middle of a message; the server's SESSION_SETUP response (body
        // StructureSize 9, flags reply + signed) shows SMB.
        let b = hex(
            "00000100fe534d42400001000000000001001f0009000000000000000200000000000000fffe0000
             000000005900000000040000cf4a5f5c6b16a77ad0af7092dfeb7357090000004800b800",
        );
        let c = Flow::tcp(49156, 445)
            .c2s(&[0xb4, 0x46, 0x82, 0xa6])
            .s2c(&b)
            .yes(check);
        assert_eq!(c.evidence[0].value, "SMB2 SESSION_SETUP response");
    }

    #[test]
    fn smb2_negotiate_response_dialect() {
        // MS-SMB2 2.2.4 NEGOTIATE response: StructureSize 65, DialectRevision 0x0311.
        let b = hex(
            "00000100 fe534d42 4000 0100 00000000 0000 0100 01000000 00000000 0000000000000000
             fffe0000 00000000 0000000000000000 00000000000000000000000000000000
             4100 0100 1103",
        );
        let m = parse_messages(&b, false).ok().unwrap();
        assert_eq!(
            (m.command, m.dialect.as_deref()),
            ("NEGOTIATE", Some("3.1.1"))
        );
        let c = Flow::tcp(50000, 445).s2c(&b).yes(check);
        assert_eq!(c.extra.meta.version.as_deref(), Some("3.1.1"));
    }

    #[test]
    fn smb1_negotiate_is_weak() {
        // MS-CIFS 2.2.4.52.1 NEGOTIATE request with two dialects.
        let dialects = b"\x02PC NETWORK PROGRAM 1.0\x00\x02NT LM 0.12\x00";
        let mut m =
            hex("ff534d42 72 00000000 18 4301 0000 0000000000000000 0000 0000 fffe 0000 0000 00");
        m.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
        m.extend_from_slice(dialects);
        let mut b = (m.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&m);
        let c = Flow::tcp(50000, 445).c2s(&b).yes(check);
        assert_eq!(c.extra.weak.as_deref(), Some("SMBv1"));
        assert_eq!(c.extra.meta.version.as_deref(), Some("NT LM 0.12"));
        // A byte count one too large is refused.
        let mut bad = b.clone();
        bad[36] += 1;
        assert!(Flow::tcp(50000, 445).c2s(&bad).is_wait(check));
    }

    #[test]
    fn behind_a_netbios_session_request() {
        let enc = "20 4550464b454a434143414341434143414341434143414341434143414341424d 00";
        let mut b = hex(&format!("81 00 0044 {enc} {enc}"));
        b.extend_from_slice(&negotiate_request());
        assert_eq!(Flow::tcp(50000, 139).c2s(&b).yes(check).protocol, "smb");
    }

    #[test]
    fn not_smb() {
        let f = Flow::tcp(50000, 445).c2s(b"\x00\x00\x00\x10GET / HTTP/1.1");
        assert!(f.is_wait(check)); // the server may still show SMB (mid-session capture)
        assert!(f.s2c(b"HTTP/1.1 400 Bad Request\r\n").is_no(check));
        // The right magic with a wrong structure size.
        let mut b = negotiate_request();
        b[8] = 0x41;
        assert!(Flow::tcp(50000, 445).c2s(&b).is_wait(check));
        assert!(Flow::tcp(50000, 445).c2s(&b).is_no_at_end(check));
        // Cut anywhere: never a Yes.
        let full = negotiate_request();
        for n in 0..20 {
            assert!(!matches!(parse_messages(&full[..n], true), Parse::Ok(_)));
        }
    }
}
