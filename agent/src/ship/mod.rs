//! Store and forward: findings go to a local SQLite spool first, then to the collector.
//!
//! The promise is that nothing the agent has accepted is lost. A finding is written to
//! the [`spool`] (WAL, `synchronous=FULL`) with a per-agent sequence number that is never
//! reused, and leaves it only when the collector answered 2xx for a batch containing it
//! ([`client`]), or after it was written and fsynced to an export file for an air-gapped
//! site ([`export`]). The spool has a size cap; when it is reached the oldest findings are
//! evicted, counted in the spool, logged and reported to the collector in a
//! [`Body::Health`](crate::findings::Body::Health) finding — never silently.
//!
//! The collector answers idempotently by (agent, `seq`), so every step may be repeated:
//! a batch whose 2xx was lost is simply sent again.

pub mod client;
pub mod export;
pub mod spool;

use std::fmt;
use std::io::Read;
use std::path::Path;
use thiserror::Error;

/// Longest token accepted (the collector's tokens are far shorter).
pub const MAX_TOKEN_LEN: usize = 1024;
/// Longest agent name accepted (the part of the token before the first dot).
pub const MAX_AGENT_LEN: usize = 128;

/// A bad or missing token. Never contains the token itself.
#[derive(Debug, Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("token file {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The token does not have the `NAME.SECRET` shape.
    #[error("{origin}: {what} (a token looks like NAME.SECRET, as printed by `setten-collector agent add NAME`)")]
    Malformed {
        /// Where it came from (file or environment variable).
        origin: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// An enrollment token, `NAME.SECRET`. Its `Debug` form hides the secret.
#[derive(Clone)]
pub struct Token {
    text: String,
    dot: usize,
}

impl Token {
    /// Validates a token read from `origin` (named in errors). Surrounding whitespace
    /// (a trailing newline in a file) is ignored.
    pub fn parse(text: &str, origin: &str) -> Result<Token, TokenError> {
        let bad = |what| TokenError::Malformed {
            origin: origin.to_owned(),
            what,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("the token is empty"));
        }
        if text.len() > MAX_TOKEN_LEN {
            return Err(bad("the token is too long"));
        }
        // It travels in an HTTP header: visible ASCII only.
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "the token holds spaces, control or non-ASCII characters",
            ));
        }
        let Some(dot) = text.find('.') else {
            return Err(bad("the token has no '.'"));
        };
        if dot == 0 {
            return Err(bad("the agent name before the '.' is empty"));
        }
        if dot > MAX_AGENT_LEN {
            return Err(bad("the agent name before the '.' is too long"));
        }
        if dot + 1 == text.len() {
            return Err(bad("the secret after the '.' is empty"));
        }
        Ok(Token {
            text: text.to_owned(),
            dot,
        })
    }

    /// Reads and validates a token file (at most [`MAX_TOKEN_LEN`] bytes are looked at).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let read_err = |source| TokenError::Read {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut buf = Vec::new();
        file.take(MAX_TOKEN_LEN as u64 + 64)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        let origin = path.display().to_string();
        let text = std::str::from_utf8(&buf).map_err(|_| TokenError::Malformed {
            origin: origin.clone(),
            what: "the token file is not UTF-8 text",
        })?;
        Token::parse(text, &origin)
    }

    /// The agent's name: the part before the first dot.
    pub fn agent(&self) -> &str {
        &self.text[..self.dot]
    }

    /// The whole token, for the `Authorization` header and the export key.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}.…)", self.agent())
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Makes text received from elsewhere safe to print on one line: control characters
/// are escaped and the length is capped at `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_agent_and_hides_its_secret() {
        let t = Token::parse("mirror-1.s3cr3t.more\n", "SETTEN_TOKEN").unwrap();
        assert_eq!(t.agent(), "mirror-1");
        assert_eq!(t.expose(), "mirror-1.s3cr3t.more");
        let shown = format!("{t:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn malformed_tokens_are_refused_without_echoing_them() {
        for bad in [
            "",
            "nodot",
            ".secret",
            "name.",
            "name.sec ret",
            "名前.secret",
        ] {
            let e = Token::parse(bad, "SETTEN_TOKEN").unwrap_err().to_string();
            assert!(e.starts_with("SETTEN_TOKEN: "), "{e}");
            if bad.len() > 3 {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable("a\nb", 10), "a\\nb");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
