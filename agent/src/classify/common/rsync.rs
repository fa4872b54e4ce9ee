//! The rsync daemon protocol (rsync's "rsyncd" greeting, rsync 3.x `clientserver.c`):
//! both sides open with "@RSYNCD: " and a protocol version. Backups to a NAS often use it,
//! which is why it is worth naming on a hospital network.
//!
//! `Yes` for a complete greeting line "@RSYNCD: <major>[.<minor>]" with a protocol
//! version of 20..=40 (newer rsyncs append the checksum names they support).

use super::super::{Classification, Cx, Meta, Verdict};
use super::{finish, require, stream, Parse};

/// The greeting prefix.
pub const GREETING: &[u8] = b"@RSYNCD: ";
/// Protocol versions accepted (rsync 2.6 spoke 26..=29; 3.x speaks 30..=32).
const VERSIONS: std::ops::RangeInclusive<u32> = 20..=40;

/// Parses a greeting line; returns the version.
pub fn parse_greeting(b: &[u8]) -> Parse<String> {
    let n = b.len().min(GREETING.len());
    need!(require(b.get(..n) == GREETING.get(..n)));
    let (line, _) = need!(super::text::line(b));
    let rest = line.get(GREETING.len()..).unwrap_or(&[]);
    let v = rest.split(|&c| c == b' ').next().unwrap_or(&[]);
    let mut parts = v.splitn(2, |&c| c == b'.');
    let major = parts.next().unwrap_or(&[]);
    let minor = parts.next();
    need!(require(
        super::text::is_digits(major, 2)
            && minor.is_none_or(|m| super::text::is_digits(m, 3))
            && super::text::is_printable(rest)
    ));
    let major_n = major
        .iter()
        .fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    need!(require(VERSIONS.contains(&major_n)));
    Parse::Ok(super::super::util::printable(v))
}

/// Names the rsync daemon protocol.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.s2c, parse_greeting).or_else(|| stream(cx.c2s, parse_greeting));
    finish(
        cx,
        p.map(|v| {
            let mut c = Classification::new(
                "rsync",
                None,
                "setten.rsync.greeting",
                "rsync.greeting",
                format!("@RSYNCD: {v}"),
            );
            c.extra.meta = Meta {
                version: Some(v),
                ..Meta::default()
            };
            c
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    #[test]
    fn greetings() {
        // rsync 3.2 server greeting with checksum list, and an old client's.
        let c = Flow::tcp(50000, 873)
            .s2c(b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n")
            .yes(check);
        assert_eq!((c.protocol, c.service), ("rsync", None));
        assert_eq!(c.extra.meta.version.as_deref(), Some("31.0"));
        assert_eq!(
            Flow::tcp(50000, 873)
                .c2s(b"@RSYNCD: 29\n")
                .yes(check)
                .protocol,
            "rsync"
        );
    }

    #[test]
    fn not_rsync() {
        assert_eq!(parse_greeting(b"@RSYNCD: 99.0\n"), Parse::Bad);
        assert_eq!(parse_greeting(b"@RSYNCD: x\n"), Parse::Bad);
        assert_eq!(parse_greeting(b"@RSYNC"), Parse::Short);
        assert!(Flow::tcp(1, 873).c2s(b"@RSYNCX").s2c(b"x").is_no(check));
    }
}
