//! Telnet (RFC 854, option negotiation RFC 855), TCP 23 by default.
//!
//! Promise: `Yes` only when a direction opens with Telnet commands: IAC (0xFF) followed
//! by WILL, WONT, DO or DONT and an option code from the IANA Telnet option registry, or
//! a complete subnegotiation (IAC SB option … IAC SE). Two negotiations in the opening
//! bytes of the flow are needed; one is enough only on the standard port 23, once the
//! other side has spoken or the flow is over. A stray 0xFF byte, an unknown option code,
//! or an IAC followed by anything but a command is proof of something else.
//!
//! Telnet sends passwords in the clear, so every Telnet flow is marked `weak = "telnet"`.
//! A Telnet server that only prints a banner and never negotiates is not recognised; by
//! content it cannot be told from any other line-based text protocol.

use super::{Classification, Cx, Evidence, Service, Verdict};

/// Interpret As Command (RFC 854, "The Telnet Command Structure").
pub const IAC: u8 = 255;
/// DONT (RFC 854).
pub const DONT: u8 = 254;
/// DO (RFC 854).
pub const DO: u8 = 253;
/// WONT (RFC 854).
pub const WONT: u8 = 252;
/// WILL (RFC 854).
pub const WILL: u8 = 251;
/// Subnegotiation begin (RFC 855).
pub const SB: u8 = 250;
/// Subnegotiation end (RFC 854).
pub const SE: u8 = 240;
/// Lowest two-byte command code: SE 240 up to GA 249 (RFC 854).
const FIRST_COMMAND: u8 = SE;

/// Subnegotiation data kept at most before the bytes are taken as not Telnet (the longest
/// common ones, NEW-ENVIRON and TERMINAL-TYPE, are a few dozen bytes).
pub const MAX_SUBNEGOTIATION: usize = 512;
/// Commands walked per direction at most.
pub const MAX_COMMANDS: usize = 128;
/// Negotiations listed in the evidence at most.
pub const MAX_LISTED: usize = 12;
/// Standard port, the tie-breaker for a single negotiation.
pub const PORT: u16 = 23;

/// Negotiations needed off the standard port.
const MIN_NEGOTIATIONS: usize = 2;

/// Whether an option code is in the IANA "Telnet Options" registry: 0-49, 138-140
/// and 255 (EXOPL, RFC 861).
pub fn known_option(o: u8) -> bool {
    matches!(o, 0..=49 | 138..=140 | 255)
}

/// A readable option name (RFC 857, 858, 1091, 1073, 1079, 1372, 1184, 1096, 1408,
/// 2941, 2946, 1572).
pub fn option_name(o: u8) -> Option<&'static str> {
    Some(match o {
        0 => "BINARY",
        1 => "ECHO",
        3 => "SUPPRESS-GO-AHEAD",
        5 => "STATUS",
        6 => "TIMING-MARK",
        24 => "TERMINAL-TYPE",
        31 => "NAWS",
        32 => "TERMINAL-SPEED",
        33 => "REMOTE-FLOW-CONTROL",
        34 => "LINEMODE",
        35 => "X-DISPLAY-LOCATION",
        36 => "ENVIRON",
        37 => "AUTHENTICATION",
        38 => "ENCRYPT",
        39 => "NEW-ENVIRON",
        _ => return None,
    })
}

fn verb_name(v: u8) -> &'static str {
    match v {
        WILL => "WILL",
        WONT => "WONT",
        DO => "DO",
        DONT => "DONT",
        _ => "SB",
    }
}

/// What ended the command run at the start of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A data byte follows the commands (or the direction starts with data).
    Data,
    /// The bytes ended on a command boundary.
    End,
    /// The bytes ended inside a command.
    Incomplete,
    /// A byte sequence no Telnet peer sends.
    Invalid,
}

/// The Telnet commands that open one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// WILL/WONT/DO/DONT commands and complete subnegotiations.
    pub negotiations: usize,
    /// The first [`MAX_LISTED`] of them: (verb, option).
    pub listed: Vec<(u8, u8)>,
    /// What ended the run.
    pub stop: Stop,
}

/// Reads the Telnet commands at the start of `b`.
pub fn parse_opening(b: &[u8]) -> Opening {
    let mut o = Opening {
        negotiations: 0,
        listed: Vec::new(),
        stop: Stop::End,
    };
    let mut i = 0usize;
    let mut commands = 0usize;
    while let Some(&first) = b.get(i) {
        if first != IAC || commands >= MAX_COMMANDS {
            o.stop = Stop::Data;
            break;
        }
        commands += 1;
        let Some(&verb) = b.get(i + 1) else {
            o.stop = Stop::Incomplete;
            break;
        };
        let step = match verb {
            WILL..=DONT | SB => {
                let Some(&option) = b.get(i + 2) else {
                    o.stop = Stop::Incomplete;
                    break;
                };
                if !known_option(option) {
                    o.stop = Stop::Invalid;
                    break;
                }
                let len = if verb == SB {
                    match subnegotiation_len(b.get(i + 3..).unwrap_or(&[])) {
                        Ok(n) => 3 + n,
                        Err(stop) => {
                            o.stop = stop;
                            break;
                        }
                    }
                } else {
                    3
                };
                o.negotiations += 1;
                if o.listed.len() < MAX_LISTED {
                    o.listed.push((verb, option));
                }
                len
            }
            // SE outside a subnegotiation, or an escaped data byte (IAC IAC) opening a
            // direction: not how Telnet peers start.
            SE | IAC => {
                o.stop = Stop::Invalid;
                break;
            }
            // NOP, Data Mark, Break, IP, AO, AYT, EC, EL, GA (RFC 854).
            v if v > FIRST_COMMAND => 2,
            _ => {
                o.stop = Stop::Invalid;
                break;
            }
        };
        i += step;
    }
    o
}

/// Length of a subnegotiation's data plus its closing IAC SE (RFC 855), with IAC IAC as
/// an escaped data byte.
fn subnegotiation_len(b: &[u8]) -> Result<usize, Stop> {
    let mut i = 0usize;
    while i <= MAX_SUBNEGOTIATION {
        match (b.get(i), b.get(i + 1)) {
            (None, _) | (Some(&IAC), None) => return Err(Stop::Incomplete),
            (Some(&IAC), Some(&SE)) => return Ok(i + 2),
            (Some(&IAC), Some(&IAC)) => i += 2,
            (Some(&IAC), Some(_)) => return Err(Stop::Invalid),
            (Some(_), _) => i += 1,
        }
    }
    Err(Stop::Invalid)
}

fn listing(o: &Opening) -> String {
    o.listed
        .iter()
        .map(|&(verb, option)| match option_name(option) {
            Some(name) => format!("{} {name}", verb_name(verb)),
            None => format!("{} {option}", verb_name(verb)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Detects Telnet.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let (cb, sb) = (cx.c2s.bytes(), cx.s2c.bytes());
    let c = parse_opening(cb);
    let s = parse_opening(sb);
    if c.stop == Stop::Invalid || s.stop == Stop::Invalid {
        return Verdict::No;
    }
    // Both sides opened with data, or one did and the other never will: not negotiating.
    let opens_with_data = |o: &Opening| o.negotiations == 0 && o.stop == Stop::Data;
    let (c_data, s_data) = (opens_with_data(&c), opens_with_data(&s));
    if (c_data && s_data) || (cx.last && (c_data || cb.is_empty()) && (s_data || sb.is_empty())) {
        return Verdict::No;
    }
    let total = c.negotiations + s.negotiations;
    let on_port = cx.server_port == PORT;
    let both_spoke = !cb.is_empty() && !sb.is_empty();
    let enough = total >= MIN_NEGOTIATIONS || (total == 1 && on_port && (both_spoke || cx.last));
    if enough {
        let mut parts = Vec::new();
        if c.negotiations > 0 {
            parts.push(format!("c2s: {}", listing(&c)));
        }
        if s.negotiations > 0 {
            parts.push(format!("s2c: {}", listing(&s)));
        }
        let mut cl = Classification::new(
            "telnet",
            Some(Service::Telnet),
            "setten.telnet.negotiation",
            "telnet.options",
            parts.join("; "),
        );
        if total < MIN_NEGOTIATIONS {
            cl.evidence.push(Evidence::new(
                "setten.telnet.port",
                "tcp.server_port",
                PORT.to_string(),
            ));
        }
        cl.extra.weak = Some("telnet".to_owned());
        return Verdict::Yes(cl);
    }
    if cx.last {
        Verdict::No
    } else {
        Verdict::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], server_port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (1550, server_port), last)
    }

    // Corpus ndpi-telnet.pcap frame 4 (client 192.168.0.2:1550): DO SUPPRESS-GO-AHEAD,
    // WILL TERMINAL-TYPE, WILL NAWS, WILL TERMINAL-SPEED, WILL REMOTE-FLOW-CONTROL,
    // WILL LINEMODE, WILL NEW-ENVIRON, DO STATUS, WILL X-DISPLAY-LOCATION.
    const CLIENT_FRAME4: &[u8] = &[
        0xff, 0xfd, 0x03, 0xff, 0xfb, 0x18, 0xff, 0xfb, 0x1f, 0xff, 0xfb, 0x20, 0xff, 0xfb, 0x21,
        0xff, 0xfb, 0x22, 0xff, 0xfb, 0x27, 0xff, 0xfd, 0x05, 0xff, 0xfb, 0x23,
    ];
    // Frame 5 (server 192.168.0.1:23): DO AUTHENTICATION.
    const SERVER_FRAME5: &[u8] = &[0xff, 0xfd, 0x25];
    // Frame 9 (server): WILL ECHO, DO ..., then SB LINEMODE 01 0b IAC SE.
    const SERVER_FRAME9: &[u8] = &[
        0xff, 0xfb, 0x03, 0xff, 0xfd, 0x18, 0xff, 0xfd, 0x1f, 0xff, 0xfd, 0x20, 0xff, 0xfd, 0x21,
        0xff, 0xfd, 0x22, 0xff, 0xfa, 0x22, 0x01, 0x0b, 0xff, 0xf0,
    ];

    fn yes(v: Verdict) -> Classification {
        match v {
            Verdict::Yes(c) => c,
            other => panic!("expected Yes, got {other:?}"),
        }
    }

    #[test]
    fn corpus_session() {
        let c = yes(run(&[CLIENT_FRAME4], &[SERVER_FRAME5], 23, false));
        assert_eq!(c.service, Some(Service::Telnet));
        assert_eq!(c.extra.weak.as_deref(), Some("telnet"));
        assert!(c.evidence[0]
            .value
            .starts_with("c2s: DO SUPPRESS-GO-AHEAD, WILL TERMINAL-TYPE, WILL NAWS"));
        assert!(c.evidence[0].value.ends_with("s2c: DO AUTHENTICATION"));
    }

    #[test]
    fn subnegotiation_counts() {
        let o = parse_opening(SERVER_FRAME9);
        assert_eq!((o.negotiations, o.stop), (7, Stop::End));
        // Escaped IAC inside a subnegotiation (RFC 855).
        let o = parse_opening(&[0xff, 0xfa, 0x18, 0x00, 0xff, 0xff, 0x41, 0xff, 0xf0, b'x']);
        assert_eq!((o.negotiations, o.stop), (1, Stop::Data));
        // Unterminated subnegotiation.
        let o = parse_opening(&[0xff, 0xfa, 0x18, 0x00, 0x41]);
        assert_eq!(o.stop, Stop::Incomplete);
        // Runaway subnegotiation.
        let mut long = vec![0xff, 0xfa, 0x18];
        long.resize(MAX_SUBNEGOTIATION + 10, b'a');
        assert_eq!(parse_opening(&long).stop, Stop::Invalid);
    }

    #[test]
    fn one_negotiation_needs_the_port() {
        // RFC 854: a server's lone DO TERMINAL-TYPE, the client then answering with text.
        let lone: &[u8] = &[0xff, 0xfd, 0x18];
        assert!(matches!(run(&[], &[lone], 23, false), Verdict::Wait));
        assert!(matches!(
            run(&[b"root\r\n"], &[lone], 23, false),
            Verdict::Yes(_)
        ));
        assert!(matches!(run(&[], &[lone], 23, true), Verdict::Yes(_)));
        assert!(matches!(
            run(&[b"root\r\n"], &[lone], 2323, false),
            Verdict::Wait
        ));
        assert!(matches!(run(&[], &[lone], 2323, true), Verdict::No));
        // Two negotiations decide anywhere.
        assert!(matches!(
            run(&[], &[&[0xff, 0xfd, 0x18, 0xff, 0xfb, 0x01]], 2323, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn partial_command_waits() {
        assert!(matches!(run(&[], &[&[0xff]], 23, false), Verdict::Wait));
        assert!(matches!(
            run(&[], &[&[0xff, 0xfd]], 23, false),
            Verdict::Wait
        ));
        assert!(matches!(run(&[], &[&[0xff, 0xfd]], 23, true), Verdict::No));
    }

    #[test]
    fn strictness() {
        // Unknown option code.
        assert!(matches!(
            run(&[], &[&[0xff, 0xfd, 0x99, 0xff, 0xfb, 0x01]], 23, false),
            Verdict::No
        ));
        // A single 0xFF followed by data.
        assert!(matches!(
            run(&[], &[&[0xff, 0x41, 0x42]], 23, false),
            Verdict::No
        ));
        // IAC SE outside a subnegotiation; IAC IAC at the start.
        assert!(matches!(run(&[], &[&[0xff, 0xf0]], 23, false), Verdict::No));
        assert!(matches!(
            run(&[], &[&[0xff, 0xff, 0x00]], 23, false),
            Verdict::No
        ));
        // Text banners on both sides, even on port 23.
        assert!(matches!(
            run(&[b"admin\r\n"], &[b"login: "], 23, false),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_not_telnet() {
        // HTTP, SSH, TLS ClientHello, SMTP greeting.
        assert!(matches!(
            run(
                &[b"GET / HTTP/1.1\r\n\r\n"],
                &[b"HTTP/1.1 200 OK\r\n"],
                80,
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"SSH-2.0-a\r\n"], &[b"SSH-2.0-b\r\n"], 22, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01]], &[], 443, true),
            Verdict::No
        ));
        assert!(matches!(
            run(&[], &[b"220 smtp ready\r\n"], 25, true),
            Verdict::No
        ));
        // Random-looking bytes that happen to start with 0xFF 0xFB but name no option.
        assert!(matches!(
            run(&[&[0xff, 0xfb, 0xc8, 0x13, 0x77]], &[], 6881, false),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic.
    #[test]
    fn mutations_never_panic() {
        let whole = [CLIENT_FRAME4, SERVER_FRAME9].concat();
        for cut in 0..=whole.len() {
            for last in [false, true] {
                let _ = run(&[&whole[..cut]], &[&whole[cut..]], 23, last);
            }
        }
        for i in 0..whole.len() {
            for x in [0x01, 0x0f, 0xff] {
                let mut bad = whole.clone();
                bad[i] ^= x;
                let _ = run(&[&bad], &[SERVER_FRAME5], 23, true);
            }
        }
    }
}
