//! Export files: findings carried by hand from an air-gapped site.
//!
//! ```text
//! line 1: {"schema":"setten.export/1","agent":"NAME","hmac":"<64 hex digits>"}
//! line 2: the Batch JSON, exactly as signed
//! ```
//!
//! `hmac` is HMAC-SHA256 (RFC 2104) over the bytes of line 2 (without its line ending,
//! `\n` or `\r\n`), keyed with the 32 raw bytes of SHA-256(token) — what the collector's
//! store keeps, so the collector can check a file without holding the token, and only
//! the holder of the token (or of the store) can make one. Nothing may follow line 2
//! but a line ending.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header's schema.
pub const EXPORT_SCHEMA: &str = "setten.export/1";
/// Largest export file read.
pub const MAX_EXPORT_BYTES: u64 = 64 << 20;
/// Longest header line.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Line 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`EXPORT_SCHEMA`].
    pub schema: String,
    /// The agent that made the file.
    pub agent: String,
    /// HMAC-SHA256 of line 2, hex.
    pub hmac: String,
}

/// An export file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// Splits a file into its header and the signed bytes of line 2.
pub fn split(bytes: &[u8]) -> Result<(Header, &[u8]), FormatError> {
    let err = |m: String| FormatError(m);
    let nl = bytes.iter().position(|b| *b == b'\n').ok_or_else(|| {
        err("line 1: no line ending; an export file has a header line and a batch line".into())
    })?;
    let (line1, rest) = bytes.split_at(nl);
    let rest = rest.get(1..).unwrap_or(&[]);
    let line1 = line1.strip_suffix(b"\r").unwrap_or(line1);
    if line1.len() > MAX_HEADER_BYTES {
        return Err(err(format!(
            "line 1: the header is longer than {MAX_HEADER_BYTES} bytes; is this an export file?"
        )));
    }
    let header: Header = {
        let mut de = serde_json::Deserializer::from_slice(line1);
        let h = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                err(format!("line 1: not an export header: {inner}"))
            } else {
                err(format!("line 1: header field `{path}`: {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| err(format!("line 1: not an export header: {e}")))?;
        h
    };
    if header.schema != EXPORT_SCHEMA {
        let shown: String = header.schema.chars().take(64).collect();
        return Err(err(format!(
            "line 1: header field `schema`: `{}` is not supported; this collector reads `{EXPORT_SCHEMA}`",
            shown.escape_debug()
        )));
    }
    let (line2, tail) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (
            rest.get(..i).unwrap_or(&[]),
            rest.get(i + 1..).unwrap_or(&[]),
        ),
        None => (rest, &[][..]),
    };
    let line2 = line2.strip_suffix(b"\r").unwrap_or(line2);
    if line2.is_empty() {
        return Err(err(
            "line 2: missing; it should hold the batch of findings".into()
        ));
    }
    if !tail.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(err(
            "line 3: unexpected data after the batch line; one file holds one batch".into(),
        ));
    }
    Ok((header, line2))
}

/// The 32-byte HMAC of `line2` under `key` (SHA-256 of the token), hex.
pub fn sign(key: &[u8; 32], line2: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(line2);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `hmac_hex` is the HMAC of `line2` under `key` (compared in constant time).
pub fn verify(key: &[u8; 32], line2: &[u8], hmac_hex: &str) -> bool {
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(hmac_hex, &mut tag).is_err() {
        return false;
    }
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(line2);
    mac.verify_slice(&tag).is_ok()
}

/// An export file for `batch_json` (one line, no line break) signed with `token`: what
/// `setten-agent export` writes. For tests and tools.
pub fn write(agent: &str, token: &str, batch_json: &str) -> Vec<u8> {
    let key = crate::token::TokenHash::of(token).0;
    let header = Header {
        schema: EXPORT_SCHEMA.into(),
        agent: agent.into(),
        hmac: sign(&key, batch_json.as_bytes()),
    };
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(batch_json.as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        // RFC 4231 §4.3 uses the key "Jefe"; HMAC pads keys, so a 32-byte key of "Jefe"
        // and 28 zero bytes gives the same tag.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            sign(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_written_file_splits_and_verifies_and_a_changed_one_does_not() {
        let batch = r#"{"schema":"setten.findings/1","agent":"m1","findings":[]}"#;
        let file = write("m1", "m1.secret", batch);
        let (h, line2) = split(&file).unwrap();
        assert_eq!(h.agent, "m1");
        assert_eq!(line2, batch.as_bytes());
        let key = crate::token::TokenHash::of("m1.secret").0;
        assert!(verify(&key, line2, &h.hmac));
        assert!(!verify(&key, b"{}", &h.hmac));
        assert!(!verify(
            &crate::token::TokenHash::of("other").0,
            line2,
            &h.hmac
        ));
        assert!(!verify(&key, line2, "zz"));
        // CRLF line endings (a file that went through a Windows editor) still verify.
        let crlf = String::from_utf8(file.clone())
            .unwrap()
            .replace('\n', "\r\n");
        let (_, l2) = split(crlf.as_bytes()).unwrap();
        assert!(verify(&key, l2, &h.hmac));
    }

    #[test]
    fn malformed_files_say_which_line() {
        for (bytes, want) in [
            (&b"no newline"[..], "line 1"),
            (
                b"{\"schema\":\"setten.export/1\",\"agent\":\"a\"}\n{}\n",
                "`hmac`",
            ),
            (
                b"{\"schema\":\"x\",\"agent\":\"a\",\"hmac\":\"\"}\n{}\n",
                "`schema`",
            ),
            (
                b"{\"schema\":\"setten.export/1\",\"agent\":\"a\",\"hmac\":\"\"}\n\n",
                "line 2",
            ),
            (
                b"{\"schema\":\"setten.export/1\",\"agent\":\"a\",\"hmac\":\"\"}\n{}\n{}\n",
                "line 3",
            ),
        ] {
            let e = split(bytes).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
