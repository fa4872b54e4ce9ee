//! Helpers for line-oriented text protocols (banners, SIP, SSDP, RTSP, syslog): bounded
//! line and header reading over raw bytes. Not a detector.

use super::Parse;

/// Longest first line (request, status or banner line) read before giving up. RFC 5321
/// 4.5.3.1.5 caps SMTP replies at 512 octets; other banners and request lines are
/// shorter in practice, and a longer one is not worth holding a flow open for.
pub const MAX_LINE: usize = 1024;

/// Most header lines looked at in one message head.
pub const MAX_HEADERS: usize = 64;

/// The first line of `b` without its CRLF (or bare LF), and the rest after it. `Short`
/// while no line end has come within [`MAX_LINE`] bytes, `Bad` beyond.
pub fn line(b: &[u8]) -> Parse<(&[u8], &[u8])> {
    let window = b.get(..b.len().min(MAX_LINE)).unwrap_or(b);
    match window.iter().position(|&c| c == b'\n') {
        Some(i) => {
            let (l, rest) = b.split_at(i);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            Parse::Ok((l, rest.get(1..).unwrap_or(&[])))
        }
        None if b.len() < MAX_LINE => Parse::Short,
        None => Parse::Bad,
    }
}

/// The first line of `b`, which must end in CRLF exactly (the strict form SIP, RTSP,
/// SSDP and the mail and FTP protocols all require).
pub fn crlf_line(b: &[u8]) -> Parse<(&[u8], &[u8])> {
    match line(b) {
        Parse::Ok((l, rest)) => {
            // `line` dropped one CR if there was one: the line must have had it.
            let had_cr = l.len() < b.len() - rest.len() - 1;
            if had_cr {
                Parse::Ok((l, rest))
            } else {
                Parse::Bad
            }
        }
        p => p,
    }
}

/// Printable ASCII (space to tilde) and tabs only.
pub fn is_printable(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (0x20..0x7f).contains(&c))
}

/// Printable ASCII, tabs and UTF-8 (bytes from 0x80): text without control characters.
pub fn is_text(b: &[u8]) -> bool {
    b.iter()
        .all(|&c| c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80)
}

/// `b` starts with `prefix`, ASCII case-insensitively.
pub fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// `needle` occurs in `hay`, ASCII case-insensitively.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A message head: the header lines after the first line, up to the empty line.
pub struct Head<'a> {
    lines: Vec<&'a [u8]>,
    /// The empty line that ends the head was seen.
    pub complete: bool,
}

impl<'a> Head<'a> {
    /// Reads header lines (CRLF-terminated, at most [`MAX_HEADERS`]) from `b`, which
    /// starts after the first line. Stops at the empty line, at the end of the bytes, or
    /// at a line that is not a header (`Bad` for that).
    pub fn read(mut b: &'a [u8]) -> Parse<Head<'a>> {
        let mut lines = Vec::new();
        loop {
            match crlf_line(b) {
                Parse::Ok((l, rest)) => {
                    if l.is_empty() {
                        return Parse::Ok(Head {
                            lines,
                            complete: true,
                        });
                    }
                    let is_header = match l.iter().position(|&c| c == b':') {
                        Some(i) => {
                            i > 0
                                && l.split_at(i).0.iter().all(|&c| {
                                    c.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&c)
                                })
                        }
                        // A folded continuation line (RFC 3261 7.3.1).
                        None => l.first().is_some_and(|&c| c == b' ' || c == b'\t'),
                    };
                    if !is_header || !is_text(l) {
                        return Parse::Bad;
                    }
                    if lines.len() >= MAX_HEADERS {
                        return Parse::Ok(Head {
                            lines,
                            complete: false,
                        });
                    }
                    lines.push(l);
                    b = rest;
                }
                Parse::Short => {
                    return Parse::Ok(Head {
                        lines,
                        complete: false,
                    })
                }
                Parse::Bad => {
                    // An empty line is CRLF; a lone LF or an overlong line is not a head.
                    return Parse::Bad;
                }
            }
        }
    }

    /// Value of the first header named `name` (case-insensitive), trimmed.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.lines.iter().find_map(|l| {
            let i = l.iter().position(|&c| c == b':')?;
            let (n, v) = l.split_at(i);
            let v = v.get(1..).unwrap_or(&[]);
            if n.eq_ignore_ascii_case(name) {
                Some(trim(v))
            } else {
                None
            }
        })
    }

    /// Header lines read.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// No header line was read.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The first word of `b` (up to a space) is one of `words`: `Ok` when it is and the space
/// has come, `Short` while `b` is still a prefix of one, `Bad` otherwise. Lets text
/// protocols refuse binary or foreign bytes at once instead of waiting for a line end.
pub fn first_word(b: &[u8], words: &[&[u8]]) -> Parse<()> {
    // Most bytes that get here are binary or another protocol's: a first byte that no
    // word starts with settles it.
    if let Some(&c) = b.first() {
        if !words.iter().any(|w| w.first().is_none_or(|&f| f == c)) {
            return Parse::Bad;
        }
    }
    let max = words.iter().map(|w| w.len()).max().unwrap_or(0);
    match b.iter().take(max + 1).position(|&c| c == b' ') {
        Some(i) => {
            let w = b.get(..i).unwrap_or(&[]);
            if words.contains(&w) {
                Parse::Ok(())
            } else {
                Parse::Bad
            }
        }
        None if b.len() < max && words.iter().any(|w| w.starts_with(b)) => Parse::Short,
        None => Parse::Bad,
    }
}

/// `b` without leading and trailing spaces and tabs.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or(&[])
}

/// `b` is 1.. ASCII digits, at most `max` of them.
pub fn is_digits(b: &[u8], max: usize) -> bool {
    !b.is_empty() && b.len() <= max && b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_need_their_end() {
        assert_eq!(line(b"abc\r\nx"), Parse::Ok((&b"abc"[..], &b"x"[..])));
        assert_eq!(line(b"abc\nx"), Parse::Ok((&b"abc"[..], &b"x"[..])));
        assert_eq!(line(b"abc"), Parse::Short);
        assert_eq!(line(&[b'a'; MAX_LINE]), Parse::Bad);
        assert_eq!(crlf_line(b"abc\nx"), Parse::Bad);
        assert_eq!(crlf_line(b"\n"), Parse::Bad);
        assert_eq!(crlf_line(b"ab\r\n"), Parse::Ok((&b"ab"[..], &b""[..])));
    }

    #[test]
    fn heads_are_header_lines() {
        let h = Head::read(b"Via: SIP/2.0/UDP x\r\nCSeq:  1 INVITE \r\n\r\nbody")
            .ok()
            .unwrap();
        assert!(h.complete);
        assert_eq!(h.get(b"cseq"), Some(&b"1 INVITE"[..]));
        assert_eq!(h.get(b"via"), Some(&b"SIP/2.0/UDP x"[..]));
        assert_eq!(h.get(b"to"), None);
        assert!(!Head::read(b"Via: x\r\nCSe").ok().unwrap().complete);
        assert!(Head::read(b"not a header\r\n\r\n").is_bad());
        assert!(Head::read(b"X: \x01\r\n\r\n").is_bad());
    }

    #[test]
    fn first_words() {
        let words: &[&[u8]] = &[b"GET", b"OPTIONS"];
        assert_eq!(first_word(b"OPTIONS * x", words), Parse::Ok(()));
        assert_eq!(first_word(b"OPT", words), Parse::Short);
        assert_eq!(first_word(b"", words), Parse::Short);
        assert_eq!(first_word(b"OPTIONZ", words), Parse::Bad);
        assert_eq!(first_word(b"ZZZZZZZZZZZZ", words), Parse::Bad);
        assert_eq!(first_word(b"GETS x", words), Parse::Bad);
    }

    #[test]
    fn trims_and_digits() {
        assert_eq!(trim(b"  a b \t"), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert!(is_digits(b"123", 3));
        assert!(!is_digits(b"1234", 3));
        assert!(!is_digits(b"", 3));
        assert!(contains_ci(b"Microsoft ESMTP", b"esmtp"));
        assert!(!contains_ci(b"ab", b"abc"));
    }
}
