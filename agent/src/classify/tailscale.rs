//! Tailscale peer-to-peer UDP: disco messages, and WireGuard on Tailscale's port.
//!
//! Promise: `Yes` when a datagram is a disco message — the 6-byte magic "TS💬"
//! (54 53 f0 9f 92 ac), the sender's 32-byte disco public key, a 24-byte nonce and a
//! NaCl box of at least its 16-byte tag and a 2-byte message header (tailscale
//! `disco/disco.go`) — or when the flow is WireGuard by the same structural rules as the
//! WireGuard detector and one side uses UDP 41641, Tailscale's default port (the port
//! breaks the tie between plain WireGuard and Tailscale's WireGuard). TLS to
//! `*.tailscale.com` (control plane, DERP relays) is matched by the TLS detector's rules,
//! not here.

use super::wireguard::{self, Assessment, DISCO_MAGIC};
use super::{util, Classification, Cx, Service, Verdict};

/// Curve25519 disco public key after the magic (`disco/disco.go`, keyLen).
const DISCO_KEY_LEN: usize = 32;
/// NaCl nonce after the key (`disco/disco.go`, NonceLen).
const DISCO_NONCE_LEN: usize = 24;
/// Poly1305 tag of the NaCl box.
const BOX_TAG_LEN: usize = 16;
/// Inner message header: type and version (`disco/disco.go`).
const DISCO_INNER_HEADER_LEN: usize = 2;
/// Smallest disco datagram.
const MIN_DISCO_LEN: usize =
    DISCO_MAGIC.len() + DISCO_KEY_LEN + DISCO_NONCE_LEN + BOX_TAG_LEN + DISCO_INNER_HEADER_LEN;
/// Tailscale's default WireGuard UDP port (tie-breaker only).
const PORT_TAILSCALE: u16 = 41641;

/// The sender's disco key when `d` is a disco datagram.
fn disco_sender(d: &[u8]) -> Option<&[u8]> {
    if d.len() < MIN_DISCO_LEN || !d.starts_with(&DISCO_MAGIC) {
        return None;
    }
    d.get(DISCO_MAGIC.len()..DISCO_MAGIC.len() + DISCO_KEY_LEN)
}

fn classification(rule: &'static str, field: &'static str, value: String) -> Classification {
    let mut c = Classification::new("tailscale", Some(Service::Tailscale), rule, field, value);
    c.extra.vendor = Some("Tailscale".into());
    c.extra.product = Some("Tailscale".into());
    c
}

/// Detects Tailscale.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let disco = cx
        .datagrams(cx.c2s)
        .chain(cx.datagrams(cx.s2c))
        .find_map(disco_sender);
    if let Some(key) = disco {
        return Verdict::Yes(classification(
            "setten.tailscale.disco",
            "tailscale.disco_key",
            format!("disco magic \"TS💬\", sender key {}", util::hex(key)),
        ));
    }
    if !cx.port_is(PORT_TAILSCALE) {
        return Verdict::No;
    }
    match wireguard::assess(cx, true) {
        Assessment::No => Verdict::No,
        Assessment::Wait => Verdict::Wait,
        // A consumer VPN's handshake is not Tailscale's.
        Assessment::Variant(..) => Verdict::No,
        Assessment::Yes(rule, value) => {
            let mut c = classification(
                "setten.tailscale.wireguard-port",
                "udp.port",
                "41641 (Tailscale default) carrying WireGuard".into(),
            );
            c.evidence
                .push(super::Evidence::new(rule, "wireguard.index", value));
            Verdict::Yes(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::wireguard::tests::{msg, transport};

    fn run(c2s: &[Vec<u8>], s2c: &[Vec<u8>], ports: (u16, u16), last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, &c, &s, ports, last)
    }

    /// A disco ping as laid out in tailscale `disco/disco.go`: magic, 32-byte key,
    /// 24-byte nonce, then the box (16-byte tag + type 0x01, version 0, 12-byte TxID).
    fn disco_ping() -> Vec<u8> {
        let mut d = DISCO_MAGIC.to_vec();
        d.extend((0..32u8).map(|i| i.wrapping_mul(37)));
        d.extend([0x42; 24]);
        d.extend([0x99; 16 + 2 + 12]);
        d
    }

    #[test]
    fn disco_ping_is_yes_on_any_port() {
        match run(&[disco_ping()], &[], (50000, 60000), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Tailscale));
                assert_eq!(c.evidence[0].rule, "setten.tailscale.disco");
                assert!(c.evidence[0].value.contains("00254a6f"));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn short_or_wrong_magic_is_not_disco() {
        let d = disco_ping();
        assert!(disco_sender(&d[..MIN_DISCO_LEN - 1]).is_none());
        let mut m = d.clone();
        m[5] = 0xad;
        assert!(disco_sender(&m).is_none());
        assert!(matches!(run(&[m], &[], (50000, 60000), false), Verdict::No));
    }

    #[test]
    fn wireguard_on_41641_is_tailscale_and_disco_is_skipped() {
        let init = msg(1, 148, &[11]);
        let resp = msg(2, 92, &[22, 11]);
        match run(&[disco_ping(), init], &[resp], (41641, 41641), false) {
            // The disco datagram alone already decides.
            Verdict::Yes(c) => assert_eq!(c.evidence[0].rule, "setten.tailscale.disco"),
            v => panic!("{v:?}"),
        }
        let t1: Vec<_> = (1..4).map(|n| transport(22, n, 64)).collect();
        let t2: Vec<_> = (1..4).map(|n| transport(11, n, 64)).collect();
        match run(&t1, &t2, (33000, 41641), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.evidence[0].rule, "setten.tailscale.wireguard-port");
                assert_eq!(c.evidence[1].rule, "setten.wireguard.transport-indexes");
            }
            v => panic!("{v:?}"),
        }
        // The same WireGuard elsewhere is left to the WireGuard detector.
        assert!(matches!(run(&t1, &t2, (33000, 51820), false), Verdict::No));
    }

    #[test]
    fn other_traffic_on_41641_is_no() {
        // STUN binding request (RFC 8489 section 5): not WireGuard, not disco.
        let stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl".to_vec();
        assert!(matches!(
            run(&[stun], &[], (41641, 3478), false),
            Verdict::No
        ));
    }
}
