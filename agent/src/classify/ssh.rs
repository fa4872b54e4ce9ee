//! SSH: identification strings (RFC 4253 section 4.2) and the first KEXINIT of each side
//! (RFC 4253 section 7.1), from which HASSH and HASSH-server are computed (Salesforce
//! HASSH: MD5 of "kex;encryption;mac;compression" for the side's direction).
//!
//! SSH-1 (a version 1.x other than the 1.99 compatibility string) is flagged weak.

use super::util::hex;
use super::{Classification, Cx, Evidence, Service, SshMeta, Verdict};
use crate::rules::Field;
use md5::{Digest, Md5};

/// Longest identification line (RFC 4253 4.2: 255 bytes including CR LF).
pub const MAX_BANNER: usize = 255;
/// Lines a server may send before its identification string that are looked at.
pub const MAX_PRE_LINES: usize = 8;
/// Largest binary packet accepted for the KEXINIT (RFC 4253 6.1: at least 35000 must be
/// supported; KEXINITs are far smaller).
pub const MAX_PACKET: usize = 35_000;
/// SSH_MSG_KEXINIT (RFC 4253 section 12).
pub const MSG_KEXINIT: u8 = 20;

/// An identification string and where the bytes after it start.
fn banner(b: &[u8], server: bool) -> Option<Result<(String, usize), ()>> {
    // A client's first line is its banner: bytes that cannot begin one settle it
    // before any line end is looked for (most flows asked here are not SSH).
    let probe = b.get(..b.len().min(4)).unwrap_or(b);
    if !server && !b"SSH-".starts_with(probe) {
        return Some(Err(()));
    }
    let mut off = 0usize;
    for _ in 0..=MAX_PRE_LINES {
        let rest = b.get(off..)?;
        if rest.is_empty() {
            return None;
        }
        let window = rest.get(..rest.len().min(MAX_BANNER)).unwrap_or(rest);
        let Some(nl) = window.iter().position(|&c| c == b'\n') else {
            // No full line yet: decide only if it already cannot be SSH.
            let probe = window.get(..window.len().min(4)).unwrap_or(window);
            if !b"SSH-".starts_with(probe) && !server {
                return Some(Err(()));
            }
            if window.len() >= MAX_BANNER {
                return Some(Err(()));
            }
            return None;
        };
        let line = window.get(..nl).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"SSH-") {
            let s = std::str::from_utf8(line).ok().filter(|s| {
                s.bytes().all(|c| (0x20..0x7f).contains(&c))
                    && s.get(4..).is_some_and(|r| r.contains('-'))
            });
            return Some(match s {
                Some(s) => Ok((s.to_owned(), off + nl + 1)),
                None => Err(()),
            });
        }
        if !server {
            // Only the server may send other lines first.
            return Some(Err(()));
        }
        off += nl + 1;
    }
    Some(Err(()))
}

/// The four name-lists HASSH uses from a KEXINIT payload, for one direction.
fn kexinit_lists(b: &[u8]) -> Option<[Vec<String>; 10]> {
    // binary packet: u32 length, u8 padding length, payload (RFC 4253 6).
    let len = usize::try_from(super::util::be32(b, 0)?).ok()?;
    if !(16..=MAX_PACKET).contains(&len) {
        return None;
    }
    let packet = b.get(4..4 + len)?;
    let payload = packet.get(1..)?;
    if *payload.first()? != MSG_KEXINIT {
        return None;
    }
    let mut rest = payload.get(17..)?;
    let mut lists: [Vec<String>; 10] = Default::default();
    for l in lists.iter_mut() {
        let n = usize::try_from(super::util::be32(rest, 0)?).ok()?;
        let s = rest.get(4..4 + n)?;
        let s = std::str::from_utf8(s).ok()?;
        *l = s
            .split(',')
            .filter(|x| !x.is_empty())
            .take(128)
            .map(str::to_owned)
            .collect();
        rest = rest.get(4 + n..)?;
    }
    Some(lists)
}

fn hassh(lists: &[Vec<String>; 10], server: bool) -> String {
    // name-lists: 0 kex, 1 host key, 2 enc c2s, 3 enc s2c, 4 mac c2s, 5 mac s2c,
    // 6 comp c2s, 7 comp s2c, 8 lang c2s, 9 lang s2c.
    let (e, m, c) = if server { (3, 5, 7) } else { (2, 4, 6) };
    let s = format!(
        "{};{};{};{}",
        lists[0].join(","),
        lists[e].join(","),
        lists[m].join(","),
        lists[c].join(",")
    );
    hex(&Md5::digest(s.as_bytes()))
}

/// Detects SSH.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    let c = banner(cx.c2s.bytes(), false);
    if matches!(c, Some(Err(()))) {
        return Verdict::No;
    }
    let s = banner(cx.s2c.bytes(), true);
    let (client, server) = match (c, s) {
        (_, Some(Err(()))) if cx.c2s.bytes().is_empty() => return Verdict::No,
        (c, s) => (c.and_then(Result::ok), s.and_then(Result::ok)),
    };
    if client.is_none() && server.is_none() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let ckex = client
        .as_ref()
        .and_then(|(_, off)| cx.c2s.bytes().get(*off..))
        .and_then(kexinit_lists);
    let skex = server
        .as_ref()
        .and_then(|(_, off)| cx.s2c.bytes().get(*off..))
        .and_then(kexinit_lists);
    let complete = client.is_some() && server.is_some() && ckex.is_some() && skex.is_some();
    let no_more = cx.last || (cx.c2s.is_done() && cx.s2c.is_done());
    if !complete && !no_more {
        return Verdict::Wait;
    }
    let meta = SshMeta {
        client_banner: client.as_ref().map(|(b, _)| b.clone()),
        server_banner: server.as_ref().map(|(b, _)| b.clone()),
        hassh: ckex.as_ref().map(|l| hassh(l, false)),
        hassh_server: skex.as_ref().map(|l| hassh(l, true)),
    };
    let first = meta
        .server_banner
        .clone()
        .or_else(|| meta.client_banner.clone())
        .unwrap_or_default();
    let mut cl = Classification::new(
        "ssh",
        Some(Service::Ssh),
        "setten.ssh.banner",
        "ssh.banner",
        &first,
    );
    if let (Some(sb), Some(cb)) = (&meta.server_banner, &meta.client_banner) {
        if sb != &first || cb != sb {
            cl.evidence
                .push(Evidence::new("setten.ssh.banner", "ssh.banner", cb));
        }
    }
    let proto_version = |b: &str| {
        b.get(4..)
            .and_then(|r| r.split('-').next())
            .map(str::to_owned)
    };
    let version = meta
        .server_banner
        .as_deref()
        .and_then(proto_version)
        .or_else(|| meta.client_banner.as_deref().and_then(proto_version));
    if let Some(v) = &version {
        if v.starts_with("1.") && v != "1.99" {
            cl.extra.weak = Some(format!("ssh-{v}"));
        }
    }
    cl.extra.meta.version = version;
    if let Some(sb) = &meta.server_banner {
        cl.apply_rules(cx.rules, Field::SshBanner, sb);
    }
    cl.extra.meta.ssh = Some(Box::new(meta));
    Verdict::Yes(cl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kexinit() -> Vec<u8> {
        // RFC 4253 7.1 layout with short lists.
        let lists = [
            "curve25519-sha256",
            "ssh-ed25519",
            "aes128-ctr",
            "aes256-ctr",
            "hmac-sha2-256",
            "hmac-sha2-512",
            "none",
            "zlib",
            "",
            "",
        ];
        let mut payload = vec![MSG_KEXINIT];
        payload.extend_from_slice(&[0u8; 16]);
        for l in lists {
            payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
            payload.extend_from_slice(l.as_bytes());
        }
        payload.push(0);
        payload.extend_from_slice(&[0, 0, 0, 0]);
        let pad = 4u8;
        let mut pkt = ((payload.len() + 1 + pad as usize) as u32)
            .to_be_bytes()
            .to_vec();
        pkt.push(pad);
        pkt.extend(payload);
        pkt.extend_from_slice(&[0u8; 4]);
        pkt
    }

    fn cx_run(c2s: &[u8], s2c: &[u8], last: bool) -> Verdict {
        crate::classify::testing::run(detect, 6, &[c2s], &[s2c], (50000, 2222), last)
    }

    #[test]
    fn banners_and_hassh() {
        let mut c = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
        c.extend(kexinit());
        let mut s = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3\r\n".to_vec();
        s.extend(kexinit());
        match cx_run(&c, &s, false) {
            Verdict::Yes(cl) => {
                let m = cl.extra.meta.ssh.as_ref().unwrap();
                // md5("curve25519-sha256;aes128-ctr;hmac-sha2-256;none")
                let want = hex(&Md5::digest(
                    b"curve25519-sha256;aes128-ctr;hmac-sha2-256;none",
                ));
                assert_eq!(m.hassh.as_deref(), Some(want.as_str()));
                let want_s = hex(&Md5::digest(
                    b"curve25519-sha256;aes256-ctr;hmac-sha2-512;zlib",
                ));
                assert_eq!(m.hassh_server.as_deref(), Some(want_s.as_str()));
                assert_eq!(cl.extra.product.as_deref(), Some("OpenSSH"));
                assert_eq!(cl.extra.meta.version.as_deref(), Some("2.0"));
                assert!(cl.extra.weak.is_none());
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn server_pre_banner_lines_and_ssh1_is_weak() {
        let s = b"Welcome\r\nSSH-1.5-Cisco-1.25\r\n";
        match cx_run(b"SSH-1.5-PuTTY\r\n", s, true) {
            Verdict::Yes(cl) => assert_eq!(cl.extra.weak.as_deref(), Some("ssh-1.5")),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn waits_for_kexinit_then_decides_at_end() {
        assert!(matches!(
            cx_run(b"SSH-2.0-x\r\n", b"", false),
            Verdict::Wait
        ));
        assert!(matches!(
            cx_run(b"SSH-2.0-x\r\n", b"", true),
            Verdict::Yes(_)
        ));
    }

    #[test]
    fn other_protocols_are_not_ssh() {
        assert!(matches!(
            cx_run(b"GET / HTTP/1.1\r\n", b"", false),
            Verdict::No
        ));
        assert!(matches!(
            cx_run(b"\x16\x03\x01\x00\x05hello", b"", false),
            Verdict::No
        ));
        assert!(matches!(
            cx_run(b"", b"220 ftp ready\r\n", true),
            Verdict::No
        ));
    }
}
