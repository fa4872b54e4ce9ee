//! Modbus/TCP (Modbus Messaging on TCP/IP Implementation Guide V1.0b 3.1.3; Modbus
//! Application Protocol V1.1b3 6): building automation, power and medical gas plants.
//!
//! The MBAP header has few fixed bits, so a request must be consistent in itself
//! (protocol id 0, a length equal to the unit and PDU, a public function code whose
//! PDU has that function's exact size and field ranges) and, to be sure, answered by a
//! response with the same transaction id, unit and function (or its exception, with an
//! exception code 1..=11) whose own length fits. A request alone counts only on port
//! 502, the tie-breaker the brief allows for a weak format.

use super::super::{Classification, Cx, Verdict};
use super::{be16, byte, finish, require, stream, Parse};

/// MBAP header octets before the unit id.
pub const MBAP_LEN: usize = 6;
/// Modbus/TCP port.
pub const PORT: u16 = 502;
/// Largest MBAP length (unit id + PDU of at most 253 bytes).
const MAX_LENGTH: u16 = 254;

/// A request or response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adu {
    /// Transaction id.
    pub transaction: u16,
    /// Unit id.
    pub unit: u8,
    /// Function code (with 0x80 for an exception response).
    pub function: u8,
}

fn function_name(f: u8) -> &'static str {
    match f & 0x7f {
        1 => "Read Coils",
        2 => "Read Discrete Inputs",
        3 => "Read Holding Registers",
        4 => "Read Input Registers",
        5 => "Write Single Coil",
        6 => "Write Single Register",
        15 => "Write Multiple Coils",
        16 => "Write Multiple Registers",
        23 => "Read/Write Multiple Registers",
        43 => "Encapsulated Interface Transport",
        _ => "function",
    }
}

/// MBAP header: transaction, protocol 0, length 2..=254, unit; returns length too.
fn mbap(b: &[u8]) -> Parse<(Adu, usize)> {
    let transaction = need!(be16(b, 0));
    need!(require(need!(be16(b, 2)) == 0));
    let len = need!(be16(b, 4));
    need!(require((2..=MAX_LENGTH).contains(&len)));
    let unit = need!(byte(b, 6));
    let function = need!(byte(b, 7));
    Parse::Ok((
        Adu {
            transaction,
            unit,
            function,
        },
        usize::from(len),
    ))
}

/// Parses a request ADU (Application Protocol 6.1 ff.).
pub fn parse_request(b: &[u8]) -> Parse<Adu> {
    let (adu, len) = need!(mbap(b));
    let word = |o: usize| be16(b, MBAP_LEN + o);
    match adu.function {
        1 | 2 => {
            need!(require(len == 6 && (1..=2000).contains(&need!(word(4)))));
        }
        3 | 4 => {
            need!(require(len == 6 && (1..=125).contains(&need!(word(4)))));
        }
        5 => {
            need!(require(
                len == 6 && matches!(need!(word(4)), 0x0000 | 0xff00)
            ));
        }
        6 => need!(require(len == 6)),
        15 | 16 => {
            let q = usize::from(need!(word(4)));
            let n = usize::from(need!(byte(b, MBAP_LEN + 6)));
            let want = if adu.function == 15 {
                q.div_ceil(8)
            } else {
                2 * q
            };
            need!(require(q >= 1 && n == want && len == 7 + n));
        }
        43 => {
            // MEI type 13 (CANopen) or 14 (Read Device Identification, 6.21).
            need!(require(matches!(need!(byte(b, MBAP_LEN + 2)), 0x0d | 0x0e)));
        }
        _ => return Parse::Bad,
    }
    Parse::Ok(adu)
}

/// Parses a response ADU answering `req`.
pub fn parse_response(b: &[u8], req: &Adu) -> Parse<()> {
    let (adu, len) = need!(mbap(b));
    need!(require(
        adu.transaction == req.transaction && adu.unit == req.unit
    ));
    if adu.function == req.function | 0x80 {
        // Exception response (7): one exception code.
        let code = need!(byte(b, MBAP_LEN + 2));
        return require(len == 3 && (1..=11).contains(&code));
    }
    need!(require(adu.function == req.function));
    match adu.function {
        1..=4 => {
            let n = usize::from(need!(byte(b, MBAP_LEN + 2)));
            require(len == 3 + n)
        }
        5 | 6 | 15 | 16 => require(len == 6),
        _ => Parse::Ok(()),
    }
}

/// Names Modbus/TCP.
pub fn check(cx: &Cx<'_>) -> Verdict {
    if !cx.is_tcp() {
        return Verdict::No;
    }
    let p = stream(cx.c2s, parse_request).and_then(|req| {
        let answered = stream(cx.s2c, |b| parse_response(b, &req));
        let result = match answered {
            Parse::Ok(()) => Parse::Ok("answered"),
            Parse::Short if cx.server_port == PORT => Parse::Ok("to port 502"),
            other => other.map(|()| ""),
        };
        result.map(|how| {
            Classification::new(
                "modbus",
                None,
                "setten.modbus.mbap",
                "modbus.function",
                format!(
                    "unit {} function {} ({}), {how}",
                    req.unit,
                    req.function,
                    function_name(req.function)
                ),
            )
        })
    });
    finish(cx, p)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{hex, Flow};
    use super::*;

    /// ndpi-modbus.pcap frames 1 and 2: Read Holding Registers, one register, and
    /// its response.
    const REQUEST: &str = "00d100000006010300010001";
    const RESPONSE: &str = "00d1000000050103020000";

    #[test]
    fn request_and_response_from_capture() {
        let c = Flow::tcp(2074, 5020)
            .c2s(&hex(REQUEST))
            .s2c(&hex(RESPONSE))
            .yes(check);
        assert_eq!((c.protocol, c.service), ("modbus", None));
        assert_eq!(
            c.evidence[0].value,
            "unit 1 function 3 (Read Holding Registers), answered"
        );
    }

    #[test]
    fn lone_request_needs_port_502() {
        assert!(matches!(
            Flow::tcp(2074, PORT).c2s(&hex(REQUEST)).run(check, false),
            Verdict::Yes(_)
        ));
        let f = Flow::tcp(2074, 5020).c2s(&hex(REQUEST));
        assert!(f.is_wait(check));
        assert!(f.is_no_at_end(check));
    }

    #[test]
    fn inconsistent() {
        // Another transaction id in the response.
        let mut r = hex(RESPONSE);
        r[1] = 0xd2;
        assert!(Flow::tcp(2074, 502).c2s(&hex(REQUEST)).s2c(&r).is_no(check));
        // Quantity 0, a length that is not 6, protocol id 1, function 99.
        for bad in [
            "00d100000006010300010000",
            "00d100000007010300010001",
            "00d100010006010300010001",
            "00d100000006016300010001",
        ] {
            assert_eq!(parse_request(&hex(bad)), Parse::Bad, "{bad}");
        }
        // Exception response (illegal data address).
        let e = hex("00d100000003018302");
        assert_eq!(
            parse_response(&e, &parse_request(&hex(REQUEST)).ok().unwrap()),
            Parse::Ok(())
        );
    }
}
