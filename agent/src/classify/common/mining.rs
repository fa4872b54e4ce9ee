//! Cryptocurrency nodes and miners: Bitcoin's peer-to-peer protocol and the Stratum
//! mining protocol. On a hospital workstation either is a finding (a miner someone
//! installed, or one an intruder left behind).
//!
//! - Bitcoin (and its test networks): every message starts with the network's 4-byte
//!   magic, a 12-byte command of lowercase ASCII padded with NUL bytes, and the payload
//!   length, little-endian, at most 32 MiB (Bitcoin Core `src/protocol.h`, `MAX_SIZE`).
//!   The checksum that follows is not checked: clients before 0.3.x sent `version` and
//!   `verack` without it (the corpus has such a node).
//! - Stratum: newline-delimited JSON-RPC from the miner, its first request one of the
//!   pool methods (`mining.subscribe`, `mining.authorize`, `mining.configure` of BIP 310,
//!   `mining.extranonce.subscribe`) or the Monero pools' `login` with a login and a
//!   password. The miner's name is its subscribe's first parameter or its login's
//!   `agent`.

use super::super::{Classification, Cx, Verdict};
use super::text;
use super::{finish, require, stream, Parse};

/// Network magic values and names (Bitcoin Core `src/kernel/chainparams.cpp`).
const NETWORKS: [([u8; 4], &str); 5] = [
    ([0xf9, 0xbe, 0xb4, 0xd9], "mainnet"),
    ([0x0b, 0x11, 0x09, 0x07], "testnet3"),
    ([0x1c, 0x16, 0x3f, 0x28], "testnet4"),
    ([0x0a, 0x03, 0xcf, 0x40], "signet"),
    ([0xfa, 0xbf, 0xb5, 0xda], "regtest"),
];
/// Largest payload a message may announce.
const MAX_PAYLOAD: u32 = 32 << 20;
/// Stratum methods a miner opens with.
const POOL_METHODS: [&str; 4] = [
    "mining.subscribe",
    "mining.authorize",
    "mining.configure",
    "mining.extranonce.subscribe",
];

/// A Bitcoin message header: the network and the command.
pub fn parse_bitcoin(b: &[u8]) -> Parse<(&'static str, String)> {
    let n = b.len().min(4);
    let network = NETWORKS
        .iter()
        .find(|(magic, _)| magic.get(..n) == b.get(..n))
        .map(|(_, name)| *name);
    let network = need!(network.map_or(Parse::Bad, Parse::Ok));
    let Some(header) = b.get(..20) else {
        return Parse::Short;
    };
    let (command, len) = header.split_at(16);
    let command = command.get(4..).unwrap_or(&[]);
    let name_len = command
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(command.len());
    let (name, pad) = command.split_at(name_len);
    need!(require(
        !name.is_empty()
            && name
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && pad.iter().all(|&c| c == 0)
    ));
    let len = u32::from_le_bytes(len.try_into().unwrap_or([0xff; 4]));
    need!(require(len <= MAX_PAYLOAD));
    Parse::Ok((network, String::from_utf8_lossy(name).into_owned()))
}

/// A miner's first Stratum request: the method and the miner's name if it gives one.
pub fn parse_stratum(b: &[u8]) -> Parse<(String, Option<String>)> {
    need!(require(b.first().is_none_or(|&c| c == b'{')));
    let (line, _) = need!(text::line(b));
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(line) else {
        return Parse::Bad;
    };
    need!(require(m.contains_key("id")));
    let method = m.get("method").and_then(|v| v.as_str()).unwrap_or("");
    let params = m.get("params");
    let agent = if POOL_METHODS.contains(&method) {
        // mining.subscribe's first parameter is the miner's user agent.
        (method == "mining.subscribe")
            .then(|| params?.get(0)?.as_str())
            .flatten()
    } else if method == "login" {
        let p = params.and_then(|p| p.as_object());
        need!(require(p.is_some_and(
            |p| p.contains_key("login") && p.contains_key("pass")
        )));
        p.and_then(|p| p.get("agent")?.as_str())
    } else {
        return Parse::Bad;
    };
    let agent = agent
        .filter(|a| !a.is_empty() && text::is_printable(a.as_bytes()))
        .map(|a| a.chars().take(100).collect());
    Parse::Ok((method.to_owned(), agent))
}

/// Names Bitcoin or Stratum from the opening bytes of either side.
pub fn check(cx: &Cx<'_>) -> Verdict {
    let bitcoin = stream(cx.c2s, parse_bitcoin).or_else(|| stream(cx.s2c, parse_bitcoin));
    let p = bitcoin
        .map(|(network, command)| {
            Classification::new(
                "bitcoin",
                None,
                "setten.mining.bitcoin",
                "bitcoin.command",
                format!("{command} ({network})"),
            )
        })
        .or_else(|| {
            stream(cx.c2s, parse_stratum).map(|(method, agent)| {
                let mut c = Classification::new(
                    "stratum",
                    None,
                    "setten.mining.stratum",
                    "stratum.method",
                    method,
                );
                c.extra.product = agent;
                c
            })
        });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn a_bitcoin_node_is_named_from_its_version_message() {
        // nDPI's bitcoin.pcap frame 1 (first 40 of 105 bytes): a 0.3.20 node's version
        // message, sent without a checksum.
        let b = hex(
            "f9beb4d976657273696f6e000000000055000000017d000001000000000000004\
                     1b0904d00000000",
        );
        let c = Flow::tcp(55317, 8333).c2s(&b).yes(check);
        assert_eq!((c.protocol, c.service), ("bitcoin", None));
        assert_eq!(c.evidence[0].value, "version (mainnet)");
        // Through the whole list of checks, in their order, too.
        assert_eq!(
            Flow::tcp(55317, 8333)
                .c2s(&b)
                .yes(super::super::detect)
                .protocol,
            "bitcoin"
        );
        // The server's side alone (a capture that starts after the client spoke).
        let c = Flow::tcp(55317, 8333).s2c(&b).yes(check);
        assert_eq!(c.protocol, "bitcoin");
        // Not a command, bytes after the NUL padding, an oversized payload.
        let mut upper = b.clone();
        upper[4] = b'V';
        assert!(matches!(parse_bitcoin(&upper), Parse::Bad));
        let mut tail = b.clone();
        tail[15] = b'x';
        assert!(matches!(parse_bitcoin(&tail), Parse::Bad));
        let mut huge = b.clone();
        huge[19] = 0x10;
        assert!(matches!(parse_bitcoin(&huge), Parse::Bad));
        assert!(matches!(parse_bitcoin(&b[..12]), Parse::Short));
        assert!(matches!(parse_bitcoin(b"\xf9\xbe\xb4\xd8"), Parse::Bad));
    }

    #[test]
    fn a_stratum_miner_is_named_with_its_software() {
        // nDPI's monero.pcap frame 4: a Zcash miner subscribing to its pool.
        let sub = b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"EWBF 0.3.4b\",null,\"eu1-zcash.flypool.org\",\"3333\"]}\n";
        let c = Flow::tcp(46838, 3333).c2s(sub).yes(check);
        assert_eq!((c.protocol, c.service), ("stratum", None));
        assert_eq!(c.evidence[0].value, "mining.subscribe");
        assert_eq!(c.extra.product.as_deref(), Some("EWBF 0.3.4b"));
        assert_eq!(
            Flow::tcp(46838, 3333)
                .c2s(sub)
                .yes(super::super::detect)
                .protocol,
            "stratum"
        );
        // XMRig's login to a Monero pool (its documented request shape).
        let login = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"wallet\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\"}}\n";
        let c = Flow::tcp(50000, 3333).c2s(login).yes(check);
        assert_eq!(c.evidence[0].value, "login");
        assert!(c
            .extra
            .product
            .as_deref()
            .unwrap()
            .starts_with("XMRig/6.21.0"));
        // Other JSON-RPC (a login without a password, another method) is not mining.
        for other in [
            &b"{\"id\":1,\"method\":\"login\",\"params\":{\"user\":\"a\"}}\n"[..],
            b"{\"id\":1,\"method\":\"eth_blockNumber\",\"params\":[]}\n",
            b"{\"method\":\"mining.subscribe\"}\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(parse_stratum(other), Parse::Bad), "{other:?}");
        }
        assert!(matches!(parse_stratum(b"{\"id\":1,"), Parse::Short));
    }
}
