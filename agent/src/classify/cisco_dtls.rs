//! The data channel of Cisco AnyConnect-style SSL VPNs (Cisco ASA, and ocserv with
//! `dtls-legacy`) in Cisco's pre-standard DTLS: version 0x0100 ("DTLS 0.9", OpenSSL's
//! `DTLS1_BAD_VER`), which no standard DTLS stack speaks.
//!
//! Promise: `Yes` when the client's first datagram is a DTLS handshake record of version
//! 0x0100, epoch 0, holding a whole ClientHello of version 0x0100 with a 32-byte session
//! id (the `X-DTLS-Session-ID` the server gave inside the TLS tunnel), and the server's
//! first datagram is a ServerHello of version 0x0100 that resumes that same session id
//! (the master secret was also given inside TLS, so the handshake is abbreviated). A
//! client hello alone counts only when the flow is over. openconnect
//! `gnutls-dtls.c` (`start_dtls_handshake`, `GNUTLS_DTLS0_9`) and ocserv `main.c`
//! (`forward_udp_to_owner`, which accepts record version 1.0 only this way) agree on the
//! layout.

use super::common::{self, Parse};
use super::{util, Classification, Cx, Service, Verdict};

/// Cisco's pre-standard DTLS version.
const VERSION: u16 = 0x0100;
/// Session id length AnyConnect uses.
const SESSION_ID_LEN: usize = 32;

/// The session id of a version-0x0100 hello of the given handshake type in a datagram,
/// the message whole in the datagram's first record.
fn hello_session_id(d: &[u8], msg_type: u8) -> Option<&[u8]> {
    let Parse::Ok(f) = common::dtls::handshake_fragment(d) else {
        return None;
    };
    if f.record_version != VERSION || f.msg_type != msg_type || f.offset != 0 {
        return None;
    }
    if f.body.len() != f.msg_len {
        return None;
    }
    // version (2), random (32), session id length, session id.
    if util::be16(f.body, 0)? != VERSION || usize::from(*f.body.get(34)?) != SESSION_ID_LEN {
        return None;
    }
    f.body.get(35..35 + SESSION_ID_LEN)
}

/// Detects Cisco's pre-standard DTLS.
pub fn detect(cx: &Cx<'_>) -> Verdict {
    if !cx.is_udp() {
        return Verdict::No;
    }
    let c = cx.first_c2s_datagram();
    if c.is_empty() {
        return if cx.last { Verdict::No } else { Verdict::Wait };
    }
    let Some(sid) = hello_session_id(c, 1) else {
        return Verdict::No;
    };
    let s = cx.first_s2c_datagram();
    let resumed = match hello_session_id(s, 2) {
        Some(echo) if echo == sid => true,
        Some(_) => return Verdict::No,
        None if s.is_empty() && !cx.last => return Verdict::Wait,
        None if s.is_empty() => false,
        None => return Verdict::No,
    };
    let mut cl = Classification::new(
        "dtls",
        Some(Service::SslVpn),
        "setten.sslvpn.cisco-dtls",
        "dtls.version",
        if resumed {
            "0x0100 (Cisco pre-standard DTLS), ClientHello session resumed by the server"
        } else {
            "0x0100 (Cisco pre-standard DTLS), ClientHello"
        },
    );
    cl.product = Some("AnyConnect protocol (Cisco ASA or compatible)".into());
    cl.meta.version = Some("DTLS 0.9 (0x0100)".into());
    Verdict::Yes(cl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::common::testing::hex;

    fn run(c2s: &[&[u8]], s2c: &[&[u8]], last: bool) -> Verdict {
        crate::classify::testing::run(
            detect,
            crate::decode::ipproto::UDP,
            c2s,
            s2c,
            (40000, 443),
            last,
        )
    }

    /// openconnect 9.01 to ocserv 1.1.6 with `dtls-legacy` (Debian 12),
    /// `--dtls-ciphers=AES128-SHA`: the client's ClientHello and the server's ServerHello
    /// resuming the same 32-byte session id.
    const CLIENT: &str = "160100000000000000000000670100005b000000000000005b0100fe42369331\
        ac3ab9e9e8ba9706add9f962ec3c25a0169dbec7c0585d2ca56a2d205d15d13713d309b6bef883e55e\
        2c09ed484103624d27d02f35f663b92a6179c7000002002f0100000f00230000ff01000100001c00024000";
    const SERVER: &str = "1601000000000000000000005a0200004e000000000000004e0100c387eff2c2\
        d0241b5cd5af720b394b6979fb75e1a8c708a01fd8e2be613a4616205d15d13713d309b6bef883e55e\
        2c09ed484103624d27d02f35f663b92a6179c7002f000006001c00024000";

    #[test]
    fn openconnect_legacy_dtls_to_ocserv() {
        let (c, s) = (hex(CLIENT), hex(SERVER));
        match run(&[&c], &[&s], false) {
            Verdict::Yes(cl) => {
                assert_eq!(cl.service, Some(Service::SslVpn));
                assert_eq!(cl.evidence[0].rule, "setten.sslvpn.cisco-dtls");
                assert!(cl.evidence[0].value.ends_with("resumed by the server"));
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(run(&[&c], &[], false), Verdict::Wait));
        assert!(matches!(run(&[&c], &[], true), Verdict::Yes(_)));
    }

    #[test]
    fn standard_dtls_or_another_session_is_not_this() {
        let (c, s) = (hex(CLIENT), hex(SERVER));
        // The server answering another session id.
        let mut other = s.clone();
        let last = other.len() - 20;
        other[last] ^= 1;
        assert!(matches!(run(&[&c], &[&other], false), Verdict::No));
        // DTLS 1.2 (0xfefd) records and hellos.
        let mut std = c.clone();
        std[1..3].copy_from_slice(&[0xfe, 0xfd]);
        assert!(matches!(run(&[&std], &[&s], false), Verdict::No));
        for cut in 0..c.len() {
            assert!(hello_session_id(&c[..cut], 1).is_none(), "cut {cut}");
        }
    }
}
