//! Agent names, roles and enrolment tokens.
//!
//! A token is `NAME.SECRET`, where SECRET is 32 random bytes in unpadded base64url
//! (43 characters). It is shown once, at enrolment; the store keeps only the hex of its
//! SHA-256 ([`TokenHash`]), and a request is authenticated by looking that hash up, so
//! no token is ever compared byte by byte. The 32 raw bytes of the hash are also the key
//! that signs export files (see [`crate::export`]): the collector can check them without
//! keeping the token.

use rand::TryRngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest agent name.
pub const MAX_NAME_LEN: usize = 64;
/// Random bytes in a token's secret.
pub const SECRET_BYTES: usize = 32;

/// A name an agent or reader is enrolled under: `[A-Za-z0-9_-]{1,64}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

/// A name that is not `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, thiserror::Error)]
#[error("agent name `{shown}` is not valid: use 1 to {MAX_NAME_LEN} letters A-Z a-z, digits, `_` or `-`")]
pub struct BadName {
    shown: String,
}

impl AgentName {
    /// Checks a name.
    pub fn parse(s: &str) -> Result<AgentName, BadName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(AgentName(s.to_owned()))
        } else {
            Err(BadName {
                shown: s
                    .chars()
                    .take(MAX_NAME_LEN + 1)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A sensor: may send findings and heartbeats, and read.
    Agent,
    /// A person or tool that only reads (reports, dashboards, Prometheus).
    Reader,
}

impl Role {
    /// `agent` or `reader`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reader => "reader",
        }
    }

    /// From `agent` or `reader`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

/// SHA-256 of a token: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of a token as presented.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Lower-case hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From stored hex.
    pub fn from_hex(s: &str) -> Option<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(TokenHash(out))
    }
}

impl fmt::Debug for TokenHash {
    // Not secret, but there is no reason to spread it through logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// The operating system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the operating system: {0}")]
pub struct RandomError(String);

/// A new token for `name`: `NAME.` then 43 characters of base64url.
pub fn new_token(name: &AgentName) -> Result<String, RandomError> {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| RandomError(e.to_string()))?;
    Ok(format!("{name}.{}", base64url(&secret)))
}

/// Unpadded base64url (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, without padding.
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want);
        }
        // The URL alphabet's two extra characters.
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn tokens_have_the_documented_shape_and_differ() {
        let n = AgentName::parse("mirror-1").unwrap();
        let a = new_token(&n).unwrap();
        let b = new_token(&n).unwrap();
        assert_ne!(a, b);
        let secret = a.strip_prefix("mirror-1.").unwrap();
        assert_eq!(secret.len(), 43);
        assert!(secret
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let h = TokenHash::of(&a);
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.to_hex().len(), 64);
    }

    #[test]
    fn names_are_checked() {
        for ok in ["a", "mirror-1", "BACKUP_nas", &"x".repeat(64)] {
            assert!(AgentName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a.b", "ä", "a/b", &"x".repeat(65), "a\n"] {
            let e = AgentName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not valid"), "{e}");
        }
    }
}
