//! WireGuard over UDP (whitepaper section 5.4, "Messages").
//!
//! Promise: every datagram of the flow must be a well-formed WireGuard message — type
//! 1..=4 followed by three zero bytes, with the exact length of its type (initiation 148,
//! response 92, cookie reply 64, transport data at least 32 bytes with a 16-byte-aligned
//! body) — otherwise `No`. A message type alone is weak (four bytes), so `Yes` further
//! needs the peers' indexes to tie the directions together: a response whose receiver
//! index is an initiation's sender index, or transport data in both directions each
//! addressed to one constant receiver index with growing counters. An unanswered
//! initiation counts only on UDP 51820, and only when the flow is over.
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
/// Transport packets needed per direction when no handshake is seen.
const MIN_TRANSPORT_PER_DIRECTION: usize = 2;
/// Datagrams are cut to this length by the flow table.
const DATAGRAM_CUT: usize = crate::flow::reassembly::MAX_DATAGRAM;
/// Tailscale disco magic: "TS" + U+1F4AC in UTF-8 (tailscale `disco/disco.go`).
pub(crate) const DISCO_MAGIC: [u8; 6] = [0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac];

/// One parsed WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Initiation { sender: u32 },
    Response { sender: u32, receiver: u32 },
    CookieReply { receiver: u32 },
    Transport { receiver: u32, counter: u64 },
}

/// Parses one datagram as a WireGuard message (indexes little-endian, section 5.4).
fn parse(d: &[u8]) -> Option<Message> {
    let kind = *d.first()?;
    if d.get(1..4)? != [0, 0, 0] {
        return None;
    }
    let idx = |off: usize| util::le32(d, off);
    match kind {
        MSG_INITIATION if d.len() == LEN_INITIATION => {
            Some(Message::Initiation { sender: idx(4)? })
        }
        MSG_RESPONSE if d.len() == LEN_RESPONSE => Some(Message::Response {
            sender: idx(4)?,
            receiver: idx(8)?,
        }),
        MSG_COOKIE_REPLY if d.len() == LEN_COOKIE_REPLY => {
            Some(Message::CookieReply { receiver: idx(4)? })
        }
        MSG_TRANSPORT
            if d.len() >= MIN_LEN_TRANSPORT
                && ((d.len() - TRANSPORT_HEADER) % TRANSPORT_ALIGN == 0
                    || d.len() >= DATAGRAM_CUT) =>
        {
            let c = d.get(8..16)?;
            let counter = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            Some(Message::Transport {
                receiver: idx(4)?,
                counter,
            })
        }
        _ => None,
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
        let inits: Vec<u32> = init_side
            .iter()
            .filter_map(|m| match *m {
                Message::Initiation { sender } => Some(sender),
                _ => None,
            })
            .collect();
        for m in resp_side.iter() {
            match *m {
                Message::Response { sender, receiver } if inits.contains(&receiver) => {
                    // Transport from the initiator, when present, must go to the
                    // responder's index.
                    if recv_init_side.is_some_and(|r| r != sender) {
                        return Assessment::No;
                    }
                    return Assessment::Yes(
                        "setten.wireguard.handshake",
                        format!(
                            "initiation sender {receiver:08x} answered by response sender {sender:08x}"
                        ),
                    );
                }
                Message::CookieReply { receiver } if inits.contains(&receiver) => {
                    return Assessment::Yes(
                        "setten.wireguard.cookie-reply",
                        format!("initiation sender {receiver:08x} answered by a cookie reply"),
                    );
                }
                _ => {}
            }
        }
    }
    // Transport data both ways, each direction to its own constant receiver index.
    if n_a >= MIN_TRANSPORT_PER_DIRECTION && n_b >= MIN_TRANSPORT_PER_DIRECTION {
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
        let only_inits = a
            .iter()
            .chain(&b)
            .all(|m| matches!(m, Message::Initiation { .. }));
        if only_inits && cx.server_port == PORT_WIREGUARD {
            return Assessment::Yes(
                "setten.wireguard.initiation-port",
                "handshake initiation (148 bytes) to UDP 51820, unanswered".into(),
            );
        }
        return Assessment::No;
    }
    Assessment::Wait
}

/// Detects WireGuard.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    match assess(cx, false) {
        Assessment::No => Verdict::No,
        Assessment::Wait => Verdict::Wait,
        Assessment::Yes(rule, value) => Verdict::Yes(Classification::new(
            "wireguard",
            Some(Service::Wireguard),
            rule,
            "wireguard.index",
            value,
        )),
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
        // Corpus ndpi-tunnelbear.pcap frame 1: a type-1 message of 204 bytes is not the
        // whitepaper's 148-byte initiation.
        let odd = msg(MSG_INITIATION, 204, &[0xac18_6631]);
        assert!(matches!(
            run(&[odd], &[], (57636, 51820), false),
            Verdict::No
        ));
        let unaligned = transport(1, 0, 40);
        assert!(matches!(run(&[unaligned], &[], (1, 2), false), Verdict::No));
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
