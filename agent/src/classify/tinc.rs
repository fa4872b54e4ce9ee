//! tinc meta protocol over TCP (tinc manual, "The meta-protocol" and "Legacy
//! authentication protocol").
//!
//! Promise: `Yes` when both directions open with an ID request line, exactly
//! `0 <name> 17[.<minor>]\n`: request number 0 (ID), a node name of letters, digits and
//! underscores (tinc's `check_id`; an invitation uses `?` + cookie), protocol major
//! version 17 and optionally the minor version. One side's ID line alone counts only on
//! TCP 655 and only once the flow is over. Anything else in the first bytes is `No`.

use super::{Classification, Cx, Evidence, Service, Verdict};

/// Request number of ID (tinc `protocol.h`, `ID = 0`).
const REQUEST_ID: &[u8] = b"0 ";
/// Protocol major version of tinc 1.0 and 1.1 (tinc `protocol.h`, PROT_MAJOR).
const PROT_MAJOR: &[u8] = b"17";
/// Longest node name accepted (tinc itself allows long names; real ones are short).
const MAX_NAME_LEN: usize = 64;
/// Longest minor version (tinc 1.1 uses a single digit).
const MAX_MINOR_DIGITS: usize = 3;
/// Longest ID line: "0 " + name + " 17." + minor + "\n".
const MAX_LINE: usize = 2 + 1 + MAX_NAME_LEN + 1 + 2 + 1 + MAX_MINOR_DIGITS + 1;
/// tinc's IANA port (tie-breaker only).
const PORT_TINC: u16 = 655;

/// A parsed ID line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdLine {
    name: String,
    minor: Option<String>,
    invitation: bool,
}

/// Parses the first line of a direction: `Ok(Some)` for an ID line, `Ok(None)` for a
/// valid prefix of one, `Err` when it cannot be one.
fn parse_id(b: &[u8]) -> Result<Option<IdLine>, ()> {
    // The line starts with the request number: bytes that cannot settle it before any
    // line end is looked for (most flows asked here are not tinc).
    let n = b.len().min(REQUEST_ID.len());
    if b.get(..n) != REQUEST_ID.get(..n) {
        return Err(());
    }
    let Some(nl) = b.iter().take(MAX_LINE).position(|&c| c == b'\n') else {
        // No newline yet: the bytes so far must be a prefix of the grammar.
        return if b.len() < MAX_LINE && prefix_ok(b) {
            Ok(None)
        } else {
            Err(())
        };
    };
    let line = b.get(..nl).ok_or(())?;
    let rest = line.strip_prefix(REQUEST_ID).ok_or(())?;
    let sp = rest.iter().position(|&c| c == b' ').ok_or(())?;
    let (name, ver) = (rest.get(..sp).ok_or(())?, rest.get(sp + 1..).ok_or(())?);
    let (invitation, name) = match name.strip_prefix(b"?") {
        Some(n) => (true, n),
        None => (false, name),
    };
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return Err(());
    }
    let after = ver.strip_prefix(PROT_MAJOR).ok_or(())?;
    let minor = match after {
        [] => None,
        [b'.', digits @ ..]
            if !digits.is_empty()
                && digits.len() <= MAX_MINOR_DIGITS
                && digits.iter().all(u8::is_ascii_digit) =>
        {
            Some(String::from_utf8_lossy(digits).into_owned())
        }
        _ => return Err(()),
    };
    Ok(Some(IdLine {
        name: String::from_utf8_lossy(name).into_owned(),
        minor,
        invitation,
    }))
}

/// Whether `b` (no newline) can still become an ID line.
fn prefix_ok(b: &[u8]) -> bool {
    let n = b.len().min(REQUEST_ID.len());
    if b.get(..n) != REQUEST_ID.get(..n) {
        return false;
    }
    b.iter()
        .skip(REQUEST_ID.len())
        .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b' ' || c == b'.' || c == b'?')
}

/// Detects tinc.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let (c, s) = (cx.c2s.bytes(), cx.s2c.bytes());
    if c.is_empty() && s.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let Ok(pc) = (if c.is_empty() { Ok(None) } else { parse_id(c) }) else {
        return Verdict::No;
    };
    let Ok(ps) = (if s.is_empty() { Ok(None) } else { parse_id(s) }) else {
        return Verdict::No;
    };
    let classify = |rule: &'static str, line: &IdLine, other: Option<&IdLine>| {
        let version = match &line.minor {
            Some(m) => format!("17.{m}"),
            None => "17".to_owned(),
        };
        let mut cl = Classification::new(
            "tinc",
            Some(Service::Tinc),
            rule,
            "tinc.id",
            format!("ID {} protocol {version}", line.name),
        );
        if let Some(o) = other {
            cl.evidence
                .push(Evidence::new(rule, "tinc.id", format!("ID {}", o.name)));
        }
        if line.invitation {
            cl.evidence.push(Evidence::new(
                "setten.tinc.invitation",
                "tinc.id",
                "invitation cookie",
            ));
        }
        cl.meta.version = Some(version);
        cl
    };
    match (&pc, &ps) {
        (Some(a), Some(b)) => Verdict::Yes(classify("setten.tinc.id-exchange", a, Some(b))),
        (Some(a), None) | (None, Some(a)) if cx.last && cx.server_port == PORT_TINC => {
            Verdict::Yes(classify("setten.tinc.id-port", a, None))
        }
        _ if cx.last => Verdict::No,
        _ => Verdict::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c2s: &[u8], s2c: &[u8], port: u16, last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::TCP,
            &[c2s],
            &[s2c],
            (50000, port),
            last,
        )
    }

    /// The ID exchange of the tinc manual ("Legacy authentication protocol":
    /// "ID client 17.2" / "ID server 17.2", ID being request 0 on the wire), followed by
    /// the start of a METAKEY request (1 ...).
    #[test]
    fn id_exchange_from_the_manual_is_yes() {
        match run(
            b"0 client 17.2\n1 94 64 0 0 5f08",
            b"0 server 17.2\n",
            655,
            false,
        ) {
            Verdict::Yes(c) => {
                assert_eq!(c.service, Some(Service::Tinc));
                assert_eq!(c.evidence[0].value, "ID client protocol 17.2");
                assert_eq!(c.meta.version.as_deref(), Some("17.2"));
            }
            v => panic!("{v:?}"),
        }
        // tinc 1.0 sends no minor version.
        assert!(matches!(
            run(b"0 hq_1 17\n", b"0 branch 17\n", 4000, false),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn one_side_needs_port_655_and_the_end() {
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 655, false),
            Verdict::Wait
        ));
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 655, true),
            Verdict::Yes(_)
        ));
        assert!(matches!(
            run(b"0 client 17.7\n", b"", 656, true),
            Verdict::No
        ));
    }

    #[test]
    fn partial_line_waits_and_wrong_lines_are_no() {
        assert!(matches!(run(b"0 cli", b"", 655, false), Verdict::Wait));
        assert!(matches!(
            run(b"0 client 18.1\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"0 cl-ient 17\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"0 client 17.\n", b"0 s 17\n", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"1 client 17\n", b"", 655, false),
            Verdict::No
        ));
    }

    #[test]
    fn other_protocols_are_no() {
        assert!(matches!(
            run(b"GET / HTTP/1.1\r\n", b"", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"SSH-2.0-OpenSSH\r\n", b"", 655, false),
            Verdict::No
        ));
        assert!(matches!(
            run(b"\x16\x03\x01\x00", b"", 655, false),
            Verdict::No
        ));
        // A line that is long and never ends.
        assert!(matches!(run(&[b'0'; 200], b"", 655, false), Verdict::No));
    }
}
