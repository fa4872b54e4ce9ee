//! BitTorrent: the peer wire handshake over TCP (BEP 3), and over UDP the DHT (BEP 5)
//! and the tracker protocol's connect request (BEP 15).
//!
//! `Yes` for the 20-byte handshake prefix "\x13BitTorrent protocol" from either side;
//! for a datagram that is exactly one bencoded dictionary with a transaction id "t" and
//! a message type "y" of "q", "r" or "e" carrying the matching key (BEP 5 "KRPC"); or
//! for a 16-byte connect request with the tracker protocol's 64-bit magic.

use super::super::{Classification, Cx, Verdict};
use super::{be32, finish, opening, require, stream, take, Parse};

/// Handshake prefix: length 19 and the protocol string (BEP 3).
pub const HANDSHAKE: &[u8; 20] = b"\x13BitTorrent protocol";
/// Tracker connect request magic (BEP 15).
pub const TRACKER_MAGIC: u64 = 0x0417_2710_1980;
/// Deepest bencode nesting accepted (KRPC uses three levels).
const MAX_DEPTH: usize = 8;
/// Bencode values walked in one datagram.
const MAX_VALUES: usize = 512;
/// Longest bencoded integer or length in digits.
const MAX_DIGITS: usize = 20;

/// Parses the peer wire handshake prefix.
pub fn parse_handshake(b: &[u8]) -> Parse<()> {
    let n = b.len().min(HANDSHAKE.len());
    need!(require(b.get(..n) == HANDSHAKE.get(..n)));
    require(n == HANDSHAKE.len()).or_else(|| Parse::Short)
}

/// A bencode walker over one datagram.
struct Bencode<'a> {
    b: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Bencode<'a> {
    /// Digits up to `end`, as a number.
    fn number(&mut self, end: u8) -> Option<usize> {
        let start = self.pos;
        let digits = self
            .b
            .get(start..)?
            .iter()
            .take(MAX_DIGITS + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > MAX_DIGITS || self.b.get(start + digits) != Some(&end) {
            return None;
        }
        self.pos = start + digits + 1;
        self.b
            .get(start..start + digits)?
            .iter()
            .try_fold(0usize, |a, &c| {
                a.checked_mul(10)?.checked_add(usize::from(c - b'0'))
            })
    }

    /// A byte string "len:bytes".
    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.number(b':')?;
        let s = self.b.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(s)
    }

    /// Any value; returns the keys of a dictionary (for the top level).
    fn value(&mut self, depth: usize) -> Option<Vec<(&'a [u8], &'a [u8])>> {
        self.values += 1;
        if depth > MAX_DEPTH || self.values > MAX_VALUES {
            return None;
        }
        match *self.b.get(self.pos)? {
            b'i' => {
                self.pos += 1;
                if self.b.get(self.pos) == Some(&b'-') {
                    self.pos += 1;
                }
                self.number(b'e').map(|_| Vec::new())
            }
            b'l' => {
                self.pos += 1;
                while *self.b.get(self.pos)? != b'e' {
                    self.value(depth + 1)?;
                }
                self.pos += 1;
                Some(Vec::new())
            }
            b'd' => {
                self.pos += 1;
                let mut keys = Vec::new();
                while *self.b.get(self.pos)? != b'e' {
                    let k = self.string()?;
                    let start = self.pos;
                    self.value(depth + 1)?;
                    if depth == 0 {
                        keys.push((k, self.b.get(start..self.pos)?));
                    }
                }
                self.pos += 1;
                Some(keys)
            }
            b'0'..=b'9' => self.string().map(|_| Vec::new()),
            _ => None,
        }
    }
}

/// Parses a DHT (KRPC) message filling the datagram; returns its type and method.
pub fn parse_krpc(d: &[u8]) -> Parse<String> {
    need!(require(d.first() == Some(&b'd')));
    let mut w = Bencode {
        b: d,
        pos: 0,
        values: 0,
    };
    let keys = need!(w.value(0).map_or(Parse::Bad, Parse::Ok));
    need!(require(w.pos == d.len()));
    let get = |k: &[u8]| keys.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    need!(require(
        get(b"t").is_some_and(|t| t.first().is_some_and(u8::is_ascii_digit))
    ));
    let y = need!(get(b"y").map_or(Parse::Bad, Parse::Ok));
    match y {
        b"1:q" => {
            let q = need!(get(b"q").map_or(Parse::Bad, Parse::Ok));
            need!(require(get(b"a").is_some()));
            let name = q
                .iter()
                .skip_while(|&&c| c != b':')
                .skip(1)
                .copied()
                .collect::<Vec<u8>>();
            Parse::Ok(format!(
                "DHT query {}",
                super::super::util::printable(&name)
            ))
        }
        b"1:r" => require(get(b"r").is_some()).map(|()| "DHT response".to_owned()),
        b"1:e" => require(get(b"e").is_some()).map(|()| "DHT error".to_owned()),
        _ => Parse::Bad,
    }
}

/// Parses a tracker connect request (BEP 15): magic, action 0, transaction id.
pub fn parse_tracker_connect(d: &[u8]) -> Parse<String> {
    need!(require(d.len() == 16));
    let magic = u64::from_be_bytes(need!(take(d, 0, 8)).try_into().unwrap_or([0; 8]));
    need!(require(magic == TRACKER_MAGIC && need!(be32(d, 8)) == 0));
    Parse::Ok("UDP tracker connect".to_owned())
}

/// Names BitTorrent over TCP.
pub fn check_tcp(cx: &Cx<'_>) -> Verdict {
    let p = stream(cx.c2s, parse_handshake).or_else(|| stream(cx.s2c, parse_handshake));
    finish(
        cx,
        p.map(|()| {
            Classification::new(
                "bittorrent",
                None,
                "setten.bittorrent.handshake",
                "bittorrent.handshake",
                "BitTorrent protocol",
            )
        }),
    )
}

/// Names BitTorrent over UDP.
pub fn check_udp(cx: &Cx<'_>) -> Verdict {
    let one = |d: &[u8]| parse_krpc(d).or_else(|| parse_tracker_connect(d));
    let p = opening(cx, one, one);
    finish(
        cx,
        p.map(|v| {
            Classification::new(
                "bittorrent",
                None,
                "setten.bittorrent.udp",
                "bittorrent.message",
                v,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    #[test]
    fn handshake_from_capture() {
        // ndpi-bittorrent.pcap frame 1 (first 40 bytes of 68).
        let b =
            hex("13426974546f7272656e742070726f746f636f6c0000000000100005dcfcdccfb9e670ccc3dd40c7");
        let c = Flow::tcp(52888, 38305).c2s(&b).yes(check_tcp);
        assert_eq!((c.protocol, c.service), ("bittorrent", None));
        // Cut inside the protocol string: wait; a different string: no.
        assert!(Flow::tcp(1, 2).c2s(&b[..10]).is_wait(check_tcp));
        assert!(Flow::tcp(1, 2)
            .c2s(b"\x13BitTorrent protocoX")
            .s2c(b"x")
            .is_no(check_tcp));
    }

    #[test]
    fn dht_ping() {
        // BEP 5 "ping" query and response examples.
        let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let c = Flow::udp(6881, 6881).c2s(q).yes(check_udp);
        assert_eq!(c.evidence[0].value, "DHT query ping");
        let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        assert_eq!(parse_krpc(r), Parse::Ok("DHT response".to_owned()));
        // Trailing bytes, a wrong type, unbalanced nesting.
        assert_eq!(
            parse_krpc(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qex"),
            Parse::Bad
        );
        assert_eq!(parse_krpc(b"d1:t2:aa1:y1:xe"), Parse::Bad);
        assert_eq!(parse_krpc(b"d1:t2:aa1:y1:q"), Parse::Bad);
        assert_eq!(parse_krpc(&[b'l'; 600]), Parse::Bad);
    }

    #[test]
    fn tracker_connect() {
        // BEP 15 connect request.
        let d = hex("0000041727101980 00000000 12345678");
        assert_eq!(
            Flow::udp(50000, 6969).c2s(&d).yes(check_udp).evidence[0].value,
            "UDP tracker connect"
        );
        let mut x = d.clone();
        x[11] = 1;
        assert_eq!(parse_tracker_connect(&x), Parse::Bad);
    }
}
