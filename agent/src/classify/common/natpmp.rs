//! NAT-PMP (RFC 6886) and its successor PCP (RFC 6887): a device asking the router in
//! front of it for a port mapping, on UDP 5351 (the router's announcements of a new
//! external address go to 5350). A mapping opens a port of the device to the internet,
//! which is why the evidence says which port and for how long.
//!
//! The messages are short and have few fixed bits, so the port is required as the
//! tie-breaker (nDPI's `natpmp.c` does the same). `Yes` for a first datagram, from either
//! side, that is one whole message:
//!
//! * NAT-PMP version 0: a request for the external address (opcode 0, 2 bytes) or for a
//!   UDP or TCP mapping (opcodes 1 and 2, 12 bytes, reserved bytes zero); a response
//!   (opcode + 128) of the length its opcode gives, with a defined result code (0..=5);
//! * PCP version 2: a request or response (R bit) of at least the 24-byte header and at
//!   most 1100 bytes, a multiple of four long, with a defined opcode (0 ANNOUNCE, 1 MAP,
//!   2 PEER) whose opcode-specific part fits; responses with a defined result code
//!   (0..=13).

use super::super::{Classification, Cx, Verdict};
use super::{be16, be32, byte, finish, opening, require, Parse};

/// The port requests go to (RFC 6886 3.1, RFC 6887 19.1).
pub const PORT: u16 = 5351;
/// The port a router's address-change announcements go to (RFC 6886 3.2.1).
pub const ANNOUNCE_PORT: u16 = 5350;
/// PCP message limit (RFC 6887 7).
const PCP_MAX: usize = 1100;
/// PCP common header (RFC 6887 7.1, 7.2).
const PCP_HEADER: usize = 24;
/// PCP MAP opcode-specific part (RFC 6887 11.1).
const PCP_MAP_LEN: usize = 36;
/// PCP PEER opcode-specific part (RFC 6887 12.1).
const PCP_PEER_LEN: usize = 56;

/// The evidence a message gives.
fn describe(d: &[u8]) -> Parse<String> {
    match need!(byte(d, 0)) {
        0 => nat_pmp(d),
        2 => pcp(d),
        _ => Parse::Bad,
    }
}

/// A mapping's transport by NAT-PMP opcode.
fn nat_pmp_transport(op: u8) -> &'static str {
    if op & 0x7f == 1 {
        "UDP"
    } else {
        "TCP"
    }
}

/// NAT-PMP (RFC 6886 3.2-3.5).
fn nat_pmp(d: &[u8]) -> Parse<String> {
    let op = need!(byte(d, 1));
    match op {
        0 => {
            need!(require(d.len() == 2));
            Parse::Ok("NAT-PMP external address request".into())
        }
        1 | 2 => {
            need!(require(d.len() == 12 && need!(be16(d, 2)) == 0));
            let (internal, external) = (need!(be16(d, 4)), need!(be16(d, 6)));
            let lifetime = need!(be32(d, 8));
            Parse::Ok(format!(
                "NAT-PMP map {} internal port {internal} to external port {external} for {lifetime} s",
                nat_pmp_transport(op)
            ))
        }
        128..=130 => {
            need!(require(d.len() == if op == 128 { 12 } else { 16 }));
            let result = need!(be16(d, 2));
            need!(require(result <= 5));
            if op == 128 {
                Parse::Ok(format!(
                    "NAT-PMP external address {}.{}.{}.{} (result {result})",
                    need!(byte(d, 8)),
                    need!(byte(d, 9)),
                    need!(byte(d, 10)),
                    need!(byte(d, 11))
                ))
            } else {
                let (internal, external) = (need!(be16(d, 8)), need!(be16(d, 10)));
                Parse::Ok(format!(
                    "NAT-PMP mapped {} internal port {internal} to external port {external} (result {result})",
                    nat_pmp_transport(op)
                ))
            }
        }
        _ => Parse::Bad,
    }
}

/// The transport a PCP MAP or PEER names (IANA protocol numbers; 0 is all).
fn pcp_protocol(p: u8) -> String {
    match p {
        0 => "any protocol".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        n => format!("protocol {n}"),
    }
}

/// PCP (RFC 6887 7.1-7.2, 11.1, 12.1).
fn pcp(d: &[u8]) -> Parse<String> {
    need!(require(
        (PCP_HEADER..=PCP_MAX).contains(&d.len()) && d.len() % 4 == 0
    ));
    let r_op = need!(byte(d, 1));
    let (response, op) = (r_op & 0x80 != 0, r_op & 0x7f);
    let body = match op {
        0 => 0,
        1 => PCP_MAP_LEN,
        2 => PCP_PEER_LEN,
        _ => return Parse::Bad,
    };
    need!(require(d.len() >= PCP_HEADER + body));
    let lifetime = need!(be32(d, 4));
    if response {
        need!(require(need!(byte(d, 3)) <= 13));
    }
    let kind = if response { "response" } else { "request" };
    if op == 0 {
        return Parse::Ok(format!("PCP ANNOUNCE {kind}"));
    }
    // Nonce (12), protocol, reserved (3), internal port, external port (RFC 6887 11.1).
    let protocol = pcp_protocol(need!(byte(d, PCP_HEADER + 12)));
    let (internal, external) = (
        need!(be16(d, PCP_HEADER + 16)),
        need!(be16(d, PCP_HEADER + 18)),
    );
    let name = if op == 1 { "MAP" } else { "PEER" };
    Parse::Ok(format!(
        "PCP {name} {kind}: {protocol} internal port {internal} to external port {external} for {lifetime} s"
    ))
}

/// Names NAT-PMP and PCP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let on_port = [PORT, ANNOUNCE_PORT].contains(&cx.server_port)
        || [PORT, ANNOUNCE_PORT].contains(&cx.client_port);
    if !cx.is_udp() || !on_port {
        return Verdict::No;
    }
    finish(
        cx,
        opening(cx, describe, describe).map(|v| {
            let protocol = if v.starts_with("PCP") {
                "pcp"
            } else {
                "nat-pmp"
            };
            Classification::new(protocol, None, "setten.natpmp.message", "natpmp.message", v)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn nat_pmp_requests_and_responses() {
        // ndpi-gnutella.pcap: a client asks for its external address (version 0, op 0).
        let c = Flow::udp(57619, PORT).c2s(&hex("0000")).yes(check);
        assert_eq!((c.protocol, c.service), ("nat-pmp", None));
        assert_eq!(c.evidence[0].value, "NAT-PMP external address request");
        // A TCP mapping of internal 3389 to external 3389 for an hour (RFC 6886 3.3),
        // and the router's answer.
        let map = hex("00020000 0d3d 0d3d 00000e10");
        let ok = hex("00820000 0001e240 0d3d 0d3d 00000e10");
        let c = Flow::udp(40000, PORT).c2s(&map).s2c(&ok).yes(check);
        assert_eq!(
            c.evidence[0].value,
            "NAT-PMP map TCP internal port 3389 to external port 3389 for 3600 s"
        );
        let c = Flow::udp(40000, PORT).s2c(&ok).yes(check);
        assert!(c.evidence[0].value.contains("mapped TCP"), "{c:?}");
        // The external address answer (12 bytes).
        let addr = hex("00800000 0001e240 cb007107");
        let c = Flow::udp(40000, PORT).s2c(&addr).yes(check);
        assert!(c.evidence[0].value.contains("203.0.113.7"), "{c:?}");
        // Wrong lengths, reserved bytes set, an undefined opcode or result: not this.
        for bad in [
            "000000",
            "00020001 0d3d 0d3d 00000e10",
            "0003",
            "00820009 0001e240 0d3d 0d3d 00000e10",
        ] {
            assert!(Flow::udp(40000, PORT).c2s(&hex(bad)).is_no(check), "{bad}");
        }
        // The same bytes on another port are not named.
        assert!(Flow::udp(40000, 5353).c2s(&hex("0000")).is_no(check));
    }

    #[test]
    fn pcp_map_request() {
        // RFC 6887 11.1: version 2, MAP, lifetime 7200, client 192.0.2.10 as IPv4-mapped;
        // nonce, TCP, internal 22, suggested external 2222, no suggested address.
        let mut m = hex("02010000 00001c20 00000000000000000000ffff c000020a");
        m.extend_from_slice(&[0x11; 12]);
        m.extend_from_slice(&hex("06000000 0016 08ae"));
        m.extend_from_slice(&[0; 16]);
        let c = Flow::udp(40000, PORT).c2s(&m).yes(check);
        assert_eq!(c.protocol, "pcp");
        assert_eq!(
            c.evidence[0].value,
            "PCP MAP request: TCP internal port 22 to external port 2222 for 7200 s"
        );
        // Cut short of its MAP part, or not a multiple of four: not this.
        assert!(Flow::udp(40000, PORT).c2s(&m[..40]).is_no(check));
        let mut odd = m.clone();
        odd.push(0);
        assert!(Flow::udp(40000, PORT).c2s(&odd).is_no(check));
    }
}
