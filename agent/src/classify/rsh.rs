//! The BSD r-commands: rexec (TCP 512), rlogin (TCP 513) and rsh (TCP 514).
//!
//! Promise: `Yes` only when the TCP server port is the command's standard port (or, for
//! rsh and rlogin, the client's port is a reserved one and the server has answered; see
//! below) AND the client's opening bytes are exactly the NUL-separated fields that
//! command sends:
//!
//! - rlogin (RFC 1282 section "Connection Establishment"): `\0`, client user name `\0`,
//!   server user name `\0`, `terminal-type/speed` `\0`;
//! - rsh (rshd(8), rcmd(3)): stderr port in ASCII decimal (possibly empty) `\0`, client
//!   user name `\0`, server user name `\0`, command `\0`;
//! - rexec (rexecd(8), rexec(3)): stderr port (possibly empty) `\0`, user name `\0`,
//!   password `\0`, command `\0`;
//!
//! and the server, if it has answered, began with the single status byte these servers
//! send (0 for success; for rsh and rexec 1 followed by an error message).
//!
//! Short NUL-separated strings are common in binary protocols, so the content alone would
//! not be enough; the standard port is the tie-breaker, as the project's rules allow for
//! structurally weak protocols. Off the standard ports, rsh and rlogin are still named
//! when the client connects from a reserved port (512-1023: `rresvport` in rcmd(3); the
//! servers refuse any other) and the server has answered with its status byte. User names must be printable without spaces and at most
//! [`MAX_USER`] bytes. Everything here crosses the network in the clear (rexec even the
//! password), so flows are marked `weak = "rsh"`; the password never goes into evidence.

use super::{Classification, Cx, Evidence, Service, Verdict};

/// rexec port (rexecd(8); IANA "exec").
pub const REXEC_PORT: u16 = 512;
/// rlogin port (RFC 1282; IANA "login").
pub const RLOGIN_PORT: u16 = 513;
/// rsh port (rshd(8); IANA "shell").
pub const RSH_PORT: u16 = 514;

/// Longest user name accepted (Linux `LOGIN_NAME_MAX` is 256; rlogind historically read
/// 16 bytes; 64 leaves room without accepting runaway strings).
pub const MAX_USER: usize = 64;
/// Longest `terminal/speed` string accepted (RFC 1282 names are short, e.g. "vt100/9600").
pub const MAX_TERMINAL: usize = 64;
/// Longest rexec password accepted.
pub const MAX_PASSWORD: usize = 256;
/// Longest command accepted; it must fit the 8 KiB opening window.
pub const MAX_COMMAND: usize = 4096;
/// Longest stderr-port field: up to five decimal digits.
pub const MAX_PORT_DIGITS: usize = 5;

/// Server status byte: success (RFC 1282; rshd(8), rexecd(8)).
pub const STATUS_OK: u8 = 0;
/// Server status byte: error, followed by a message (rshd(8), rexecd(8)).
pub const STATUS_ERROR: u8 = 1;

/// Which r-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// rexec.
    Rexec,
    /// rlogin.
    Rlogin,
    /// rsh.
    Rsh,
}

impl Command {
    fn from_port(p: u16) -> Option<Command> {
        match p {
            REXEC_PORT => Some(Command::Rexec),
            RLOGIN_PORT => Some(Command::Rlogin),
            RSH_PORT => Some(Command::Rsh),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Command::Rexec => "rexec",
            Command::Rlogin => "rlogin",
            Command::Rsh => "rsh",
        }
    }

    /// Id of the rule that read the client's opening.
    fn rule(self) -> &'static str {
        match self {
            Command::Rexec => "setten.rsh.rexec-opening",
            Command::Rlogin => "setten.rsh.rlogin-opening",
            Command::Rsh => "setten.rsh.rsh-opening",
        }
    }

    /// The field naming the account asked for on the server.
    fn user_field(self) -> &'static str {
        match self {
            Command::Rexec => "rexec.server_user",
            Command::Rlogin => "rlogin.server_user",
            Command::Rsh => "rsh.server_user",
        }
    }
}

/// Why the client's opening could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The fields so far fit, but not all have arrived.
    Incomplete,
    /// Not the command's opening.
    Invalid,
}

/// The client's opening, without the rexec password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening<'a> {
    /// Which command.
    pub command: Command,
    /// The user name on the server side (rexec: the only user name).
    pub server_user: &'a [u8],
    /// rlogin's `terminal/speed`.
    pub terminal: Option<&'a [u8]>,
}

/// Splits off one NUL-terminated field of at most `max` bytes whose bytes all pass `ok`.
fn field(b: &[u8], max: usize, ok: impl Fn(u8) -> bool) -> Result<(&[u8], &[u8]), Error> {
    for (i, &c) in b.iter().enumerate().take(max.saturating_add(1)) {
        if c == 0 {
            let (f, rest) = (b.get(..i).unwrap_or(&[]), b.get(i + 1..).unwrap_or(&[]));
            return Ok((f, rest));
        }
        if i == max || !ok(c) {
            return Err(Error::Invalid);
        }
    }
    Err(Error::Incomplete)
}

fn user(b: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (u, rest) = field(b, MAX_USER, |c| c.is_ascii_graphic())?;
    if u.is_empty() {
        return Err(Error::Invalid);
    }
    Ok((u, rest))
}

fn port_field(b: &[u8]) -> Result<&[u8], Error> {
    let (p, rest) = field(b, MAX_PORT_DIGITS, |c| c.is_ascii_digit())?;
    let value = p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if value > u32::from(u16::MAX) {
        return Err(Error::Invalid);
    }
    Ok(rest)
}

/// Command text: printable ASCII, tab, or any byte of 0x80 and above (UTF-8 arguments).
fn command_byte(c: u8) -> bool {
    c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80
}

fn command(b: &[u8]) -> Result<(), Error> {
    let (cmd, _) = field(b, MAX_COMMAND, command_byte)?;
    if cmd.is_empty() {
        return Err(Error::Invalid);
    }
    Ok(())
}

/// `terminal-type/speed` (RFC 1282): a type name, a slash, a decimal speed.
fn terminal_ok(t: &[u8]) -> bool {
    let Some(slash) = t.iter().position(|&c| c == b'/') else {
        return false;
    };
    let (name, speed) = (
        t.get(..slash).unwrap_or(&[]),
        t.get(slash + 1..).unwrap_or(&[]),
    );
    !name.is_empty()
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'+'))
        && !speed.is_empty()
        && speed.len() <= 7
        && speed.iter().all(u8::is_ascii_digit)
}

/// Parses a client's opening for the given command.
pub fn parse_opening(command_kind: Command, b: &[u8]) -> Result<Opening<'_>, Error> {
    match command_kind {
        Command::Rlogin => {
            // RFC 1282: the client first sends a single zero byte.
            match b.first() {
                None => return Err(Error::Incomplete),
                Some(0) => {}
                Some(_) => return Err(Error::Invalid),
            }
            let (_client_user, rest) = user(b.get(1..).unwrap_or(&[]))?;
            let (server_user, rest) = user(rest)?;
            let (terminal, _) = field(rest, MAX_TERMINAL, |c| c.is_ascii_graphic())?;
            if !terminal_ok(terminal) {
                return Err(Error::Invalid);
            }
            Ok(Opening {
                command: Command::Rlogin,
                server_user,
                terminal: Some(terminal),
            })
        }
        Command::Rsh => {
            let rest = port_field(b)?;
            let (_client_user, rest) = user(rest)?;
            let (server_user, rest) = user(rest)?;
            command(rest)?;
            Ok(Opening {
                command: Command::Rsh,
                server_user,
                terminal: None,
            })
        }
        Command::Rexec => {
            let rest = port_field(b)?;
            let (server_user, rest) = user(rest)?;
            let (_password, rest) = field(rest, MAX_PASSWORD, command_byte)?;
            command(rest)?;
            Ok(Opening {
                command: Command::Rexec,
                server_user,
                terminal: None,
            })
        }
    }
}

/// Whether the server's first byte is a status byte this command sends.
fn server_status_ok(kind: Command, s2c: &[u8]) -> bool {
    matches!(
        (kind, s2c.first()),
        (_, None | Some(&STATUS_OK)) | (Command::Rsh | Command::Rexec, Some(&STATUS_ERROR))
    )
}

/// Lowest and highest port `rresvport` binds (rcmd(3)); in.rshd and in.rlogind refuse a
/// client from any other port.
const RESERVED_PORTS: std::ops::RangeInclusive<u16> = 512..=1023;

/// Off the standard ports: rsh or rlogin from a reserved client port, the opening
/// complete and the server's status byte in. rexec clients bind no reserved port.
fn off_port_kind(cx: &Cx<'_>) -> Option<Command> {
    if !RESERVED_PORTS.contains(&cx.client_port) || cx.s2c.bytes().is_empty() {
        return None;
    }
    let kind = match cx.c2s.bytes().first()? {
        0 => Command::Rlogin,
        _ => Command::Rsh,
    };
    Some(kind)
}

/// Detects rexec, rlogin and rsh.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let standard = Command::from_port(cx.server_port);
    let Some(kind) = standard.or_else(|| off_port_kind(cx)) else {
        // Off the standard ports, wait for the client's opening and the server's answer.
        let waiting = RESERVED_PORTS.contains(&cx.client_port)
            && !cx.last
            && (cx.s2c.bytes().is_empty() || cx.c2s.bytes().is_empty());
        return if waiting { Verdict::Wait } else { Verdict::No };
    };
    let s2c = cx.s2c.bytes();
    if !server_status_ok(kind, s2c) {
        return Verdict::No;
    }
    match parse_opening(kind, cx.c2s.bytes()) {
        Ok(o) => {
            let rule = kind.rule();
            let mut c = Classification::new(
                kind.name(),
                Some(Service::Rsh),
                rule,
                kind.user_field(),
                String::from_utf8_lossy(o.server_user),
            );
            if let Some(t) = o.terminal {
                c.evidence.push(Evidence::new(
                    rule,
                    "rlogin.terminal",
                    String::from_utf8_lossy(t),
                ));
            }
            if standard.is_some() {
                c.evidence.push(Evidence::new(
                    "setten.rsh.port",
                    "tcp.server_port",
                    cx.server_port.to_string(),
                ));
            } else {
                c.evidence.push(Evidence::new(
                    "setten.rsh.reserved-client-port",
                    "tcp.client_port",
                    format!("{} (rresvport, rcmd(3))", cx.client_port),
                ));
            }
            c.extra.weak = Some("rsh".to_owned());
            Verdict::Yes(c)
        }
        Err(Error::Incomplete) if !cx.last => Verdict::Wait,
        Err(_) => Verdict::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ipproto;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], server_port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(detect, ipproto::TCP, c2s, s2c, (1021, server_port), last)
    }

    fn yes(v: Verdict) -> Classification {
        match v {
            Verdict::Yes(c) => c,
            other => panic!("expected Yes, got {other:?}"),
        }
    }

    // RFC 1282, "Connection Establishment": <null>client-user<null>server-user<null>
    // terminal-type/speed<null>, answered by a zero byte.
    const RLOGIN: &[u8] = b"\0alice\0bob\0xterm/38400\0";
    // rshd(8): stderr port, local user, remote user, command, each NUL-terminated.
    const RSH: &[u8] = b"1022\0alice\0bob\0uname -a\0";
    // rexecd(8): stderr port, user, password, command.
    const REXEC: &[u8] = b"0\0bob\0s3cret\0ls /tmp\0";

    #[test]
    fn rlogin_rfc1282() {
        let c = yes(run(&[RLOGIN], &[b"\0"], RLOGIN_PORT, false));
        assert_eq!(c.protocol, "rlogin");
        assert_eq!(c.extra.weak.as_deref(), Some("rsh"));
        assert_eq!(c.evidence[0].rule, "setten.rsh.rlogin-opening");
        assert_eq!(c.evidence[0].value, "bob");
        assert_eq!(c.evidence[1].value, "xterm/38400");
    }

    #[test]
    fn rsh_and_rexec() {
        let c = yes(run(&[RSH], &[], RSH_PORT, false));
        assert_eq!((c.protocol, c.evidence[0].value.as_str()), ("rsh", "bob"));
        // rsh without a stderr channel sends an empty port field.
        assert!(matches!(
            run(
                &[b"\0alice\0bob\0id\0"],
                &[b"\x01Permission denied.\n"],
                RSH_PORT,
                false
            ),
            Verdict::Yes(_)
        ));
        let c = yes(run(&[REXEC], &[b"\0"], REXEC_PORT, false));
        assert_eq!(c.protocol, "rexec");
        assert!(c.evidence.iter().all(|e| !e.value.contains("s3cret")));
    }

    #[test]
    fn fields_may_arrive_in_pieces() {
        // rcmd(3) sends the port, waits for the stderr connection, then the rest.
        assert!(matches!(
            run(&[b"1022\0"], &[], RSH_PORT, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(
                &[b"1022\0", b"alice\0bob\0uname -a\0"],
                &[],
                RSH_PORT,
                false
            ),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(&[b"1022\0"], &[], RSH_PORT, true),
            Verdict::No
        ));
    }

    #[test]
    fn off_the_standard_ports_a_reserved_client_port_and_the_answer_are_required() {
        let from = |client: u16, c2s: &[u8], s2c: &[u8], last: bool| {
            crate::classify::testing::run(
                detect,
                ipproto::TCP,
                &[c2s],
                &[s2c],
                (client, 2513),
                last,
            )
        };
        // rsh-redone rlogin 85 and rsh 85 to in.rlogind/in.rshd on ports 1513 and 1514 (Debian
        // 12): client port 1023, status byte 0.
        for (opening, rule) in [
            (RLOGIN, "setten.rsh.rlogin-opening"),
            (RSH, "setten.rsh.rsh-opening"),
        ] {
            let c = yes(from(1023, opening, b"\0", false));
            assert_eq!(c.evidence[0].rule, rule);
            let last = c.evidence.last().unwrap();
            assert_eq!(last.rule, "setten.rsh.reserved-client-port");
            assert_eq!(last.value, "1023 (rresvport, rcmd(3))");
            // Not from an ordinary client port; not before the server has answered.
            assert!(matches!(from(40000, opening, b"\0", false), Verdict::No));
            assert!(matches!(from(1023, opening, b"", false), Verdict::Wait));
            assert!(matches!(from(1023, opening, b"", true), Verdict::No));
        }
        // Not an r-command opening at all (an ONC RPC record marker, as an NFS client
        // sends from a reserved port).
        let rpc = b"\x80\x00\x00\x28\x12\x34\x56\x78\0\0\0\0";
        assert!(matches!(from(1023, rpc, b"\x80", false), Verdict::No));
    }

    #[test]
    fn port_is_required() {
        assert!(matches!(
            crate::classify::testing::run(
                detect,
                ipproto::TCP,
                &[RLOGIN],
                &[b"\0"],
                (40000, 2513),
                false
            ),
            Verdict::No
        ));
        // Each command's shape only on its own port. (An rlogin opening also fits rexec's
        // shape with an empty port field, which is why the port decides between them.)
        assert!(matches!(run(&[RSH], &[], RLOGIN_PORT, false), Verdict::No));
        assert!(matches!(
            run(&[REXEC], &[], RLOGIN_PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"\0alice\0bob\0xterm/38400\0extra"], &[], RSH_PORT, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn shape_is_strict() {
        // Missing speed, a space in a user name, an empty command, a port too large.
        assert!(matches!(
            run(&[b"\0alice\0bob\0xterm\0"], &[], RLOGIN_PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"\0al ice\0bob\0xterm/9600\0"], &[], RLOGIN_PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"0\0a\0b\0\0"], &[], RSH_PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(&[b"99999\0a\0b\0id\0"], &[], RSH_PORT, false),
            Verdict::No
        ));
        // The server answering with something other than a status byte.
        assert!(matches!(
            run(&[RLOGIN], &[b"login: "], RLOGIN_PORT, false),
            Verdict::No
        ));
        // A user name longer than MAX_USER.
        let mut long = b"\0".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_USER + 1));
        assert!(matches!(
            run(&[&long], &[], RLOGIN_PORT, false),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_not_rsh() {
        // Syslog over TCP on 514 (RFC 6587 octet counting) and its traditional framing.
        assert!(matches!(
            run(
                &[b"<34>Oct 11 22:14:15 host su: 'su root' failed\n"],
                &[],
                RSH_PORT,
                false
            ),
            Verdict::No
        ));
        assert!(matches!(
            run(
                &[b"57 <34>1 2003-10-11T22:14:15.003Z host app - - - msg"],
                &[],
                RSH_PORT,
                false
            ),
            Verdict::No
        ));
        // HTTP and TLS on the r-command ports.
        assert!(matches!(
            run(&[b"GET / HTTP/1.1\r\n\r\n"], &[], REXEC_PORT, false),
            Verdict::No
        ));
        assert!(matches!(
            run(
                &[&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01]],
                &[],
                RLOGIN_PORT,
                false
            ),
            Verdict::No
        ));
    }

    /// Every truncation and single-byte corruption of the fixtures is handled without a
    /// panic; a truncated opening is never accepted.
    #[test]
    fn mutations_never_panic() {
        for (fixture, port) in [(RLOGIN, RLOGIN_PORT), (RSH, RSH_PORT), (REXEC, REXEC_PORT)] {
            for cut in 0..fixture.len() {
                assert!(!matches!(
                    run(&[&fixture[..cut]], &[], port, true),
                    Verdict::Yes(_)
                ));
            }
            for i in 0..fixture.len() {
                let mut bad = fixture.to_vec();
                bad[i] ^= 0xa5;
                let _ = run(&[&bad], &[&bad], port, false);
            }
        }
    }
}
