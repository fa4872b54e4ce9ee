//! ONC RPC (RFC 5531) calls, over UDP and over TCP with record marking (RFC 5531 11):
//! the portmapper, NFS (the usual NAS backup target), mountd, NLM and NSM.
//!
//! `Yes` for a CALL (msg_type 0) with RPC version 2, a program number of the assigned
//! ranges, a credential and a verifier of defined flavors within the 400-byte body limit
//! (RFC 5531 8.2), and (TCP) a record mark whose length covers the call. NFS and mountd
//! calls are named "nfs"; others "sunrpc" with the program in the evidence.

use super::super::{Classification, Cx, Verdict};
use super::{be32, finish, first_datagram, require, stream, Parse};

/// Largest opaque_auth body (RFC 5531 8.2).
pub const MAX_AUTH_BODY: usize = 400;
/// Largest TCP record fragment accepted for a first call.
const MAX_FRAGMENT: u32 = 1 << 20;
/// Fixed call header words before the credential: xid, msg_type, rpcvers, prog, vers,
/// proc.
const CALL_FIXED: usize = 24;

/// Programs worth naming (IANA ONC RPC program numbers).
fn program(p: u32) -> Option<(&'static str, &'static str)> {
    Some(match p {
        100_000 => ("sunrpc", "portmapper"),
        100_003 => ("nfs", "nfs"),
        100_005 => ("nfs", "mountd"),
        100_021 => ("nfs", "nlockmgr"),
        100_024 => ("nfs", "status"),
        100_227 => ("nfs", "nfs_acl"),
        100_004 => ("sunrpc", "ypserv"),
        100_007 => ("sunrpc", "ypbind"),
        100_011 => ("sunrpc", "rquotad"),
        _ => return None,
    })
}

/// Credential flavors (RFC 5531 8.1, RFC 2203): NONE, SYS, SHORT, DH, KERB, RPCSEC_GSS,
/// and the RFC 9289 TLS probe.
fn flavor_ok(f: u32) -> bool {
    matches!(f, 0..=4 | 6 | 7)
}

/// A parsed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// "nfs" or "sunrpc".
    pub protocol: &'static str,
    /// Program name.
    pub program: &'static str,
    /// Program version.
    pub version: u32,
    /// Procedure number.
    pub procedure: u32,
}

/// Parses a CALL message at the start of `b`.
pub fn parse_call(b: &[u8]) -> Parse<Call> {
    need!(require(need!(be32(b, 4)) == 0 && need!(be32(b, 8)) == 2));
    let prog = need!(be32(b, 12));
    let (protocol, name) = need!(program(prog).map_or(Parse::Bad, Parse::Ok));
    let version = need!(be32(b, 16));
    let procedure = need!(be32(b, 20));
    need!(require((1..=10).contains(&version) && procedure < 256));
    // Credential, then verifier: flavor, length, body padded to four.
    let mut off = CALL_FIXED;
    for _ in 0..2 {
        let flavor = need!(be32(b, off));
        let len = need!(be32(b, off + 4)) as usize;
        need!(require(flavor_ok(flavor) && len <= MAX_AUTH_BODY));
        off += 8 + len.div_ceil(4) * 4;
    }
    need!(require(off <= b.len()));
    Parse::Ok(Call {
        protocol,
        program: name,
        version,
        procedure,
    })
}

/// Parses a TCP direction: record mark (last-fragment bit, length), then a call.
pub fn parse_tcp(b: &[u8]) -> Parse<Call> {
    let mark = need!(be32(b, 0));
    let len = mark & 0x7fff_ffff;
    need!(require(
        len as usize >= CALL_FIXED + 16 && len <= MAX_FRAGMENT
    ));
    let call = b.get(4..b.len().min(4 + len as usize)).unwrap_or(&[]);
    parse_call(call)
}

/// Names ONC RPC and NFS.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let p = if cx.is_udp() {
        first_datagram(cx, cx.c2s, parse_call)
    } else {
        stream(cx.c2s, parse_tcp)
    };
    finish(
        cx,
        p.map(|c| {
            Classification::new(
                c.protocol,
                None,
                "setten.sunrpc.call",
                "sunrpc.program",
                format!("{} v{} procedure {}", c.program, c.version, c.procedure),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// An NFSv3 GETATTR call with AUTH_SYS (RFC 5531 9, RFC 1813 3.3.1): xid, CALL,
    /// rpcvers 2, prog 100003, vers 3, proc 1, AUTH_SYS credential (stamp, machine
    /// "nas", uid 0, gid 0, no groups), AUTH_NONE verifier, then a file handle.
    fn getattr() -> Vec<u8> {
        hex("6e2d1a01 00000000 00000002 000186a3 00000003 00000001
             00000001 00000018 5f3a2c10 00000003 6e617300 00000000 00000000 00000000
             00000000 00000000
             00000008 0102030405060708")
    }

    #[test]
    fn nfs_getattr() {
        let c = Flow::udp(800, 2049).c2s(&getattr()).yes(check);
        assert_eq!((c.protocol, c.service), ("nfs", None));
        assert_eq!(c.evidence[0].value, "nfs v3 procedure 1");
        // Over TCP with a record mark (last fragment).
        let mut t = (0x8000_0000u32 | getattr().len() as u32)
            .to_be_bytes()
            .to_vec();
        t.extend_from_slice(&getattr());
        assert_eq!(Flow::tcp(800, 2049).c2s(&t).yes(check).protocol, "nfs");
    }

    #[test]
    fn not_a_call() {
        let mut b = getattr();
        b[7] = 1; // a REPLY
        assert_eq!(parse_call(&b), Parse::Bad);
        let mut b = getattr();
        b[11] = 3; // rpcvers 3
        assert_eq!(parse_call(&b), Parse::Bad);
        let mut b = getattr();
        b[12..16].copy_from_slice(&0x0009_9999u32.to_be_bytes()); // unassigned program
        assert_eq!(parse_call(&b), Parse::Bad);
        let mut b = getattr();
        b[27] = 9; // credential flavor 9
        assert_eq!(parse_call(&b), Parse::Bad);
        assert!(Flow::udp(1, 2049).c2s(&[0; 40]).is_no(check));
    }
}
