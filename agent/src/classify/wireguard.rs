//! WireGuard over UDP (whitepaper section 5.4, "Messages").
//!
//! Promise: every datagram of the flow must be a well-formed WireGuard message — type
//! 1..=4 followed by three zero bytes, with the exact length of its type (initiation 148,
//! response 92, cookie reply 64, transport data at least 32 bytes with a 16-byte-aligned
//! body) — otherwise `No`. A message type alone is weak (four bytes), so `Yes` further
//! needs the peers' indexes to tie the directions together: a response whose receiver
//! index is an initiation's sender index, or transport data in both directions each
//! addressed to one constant receiver index with growing counters (three such packets,
//! at least one each way). A repeated
//! initiation (the initiator retrying, nothing answering) counts too, as in nDPI's
//! `wireguard.c`; a single unanswered initiation only on UDP 51820, and only when the flow
//! is over.
//!
//! Two variants of the handshake are told apart, since they are consumer VPN clients
//! rather than a WireGuard deployment of one's own:
//! - TunnelBear's: the same messages with an initiation of 204 bytes and a response of
//!   100 (nDPI `wireguard.c`, which names it WireGuard.TunnelBear; the corpus capture
//!   ndpi-tunnelbear.pcap frames 1-2 show it, indexes tied together as usual);
//! - Cloudflare WARP's: the reserved bytes after the type carry a client id instead of
//!   zeros (WARP's WireGuard configuration has a `reserved` field for it). Only a
//!   handshake pair with matching indexes is accepted with non-zero reserved bytes.
//!   WARP's own client goes further: per nDPI's `cloudflare_warp.c` (from real traffic),
//!   its message types are 0xc1-0xc4 instead of 1-4, the handshake messages differ, but
//!   the data messages keep WireGuard's receiver index and counter. So a flow whose every
//!   datagram has such a type is WARP when 0xc4 data flows both ways, each direction to
//!   one constant receiver index with growing counters, after a 0xc1/0xc2 exchange or
//!   (without it) two data messages each way at least.
//!
//! [`assess`] is shared with the Tailscale detector, which claims the same structure on
//! Tailscale's port and skips its disco datagrams.

use super::{util, Classification, Cx, Service, Verdict};

/// Handshake initiation (whitepaper section 5.4.2).
const MSG_INITIATION: u8 = 1;
/// Handshake response (section 5.4.3).
const MSG_RESPONSE: u8 = 2;
/// Cookie reply (section 5.4.7).
const MSG_COOKIE_REPLY: u8 = 3;
/// Transport data (section 5.4.6).
const MSG_TRANSPORT: u8 = 4;
/// Initiation: type, reserved, sender, ephemeral, static (AEAD), timestamp (AEAD),
/// mac1, mac2.
const LEN_INITIATION: usize = 148;
/// Response: type, reserved, sender, receiver, ephemeral, empty (AEAD), mac1, mac2.
const LEN_RESPONSE: usize = 92;
/// Cookie reply: type, reserved, receiver, nonce, cookie (AEAD).
const LEN_COOKIE_REPLY: usize = 64;
/// Transport data: type, reserved, receiver, counter, then at least the 16-byte tag.
const MIN_LEN_TRANSPORT: usize = 32;
/// Transport header (type, reserved, receiver, counter) before the encrypted packet.
const TRANSPORT_HEADER: usize = 16;
/// Encrypted packets are zero-padded to a multiple of 16 (section 5.4.6).
const TRANSPORT_ALIGN: usize = 16;
/// WireGuard's conventional listening port, used only as a tie-breaker.
const PORT_WIREGUARD: u16 = 51820;
/// Transport packets needed per direction when no handshake is seen (WARP's types).
const MIN_TRANSPORT_PER_DIRECTION: usize = 2;
/// Transport packets needed in all, at least one each way, when no handshake is seen:
/// the third confirms its direction's receiver index (as nDPI's `wireguard.c` decides).
const MIN_TRANSPORT_TOTAL: usize = 3;
/// Datagrams are cut to this length by the flow table.
const DATAGRAM_CUT: usize = crate::flow::reassembly::MAX_DATAGRAM;
/// Tailscale disco magic: "TS" + U+1F4AC in UTF-8 (tailscale `disco/disco.go`).
pub(crate) const DISCO_MAGIC: [u8; 6] = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac];

/// TunnelBear's initiation length (nDPI `wireguard.c`; corpus ndpi-tunnelbear.pcap).
const LEN_INITIATION_TUNNELBEAR: usize = 204;
/// TunnelBear's response length.
const LEN_RESPONSE_TUNNELBEAR: usize = 100;
/// Initiations that make a retrying initiator.
const REPEATED_INITIATIONS: usize = 2;

/// How a message departs from the whitepaper's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Odd {
    /// TunnelBear's handshake lengths.
    tunnelbear: bool,
    /// Non-zero reserved bytes.
    reserved: bool,
}

/// One parsed WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Initiation {
        sender: u32,
        odd: Odd,
    },
    Response {
        sender: u32,
        receiver: u32,
        odd: Odd,
    },
    CookieReply {
        receiver: u32,
    },
    Transport {
        receiver: u32,
        counter: u64,
        odd: Odd,
    },
}

/// Parses one datagram as a WireGuard message (indexes little-endian, section 5.4).
fn parse(d: &[u8]) -> Option<Message> {
    let kind = *d.first()?;
    let reserved = d.get(1..4)? != [0, 0, 0];
    let idx = |off: usize| util::le32(d, off);
    let odd = |tunnelbear: bool| Odd {
        tunnelbear,
        reserved,
    };
    match kind {
        MSG_INITIATION if matches!(d.len(), LEN_INITIATION | LEN_INITIATION_TUNNELBEAR) => {
            Some(Message::Initiation {
                sender: idx(4)?,
                odd: odd(d.len() == LEN_INITIATION_TUNNELBEAR),
            })
        }
        MSG_RESPONSE if matches!(d.len(), LEN_RESPONSE | LEN_RESPONSE_TUNNELBEAR) => {
            Some(Message::Response {
                sender: idx(4)?,
                receiver: idx(8)?,
                odd: odd(d.len() == LEN_RESPONSE_TUNNELBEAR),
            })
        }
        MSG_COOKIE_REPLY if d.len() == LEN_COOKIE_REPLY && !reserved => {
            Some(Message::CookieReply { receiver: idx(4)? })
        }
        MSG_TRANSPORT
            if d.len() >= MIN_LEN_TRANSPORT
                && ((d.len() - TRANSPORT_HEADER) % TRANSPORT_ALIGN == 0
                    || d.len() >= DATAGRAM_CUT) =>
        {
            let (receiver, counter) = transport_header(d)?;
            Some(Message::Transport {
                receiver,
                counter,
                odd: odd(false),
            })
        }
        _ => None,
    }
}

/// The receiver index and counter of transport data (section 5.4.6, little-endian), the
/// same in WARP's data messages.
fn transport_header(d: &[u8]) -> Option<(u32, u64)> {
    let counter = u64::from_le_bytes(d.get(8..16)?.try_into().ok()?);
    Some((util::le32(d, 4)?, counter))
}

/// Whether a message keeps to the whitepaper's layout.
fn plain(m: &Message) -> bool {
    match *m {
        Message::Initiation { odd, .. }
        | Message::Response { odd, .. }
        | Message::Transport { odd, .. } => odd == Odd::default(),
        Message::CookieReply { .. } => true,
    }
}

/// How strongly a flow is WireGuard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Assessment {
    /// Certainly not WireGuard.
    No,
    /// Consistent so far, not yet decided.
    Wait,
    /// WireGuard: the rule id and the evidence value.
    Yes(&'static str, String),
    /// A consumer VPN's variant of WireGuard: which, the rule id and the evidence value.
    Variant(Variant, &'static str, String),
}

/// Consumer VPN variants of the WireGuard handshake (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// 204- and 100-byte handshake messages.
    TunnelBear,
    /// A client id in the reserved bytes.
    CloudflareWarp,
}

impl Variant {
    fn of(odd: Odd) -> Option<Variant> {
        if odd.tunnelbear {
            Some(Variant::TunnelBear)
        } else if odd.reserved {
            Some(Variant::CloudflareWarp)
        } else {
            None
        }
    }
}

/// Messages of one direction, or `None` when a datagram is not WireGuard.
fn direction(
    cx: &Cx<'_>,
    s: &crate::flow::reassembly::Stream,
    skip_disco: bool,
) -> Option<Vec<Message>> {
    cx.datagrams(s)
        .filter(|d| !(skip_disco && d.starts_with(&DISCO_MAGIC)))
        .map(parse)
        .collect()
}

/// The constant receiver index and the number of transport packets of one direction,
/// or `Err` when the receiver changes or the counter does not grow.
fn transport_run(msgs: &[Message]) -> Result<(Option<u32>, usize), ()> {
    let mut receiver = None;
    let mut last: Option<u64> = None;
    let mut n = 0usize;
    for m in msgs {
        if let Message::Transport {
            receiver: r,
            counter,
            ..
        } = *m
        {
            if receiver.is_some_and(|x| x != r) || last.is_some_and(|l| counter <= l) {
                return Err(());
            }
            receiver = Some(r);
            last = Some(counter);
            n += 1;
        }
    }
    Ok((receiver, n))
}

/// Assesses a UDP flow as WireGuard. With `skip_disco`, Tailscale disco datagrams are
/// ignored rather than counted against the flow.
pub(crate) fn assess(cx: &Cx<'_>, skip_disco: bool) -> Assessment {
    if !cx.is_udp() {
        return Assessment::No;
    }
    let (Some(a), Some(b)) = (
        direction(cx, cx.c2s, skip_disco),
        direction(cx, cx.s2c, skip_disco),
    ) else {
        return Assessment::No;
    };
    if a.is_empty() && b.is_empty() {
        return if cx.last {
            Assessment::No
        } else {
            Assessment::Wait
        };
    }
    let (Ok((recv_a, n_a)), Ok((recv_b, n_b))) = (transport_run(&a), transport_run(&b)) else {
        return Assessment::No;
    };
    // Handshake pair, in either orientation: a response (or cookie reply) addressed to
    // an initiation's sender index.
    for (init_side, resp_side, recv_init_side) in [(&a, &b, recv_a), (&b, &a, recv_b)] {
        let inits: Vec<(u32, Odd)> = init_side
            .iter()
            .filter_map(|m| match *m {
                Message::Initiation { sender, odd } => Some((sender, odd)),
                _ => None,
            })
            .collect();
        for m in resp_side.iter() {
            match *m {
                Message::Response {
                    sender,
                    receiver,
                    odd,
                } => {
                    // The initiation answered, of the same shape (both TunnelBear's or
                    // both the whitepaper's lengths).
                    let Some(&(_, init_odd)) = inits
                        .iter()
                        .find(|(s, o)| *s == receiver && o.tunnelbear == odd.tunnelbear)
                    else {
                        continue;
                    };
                    // Transport from the initiator, when present, must go to the
                    // responder's index.
                    if recv_init_side.is_some_and(|r| r != sender) {
                        return Assessment::No;
                    }
                    let value = format!(
                        "initiation sender {receiver:08x} answered by response sender {sender:08x}"
                    );
                    let odd = Odd {
                        tunnelbear: odd.tunnelbear,
                        reserved: odd.reserved || init_odd.reserved,
                    };
                    return match Variant::of(odd) {
                        None => Assessment::Yes("setten.wireguard.handshake", value),
                        Some(v @ Variant::TunnelBear) => Assessment::Variant(
                            v,
                            "setten.wireguard.tunnelbear-handshake",
                            format!("{value} (initiation 204 bytes, response 100)"),
                        ),
                        Some(v @ Variant::CloudflareWarp) => Assessment::Variant(
                            v,
                            "setten.wireguard.warp-handshake",
                            format!("{value} (client id in the reserved bytes)"),
                        ),
                    };
                }
                Message::CookieReply { receiver } if inits.iter().any(|(s, _)| *s == receiver) => {
                    return Assessment::Yes(
                        "setten.wireguard.cookie-reply",
                        format!("initiation sender {receiver:08x} answered by a cookie reply"),
                    );
                }
                _ => {}
            }
        }
    }
    // Without a handshake pair, only the whitepaper's layout (or TunnelBear's lengths,
    // for a retrying initiator) is trusted.
    if !a
        .iter()
        .chain(&b)
        .all(|m| plain(m) || matches!(m, Message::Initiation { odd, .. } if !odd.reserved))
    {
        return if cx.last {
            Assessment::No
        } else {
            Assessment::Wait
        };
    }
    // An initiator retrying: initiations only, several of them in one direction.
    let only_inits = a
        .iter()
        .chain(&b)
        .all(|m| matches!(m, Message::Initiation { .. }));
    for side in [&a, &b].into_iter().filter(|_| only_inits) {
        let n = side.len();
        if n >= REPEATED_INITIATIONS {
            let tunnelbear = side
                .iter()
                .all(|m| matches!(m, Message::Initiation { odd, .. } if odd.tunnelbear));
            let plain_only = side.iter().all(plain);
            if tunnelbear {
                return Assessment::Variant(
                    Variant::TunnelBear,
                    "setten.wireguard.tunnelbear-initiation-repeated",
                    format!("{n} handshake initiations of 204 bytes, unanswered"),
                );
            }
            if plain_only {
                return Assessment::Yes(
                    "setten.wireguard.initiation-repeated",
                    format!("{n} handshake initiations (148 bytes), unanswered"),
                );
            }
        }
    }
    // Transport data both ways, each direction to its own constant receiver index.
    if n_a >= 1 && n_b >= 1 && n_a + n_b >= MIN_TRANSPORT_TOTAL {
        if let (Some(ra), Some(rb)) = (recv_a, recv_b) {
            if ra != rb {
                return Assessment::Yes(
                    "setten.wireguard.transport-indexes",
                    format!("transport data to receiver {ra:08x} one way and {rb:08x} the other, counters increasing"),
                );
            }
        }
        return Assessment::No;
    }
    if cx.last {
        if only_inits && a.iter().chain(&b).all(plain) && cx.server_port == PORT_WIREGUARD {
            return Assessment::Yes(
                "setten.wireguard.initiation-port",
                "handshake initiation (148 bytes) to UDP 51820, unanswered".into(),
            );
        }
        return Assessment::No;
    }
    Assessment::Wait
}

/// WARP's own message types (see the module documentation): handshake 0xc1, 0xc2, then
/// 0xc3 and data 0xc4, each the WireGuard type + 0xc0.
const WARP_TYPE_BASE: u8 = 0xc0;

/// Assesses a UDP flow as Cloudflare WARP's own WireGuard (types 0xc1-0xc4).
fn assess_warp(cx: &Cx<'_>) -> Assessment {
    if !cx.is_udp() {
        return Assessment::No;
    }
    // Per direction: which handshake types were seen, and the data messages.
    let mut kinds = [[false; 4]; 2];
    let mut data: [Vec<Message>; 2] = [Vec::new(), Vec::new()];
    for (i, dir) in [cx.c2s, cx.s2c].into_iter().enumerate() {
        for d in cx.datagrams(dir) {
            let Some(kind) = d.first().and_then(|k| k.checked_sub(WARP_TYPE_BASE)) else {
                return Assessment::No;
            };
            if !(MSG_INITIATION..=MSG_TRANSPORT).contains(&kind) || d.len() < MIN_LEN_TRANSPORT {
                return Assessment::No;
            }
            if let Some(k) = kinds
                .get_mut(i)
                .and_then(|k| k.get_mut(usize::from(kind - 1)))
            {
                *k = true;
            }
            if kind == MSG_TRANSPORT {
                let Some((receiver, counter)) = transport_header(d) else {
                    return Assessment::No;
                };
                if let Some(v) = data.get_mut(i) {
                    v.push(Message::Transport {
                        receiver,
                        counter,
                        odd: Odd::default(),
                    });
                }
            }
        }
    }
    let (Ok((ra, na)), Ok((rb, nb))) = (transport_run(&data[0]), transport_run(&data[1])) else {
        return Assessment::No;
    };
    let handshake = (kinds[0][0] && kinds[1][1]) || (kinds[1][0] && kinds[0][1]);
    let enough = if handshake {
        na >= 1 && nb >= 1
    } else {
        na >= MIN_TRANSPORT_PER_DIRECTION && nb >= MIN_TRANSPORT_PER_DIRECTION
    };
    match (ra, rb) {
        (Some(ra), Some(rb)) if enough && ra != rb => Assessment::Variant(
            Variant::CloudflareWarp,
            "setten.wireguard.warp-types",
            format!(
                "message types 0xc1-0xc4{}; data to receiver {ra:08x} one way and {rb:08x} the other, counters increasing",
                if handshake { " after a 0xc1/0xc2 handshake" } else { "" }
            ),
        ),
        (Some(ra), Some(rb)) if enough && ra == rb => Assessment::No,
        _ if cx.last => Assessment::No,
        _ => Assessment::Wait,
    }
}

/// Detects WireGuard.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let assessment = match assess(cx, false) {
        Assessment::No => assess_warp(cx),
        a => a,
    };
    match assessment {
        Assessment::No => Verdict::No,
        Assessment::Wait => Verdict::Wait,
        Assessment::Yes(rule, value) => Verdict::Yes(Classification::new(
            "wireguard",
            Some(Service::Wireguard),
            rule,
            "wireguard.index",
            value,
        )),
        Assessment::Variant(v, rule, value) => {
            let mut c = Classification::new(
                "wireguard",
                Some(Service::ConsumerVpn),
                rule,
                "wireguard.index",
                value,
            );
            let (vendor, product) = match v {
                Variant::TunnelBear => ("TunnelBear", "TunnelBear"),
                Variant::CloudflareWarp => ("Cloudflare", "Cloudflare WARP"),
            };
            c.extra.vendor = Some(vendor.to_owned());
            c.extra.product = Some(product.to_owned());
            Verdict::Yes(c)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A message of `len` bytes: type, three zeros, then the given little-endian words
    /// from offset 4, the rest filled with a pattern.
    pub(crate) fn msg(kind: u8, len: usize, words: &[u32]) -> Vec<u8> {
        let mut m: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        m[0] = kind;
        m[1..4].fill(0);
        for (i, w) in words.iter().enumerate() {
            m[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        m
    }

    /// Transport data to `receiver` with `counter` (64-bit little-endian at offset 8).
    pub(crate) fn transport(receiver: u32, counter: u64, len: usize) -> Vec<u8> {
        let mut m = msg(MSG_TRANSPORT, len, &[receiver]);
        m[8..16].copy_from_slice(&counter.to_le_bytes());
        m
    }

    fn run(c2s: &[Vec<u8>], s2c: &[Vec<u8>], ports: (u16, u16), last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, &c, &s, ports, last)
    }

    /// Corpus ndpi-wireguard.pcap frames 1-4 (10.9.0.1:43462 <-> 10.9.0.2:51820): the
    /// indexes and lengths of the handshake and the first transport packets.
    #[test]
    fn handshake_pair_from_corpus_is_yes() {
        let init = msg(MSG_INITIATION, 148, &[0x30d0_37d8]); // d837d030 on the wire
        let resp = msg(MSG_RESPONSE, 92, &[0xab7d_f406, 0x30d0_37d8]);
        let t_c = transport(0xab7d_f406, 0, 128);
        let t_s = transport(0x30d0_37d8, 0, 128);
        match run(&[init.clone(), t_c], &[resp, t_s], (43462, 51820), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Wireguard));
                assert_eq!(c.evidence[0].rule, "setten.wireguard.handshake");
            }
            v => panic!("{v:?}"),
        }
        // The initiation alone waits.
        assert!(matches!(
            run(&[init], &[], (43462, 51820), false),
            Verdict::Wait
        ));
    }

    #[test]
    fn response_to_another_index_is_not_a_pair() {
        let init = msg(MSG_INITIATION, 148, &[1]);
        let resp = msg(MSG_RESPONSE, 92, &[2, 99]);
        assert!(matches!(
            run(
                std::slice::from_ref(&init),
                std::slice::from_ref(&resp),
                (1, 2),
                false
            ),
            Verdict::Wait
        ));
        assert!(matches!(run(&[init], &[resp], (1, 2), true), Verdict::No));
    }

    /// Corpus ndpi-wireguard.pcap frames 23-30 (139.162.192.157:51820 <-> 192.168.0.14:36116):
    /// transport data only, receiver be40698d one way and 6da6615e the other.
    #[test]
    fn transport_both_ways_with_constant_indexes_is_yes() {
        let s: Vec<_> = (0x6b..0x6f)
            .map(|c| transport(0x8d69_40be, c, 144))
            .collect();
        let c: Vec<_> = (0x70..0x73)
            .map(|n| transport(0x5e61_a66d, n, 96))
            .collect();
        match run(&s, &c, (51820, 36116), false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.evidence[0].rule, "setten.wireguard.transport-indexes")
            }
            v => panic!("{v:?}"),
        }
        // Two one way and one the other are enough; one each way is not.
        assert!(matches!(
            run(&s[..2], &c[..1], (51820, 36116), false),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(&s[..1], &c[..1], (51820, 36116), true),
            Verdict::No
        ));
        // One direction only stays undecided, then is not enough.
        assert!(matches!(run(&s, &[], (51820, 36116), false), Verdict::Wait));
        assert!(matches!(run(&s, &[], (51820, 36116), true), Verdict::No));
    }

    #[test]
    fn changing_index_or_falling_counter_is_no() {
        let a = vec![transport(5, 1, 48), transport(6, 2, 48)];
        assert!(matches!(run(&a, &[], (1, 2), false), Verdict::No));
        let b = vec![transport(5, 2, 48), transport(5, 1, 48)];
        assert!(matches!(run(&b, &[], (1, 2), false), Verdict::No));
    }

    #[test]
    fn wrong_lengths_are_no() {
        for len in [147, 149, 203, 205] {
            let odd = msg(MSG_INITIATION, len, &[0xac18_6631]);
            assert!(matches!(
                run(&[odd], &[], (57636, 51820), false),
                Verdict::No
            ));
        }
        let unaligned = transport(1, 0, 40);
        assert!(matches!(run(&[unaligned], &[], (1, 2), false), Verdict::No));
    }

    /// Corpus ndpi-tunnelbear.pcap frames 1-2 (10.0.2.15:57636 <-> 142.93.78.79:51820):
    /// an initiation of 204 bytes from sender ac186631, answered by a response of 100
    /// bytes from sender 001aca02 to receiver ac186631; then transport data.
    #[test]
    fn tunnelbear_handshake_is_a_consumer_vpn() {
        let init = msg(MSG_INITIATION, 204, &[0xac18_6631]);
        let resp = msg(MSG_RESPONSE, 100, &[0x001a_ca02, 0xac18_6631]);
        match run(
            &[init.clone(), transport(0x001a_ca02, 0, 32)],
            std::slice::from_ref(&resp),
            (57636, 51820),
            false,
        ) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::ConsumerVpn));
                assert_eq!(c.extra.vendor.as_deref(), Some("TunnelBear"));
                assert_eq!(c.protocol, "wireguard");
                assert_eq!(c.evidence[0].rule, "setten.wireguard.tunnelbear-handshake");
            }
            v => panic!("{v:?}"),
        }
        // Shapes must agree: a 204-byte initiation answered by a 92-byte response is no
        // pair.
        let short = msg(MSG_RESPONSE, 92, &[0x001a_ca02, 0xac18_6631]);
        assert!(matches!(
            run(&[init], &[short], (57636, 51820), true),
            Verdict::No
        ));
    }

    /// WARP's WireGuard: a client id in the three reserved bytes of each message.
    #[test]
    fn reserved_bytes_in_a_matching_handshake_are_cloudflare_warp() {
        let mut init = msg(MSG_INITIATION, 148, &[0x0102_0304]);
        init[1..4].copy_from_slice(&[0x4a, 0x1f, 0x93]);
        let mut resp = msg(MSG_RESPONSE, 92, &[0x0a0b_0c0d, 0x0102_0304]);
        resp[1..4].copy_from_slice(&[0x4a, 0x1f, 0x93]);
        match run(
            std::slice::from_ref(&init),
            std::slice::from_ref(&resp),
            (60555, 2408),
            false,
        ) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::ConsumerVpn));
                assert_eq!(c.extra.product.as_deref(), Some("Cloudflare WARP"));
            }
            v => panic!("{v:?}"),
        }
        // Without the index tying the two together, reserved bytes are not trusted.
        let mut other = resp.clone();
        other[8..12].copy_from_slice(&9u32.to_le_bytes());
        assert!(matches!(
            run(&[init.clone()], &[other], (60555, 2408), true),
            Verdict::No
        ));
        // Nor in repeated initiations.
        assert!(matches!(
            run(&[init.clone(), init], &[], (60555, 2408), true),
            Verdict::No
        ));
    }

    /// WARP's own client (nDPI `cloudflare_warp.c`): types 0xc1-0xc4, data messages with
    /// WireGuard's receiver index and counter.
    #[test]
    fn warp_message_types() {
        let warp = |kind: u8, len: usize, words: &[u32]| {
            let mut m = msg(kind - WARP_TYPE_BASE, len, words);
            m[0] = kind;
            m[1..4].copy_from_slice(&[0x12, 0x34, 0x56]);
            m
        };
        let data = |receiver: u32, counter: u64, len: usize| {
            let mut m = transport(receiver, counter, len);
            m[0] = 0xc4;
            m
        };
        let c2s = vec![
            warp(0xc1, 148, &[7]),
            data(0x6543_2100, 0, 96),
            data(0x6543_2100, 1, 112),
        ];
        let s2c = vec![warp(0xc2, 88, &[9, 7]), data(0x0012_3456, 0, 96)];
        match run(&c2s, &s2c, (60555, 2408), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::ConsumerVpn));
                assert_eq!(c.extra.product.as_deref(), Some("Cloudflare WARP"));
                assert_eq!(c.evidence[0].rule, "setten.wireguard.warp-types");
            }
            v => panic!("{v:?}"),
        }
        // The handshake alone waits, then is not enough.
        assert!(matches!(
            run(&c2s[..1], &s2c[..1], (60555, 2408), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(&c2s[..1], &s2c[..1], (60555, 2408), true),
            Verdict::No
        ));
        // A falling counter, or a datagram of another type, is not WARP.
        let back = vec![data(1, 5, 48), data(1, 4, 48)];
        assert!(matches!(run(&back, &s2c, (1, 2), false), Verdict::No));
        let mut other = c2s.clone();
        let mut strange = data(0x6543_2100, 9, 48);
        strange[0] = 0xc5;
        other.push(strange);
        assert!(matches!(run(&other, &s2c, (1, 2), false), Verdict::No));
    }

    /// nDPI `wireguard.c` names a flow whose initiator sends a second initiation (a retry:
    /// nothing answers) on any port.
    #[test]
    fn repeated_initiations_on_any_port() {
        let inits = vec![
            msg(MSG_INITIATION, 148, &[11]),
            msg(MSG_INITIATION, 148, &[12]),
            msg(MSG_INITIATION, 148, &[13]),
        ];
        match run(&inits, &[], (40000, 443), false) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Wireguard));
                assert_eq!(c.evidence[0].rule, "setten.wireguard.initiation-repeated");
            }
            v => panic!("{v:?}"),
        }
        // One is not enough off 51820.
        assert!(matches!(
            run(&inits[..1], &[], (40000, 443), true),
            Verdict::No
        ));
        // TunnelBear's retrying client.
        let tb = vec![
            msg(MSG_INITIATION, 204, &[1]),
            msg(MSG_INITIATION, 204, &[2]),
        ];
        match run(&tb, &[], (40000, 51820), false) {
            Verdict::Yes(c) => assert_eq!(c.extra.vendor.as_deref(), Some("TunnelBear")),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn unanswered_initiation_counts_only_on_51820_at_the_end() {
        let init = msg(MSG_INITIATION, 148, &[7]);
        assert!(matches!(
            run(std::slice::from_ref(&init), &[], (4000, 51820), true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(&[init], &[], (4000, 51821), true),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_no() {
        // DNS query (RFC 1035 section 4.1.1): first bytes are an id and flags.
        let dns = b"\x04\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
            .to_vec();
        assert!(matches!(run(&[dns], &[], (5353, 53), false), Verdict::No));
        let mut x = 0x9e37_79b9u32;
        for len in 0..200 {
            let r: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert!(!matches!(run(&[r], &[], (1, 2), true), Verdict::Yes(_)));
        }
    }
}
