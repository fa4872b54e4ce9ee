//! iSCSI (RFC 7143) over TCP: block storage, and a common backup path.
//!
//! `Yes` for a Login Request from the client (RFC 7143 11.12: immediate opcode 0x43,
//! version-max and version-min 0, no AHS, stages that exist, a transit bit only towards
//! a later stage, zero reserved bytes, and a data segment of text "key=value" pairs) or
//! a Login Response from the server (11.13: opcode 0x23, version-active 0, a defined
//! status class). The initiator and target names are the evidence.

use super::super::{Classification, Cx, Verdict};
use super::{byte, finish, require, stream, take, Parse};

/// Basic header segment octets (RFC 7143 11.2).
pub const BHS_LEN: usize = 48;
/// Largest login data segment accepted (MaxRecvDataSegmentLength default 8192).
const MAX_LOGIN_DATA: usize = 8192;
/// Longest text key (RFC 7143 6.1: at most 63 characters).
const MAX_KEY: usize = 63;
/// Longest name kept in evidence.
const MAX_NAME: usize = 223;

/// A parsed login PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    /// Request or response.
    pub request: bool,
    /// InitiatorName and TargetName, as found.
    pub names: String,
}

/// Stages: security negotiation, operational negotiation, full feature (3); 2 is
/// reserved (RFC 7143 11.12.3).
fn stage_ok(flags: u8) -> bool {
    let (transit, csg, nsg) = (flags & 0x80 != 0, (flags >> 2) & 3, flags & 3);
    csg != 2 && (!transit || (nsg != 2 && nsg > csg)) && flags & 0x30 == 0
}

/// Parses a login request (`from_client`) or response.
pub fn parse_login(b: &[u8], from_client: bool) -> Parse<Login> {
    let op = need!(byte(b, 0));
    need!(require(op == if from_client { 0x43 } else { 0x23 }));
    need!(require(stage_ok(need!(byte(b, 1)))));
    // Version-max and Version-min (response: Version-active) are 0 (11.12.4).
    need!(require(need!(byte(b, 2)) == 0 && need!(byte(b, 3)) == 0));
    need!(require(need!(byte(b, 4)) == 0));
    let dlen = need!(take(b, 5, 3))
        .iter()
        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
    need!(require(dlen <= MAX_LOGIN_DATA));
    if from_client {
        // Bytes 32..48 are reserved (11.12).
        need!(require(need!(take(b, 32, 16)).iter().all(|&x| x == 0)));
    } else {
        // Status-Class 0 (success), 1 (redirection), 2 (initiator error), 3 (target
        // error) (11.13.5).
        need!(require(need!(byte(b, 36)) <= 3));
    }
    let data = b.get(BHS_LEN..b.len().min(BHS_LEN + dlen)).unwrap_or(&[]);
    if from_client {
        // The data segment starts with a text key and "=" (RFC 7143 6.1).
        need!(require(dlen > 0));
        let k = data
            .iter()
            .take(MAX_KEY + 1)
            .take_while(|c| c.is_ascii_alphanumeric() || b"-._".contains(c))
            .count();
        match data.get(k) {
            Some(b'=') if k > 0 => {}
            None if k == data.len() && k <= MAX_KEY => return Parse::Short,
            _ => return Parse::Bad,
        }
    }
    let mut names = Vec::new();
    for pair in data.split(|&c| c == 0) {
        for key in ["InitiatorName=", "TargetName="] {
            if let Some(v) = pair.strip_prefix(key.as_bytes()) {
                let v = v.get(..v.len().min(MAX_NAME)).unwrap_or(v);
                names.push(format!("{key}{}", super::super::util::printable(v)));
            }
        }
    }
    Parse::Ok(Login {
        request: from_client,
        names: names.join(" "),
    })
}

/// Names iSCSI.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, |b| parse_login(b, true))
        .or_else(|| stream(cx.s2c, |b| parse_login(b, false)));
    finish(
        cx,
        p.map(|l| {
            let what = if l.request {
                "Login Request"
            } else {
                "Login Response"
            };
            let v = if l.names.is_empty() {
                what.to_owned()
            } else {
                format!("{what} {}", l.names)
            };
            Classification::new("iscsi", None, "setten.iscsi.login", "iscsi.login", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// A Login Request (RFC 7143 11.12) from the Microsoft initiator: security stage to
    /// operational (T=1, CSG=0, NSG=1), data "InitiatorName=…", "SessionType=Normal",
    /// "TargetName=…", "AuthMethod=None".
    fn login() -> Vec<u8> {
        let data = b"InitiatorName=iqn.1991-05.com.microsoft:pacs01\0SessionType=Normal\0TargetName=iqn.2004-04.com.qnap:ts-453:iscsi.backup\0AuthMethod=None\0";
        let mut b = hex("43 81 00 00 00");
        b.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        b.extend_from_slice(&hex(
            "400001370000 0000 00000001 0000 0000 00000001 00000000",
        ));
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn login_request() {
        let c = Flow::tcp(50000, 3260).c2s(&login()).yes(check);
        assert_eq!((c.protocol, c.service), ("iscsi", None));
        assert_eq!(
            c.evidence[0].value,
            "Login Request InitiatorName=iqn.1991-05.com.microsoft:pacs01 TargetName=iqn.2004-04.com.qnap:ts-453:iscsi.backup"
        );
    }

    #[test]
    fn not_a_login() {
        let mut b = login();
        b[2] = 1; // version-max
        assert_eq!(parse_login(&b, true), Parse::Bad);
        let mut b = login();
        b[1] = 0x88; // CSG 2 (reserved)
        assert_eq!(parse_login(&b, true), Parse::Bad);
        let mut b = login();
        b[40] = 1; // reserved byte
        assert_eq!(parse_login(&b, true), Parse::Bad);
        assert!(Flow::tcp(1, 3260)
            .c2s(&[0x43; 60])
            .s2c(&[0; 60])
            .is_no(check));
    }
}
