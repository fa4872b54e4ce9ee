//! DCE/RPC over TCP (C706 12.6.3.1, MS-RPCE 2.2.2): Windows' RPC, behind Active
//! Directory replication, remote service control, remote registry and the endpoint
//! mapper on 135.
//!
//! `Yes` when the first PDU's common header has version 5.0 or 5.1, a packet type whose
//! direction fits (requests, binds and alter-contexts from the client; responses,
//! faults and bind acknowledgements from the server), the NDR data representation
//! (little or big endian integers, ASCII, IEEE floats), and a fragment length of at
//! least the header and the authentication trailer. A bind names the interface it asks
//! for; well-known ones are named in the evidence (svcctl, winreg, drsuapi, …) because
//! they are what lateral movement uses.

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, require, stream, take, Parse};

/// Common header octets (C706 12.6.3.1).
pub const HEADER_LEN: usize = 16;

/// Packet types and whether the client sends them (C706 12.6.4, MS-RPCE 2.2.2.1).
fn ptype(t: u8) -> Option<(&'static str, bool)> {
    Some(match t {
        0 => ("request", true),
        2 => ("response", false),
        3 => ("fault", false),
        11 => ("bind", true),
        12 => ("bind_ack", false),
        13 => ("bind_nak", false),
        14 => ("alter_context", true),
        15 => ("alter_context_resp", false),
        16 => ("auth3", true),
        17 => ("shutdown", false),
        18 => ("co_cancel", true),
        19 => ("orphaned", true),
        _ => return None,
    })
}

/// Interfaces worth naming (MS-RPCE and the protocol documents that define them).
const INTERFACES: [(&str, &str); 14] = [
    ("e1af8308-5d1f-11c9-91a4-08002b14a0fa", "epmapper"),
    ("12345778-1234-abcd-ef00-0123456789ab", "lsarpc"),
    ("12345778-1234-abcd-ef00-0123456789ac", "samr"),
    ("12345678-1234-abcd-ef00-01234567cffb", "netlogon"),
    ("4b324fc8-1670-01d3-1278-5a47bf6ee188", "srvsvc"),
    ("6bffd098-a112-3610-9833-46c3f87e345a", "wkssvc"),
    ("367abb81-9844-35f1-ad32-98f038001003", "svcctl"),
    ("338cd001-2244-31f1-aaaa-900038001003", "winreg"),
    ("e3514235-4b06-11d1-ab04-00c04fc2dcd2", "drsuapi"),
    (
        "86d35949-83c9-4044-b424-db363231fd0c",
        "ITaskSchedulerService",
    ),
    ("1ff70682-0a51-30e8-076d-740be8cee98b", "atsvc"),
    (
        "000001a0-0000-0000-c000-000000000046",
        "IRemoteSCMActivator",
    ),
    ("99fcfec4-5260-101b-bbcb-00aa0021347a", "IObjectExporter"),
    ("c681d488-d850-11d0-8c52-00c04fd90f7e", "efsrpc"),
];

/// The canonical text of a UUID as NDR sends it: the first three fields in the
/// sender's integer order (C706 Appendix A, 14.2.5), the rest as bytes.
fn uuid_text(u: &[u8], little_endian: bool) -> Option<String> {
    let u: &[u8; 16] = u.try_into().ok()?;
    let (a, b, c) = if little_endian {
        (
            u32::from_le_bytes([u[0], u[1], u[2], u[3]]),
            u16::from_le_bytes([u[4], u[5]]),
            u16::from_le_bytes([u[6], u[7]]),
        )
    } else {
        (
            u32::from_be_bytes([u[0], u[1], u[2], u[3]]),
            u16::from_be_bytes([u[4], u[5]]),
            u16::from_be_bytes([u[6], u[7]]),
        )
    };
    Some(format!(
        "{a:08x}-{b:04x}-{c:04x}-{:02x}{:02x}-{}",
        u[8],
        u[9],
        super::super::util::hex(u.get(10..).unwrap_or(&[]))
    ))
}

/// A known interface's name.
fn interface(uuid: &[u8], little_endian: bool) -> Option<&'static str> {
    let text = uuid_text(uuid, little_endian)?;
    INTERFACES
        .iter()
        .find(|(u, _)| *u == text)
        .map(|(_, name)| *name)
}

/// What the first PDU shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    /// Packet type name.
    pub kind: &'static str,
    /// Interface of a bind, when known.
    pub interface: Option<&'static str>,
}

/// Parses a PDU head; `from_client` for the direction.
pub fn parse_pdu(b: &[u8], from_client: bool) -> Parse<Pdu> {
    need!(require(need!(byte(b, 0)) == 5));
    need!(require(need!(byte(b, 1)) <= 1));
    let (kind, client) = need!(ptype(need!(byte(b, 2))).map_or(Parse::Bad, Parse::Ok));
    need!(require(client == from_client));
    let drep = need!(take(b, 4, 4));
    need!(require(matches!(drep, [0x10 | 0x00, 0..=3, 0, 0])));
    let le = drep.first() == Some(&0x10);
    let word = |o: usize| -> Parse<usize> {
        take(b, o, 2).map(|w| {
            let w = [
                w.first().copied().unwrap_or(0),
                w.get(1).copied().unwrap_or(0),
            ];
            usize::from(if le {
                u16::from_le_bytes(w)
            } else {
                u16::from_be_bytes(w)
            })
        })
    };
    let frag = need!(word(8));
    let auth = need!(word(10));
    need!(require(frag >= HEADER_LEN + auth));
    let mut iface = None;
    if kind == "bind" || kind == "alter_context" {
        // max_xmit_frag, max_recv_frag, assoc_group (8), n_context_elem, reserved (3),
        // p_cont_id (2), n_transfer_syn, reserved, abstract syntax UUID (C706 12.6.4.3).
        let n = need!(byte(b, HEADER_LEN + 8));
        need!(require(n >= 1));
        if let Parse::Ok(uuid) = take(b, HEADER_LEN + 16, 16) {
            iface = interface(uuid, le);
        }
    }
    Parse::Ok(Pdu {
        kind,
        interface: iface,
    })
}

/// Names DCE/RPC.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p =
        stream(cx.c2s, |b| parse_pdu(b, true)).or_else(|| stream(cx.s2c, |b| parse_pdu(b, false)));
    finish(
        cx,
        p.map(|pdu| {
            let v = match pdu.interface {
                Some(i) => format!("{} {i}", pdu.kind),
                None => pdu.kind.to_owned(),
            };
            Classification::new("dcerpc", None, "setten.dcerpc.header", "dcerpc.ptype", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn bind_ack_from_capture() {
        // ndpi-kerberos.pcap frame 22 (first 32 bytes): bind_ack, flags first|last,
        // little-endian NDR, frag 284, auth 168; the client's side starts mid-stream.
        let b = hex("05000c07100000001c01a80002000000d016d01687220000060034393135350003");
        let c = Flow::tcp(49165, 49155)
            .c2s(&hex("389b2b2650cdb6bec7e257277abfb861"))
            .s2c(&b)
            .yes(check);
        assert_eq!((c.protocol, c.service), ("dcerpc", None));
        assert_eq!(c.evidence[0].value, "bind_ack");
    }

    #[test]
    fn bind_to_svcctl() {
        // C706 12.6.4.3 bind for svcctl 367abb81-9844-35f1-ad32-98f038001003 v2.0,
        // NDR transfer syntax.
        let b = hex(
            "05000b03 10000000 4800 0000 01000000 b810b810 00000000 01000000 0000 0100
             81bb7a36 4498f135 ad3298f0 38001003 0200 0000
             045d888a eb1cc911 9fe80800 2b104860 02000000",
        );
        let c = Flow::tcp(50000, 49667).c2s(&b).yes(check);
        assert_eq!(c.evidence[0].value, "bind svcctl");
    }

    #[test]
    fn not_dcerpc() {
        let b = hex("05000c07100000001c01a80002000000");
        // A server PDU from the client.
        assert!(Flow::tcp(1, 135).c2s(&b).s2c(&[0x5a; 16]).is_no(check));
        let mut x = b.clone();
        x[4] = 0x20; // drep
        assert_eq!(parse_pdu(&x, false), Parse::Bad);
        let mut x = b.clone();
        x[1] = 2; // minor version
        assert_eq!(parse_pdu(&x, false), Parse::Bad);
        let mut x = b;
        x[8] = 0x08;
        x[9] = 0; // fragment shorter than header + auth
        assert_eq!(parse_pdu(&x, false), Parse::Bad);
    }
}
