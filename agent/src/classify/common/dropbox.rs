//! Dropbox LAN sync discovery (the "db-lsp-disc" broadcasts on UDP 17500): a Dropbox
//! client announcing itself and the shared folders it holds to the local network. On a
//! hospital network it shows a consumer cloud client, which the report may want to flag.
//!
//! `Yes` for a datagram that is one JSON object of text, from "{" to "}", carrying the
//! announcement's keys "host_int", "version", "port" and "namespaces".

use super::super::{Classification, Cx, Verdict};
use super::{finish, opening, require, Parse};

/// Keys every announcement carries.
const KEYS: [&[u8]; 4] = [
    b"\"host_int\":",
    b"\"version\":",
    b"\"port\":",
    b"\"namespaces\":",
];

/// Parses an announcement.
pub fn parse_announcement(d: &[u8]) -> Parse<()> {
    let body = super::text::trim(d);
    need!(require(
        body.first() == Some(&b'{')
            && body.last() == Some(&b'}')
            && super::text::is_printable(body)
    ));
    require(KEYS.iter().all(|k| body.windows(k.len()).any(|w| w == *k)))
}

/// Names Dropbox LAN sync discovery.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let p = opening(cx, parse_announcement, parse_announcement);
    finish(
        cx,
        p.map(|()| {
            Classification::new(
                "dropbox-lansync",
                None,
                "setten.dropbox.lansync",
                "dropbox.announcement",
                "db-lsp-disc announcement",
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::Flow;
    use super::*;

    /// ndpi-teams.pcap frame with UDP 17500 (namespaces shortened).
    const ANNOUNCEMENT: &[u8] = br#"{"version": [2, 0], "port": 17500, "host_int": 13335874912184453354143522528569546212, "displayname": "", "namespaces": [2750370560, 785266177]}"#;

    #[test]
    fn announcement_from_capture() {
        let c = Flow::udp(17500, 17500).c2s(ANNOUNCEMENT).yes(check);
        assert_eq!((c.protocol, c.service), ("dropbox-lansync", None));
    }

    #[test]
    fn other_json_is_not() {
        assert_eq!(
            parse_announcement(br#"{"version": [2, 0], "port": 17500}"#),
            Parse::Bad
        );
        assert_eq!(parse_announcement(&ANNOUNCEMENT[..60]), Parse::Bad);
        assert!(Flow::udp(1, 17500).c2s(b"\x00{}").is_no(check));
    }
}
