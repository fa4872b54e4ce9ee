//! LDAP (RFC 4511 4.1.1): an LDAPMessage SEQUENCE with a messageID and a protocolOp, over
//! TCP, and over UDP as CLDAP (RFC 1798), which Active Directory clients use to find a
//! domain controller.
//!
//! `Yes` when the SEQUENCE holds a messageID INTEGER (1.. for requests), then a
//! protocolOp whose application tag is a request (from the client) or a response (from
//! the server), whose length fits the SEQUENCE with at most the controls after it, and
//! whose first fields have the types RFC 4511 gives that operation (bind version and
//! name; search base, scope and alias dereferencing; a result code and DNs; …). Over UDP
//! the message must fill the datagram.

use super::super::{Classification, Cx, Verdict};
use super::ber;
use super::{finish, opening, require, stream, Parse};
use crate::flow::reassembly::MAX_DATAGRAM;

/// Largest first message accepted (RFC 4511 leaves it open; servers cap requests at a
/// few megabytes, e.g. Active Directory's MaxReceiveBuffer 10 MB).
pub const MAX_MESSAGE_LEN: usize = 16 << 20;
/// Largest messageID (RFC 4511 4.1.1: 0 .. maxInt = 2^31 - 1).
const MAX_MESSAGE_ID: u64 = 0x7fff_ffff;
/// Controls of a message ([0], RFC 4511 4.1.11).
const CONTROLS: u8 = 0xa0;

/// protocolOp tags (RFC 4511 4.2 ff.): name, and whether it is a request.
fn operation(tag: u8) -> Option<(&'static str, bool)> {
    Some(match tag {
        0x60 => ("bindRequest", true),
        0x61 => ("bindResponse", false),
        0x42 => ("unbindRequest", true),
        0x63 => ("searchRequest", true),
        0x64 => ("searchResEntry", false),
        0x65 => ("searchResDone", false),
        0x73 => ("searchResRef", false),
        0x66 => ("modifyRequest", true),
        0x67 => ("modifyResponse", false),
        0x68 => ("addRequest", true),
        0x69 => ("addResponse", false),
        0x4a => ("delRequest", true),
        0x6b => ("delResponse", false),
        0x6c => ("modDNRequest", true),
        0x6d => ("modDNResponse", false),
        0x6e => ("compareRequest", true),
        0x6f => ("compareResponse", false),
        0x50 => ("abandonRequest", true),
        0x77 => ("extendedReq", true),
        0x78 => ("extendedResp", false),
        0x79 => ("intermediateResponse", false),
        _ => return None,
    })
}

/// A parsed LDAPMessage head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// messageID.
    pub id: u64,
    /// Operation name.
    pub op: &'static str,
    /// A request.
    pub request: bool,
    /// Something worth showing: the bind name, search base, extended request OID or
    /// result code.
    pub detail: String,
}

/// Checks the first fields of an operation's value (RFC 4511 4.2 ff.); returns a detail.
fn first_fields(tag: u8, v: &[u8]) -> Parse<String> {
    let text = |b: &[u8]| super::super::util::printable(b);
    match tag {
        // BindRequest: version INTEGER (1..127), name LDAPDN, authentication choice
        // simple [0] or sasl [3].
        0x60 => {
            let (version, rest) = need!(ber::expect_uint(v));
            let (name, rest) = need!(ber::expect(rest, ber::OCTET_STRING));
            let auth = need!(ber::read(rest));
            need!(require(
                (1..=127).contains(&version) && matches!(auth.tag, 0x80 | 0xa3)
            ));
            Parse::Ok(format!("version={version} name={}", text(name.value)))
        }
        // SearchRequest: baseObject, scope ENUMERATED 0..=3, derefAliases 0..=3.
        0x63 => {
            let (base, rest) = need!(ber::expect(v, ber::OCTET_STRING));
            let (scope, rest) = need!(ber::expect(rest, ber::ENUMERATED));
            let (deref, _) = need!(ber::expect(rest, ber::ENUMERATED));
            need!(require(
                matches!(scope.value, [0..=3]) && matches!(deref.value, [0..=3])
            ));
            Parse::Ok(format!("base={}", text(base.value)))
        }
        // UnbindRequest: NULL.
        0x42 => require(v.is_empty()).map(|()| String::new()),
        // Abandon: a messageID; Del: an LDAPDN (primitive).
        0x50 => ber::uint(v)
            .filter(|&i| i <= MAX_MESSAGE_ID)
            .map_or(Parse::Bad, |i| Parse::Ok(format!("id={i}"))),
        0x4a => require(super::text::is_text(v)).map(|()| format!("dn={}", text(v))),
        // Modify, Add, ModifyDN, Compare: the entry's LDAPDN first.
        0x66 | 0x68 | 0x6c | 0x6e => {
            ber::expect(v, ber::OCTET_STRING).map(|(dn, _)| format!("dn={}", text(dn.value)))
        }
        // SearchResultEntry: objectName, then attributes SEQUENCE.
        0x64 => {
            let (dn, rest) = need!(ber::expect(v, ber::OCTET_STRING));
            need!(require(need!(ber::read(rest)).tag == ber::SEQUENCE));
            Parse::Ok(format!("dn={}", text(dn.value)))
        }
        // SearchResultReference: URIs.
        0x73 => ber::expect(v, ber::OCTET_STRING).map(|_| String::new()),
        // ExtendedRequest: requestName [0] LDAPOID.
        0x77 => {
            let (oid, _) = need!(ber::expect(v, 0x80));
            need!(require(
                !oid.value.is_empty() && oid.value.iter().all(|c| c.is_ascii_digit() || *c == b'.')
            ));
            Parse::Ok(format!("oid={}", text(oid.value)))
        }
        // IntermediateResponse: optional [0] name and [1] value.
        0x79 => match v.first() {
            None | Some(0x80 | 0x81) => Parse::Ok(String::new()),
            Some(_) => Parse::Bad,
        },
        // LDAPResult: resultCode ENUMERATED, matchedDN, diagnosticMessage.
        _ => {
            let (code, rest) = need!(ber::expect(v, ber::ENUMERATED));
            let (_, rest) = need!(ber::expect(rest, ber::OCTET_STRING));
            need!(ber::expect(rest, ber::OCTET_STRING));
            let code = need!(ber::uint(code.value).map_or(Parse::Bad, Parse::Ok));
            // Result codes of RFC 4511 4.1.9 and its registry stay below 4096.
            need!(require(code < 4096));
            Parse::Ok(format!("resultCode={code}"))
        }
    }
}

/// Parses an LDAPMessage at the start of `b`; with `exact` the message must fill `b`.
pub fn parse_message(b: &[u8], exact: bool) -> Parse<Message> {
    let msg = need!(ber::read(b));
    need!(require(
        msg.tag == ber::SEQUENCE && msg.len <= MAX_MESSAGE_LEN
    ));
    if exact {
        need!(require(msg.total() == Some(b.len())));
    }
    let (id, rest) = need!(ber::expect_uint(msg.value));
    need!(require(id <= MAX_MESSAGE_ID));
    let op = need!(ber::read(rest));
    let (name, request) = need!(operation(op.tag).map_or(Parse::Bad, Parse::Ok));
    // The operation, then at most the controls, fill the SEQUENCE.
    // Octets of the SEQUENCE after the messageID.
    let used = msg.len - (msg.value.len() - rest.len());
    let op_total = need!(op.total().map_or(Parse::Bad, Parse::Ok));
    need!(require(op_total <= used));
    if op_total < used {
        if let Some(after) = rest.get(op_total..) {
            if let Some(&t) = after.first() {
                need!(require(t == CONTROLS));
            }
        }
    }
    need!(require(!request || id >= 1));
    let detail = need!(first_fields(op.tag, op.value));
    Parse::Ok(Message {
        id,
        op: name,
        request,
        detail,
    })
}

fn fits(m: Message, from_client: bool) -> Parse<Message> {
    if m.request == from_client {
        Parse::Ok(m)
    } else {
        Parse::Bad
    }
}

/// Names LDAP and CLDAP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let (p, protocol) = if cx.is_udp() {
        let dgram = |d: &[u8]| {
            if d.len() >= MAX_DATAGRAM {
                Parse::Bad
            } else {
                parse_message(d, true)
            }
        };
        let p = opening(
            cx,
            |d| dgram(d).and_then(|m| fits(m, true)),
            |d| dgram(d).and_then(|m| fits(m, false)),
        );
        (p, "cldap")
    } else {
        let p = stream(cx.c2s, |b| parse_message(b, false))
            .and_then(|m| fits(m, true))
            .or_else(|| stream(cx.s2c, |b| parse_message(b, false)).and_then(|m| fits(m, false)));
        (p, "ldap")
    };
    finish(
        cx,
        p.map(|m| {
            let mut v = format!("{} id={}", m.op, m.id);
            if !m.detail.is_empty() {
                v.push(' ');
                v.push_str(&m.detail);
            }
            Classification::new(
                "ldap",
                None,
                format!("setten.{protocol}.message"),
                "ldap.protocol_op",
                v,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// A simple bind (RFC 4511 4.2) as `ldapsearch -x -D cn=admin,dc=example,dc=org`
    /// sends it: messageID 1, version 3, name, simple [0] "secret".
    fn bind() -> Vec<u8> {
        let dn = b"cn=admin,dc=example,dc=org";
        let mut op = hex("020103");
        op.push(0x04);
        op.push(dn.len() as u8);
        op.extend_from_slice(dn);
        op.extend_from_slice(b"\x80\x06secret");
        let mut m = hex("020101");
        m.push(0x60);
        m.push(op.len() as u8);
        m.extend_from_slice(&op);
        let mut b = vec![0x30, m.len() as u8];
        b.extend_from_slice(&m);
        b
    }

    /// ndpi-kerberos.pcap frame 14 (first 26 bytes, of 210): Active Directory's
    /// bindResponse with four-byte lengths: resultCode 0, empty matchedDN and
    /// diagnosticMessage, then serverSaslCreds [7].
    const AD_BIND_RESPONSE: &str = "3084000000cc0201036184000000c30a010004000400878200b8a181b5";

    #[test]
    fn simple_bind() {
        let m = parse_message(&bind(), false).ok().unwrap();
        assert_eq!((m.id, m.op, m.request), (1, "bindRequest", true));
        let c = Flow::tcp(50000, 389).c2s(&bind()).yes(check);
        assert_eq!((c.protocol, c.service), ("ldap", None));
        assert_eq!(
            c.evidence[0].value,
            "bindRequest id=1 version=3 name=cn=admin,dc=example,dc=org"
        );
    }

    #[test]
    fn ad_bind_response_mid_stream() {
        // The client's side in that capture is SASL-wrapped (encrypted); the server's
        // response shows LDAP.
        let c = Flow::tcp(49161, 389)
            .c2s(&hex("f1365cd0b0cca75dcfd9b847530137c0"))
            .s2c(&hex(AD_BIND_RESPONSE))
            .yes(check);
        assert_eq!(c.evidence[0].value, "bindResponse id=3 resultCode=0");
    }

    #[test]
    fn cldap_search() {
        // An AD DC locator ping (MS-ADTS 6.3.3): searchRequest, base "", scope base,
        // derefAliases never, sizeLimit 0, timeLimit 0, typesOnly false, filter
        // (&(DnsDomain=x)(NtVer=...)), attributes "Netlogon"; messageID 1, over UDP.
        let filter =
            hex("a0 1e a3 0e 0409 446e73446f6d61696e 0401 78 a3 0c 0405 4e74566572 0403 06000000");
        let attrs = hex("30 0a 0408 4e65746c6f676f6e");
        let mut op = hex("0400 0a0100 0a0100 020100 020100 010100");
        op.extend_from_slice(&filter);
        op.extend_from_slice(&attrs);
        let mut m = hex("020101");
        m.push(0x63);
        m.push(op.len() as u8);
        m.extend_from_slice(&op);
        let mut d = vec![0x30, m.len() as u8];
        d.extend_from_slice(&m);
        let c = Flow::udp(50000, 389).c2s(&d).yes(check);
        assert_eq!(c.evidence[0].rule, "setten.cldap.message");
        assert_eq!(c.evidence[0].value, "searchRequest id=1 base=");
        let mut long = d.clone();
        long.push(0);
        assert!(Flow::udp(50000, 389).c2s(&long).is_no(check));
    }

    #[test]
    fn wrong_shapes() {
        // A request from the server; a response from the client.
        assert!(Flow::tcp(1, 389)
            .s2c(&bind())
            .c2s(&hex(AD_BIND_RESPONSE))
            .is_no(check));
        // messageID 0 in a request.
        let mut b = bind();
        b[4] = 0;
        assert_eq!(parse_message(&b, false), Parse::Bad);
        // bind version 0.
        let mut b = bind();
        b[9] = 0;
        assert_eq!(parse_message(&b, false), Parse::Bad);
        // Unknown operation tag.
        let mut b = bind();
        b[5] = 0x7f;
        assert_eq!(parse_message(&b, false), Parse::Bad);
        // Other DER (an X.509 certificate's start) is not LDAP.
        assert_eq!(
            parse_message(&hex("308203c5308202ada003020102"), false),
            Parse::Bad
        );
    }
}
