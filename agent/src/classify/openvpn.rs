//! OpenVPN over UDP and TCP (TCP frames each packet with a 2-byte length).
//!
//! Promise: `Yes` only when several packets agree on OpenVPN's reliability layer, never
//! on one opcode byte. Every packet of the opening window must parse as an OpenVPN
//! packet — opcode in the high five bits, key id in the low three; control packets
//! carry an 8-byte session id, then, depending on the control-channel wrapping, either
//! the plaintext ack array and message id (no wrapping), an HMAC of 16..64 bytes plus a
//! replay packet id and time before them (`tls-auth`), or a packet id, time and 32-byte
//! tag before an encrypted remainder (`tls-crypt`). On top of that one of these must hold:
//!
//! * the client's first packet is a HARD_RESET_CLIENT, the server's a HARD_RESET_SERVER,
//!   and where the ack array is in clear the server acknowledges the client's session id
//!   (with `tls-crypt`, where it is not, both sides' replay counters and times must be
//!   consistent instead);
//! * mid-session: each side acknowledges the other's session id;
//! * one direction only (captures that saw one half of a NATed flow): at least three
//!   control packets from one session id starting with a hard reset, and either a TLS
//!   record in the control payload, a constant acknowledged peer session, or a growing
//!   replay counter with a constant time;
//! * data channel only (`P_DATA_V2`, a capture that joined a tunnel already up) both
//!   ways with a constant peer id, and either the AEAD packet id in clear after it
//!   counting up in each direction (AES-GCM and ChaCha20-Poly1305, the defaults since
//!   OpenVPN 2.5), or UDP/TCP 1194 (port as tie-breaker, for CBC ciphers whose HMAC
//!   comes first).
//!
//! Facts (not code) from OpenVPN's `ssl_pkt.h`/`reliable.h` and OpenVPN 3's
//! `is_openvpn_protocol.hpp`, and from nDPI `src/lib/protocols/openvpn.c`, which guesses
//! the HMAC size from the packet id being 1 in the first packet; the pitfall there is that
//! a single packet with a plausible opcode decides, which random UDP easily satisfies.

use super::{util, Classification, Cx, Evidence, Service, Verdict};
use crate::flow::reassembly::Stream;

/// Opcode of the first client packet, key method 1 (OpenVPN `ssl_pkt.h`).
const P_CONTROL_HARD_RESET_CLIENT_V1: u8 = 1;
/// Opcode of the server's first packet, key method 1.
const P_CONTROL_HARD_RESET_SERVER_V1: u8 = 2;
/// Renegotiation of a new key.
const P_CONTROL_SOFT_RESET_V1: u8 = 3;
/// TLS ciphertext on the control channel.
const P_CONTROL_V1: u8 = 4;
/// Acknowledgement only.
const P_ACK_V1: u8 = 5;
/// Data channel packet.
const P_DATA_V1: u8 = 6;
/// Opcode of the first client packet, key method 2.
const P_CONTROL_HARD_RESET_CLIENT_V2: u8 = 7;
/// Opcode of the server's first packet, key method 2.
const P_CONTROL_HARD_RESET_SERVER_V2: u8 = 8;
/// Data channel packet with a 3-byte peer id.
const P_DATA_V2: u8 = 9;
/// First client packet with a tls-crypt-v2 wrapped client key.
const P_CONTROL_HARD_RESET_CLIENT_V3: u8 = 10;
/// Control packet with a wrapped client key (OpenVPN 2.6).
const P_CONTROL_WKC_V1: u8 = 11;
/// The opcode is the high five bits of the first byte.
const OPCODE_SHIFT: u8 = 3;
/// The key id is the low three bits.
const KEY_ID_MASK: u8 = 0x07;
/// Session id length.
const SESSION_ID_LEN: usize = 8;
/// Peer id of P_DATA_V2.
const PEER_ID_LEN: usize = 3;
/// Replay packet id and net time of tls-auth / tls-crypt ("long form" packet id).
const REPLAY_LEN: usize = 8;
/// HMAC sizes of `--auth` digests used with tls-auth: MD5, SHA1, SHA224, SHA256, SHA384,
/// SHA512 (nDPI knows only 16 and 20; the corpus has 20 and 64).
const HMAC_SIZES: [usize; 6] = [16, 20, 28, 32, 48, 64];
/// tls-crypt authentication tag (HMAC-SHA256).
const TLS_CRYPT_TAG_LEN: usize = 32;
/// Ack array entries (OpenVPN `reliable.h`, RELIABLE_ACK_SIZE).
const MAX_ACKS: usize = 8;
/// Message packet ids of the reliability layer start at 0; in the opening window they
/// stay small.
const MAX_MESSAGE_ID: u32 = 1024;
/// Replay packet ids start at 1; a window may begin after a few retransmissions.
const MAX_FIRST_REPLAY_ID: u32 = 16;
/// With tls-crypt-v2, OpenVPN 2.6 and OpenVPN 3 start both sides' replay ids at
/// `EARLY_NEG_START` instead of 0, so that the id's top byte announces early protocol
/// negotiation (OpenVPN `ssl_pkt.h`: `EARLY_NEG_MASK` 0xff000000, `EARLY_NEG_START`
/// 0x0f000000; set in `tls_session_init` of `ssl.c`). Seen from OpenVPN 2.6.14 as ids
/// 0x0f000001, 0x0f000002, … in both directions.
const EARLY_NEG_MASK: u32 = 0xff00_0000;
const EARLY_NEG_START: u32 = 0x0f00_0000;
/// Replay ids grow by one per packet sent; allow losses between captured packets.
const MAX_REPLAY_GAP: u32 = 64;
/// The replay time is the sender's clock (2000-01-01 or later).
const MIN_NET_TIME: u32 = 946_684_800;
/// TCP length prefix.
const TCP_LEN_PREFIX: usize = 2;
/// The first packet of either side is a hard reset: OpenVPN 3's port-share check
/// (`is_openvpn_protocol.hpp`) accepts at most 255 bytes, or under 1024 + 255 for a
/// tls-crypt-v2 client reset carrying its wrapped key.
const MAX_FIRST_TCP_FRAME: usize = 1024 + 255;
/// Packets examined per direction.
const MAX_PACKETS: usize = 16;
/// Control packets needed when only one direction is seen.
const MIN_ONE_WAY_CONTROL: usize = 3;
/// Data packets needed per direction for the port-assisted data-only rule.
const MIN_DATA_PER_DIRECTION: usize = 3;
/// With an AEAD data cipher a P_DATA_V2 packet is the opcode byte, the peer id, a 4-byte
/// packet id in clear, the 16-byte tag and the ciphertext (OpenVPN `crypto.c`,
/// `openvpn_encrypt_aead`: the packet id is the authenticated, unencrypted start of the
/// IV). The packet id grows by one per packet sent, from 1.
const AEAD_ID_OFFSET: usize = 1 + PEER_ID_LEN;
/// Opcode, peer id, packet id, tag and at least one byte of ciphertext.
const AEAD_MIN_LEN: usize = AEAD_ID_OFFSET + 4 + 16 + 1;
/// Packet ids stay far below 2^31: a key is renegotiated every hour by default
/// (`reneg-sec`), long before. A TURN ChannelData message (channel number 0x4000-0x7fff,
/// RFC 8656 section 12.4) of fixed-size RTP audio has the same shape, a constant channel
/// and length, then the RTP header's version and sequence number counting up, but that
/// reads as 0x80000000 or more (RTP version 2 in the top bits, RFC 3550 section 5.1).
const AEAD_MAX_ID: u32 = 0x8000_0000;
/// OpenVPN's IANA port (tie-breaker only).
const PORT_OPENVPN: u16 = 1194;
/// TLS record type "handshake" and major version 3 (RFC 8446 section 5.1).
const TLS_HANDSHAKE_RECORD: [u8; 2] = [0x16, 0x03];

/// How the control channel is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrap {
    /// No `tls-auth` or `tls-crypt`.
    Plain,
    /// `tls-auth` with an HMAC of this many bytes.
    TlsAuth(usize),
    /// `tls-crypt` (and `tls-crypt-v2`).
    TlsCrypt,
}

impl Wrap {
    fn describe(self) -> String {
        match self {
            Wrap::Plain => "no tls-auth/tls-crypt".into(),
            Wrap::TlsAuth(h) => format!("tls-auth, {h}-byte HMAC"),
            Wrap::TlsCrypt => "tls-crypt".into(),
        }
    }
}

/// A parsed control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control<'a> {
    opcode: u8,
    key_id: u8,
    session: [u8; SESSION_ID_LEN],
    /// (packet id, net time) of tls-auth / tls-crypt.
    replay: Option<(u32, u32)>,
    /// Remote session id of a non-empty plaintext ack array.
    acked_remote: Option<[u8; SESSION_ID_LEN]>,
    /// Reliability-layer message id (absent for P_ACK_V1 and under tls-crypt).
    message_id: Option<u32>,
    /// Plaintext payload after the header.
    payload: &'a [u8],
}

/// A parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packet<'a> {
    Control(Control<'a>),
    Data {
        opcode: u8,
        key_id: u8,
        peer_id: Option<[u8; PEER_ID_LEN]>,
    },
}

fn is_client_reset(op: u8) -> bool {
    matches!(
        op,
        P_CONTROL_HARD_RESET_CLIENT_V1
            | P_CONTROL_HARD_RESET_CLIENT_V2
            | P_CONTROL_HARD_RESET_CLIENT_V3
    )
}

fn is_server_reset(op: u8) -> bool {
    matches!(
        op,
        P_CONTROL_HARD_RESET_SERVER_V1 | P_CONTROL_HARD_RESET_SERVER_V2
    )
}

fn is_control(op: u8) -> bool {
    is_client_reset(op)
        || is_server_reset(op)
        || matches!(
            op,
            P_CONTROL_SOFT_RESET_V1 | P_CONTROL_V1 | P_ACK_V1 | P_CONTROL_WKC_V1
        )
}

fn take8(b: &[u8], off: usize) -> Option<[u8; 8]> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut out = [0u8; 8];
    out.copy_from_slice(s);
    Some(out)
}

/// Parses one OpenVPN packet (the TCP length prefix already removed) under `wrap`.
fn parse_packet(b: &[u8], wrap: Wrap) -> Option<Packet<'_>> {
    let first = *b.first()?;
    let opcode = first >> OPCODE_SHIFT;
    let key_id = first & KEY_ID_MASK;
    if opcode == P_DATA_V1 {
        return (b.len() > 1).then_some(Packet::Data {
            opcode,
            key_id,
            peer_id: None,
        });
    }
    if opcode == P_DATA_V2 {
        let p = b.get(1..1 + PEER_ID_LEN)?;
        return (b.len() > 1 + PEER_ID_LEN).then_some(Packet::Data {
            opcode,
            key_id,
            peer_id: Some([p[0], p[1], p[2]]),
        });
    }
    if !is_control(opcode) {
        return None;
    }
    // A hard reset starts key id 0.
    if (is_client_reset(opcode) || is_server_reset(opcode)) && key_id != 0 {
        return None;
    }
    let session = take8(b, 1)?;
    let mut off = 1 + SESSION_ID_LEN;
    let mut replay = None;
    match wrap {
        Wrap::TlsCrypt => {
            let pid = util::be32(b, off)?;
            let time = util::be32(b, off + 4)?;
            off += REPLAY_LEN + TLS_CRYPT_TAG_LEN;
            // The rest is encrypted; at least the ack count byte is there.
            if b.len() <= off {
                return None;
            }
            return Some(Packet::Control(Control {
                opcode,
                key_id,
                session,
                replay: Some((pid, time)),
                acked_remote: None,
                message_id: None,
                payload: &[],
            }));
        }
        Wrap::TlsAuth(h) => {
            off = off.checked_add(h)?;
            let pid = util::be32(b, off)?;
            let time = util::be32(b, off + 4)?;
            replay = Some((pid, time));
            off += REPLAY_LEN;
        }
        Wrap::Plain => {}
    }
    let n_acks = usize::from(*b.get(off)?);
    if n_acks > MAX_ACKS {
        return None;
    }
    off += 1;
    let mut acked_remote = None;
    if n_acks > 0 {
        for i in 0..n_acks {
            if util::be32(b, off + 4 * i)? >= MAX_MESSAGE_ID {
                return None;
            }
        }
        off += 4 * n_acks;
        acked_remote = Some(take8(b, off)?);
        off += SESSION_ID_LEN;
    }
    let mut message_id = None;
    if opcode == P_ACK_V1 {
        // An ACK carries acks and nothing else.
        if n_acks == 0 || off != b.len() {
            return None;
        }
    } else {
        let id = util::be32(b, off)?;
        if id >= MAX_MESSAGE_ID {
            return None;
        }
        message_id = Some(id);
        off += 4;
    }
    Some(Packet::Control(Control {
        opcode,
        key_id,
        session,
        replay,
        acked_remote,
        message_id,
        payload: b.get(off..).unwrap_or(&[]),
    }))
}

/// What one direction's packets say together.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    wrap: Wrap,
    first_opcode: u8,
    session: Option<[u8; SESSION_ID_LEN]>,
    acked_remote: Option<[u8; SESSION_ID_LEN]>,
    controls: usize,
    data_v2: usize,
    data_v1: usize,
    peer_id: Option<[u8; PEER_ID_LEN]>,
    tls_record: bool,
    /// Replay ids grow and the time is constant over at least two control packets.
    replay_run: usize,
    /// Every P_DATA_V2 packet so far has an AEAD packet id one to [`MAX_REPLAY_GAP`]
    /// above the one before: (first, last) id.
    aead_ids: Option<(u32, u32)>,
    /// A P_DATA_V2 packet did not fit the AEAD layout or the count.
    aead_broken: bool,
}

/// Summarises a direction under one wrapping, or `None` when a packet does not fit it
/// or the packets contradict each other.
fn summarize(packets: &[&[u8]], wrap: Wrap) -> Option<Summary> {
    let mut s = Summary {
        wrap,
        first_opcode: 0,
        session: None,
        acked_remote: None,
        controls: 0,
        data_v2: 0,
        data_v1: 0,
        peer_id: None,
        tls_record: false,
        replay_run: 0,
        aead_ids: None,
        aead_broken: false,
    };
    let mut last_replay: Option<(u32, u32)> = None;
    for (i, raw) in packets.iter().enumerate() {
        let p = parse_packet(raw, wrap)?;
        if i == 0 {
            s.first_opcode = match p {
                Packet::Control(c) => c.opcode,
                Packet::Data { opcode, .. } => opcode,
            };
        }
        match p {
            Packet::Data {
                opcode, peer_id, ..
            } => {
                if opcode == P_DATA_V2 {
                    if s.peer_id.is_some() && s.peer_id != peer_id {
                        return None;
                    }
                    s.peer_id = peer_id;
                    s.data_v2 += 1;
                    let id = util::be32(raw, AEAD_ID_OFFSET)
                        .filter(|&id| raw.len() >= AEAD_MIN_LEN && id < AEAD_MAX_ID);
                    s.aead_ids = match (s.aead_ids, id) {
                        (None, Some(id)) if id != 0 && s.data_v2 == 1 => Some((id, id)),
                        (Some((first, last)), Some(id))
                            if id > last && id - last <= MAX_REPLAY_GAP =>
                        {
                            Some((first, id))
                        }
                        _ => {
                            s.aead_broken = true;
                            None
                        }
                    };
                } else {
                    s.data_v1 += 1;
                }
            }
            Packet::Control(c) => {
                if s.session.is_some_and(|x| x != c.session) {
                    return None;
                }
                s.session = Some(c.session);
                if let Some(r) = c.acked_remote {
                    if s.acked_remote.is_some_and(|x| x != r) || r == c.session {
                        return None;
                    }
                    s.acked_remote = Some(r);
                }
                if (is_client_reset(c.opcode) || is_server_reset(c.opcode))
                    && c.message_id.is_some_and(|m| m != 0)
                {
                    return None;
                }
                if c.opcode == P_CONTROL_V1 && c.payload.starts_with(&TLS_HANDSHAKE_RECORD) {
                    s.tls_record |= c.payload.get(2).is_some_and(|&v| v <= 0x04);
                }
                if let Some((pid, time)) = c.replay {
                    if time < MIN_NET_TIME {
                        return None;
                    }
                    match last_replay {
                        None => {
                            let pid = if pid & EARLY_NEG_MASK == EARLY_NEG_START {
                                pid & !EARLY_NEG_MASK
                            } else {
                                pid
                            };
                            if pid == 0 || pid > MAX_FIRST_REPLAY_ID {
                                return None;
                            }
                            s.replay_run = 1;
                        }
                        Some((lp, lt)) => {
                            if lt != time || pid <= lp || pid - lp > MAX_REPLAY_GAP {
                                return None;
                            }
                            s.replay_run += 1;
                        }
                    }
                    last_replay = Some((pid, time));
                }
                s.controls += 1;
            }
        }
    }
    Some(s)
}

/// The best-fitting summary of a direction: wrappings with replay fields are tried
/// first because they are the most constrained.
fn best_summary(packets: &[&[u8]]) -> Option<Summary> {
    std::iter::once(Wrap::TlsCrypt)
        .chain(HMAC_SIZES.iter().map(|&h| Wrap::TlsAuth(h)))
        .chain(std::iter::once(Wrap::Plain))
        .find_map(|w| summarize(packets, w))
}

/// Whether one direction's first packet can be OpenVPN's by its first byte: an opcode
/// of a control or data packet (true while the byte has not come).
fn opens_with_opcode(cx: &Cx<'_>, s: &Stream) -> bool {
    let first = if cx.is_udp() {
        cx.datagrams(s).next().and_then(|d| d.first())
    } else {
        s.bytes().get(TCP_LEN_PREFIX)
    };
    first.is_none_or(|&b| {
        let op = b >> OPCODE_SHIFT;
        is_control(op) || op == P_DATA_V1 || op == P_DATA_V2
    })
}

/// Splits one direction into packets: datagrams for UDP, length-prefixed frames for TCP
/// (a trailing partial frame is left out). `None` when TCP framing is impossible.
fn packets<'a>(cx: &Cx<'a>, s: &'a Stream) -> Option<Vec<&'a [u8]>> {
    if cx.is_udp() {
        return Some(cx.datagrams(s).take(MAX_PACKETS).collect());
    }
    let b = s.bytes();
    let mut out = Vec::new();
    let mut off = 0usize;
    while out.len() < MAX_PACKETS {
        let Some(len) = util::be16(b, off) else { break };
        let len = usize::from(len);
        if len == 0 || (out.is_empty() && len >= MAX_FIRST_TCP_FRAME) {
            return None;
        }
        let start = off + TCP_LEN_PREFIX;
        let Some(frame) = b.get(start..start + len) else {
            // Partial frame: the length alone must still be plausible for its opcode.
            if let Some(&first) = b.get(start) {
                let op = first >> OPCODE_SHIFT;
                if !(is_control(op) || op == P_DATA_V1 || op == P_DATA_V2) {
                    return None;
                }
            }
            break;
        };
        if out.is_empty() {
            // Most flows that get here are OpenVPN-framed: one allocation, not a few.
            out.reserve_exact(MAX_PACKETS);
        }
        out.push(frame);
        off = start + len;
    }
    Some(out)
}

fn hex8(s: Option<[u8; SESSION_ID_LEN]>) -> String {
    s.map(|x| util::hex(&x)).unwrap_or_default()
}

fn yes(rule: &'static str, value: String, wrap: Wrap) -> Verdict {
    yes_wrapped(rule, value, wrap.describe())
}

/// As [`yes`], with the wrapping described by the caller (tls-crypt-v2, which parses as
/// tls-crypt).
fn yes_wrapped(rule: &'static str, value: String, wrap: String) -> Verdict {
    let mut c = Classification::new(
        "openvpn",
        Some(Service::Openvpn),
        rule,
        "openvpn.session_id",
        value,
    );
    c.evidence.push(Evidence::new(
        "setten.openvpn.wrap",
        "openvpn.control_wrap",
        wrap,
    ));
    Verdict::Yes(c)
}

/// Decision when both directions carry packets.
fn decide_two_way(cx: &Cx<'_>, a: &Summary, b: &Summary) -> Verdict {
    let roles = if is_client_reset(a.first_opcode) && is_server_reset(b.first_opcode) {
        Some((a, b))
    } else if is_client_reset(b.first_opcode) && is_server_reset(a.first_opcode) {
        Some((b, a))
    } else {
        None
    };
    if let Some((client, server)) = roles {
        if client.session == server.session {
            return Verdict::No;
        }
        if let Some(r) = server.acked_remote {
            return if Some(r) == client.session {
                yes(
                    "setten.openvpn.reset-acked",
                    format!(
                        "client reset session {} acknowledged by the server reset (session {})",
                        hex8(client.session),
                        hex8(server.session)
                    ),
                    server.wrap,
                )
            } else {
                Verdict::No
            };
        }
        if let Some(r) = client.acked_remote {
            return if Some(r) == server.session {
                yes(
                    "setten.openvpn.reset-acked",
                    format!(
                        "server reset session {} acknowledged by the client (session {})",
                        hex8(server.session),
                        hex8(client.session)
                    ),
                    client.wrap,
                )
            } else {
                Verdict::No
            };
        }
        if client.wrap == Wrap::TlsCrypt
            && server.wrap == Wrap::TlsCrypt
            && client.replay_run >= 1
            && server.replay_run >= 1
        {
            // A V3 client reset carries a tls-crypt-v2 wrapped client key.
            let v2 = client.first_opcode == P_CONTROL_HARD_RESET_CLIENT_V3;
            return yes_wrapped(
                "setten.openvpn.tls-crypt-resets",
                format!(
                    "client reset{} session {}, server reset session {}, replay counters from 1",
                    if v2 { " (V3, wrapped client key)" } else { "" },
                    hex8(client.session),
                    hex8(server.session)
                ),
                if v2 {
                    "tls-crypt-v2".into()
                } else {
                    Wrap::TlsCrypt.describe()
                },
            );
        }
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    // Mid-session: each side acknowledges the other.
    if a.controls > 0 && b.controls > 0 {
        if a.acked_remote.is_some() && b.acked_remote.is_some() {
            return if a.acked_remote == b.session && b.acked_remote == a.session {
                yes(
                    "setten.openvpn.session-acks",
                    format!(
                        "sessions {} and {} acknowledge each other",
                        hex8(a.session),
                        hex8(b.session)
                    ),
                    a.wrap,
                )
            } else {
                Verdict::No
            };
        }
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    // Data channel only (a capture that joined the tunnel): the AEAD packet ids counting
    // up both ways, or else the port must agree.
    let data_only = |s: &Summary| s.controls == 0 && s.data_v1 == 0 && s.data_v2 > 0;
    if data_only(a) && data_only(b) {
        if a.data_v2 < MIN_DATA_PER_DIRECTION || b.data_v2 < MIN_DATA_PER_DIRECTION {
            return if cx.last { Verdict::No } else { Verdict::Wait };
        }
        let peer = a.peer_id.map(|p| util::hex(&p)).unwrap_or_default();
        let counting = |s: &Summary| s.aead_ids.filter(|_| !s.aead_broken);
        if let (Some((a0, a1)), Some((b0, b1))) = (counting(a), counting(b)) {
            return Verdict::Yes(Classification::new(
                "openvpn",
                Some(Service::Openvpn),
                "setten.openvpn.data-v2-aead",
                "openvpn.packet_id",
                format!(
                    "P_DATA_V2 both ways, constant peer id {peer}, AEAD packet ids counting up ({a0}..{a1} and {b0}..{b1})"
                ),
            ));
        }
        if cx.port_is(PORT_OPENVPN) {
            let mut c = Classification::new(
                "openvpn",
                Some(Service::Openvpn),
                "setten.openvpn.data-v2-port",
                "openvpn.peer_id",
                format!("P_DATA_V2 both ways, constant peer id {peer}, port 1194"),
            );
            c.evidence
                .push(Evidence::new("setten.openvpn.port", "port", "1194"));
            return Verdict::Yes(c);
        }
        return Verdict::No;
    }
    if cx.last || a.controls + a.data_v1 + a.data_v2 >= MAX_PACKETS {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

/// Decision when only one direction carries packets.
fn decide_one_way(cx: &Cx<'_>, s: &Summary) -> Verdict {
    let starts_with_reset = is_client_reset(s.first_opcode) || is_server_reset(s.first_opcode);
    if starts_with_reset && s.controls >= MIN_ONE_WAY_CONTROL {
        let why = if s.tls_record {
            Some("a TLS handshake record on the control channel")
        } else if s.acked_remote.is_some() {
            Some("a constant acknowledged peer session")
        } else if s.replay_run >= MIN_ONE_WAY_CONTROL {
            Some("replay ids growing under one time stamp")
        } else {
            None
        };
        if let Some(why) = why {
            let side = if is_client_reset(s.first_opcode) {
                "client"
            } else {
                "server"
            };
            return yes(
                "setten.openvpn.one-way-session",
                format!(
                    "{side} hard reset then {} control packets of session {} with {why}",
                    s.controls - 1,
                    hex8(s.session)
                ),
                s.wrap,
            );
        }
    }
    if !starts_with_reset && s.controls > 0 && s.data_v2 + s.data_v1 == 0 && !cx.last {
        // Mid-session control traffic: wait for the other side's acks.
        return Verdict::Wait;
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

/// Detects OpenVPN.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    // Every packet opens with an opcode (under any wrap): a first packet whose opcode
    // is none settles it before the packets are split and tried under each wrap.
    if !opens_with_opcode(cx, cx.c2s) || !opens_with_opcode(cx, cx.s2c) {
        return Verdict::No;
    }
    let (Some(pa), Some(pb)) = (packets(cx, cx.c2s), packets(cx, cx.s2c)) else {
        return Verdict::No;
    };
    if pa.is_empty() && pb.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let summary = |p: &[&[u8]]| {
        if p.is_empty() {
            Ok(None)
        } else {
            best_summary(p).map(Some).ok_or(())
        }
    };
    let (Ok(sa), Ok(sb)) = (summary(&pa), summary(&pb)) else {
        return Verdict::No;
    };
    // Which side sent the client reset says who the client is, against the ports or
    // the first packet (an OpenVPN client binds 1194 unless told `nobind`).
    match (sa, sb) {
        (Some(a), Some(b)) => {
            let server_first = is_client_reset(b.first_opcode) && is_server_reset(a.first_opcode);
            reversed_if(decide_two_way(cx, &a, &b), server_first)
        }
        (Some(s), None) => reversed_if(decide_one_way(cx, &s), is_server_reset(s.first_opcode)),
        (None, Some(s)) => reversed_if(decide_one_way(cx, &s), is_client_reset(s.first_opcode)),
        (None, None) => Verdict::No,
    }
}

/// Marks a classification whose client is the flow's server.
fn reversed_if(v: Verdict, reversed: bool) -> Verdict {
    match v {
        Verdict::Yes(mut c) => {
            c.reversed = reversed;
            Verdict::Yes(c)
        }
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn run_udp(c2s: &[Vec<u8>], s2c: &[Vec<u8>], ports: (u16, u16), last: bool) -> Verdict {
        let (c, s) = (
            crate::classify::testing::parts(c2s),
            crate::classify::testing::parts(s2c),
        );
        crate::classify::testing::run(detect, crate::decode::ipproto::UDP, &c, &s, ports, last)
    }

    fn run_tcp(c2s: &[u8], s2c: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[c2s],
            &[s2c],
            (39772, 1194),
            last,
        )
    }

    // Corpus ndpi-openvpn.pcap, UDP 3.111.166.78:51146 <-> 85.134.13.165:1194
    // (no tls-auth): frames 515, 516, 517.
    const PLAIN_CLIENT_RESET: &str = "3839fded2daa10a4370000000000";
    const PLAIN_SERVER_RESET: &str = "409421917de7267729010000000039fded2daa10a43700000000";
    const PLAIN_CLIENT_ACK: &str = "2839fded2daa10a43701000000009421917de7267729";

    // Corpus ndpi-openvpn.pcap, UDP 192.168.43.12:41507 <-> 139.59.151.137:13680
    // (tls-auth, HMAC-SHA1): frames 312, 313.
    const TLS_AUTH_CLIENT_RESET: &str =
        "38b02ccff1b5f0174fc091666e3b124bada39173317b939722d1fe63be0000000157a1c15f0000000000";
    const TLS_AUTH_SERVER_RESET: &str =
        "40f77fc2efdbe23f57dec4c8d5654d0723bf8c0be54138563270cfae13\
        0000000157a1c15f0100000000b02ccff1b5f0174f00000000";

    // Corpus ndpi-openvpn.pcap, TCP 127.0.0.1:36138 <-> 127.0.0.1:443 (tls-crypt):
    // frames 618 and 620 with their 2-byte length prefixes.
    const TLS_CRYPT_CLIENT: &str =
        "0036382a56d979d99eccf40000000163cf4ff5b89824b0aa4e93c089c1e24af5\
        443766b5cab18c23c17d51081eb196a229085eec179d0d88";
    const TLS_CRYPT_SERVER: &str =
        "0042402f64c09039de36230000000163cf4ff53036751e70bae8a84698d78c13\
        2edcf685ea93abfb4eda16e29f47208abaeeb8b2c6d71c379474de67682231f35717fb54";

    #[test]
    fn plain_reset_pair_from_corpus_is_yes() {
        let c = vec![hex(PLAIN_CLIENT_RESET), hex(PLAIN_CLIENT_ACK)];
        let s = vec![hex(PLAIN_SERVER_RESET)];
        match run_udp(&c, &s, (51146, 1194), false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.service, Some(Service::Openvpn));
                assert_eq!(cl.evidence[0].rule, "setten.openvpn.reset-acked");
                assert_eq!(cl.evidence[1].value, "no tls-auth/tls-crypt");
            }
            v => panic!("{v:?}"),
        }
        // The client's reset alone is not enough yet.
        assert!(matches!(
            run_udp(&c[..1], &[], (51146, 1194), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run_udp(&c[..1], &[], (51146, 1194), true),
            Verdict::No
        ));
    }

    #[test]
    fn the_side_of_the_client_reset_is_the_client() {
        let client = vec![hex(PLAIN_CLIENT_RESET), hex(PLAIN_CLIENT_ACK)];
        let server = vec![hex(PLAIN_SERVER_RESET)];
        // Ports or the first packet gave the roles right, then the wrong way round.
        for (c2s, s2c, reversed) in [(&client, &server, false), (&server, &client, true)] {
            match run_udp(c2s, s2c, (1194, 1194), false) {
                Verdict::Yes(cl) => assert_eq!(cl.reversed, reversed),
                v => panic!("{v:?}"),
            }
        }
        // One side seen: its resets say which it is.
        let tls = |sid: &str| hex(&format!("20{sid}00000000011603010005"));
        let client_only = vec![
            hex(PLAIN_CLIENT_RESET),
            tls("39fded2daa10a437"),
            tls("39fded2daa10a437"),
        ];
        for (c2s, s2c, reversed) in [
            (&client_only, &vec![], false),
            (&vec![], &client_only, true),
        ] {
            match run_udp(c2s, s2c, (40000, 1194), true) {
                Verdict::Yes(cl) => assert_eq!(cl.reversed, reversed, "{cl:?}"),
                v => panic!("{v:?}"),
            }
        }
    }

    #[test]
    fn tls_auth_reset_pair_from_corpus_is_yes_with_hmac_size() {
        let c = vec![hex(TLS_AUTH_CLIENT_RESET)];
        let s = vec![hex(TLS_AUTH_SERVER_RESET)];
        match run_udp(&c, &s, (41507, 13680), false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.evidence[0].rule, "setten.openvpn.reset-acked");
                assert_eq!(cl.evidence[1].value, "tls-auth, 20-byte HMAC");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn tls_crypt_over_tcp_from_corpus_is_yes() {
        match run_tcp(&hex(TLS_CRYPT_CLIENT), &hex(TLS_CRYPT_SERVER), false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.evidence[0].rule, "setten.openvpn.tls-crypt-resets");
                assert_eq!(cl.evidence[1].value, "tls-crypt");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn server_acking_another_session_is_no() {
        let c = vec![hex(PLAIN_CLIENT_RESET)];
        let mut bad = hex(PLAIN_SERVER_RESET);
        bad[14] ^= 0xff; // inside the acknowledged remote session id
        assert!(matches!(
            run_udp(&c, &[bad], (51146, 1194), false),
            Verdict::No
        ));
    }

    #[test]
    fn one_way_client_session_from_corpus_is_yes() {
        // Corpus ndpi-openvpn.pcap frames 1, 3, 4 (192.168.75.18:60201 -> 166.161.181.18:443;
        // the server's half of this NATed session was captured as a separate flow).
        let reset = hex("38334857703d96db390000000000");
        let ack = hex("28334857703d96db390100000000d31c3a6964602fa0");
        let mut ctl = hex("20334857703d96db390000000001");
        ctl.extend(hex("16030101100100010c0303e4c42f6110300b04b75b6941e6"));
        let c = vec![reset.clone(), ack.clone(), ctl];
        match run_udp(&c, &[], (60201, 443), false) {
            Verdict::Yes(cl) => assert_eq!(cl.evidence[0].rule, "setten.openvpn.one-way-session"),
            v => panic!("{v:?}"),
        }
        // Two packets are not enough.
        assert!(matches!(
            run_udp(&[reset, ack], &[], (60201, 443), true),
            Verdict::No
        ));
    }

    #[test]
    fn changing_session_id_is_no() {
        let a = hex(PLAIN_CLIENT_RESET);
        let mut b = hex(PLAIN_CLIENT_ACK);
        b[3] ^= 1;
        let mut c = hex("2039fded2daa10a4370000000001");
        c.extend(hex("160301008c01"));
        assert!(matches!(
            run_udp(&[a, b, c], &[], (51146, 1194), true),
            Verdict::No
        ));
    }

    #[test]
    fn data_v2_without_aead_ids_needs_port_1194() {
        // CBC data channel: the HMAC, not a packet id, follows the peer id.
        let d = |peer: u8, n: u8| {
            let mut p = vec![0x48, 0, 0, peer];
            p.extend(std::iter::repeat_n(n, 40));
            p
        };
        let c: Vec<_> = (0..3).map(|n| d(1, n)).collect();
        let s: Vec<_> = (0..3).map(|n| d(7, n)).collect();
        match run_udp(&c, &s, (40000, 1194), false) {
            Verdict::Yes(cl) => assert_eq!(cl.evidence[0].rule, "setten.openvpn.data-v2-port"),
            v => panic!("{v:?}"),
        }
        assert!(matches!(run_udp(&c, &s, (40000, 1195), true), Verdict::No));
        // Enough packets that do not count up settle it before the end.
        assert!(matches!(run_udp(&c, &s, (40000, 1195), false), Verdict::No));
    }

    // OpenVPN 2.6.14, AES-256-GCM, UDP 31194, a capture started with the tunnel up
    // (peer id 0): the first 24 bytes of the first three datagrams each way.
    const AEAD_CLIENT: [&str; 3] = [
        "480000000000000291b51645d80a2770b2036274df8a337b",
        "4800000000000003f8ac6ca72debeac134b22d23c6ce77f2",
        "4800000000000004cc64300bc45894d1f3ba8fe40d398745",
    ];
    const AEAD_SERVER: [&str; 3] = [
        "4800000000000001f8d26c807e25cce6ccc9ff27cb4ae2e3",
        "480000000000000259b1bad875cf6593c70e5dbbac625efd",
        "48000000000000036d874972e3c97532c076798986b44c34",
    ];

    /// A datagram from its first bytes, padded to a ping's length with ciphertext.
    fn aead(h: &str) -> Vec<u8> {
        let mut p = hex(h);
        p.extend((0..84u8).map(|i| i.wrapping_mul(37)));
        p
    }

    #[test]
    fn data_v2_with_aead_ids_counting_up_is_yes_on_any_port() {
        let c: Vec<_> = AEAD_CLIENT.iter().map(|h| aead(h)).collect();
        let s: Vec<_> = AEAD_SERVER.iter().map(|h| aead(h)).collect();
        match run_udp(&c, &s, (56517, 31194), false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.service, Some(Service::Openvpn));
                assert_eq!(cl.evidence[0].rule, "setten.openvpn.data-v2-aead");
                assert!(
                    cl.evidence[0].value.contains("(2..4 and 1..3)"),
                    "{:?}",
                    cl.evidence
                );
            }
            v => panic!("{v:?}"),
        }
        // Two packets a side are not enough yet.
        assert!(matches!(
            run_udp(&c[..2], &s, (56517, 31194), false),
            Verdict::Wait
        ));
        // Over TCP, each packet behind its 2-byte length.
        let framed = |v: &[Vec<u8>]| -> Vec<u8> {
            v.iter()
                .flat_map(|p| {
                    let mut f = (p.len() as u16).to_be_bytes().to_vec();
                    f.extend_from_slice(p);
                    f
                })
                .collect()
        };
        let tcp = crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[&framed(&c)],
            &[&framed(&s)],
            (41000, 443),
            false,
        );
        assert!(matches!(tcp, Verdict::Yes(_)), "{tcp:?}");
    }

    #[test]
    fn data_v2_ids_that_do_not_count_up_are_no() {
        let s: Vec<_> = AEAD_SERVER.iter().map(|h| aead(h)).collect();
        // A repeated id (a replayed or duplicated packet), an id going back, a jump
        // beyond the replay window, and datagrams too short for a tag.
        let mut repeated: Vec<_> = AEAD_CLIENT.iter().map(|h| aead(h)).collect();
        repeated[2] = repeated[1].clone();
        let mut back: Vec<_> = AEAD_CLIENT.iter().map(|h| aead(h)).collect();
        back.swap(0, 2);
        let mut jump: Vec<_> = AEAD_CLIENT.iter().map(|h| aead(h)).collect();
        jump[2][7] = 0xff;
        let short: Vec<_> = AEAD_CLIENT.iter().map(|h| hex(h)).collect();
        for c in [repeated, back, jump, short] {
            assert!(matches!(
                run_udp(&c, &s, (56517, 31194), false),
                Verdict::No
            ));
        }
        // A QUIC short header with an 8-byte connection id whose first byte happens to
        // read as P_DATA_V2: constant bytes where the packet id would be.
        let quic = |n: u8| {
            let mut p = hex("48a1b2c3d4e5f60718");
            p.extend(std::iter::repeat_n(n, 60));
            p
        };
        let c: Vec<_> = (0..4).map(quic).collect();
        let s: Vec<_> = (4..8).map(quic).collect();
        assert!(matches!(run_udp(&c, &s, (50000, 443), true), Verdict::No));
        // TURN ChannelData on channel 0x4812 carrying 160-byte G.711 RTP both ways: the
        // channel and length are constant, and the RTP version byte, payload type and
        // sequence number read as a counter, but one of 0x80000000 or more.
        let turn = |seq: u16| {
            let mut p = vec![0x48, 0x12, 0x00, 0xac, 0x80, 0x00];
            p.extend(seq.to_be_bytes());
            p.extend(std::iter::repeat_n(0xd5, 168));
            p
        };
        let c: Vec<_> = (100..104).map(turn).collect();
        let s: Vec<_> = (7000..7004).map(turn).collect();
        assert!(matches!(run_udp(&c, &s, (50000, 3478), true), Verdict::No));
    }

    #[test]
    fn tcp_framing_errors_are_no() {
        // HTTP request on TCP 1194.
        assert!(matches!(
            run_tcp(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", false),
            Verdict::No
        ));
        // A zero length prefix.
        assert!(matches!(run_tcp(&[0, 0, 0x38], b"", false), Verdict::No));
        // A first frame still coming whose first byte is no opcode (0), either side.
        assert!(matches!(
            run_tcp(&[0, 40, 0x00, 1], b"", false),
            Verdict::No
        ));
        assert!(matches!(
            run_tcp(&[], &[0, 40, 0x07, 1], false),
            Verdict::No
        ));
        // The same frame with a client hard reset's opcode (7 << 3) waits for the rest.
        assert!(matches!(
            run_tcp(&[0, 40, 0x38, 1], b"", false),
            Verdict::Wait
        ));
    }

    #[test]
    fn random_datagrams_are_not_openvpn() {
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        for round in 0..300 {
            let len = 14 + round % 120;
            let c: Vec<Vec<u8>> = (0..4).map(|_| (0..len).map(|_| next()).collect()).collect();
            let s: Vec<Vec<u8>> = (0..4).map(|_| (0..len).map(|_| next()).collect()).collect();
            assert!(!matches!(
                run_udp(&c, &s, (40000, 1194), true),
                Verdict::Yes(_)
            ));
        }
        // Every prefix of a real packet parses without panicking.
        let p = hex(TLS_AUTH_SERVER_RESET);
        for cut in 0..p.len() {
            for w in [Wrap::Plain, Wrap::TlsAuth(20), Wrap::TlsCrypt] {
                let _ = parse_packet(&p[..cut], w);
            }
        }
    }
    /// OpenVPN 2.6.14, `--tls-crypt-v2`, UDP: the client's HARD_RESET_CLIENT_V3 (wrapped
    /// client key appended), captured between two network namespaces.
    const V2_UDP_CLIENT: &[&str] = &[
        "501b083f7c2c99dfeb0f0000016b02f33e6d47e3b9b8fbd25c140d161aa57eca3a4766cee0f136863adaccae",
        "a5aa2af8a32a43baf754e86b3bdfa8e339165e11daefcc4b176e643d3bd758be82f7bfa12d5f86fce9fc74fd",
        "3f3c8fcde28043c17b228dbc0392eed1e450199faefa958fe73a723eec61456b6a564e8996c640d3d1dff0e7",
        "78823d74a424f028699385dc6883eb8f7c20a7d00abe9c50964494720182a0ef47afeb28db30acb58596c866",
        "213a6dde408acecfd629393b3afb6692b8ded1b565c620d3fcb0fcf3103fe5db19094ff119a170546ab45ff7",
        "3d12f7dd7466215aa00daa2f379d6e04152e0a92428ad8a550c040e1d558b90a8be0b8646bab3d9d69229cf2",
        "f9e0ee81c85aea87ea6d1f0cb1e40f0c3e543440eab9851e04a019712fb6b498b323187ae45d88f3a15314f6",
        "e59e6d5e67b6c9be8f3cd9b7bd9f607defa11cd87b346b11e1220cd06d3baec48fc6a4a271edc110015d0b01",
        "2b",
    ];
    /// The server's HARD_RESET_SERVER_V2 answering it.
    const V2_UDP_SERVER: &[&str] = &[
        "40fce483b3d57cf0ec0f0000016b02f33eca976d8f9bebaef0c9755d11697975292df1b15ae3290764f4b36c",
        "293b0f32935f1f58a6d753209d4cb25b982658c018a8",
    ];
    /// The same over TCP: the client's first frame (length prefix included).
    const V2_TCP_CLIENT: &[&str] = &[
        "016150d9ed8e5a143647300f0000016b02f34b243a09c18cd62e23c33e9e22af052ec8b9d007c025e5cc0a2c",
        "e1e48b7351ff8cac0f298caae86b3bdfa8e339165e11daefcc4b176e643d3bd758be82f7bfa12d5f86fce9fc",
        "74fd3f3c8fcde28043c17b228dbc0392eed1e450199faefa958fe73a723eec61456b6a564e8996c640d3d1df",
        "f0e778823d74a424f028699385dc6883eb8f7c20a7d00abe9c50964494720182a0ef47afeb28db30acb58596",
        "c866213a6dde408acecfd629393b3afb6692b8ded1b565c620d3fcb0fcf3103fe5db19094ff119a170546ab4",
        "5ff73d12f7dd7466215aa00daa2f379d6e04152e0a92428ad8a550c040e1d558b90a8be0b8646bab3d9d6922",
        "9cf2f9e0ee81c85aea87ea6d1f0cb1e40f0c3e543440eab9851e04a019712fb6b498b323187ae45d88f3a153",
        "14f6e59e6d5e67b6c9be8f3cd9b7bd9f607defa11cd87b346b11e1220cd06d3baec48fc6a4a271edc110015d",
        "0b012b",
    ];
    /// The server's first frame.
    const V2_TCP_SERVER: &[&str] = &[
        "00424045feb1cbd8d9f7370f0000016b02f34b4b652d8aca1f9d66e3a9985d1d1207bb525c6495f286b1a5c2",
        "14eb1ae5870478bf71d6ee363be8cf93847a18ede18e0872",
    ];

    fn joined(parts: &[&str]) -> Vec<u8> {
        hex(&parts.concat())
    }

    /// tls-crypt-v2 starts both replay counters at OpenVPN's early-negotiation mark
    /// (0x0f000000): the resets of a real session are OpenVPN, over UDP and TCP.
    #[test]
    fn tls_crypt_v2_resets_of_openvpn_2_6_are_yes() {
        let udp = run_udp(
            &[joined(V2_UDP_CLIENT)],
            &[joined(V2_UDP_SERVER)],
            (40000, 1194),
            false,
        );
        let tcp = run_tcp(&joined(V2_TCP_CLIENT), &joined(V2_TCP_SERVER), false);
        for v in [udp, tcp] {
            match v {
                Verdict::Yes(cl) => {
                    assert_eq!(cl.service, Some(Service::Openvpn));
                    assert_eq!(cl.evidence[0].rule, "setten.openvpn.tls-crypt-resets");
                    assert!(
                        cl.evidence[0].value.contains("V3"),
                        "{}",
                        cl.evidence[0].value
                    );
                    assert_eq!(cl.evidence[1].value, "tls-crypt-v2");
                }
                v => panic!("{v:?}"),
            }
        }
    }

    /// Only that mark is taken off: another top byte is a replay id far from its start.
    #[test]
    fn a_replay_id_with_another_top_byte_is_not_a_start() {
        let mut client = joined(V2_UDP_CLIENT);
        // Opcode, session id, then the replay id's top byte.
        assert_eq!(client[9], 0x0f);
        client[9] = 0x0e;
        let v = run_udp(&[client], &[joined(V2_UDP_SERVER)], (40000, 1194), true);
        assert!(!matches!(v, Verdict::Yes(_)), "{v:?}");
    }
}
