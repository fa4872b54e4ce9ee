//! TeamViewer's own protocol, over TCP (5938, or 443/80 when 5938 is blocked) and UDP.
//!
//! Promise: `Yes` only when several TeamViewer frames follow each other exactly, each
//! length field pointing at the next frame's magic. TeamViewer publishes no specification;
//! the magic bytes come from nDPI (`src/lib/protocols/teamviewer.c`: command packets start
//! 0x17 0x24, later packets 0x11 0x30; UDP packets carry 0x17 0x24 at offset 11), and the
//! framing around them was read off the corpus capture `ndpi-teamviewer.pcap`, where it
//! holds for every frame of the first 8 KiB of both TCP directions and for all 63 UDP
//! datagrams:
//!
//! - command frame: `17 24`, command (u8), body length (u16 LE), body;
//! - data frame: `11 30`, command (u8), flags (u8), body length (u32 LE), 16 more header
//!   bytes, body (24-byte header);
//! - UDP datagram: 11 bytes of sequence/session header, then one command frame that ends
//!   exactly at the end of the datagram.
//!
//! Two magic bytes alone would fire on random data once in 65 536 flows, so a verdict needs
//! at least three chained frames with both directions taking part (two on TCP/UDP 5938,
//! as nDPI accepts), or on UDP two datagrams whose lengths add up. TeamViewer's HTTP
//! tunnel (`/din.aspx`, DynGate) and its TLS connections are left to the HTTP and TLS
//! detectors and the catalogue.

use super::{util, Classification, Cx, Service, Verdict};
use crate::flow::reassembly::MAX_DATAGRAM;

/// Command frame magic (nDPI `teamviewer.c`; corpus `ndpi-teamviewer.pcap` frame 4).
pub const CMD_MAGIC: [u8; 2] = [0x17, 0x24];
/// Command frame header: magic, command, u16 LE body length (corpus frames 4, 6, 8).
pub const CMD_HEADER_LEN: usize = 5;
/// Data frame magic (nDPI `teamviewer.c`; corpus `ndpi-teamviewer.pcap` frame 12).
pub const DATA_MAGIC: [u8; 2] = [0x11, 0x30];
/// Data frame header, with the u32 LE body length at offset 4 (corpus frames 12, 14, 25).
pub const DATA_HEADER_LEN: usize = 24;
/// Offset of the data frame's body length.
const DATA_LEN_OFFSET: usize = 4;
/// Largest data frame body accepted; the corpus shows at most 2 672 bytes, and a length
/// beyond this is taken as proof the bytes are not TeamViewer.
pub const MAX_DATA_BODY: u32 = 1 << 20;
/// Bytes before the command frame in a UDP datagram (nDPI checks 0x17 0x24 at offset 11;
/// corpus frames 238-300).
pub const UDP_PREFIX_LEN: usize = 11;
/// Frames walked per direction at most (the 8 KiB window holds fewer in practice).
pub const MAX_FRAMES: usize = 64;
/// Standard port; with it two frames are enough (nDPI does the same).
pub const PORT: u16 = 5938;

/// Chained frames needed off the standard port.
const MIN_FRAMES: usize = 3;
/// Chained frames needed on the standard port.
const MIN_FRAMES_ON_PORT: usize = 2;

/// The two frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `17 24` command frame.
    Command,
    /// `11 30` data frame.
    Data,
}

/// One frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Kind.
    pub kind: Kind,
    /// Command byte.
    pub command: u8,
    /// Header plus body length.
    pub total: usize,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// More bytes are needed.
    Incomplete,
    /// Not a TeamViewer frame.
    Invalid,
}

/// Reads one TCP frame at the start of `b`; returns it and the bytes after it.
pub fn parse_frame(b: &[u8]) -> Result<(Frame, &[u8]), Error> {
    let magic = match (b.first(), b.get(1)) {
        (Some(&m0), Some(&m1)) => [m0, m1],
        (Some(&m0), None) if m0 == CMD_MAGIC[0] || m0 == DATA_MAGIC[0] => {
            return Err(Error::Incomplete)
        }
        (None, _) => return Err(Error::Incomplete),
        _ => return Err(Error::Invalid),
    };
    let (kind, header, body) = if magic == CMD_MAGIC {
        let len = match (b.get(3), b.get(4)) {
            (Some(&lo), Some(&hi)) => u16::from_le_bytes([lo, hi]),
            _ => return Err(Error::Incomplete),
        };
        (Kind::Command, CMD_HEADER_LEN, usize::from(len))
    } else if magic == DATA_MAGIC {
        let len = util::le32(b, DATA_LEN_OFFSET).ok_or(Error::Incomplete)?;
        if len > MAX_DATA_BODY {
            return Err(Error::Invalid);
        }
        let len = usize::try_from(len).map_err(|_| Error::Invalid)?;
        (Kind::Data, DATA_HEADER_LEN, len)
    } else {
        return Err(Error::Invalid);
    };
    let command = *b.get(2).ok_or(Error::Incomplete)?;
    let total = header.checked_add(body).ok_or(Error::Invalid)?;
    let rest = b.get(total..).ok_or(Error::Incomplete)?;
    Ok((
        Frame {
            kind,
            command,
            total,
        },
        rest,
    ))
}

/// The frames that open one TCP direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// The first complete frame.
    pub first: Option<Frame>,
    /// Complete frames in a row from the start.
    pub frames: usize,
    /// What stopped the walk: `None` when the bytes ended exactly on a frame boundary.
    pub stop: Option<Error>,
}

/// Walks the frames at the start of a direction (at most [`MAX_FRAMES`]).
pub fn walk(mut b: &[u8]) -> Walk {
    let mut w = Walk {
        first: None,
        frames: 0,
        stop: None,
    };
    while !b.is_empty() && w.frames < MAX_FRAMES {
        match parse_frame(b) {
            Ok((f, rest)) => {
                w.first.get_or_insert(f);
                w.frames += 1;
                b = rest;
            }
            Err(e) => {
                w.stop = Some(e);
                break;
            }
        }
    }
    w
}

impl Walk {
    /// The direction opens with something that is not a TeamViewer frame.
    fn broken_at_start(&self) -> bool {
        self.frames == 0 && self.stop == Some(Error::Invalid)
    }
}

/// Reads a UDP datagram: the command frame after the 11-byte header must end exactly at
/// the end of the datagram (or run past a datagram cut to [`MAX_DATAGRAM`] bytes).
pub fn parse_datagram(d: &[u8]) -> Option<Frame> {
    let frame = d.get(UDP_PREFIX_LEN..)?;
    if frame.get(..2)? != CMD_MAGIC {
        return None;
    }
    let len = u16::from_le_bytes([*frame.get(3)?, *frame.get(4)?]);
    let total = CMD_HEADER_LEN.checked_add(usize::from(len))?;
    let fits = total == frame.len() || (d.len() == MAX_DATAGRAM && total > frame.len());
    fits.then_some(Frame {
        kind: Kind::Command,
        command: *frame.get(2)?,
        total,
    })
}

fn describe(f: &Frame) -> String {
    let magic = match f.kind {
        Kind::Command => CMD_MAGIC,
        Kind::Data => DATA_MAGIC,
    };
    format!("{} command 0x{:02x}", util::hex(&magic), f.command)
}

fn classification(rule: &'static str, field: &'static str, value: String) -> Classification {
    let mut c = Classification::new("teamviewer", Some(Service::Teamviewer), rule, field, value);
    c.extra.vendor = Some("TeamViewer".to_owned());
    c.extra.product = Some("TeamViewer".to_owned());
    c
}

fn detect_tcp(cx: &Cx<'_>) -> Verdict {
    let c = walk(cx.c2s.bytes());
    let s = walk(cx.s2c.bytes());
    // The client opens with a command frame (nDPI counts 0x11 0x30 only after 0x17 0x24).
    let client_opens_right = c.first.is_none_or(|f| f.kind == Kind::Command);
    if c.broken_at_start() || s.broken_at_start() || !client_opens_right {
        return Verdict::No;
    }
    let need = if cx.port_is(PORT) {
        MIN_FRAMES_ON_PORT
    } else {
        MIN_FRAMES
    };
    let both = c.frames > 0 && s.frames > 0;
    // A one-sided capture: the client's frames alone, at the end.
    let one_sided = cx.last && cx.s2c.bytes().is_empty() && c.frames >= MIN_FRAMES;
    if (both && c.frames + s.frames >= need) || one_sided {
        let mut value = format!("c2s {}, first {}", frames(c.frames), describe_opt(&c.first));
        if s.frames > 0 {
            value.push_str(&format!(
                "; s2c {}, first {}",
                frames(s.frames),
                describe_opt(&s.first)
            ));
        }
        return Verdict::Yes(classification(
            "setten.teamviewer.tcp-framing",
            "teamviewer.frames",
            value,
        ));
    }
    // More bytes can only help while one side can still add frames: its framing holds so
    // far and its window is not full.
    let stuck = |w: &Walk, done: bool| w.stop == Some(Error::Invalid) || done;
    if cx.last || (stuck(&c, cx.c2s.is_done()) && stuck(&s, cx.s2c.is_done())) {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

fn frames(n: usize) -> String {
    if n == 1 {
        "1 frame".to_owned()
    } else {
        format!("{n} frames")
    }
}

fn describe_opt(f: &Option<Frame>) -> String {
    f.as_ref().map(describe).unwrap_or_default()
}

fn detect_udp(cx: &Cx<'_>) -> Verdict {
    let mut valid = 0usize;
    let mut first = None;
    for dir in [cx.c2s, cx.s2c] {
        for (i, d) in cx.datagrams(dir).enumerate() {
            match parse_datagram(d) {
                Some(f) => {
                    valid += 1;
                    first.get_or_insert(f);
                }
                // Each direction must open with a TeamViewer datagram.
                None if i == 0 => return Verdict::No,
                None => {}
            }
        }
    }
    let need = if cx.port_is(PORT) {
        1
    } else {
        MIN_FRAMES_ON_PORT
    };
    if valid >= need && (valid >= MIN_FRAMES_ON_PORT || cx.last) {
        return Verdict::Yes(classification(
            "setten.teamviewer.udp-framing",
            "teamviewer.datagrams",
            format!(
                "{valid} datagrams with a command frame at offset {UDP_PREFIX_LEN}, first {}",
                describe_opt(&first)
            ),
        ));
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

/// Detects TeamViewer.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if cx.is_tcp() {
        detect_tcp(cx)
    } else if cx.is_udp() {
        detect_udp(cx)
    } else {
        Verdict::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(tcp: bool, c2s: &[&[u8]], s2c: &[&[u8]], ports: (u16, u16), last: bool) -> Verdict {
        let proto = if tcp { ipproto::TCP } else { ipproto::UDP };
        crate::classify::testing::run(detect, proto, c2s, s2c, ports, last)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex fixture"))
            .collect()
    }

    // Corpus ndpi-teamviewer.pcap, TCP 10.0.2.15:35732 -> 162.250.2.170:5938.
    // Frame 4 (client, 37 bytes): command 0x0a, body length 32.
    const C2S_FRAME4: &str =
        "17240a200000000000000000004800800001000000148000006fb78c804805532216142004";
    // Frame 6 (client, 66 bytes): command 0x28 (24-byte body) then command 0x3c (32).
    const C2S_FRAME6: &str = "1724281800008000007fffffff80800000000000000000000000000000\
        17243c20008c00008014800000078000000080000004000000078000000180ff0080000005";
    // Frame 12 (server, 48 bytes): data frame, command 0x36, body length 24.
    const S2C_FRAME12: &str = "113036001800000001000000000000001b000000180000008c0067fc\
        71b09880d95938c589a6c18cc7919eea283d28cd";

    // Corpus ndpi-teamviewer.pcap, UDP 10.0.2.15:34417 <-> 93.47.224.241:36037.
    // Frame 238 (client, 96 bytes): command 0x47, body length 80 (it carries the peer's
    // address as text, "93.47.224.241").
    const UDP_FRAME238: &str = "00000000000000000000031724475000050000000000000000000000\
        39332e34372e3232342e323431000000c58c000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000";
    // Frame 242 (server, 20 bytes): command 0x73, body length 4.
    const UDP_FRAME242: &str = "0000000000000000442603172473040000000000";
    // Frame 249 (server, 24 bytes): command 0x6f, body length 8.
    const UDP_FRAME249: &str = "000000000100000044260317246f08000080000001000000";
    // Frame 266 (server, 16 bytes): command 0x6c, empty body.
    const UDP_FRAME266: &str = "000000000200000044260317246c0000";

    #[test]
    fn corpus_tcp_session() {
        let (a, b, s) = (hex(C2S_FRAME4), hex(C2S_FRAME6), hex(S2C_FRAME12));
        let v = run(true, &[&a, &b], &[&s], (35732, 5938), false);
        let Verdict::Yes(c) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(c.service, Some(Service::Teamviewer));
        assert_eq!(c.evidence[0].rule, "setten.teamviewer.tcp-framing");
        assert_eq!(
            c.evidence[0].value,
            "c2s 3 frames, first 1724 command 0x0a; s2c 1 frame, first 1130 command 0x36"
        );
    }

    #[test]
    fn off_port_needs_three_frames() {
        let (a, s) = (hex(C2S_FRAME4), hex(S2C_FRAME12));
        // One frame each way on 5938 is enough, as in nDPI.
        assert!(matches!(
            run(true, &[&a], &[&s], (35732, 5938), false),
            Verdict::Yes(_)
        ));
        // On 443 the same two frames wait for a third, and are not enough at the end.
        assert!(matches!(
            run(true, &[&a], &[&s], (35732, 443), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(true, &[&a], &[&s], (35732, 443), true),
            Verdict::No
        ));
        let b = hex(C2S_FRAME6);
        assert!(matches!(
            run(true, &[&a, &b], &[&s], (35732, 443), false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn partial_frames_wait() {
        let a = hex(C2S_FRAME4);
        assert!(matches!(
            run(true, &[&a[..20]], &[], (35732, 443), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(true, &[&a[..1]], &[], (35732, 443), false),
            Verdict::Wait
        ));
    }

    #[test]
    fn corpus_udp() {
        let (a, b, c) = (hex(UDP_FRAME238), hex(UDP_FRAME249), hex(UDP_FRAME266));
        let v = run(false, &[&a], &[&b, &c], (34417, 36037), false);
        let Verdict::Yes(cl) = v else {
            panic!("expected Yes, got {v:?}")
        };
        assert_eq!(cl.evidence[0].rule, "setten.teamviewer.udp-framing");
        // One datagram off the standard port is not enough, even at the end.
        assert!(matches!(
            run(false, &[&a], &[], (34417, 36037), false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(false, &[&a], &[], (34417, 36037), true),
            Verdict::No
        ));
        assert!(matches!(
            run(false, &[&a], &[], (34417, 5938), true),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn udp_length_must_fit() {
        let mut a = hex(UDP_FRAME242);
        a.push(0);
        assert_eq!(parse_datagram(&a), None);
        assert!(parse_datagram(&hex(UDP_FRAME266)).is_some());
        assert_eq!(parse_datagram(&[0x17, 0x24]), None);
    }

    #[test]
    fn frame_parser_bounds() {
        assert_eq!(parse_frame(&[]).err(), Some(Error::Incomplete));
        assert_eq!(parse_frame(&[0x17]).err(), Some(Error::Incomplete));
        assert_eq!(parse_frame(&[0x18]).err(), Some(Error::Invalid));
        assert_eq!(
            parse_frame(&[0x17, 0x24, 1, 0xff]).err(),
            Some(Error::Incomplete)
        );
        // A data frame claiming more than MAX_DATA_BODY.
        assert_eq!(
            parse_frame(&[0x11, 0x30, 0, 0, 0xff, 0xff, 0xff, 0xff]).err(),
            Some(Error::Invalid)
        );
        let w = walk(&[0x17, 0x24, 1, 0, 0, 0x17, 0x24, 2, 0, 0, 0x99]);
        assert_eq!((w.frames, w.stop), (2, Some(Error::Invalid)));
    }

    #[test]
    fn other_protocols_are_not_teamviewer() {
        // TLS 1.2 application data record (type 0x17 but version 03 03).
        assert!(matches!(
            run(
                true,
                &[&[0x17, 0x03, 0x03, 0x00, 0x10]],
                &[],
                (50000, 443),
                false
            ),
            Verdict::No
        ));
        // HTTP request.
        assert!(matches!(
            run(
                true,
                &[b"GET /din.aspx HTTP/1.1\r\n"],
                &[],
                (50000, 80),
                false
            ),
            Verdict::No
        ));
        // The server speaking first with a banner.
        assert!(matches!(
            run(
                true,
                &[],
                &[b"SSH-2.0-OpenSSH_9.6\r\n"],
                (50000, 5938),
                false
            ),
            Verdict::No
        ));
        // The client opening with a data frame is not how TeamViewer starts.
        let s = hex(S2C_FRAME12);
        assert!(matches!(
            run(true, &[&s], &[&s], (50000, 5938), false),
            Verdict::No
        ));
        // A DNS query over UDP.
        let dns = hex("123401000001000000000000076578616d706c6503636f6d0000010001");
        assert!(matches!(
            run(false, &[&dns], &[], (50000, 53), false),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic; corrupting a magic byte of the first frame always gives `No`.
    #[test]
    fn mutations_never_panic() {
        let c = [hex(C2S_FRAME4), hex(C2S_FRAME6)].concat();
        let s = hex(S2C_FRAME12);
        for cut in 0..=c.len() {
            for last in [false, true] {
                let _ = run(true, &[&c[..cut]], &[&s], (35732, 443), last);
                let _ = run(
                    false,
                    &[&c[..cut]],
                    &[&s[..cut.min(s.len())]],
                    (1, 5938),
                    last,
                );
            }
        }
        for i in 0..c.len() {
            let mut bad = c.clone();
            bad[i] ^= 0x55;
            let v = run(true, &[&bad], &[&s], (35732, 443), true);
            if i < 2 {
                assert!(matches!(v, Verdict::No));
            }
        }
    }
}
