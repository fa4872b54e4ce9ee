//! Maintenance windows: days of the week and a time range in local time.
//!
//! A ledger says when a vendor may connect ("平日 9:00-17:00", "Mon-Fri 09:00-18:00").
//! [`Window::parse`] reads the English and Japanese forms people write in spreadsheets,
//! full-width digits included; [`Display`](std::fmt::Display) gives one canonical English
//! form, so a window read back from a report compares equal.
//!
//! A window is a set of closed intervals of local time repeating every week: a session
//! ending at 18:00:00 is inside "09:00-18:00". [`Window::covers`] checks a whole session
//! against that weekly pattern in constant time (it never steps through the session), and
//! [`covered_by_any`] does the same against the union of several windows.

use serde::{Serialize, Serializer};
use std::fmt;

/// Minutes in a day.
const DAY_MINUTES: u16 = 1440;
/// Seconds in a day.
const DAY_SECS: i128 = 86_400;
/// Seconds in a week: the period of every window.
const WEEK_SECS: i128 = 7 * DAY_SECS;
/// Local seconds of the first Monday 00:00 after the Unix epoch (1970-01-05; the epoch
/// itself was a Thursday).
const FIRST_MONDAY_SECS: i128 = 4 * DAY_SECS;
/// All seven day bits, Monday (bit 0) to Sunday (bit 6).
const ALL_DAYS: u8 = 0x7f;
/// Monday to Friday.
const WEEKDAYS: u8 = 0x1f;
/// Saturday and Sunday.
const WEEKEND: u8 = 0x60;
/// Windows in one cell; more is a mistake, not a schedule.
pub const MAX_WINDOWS: usize = 32;
/// Characters in one window's text.
pub const MAX_WINDOW_CHARS: usize = 200;
/// Largest UTC offset accepted, in seconds (ISO 8601 allows up to ±18:00).
pub const MAX_UTC_OFFSET_SECS: i32 = 18 * 3600;
/// Japan Standard Time, seconds east of UTC.
pub const JST_OFFSET_SECS: i32 = 9 * 3600;

/// English day abbreviations, Monday first.
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// Japanese day characters, Monday first.
const DAY_KANJI: [char; 7] = ['月', '火', '水', '木', '金', '土', '日'];

const EXAMPLES: &str =
    "e.g. \"Mon-Fri 09:00-18:00\", \"平日 9:00-17:00\", \"daily 22:00-06:00\" or \"always\"";

/// A maintenance window: days of the week and a local time range.
///
/// The time range runs from `start` to `end` minutes after midnight. When `end <= start`
/// the window runs past midnight into the next day; the day named is the day it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Day bits, Monday (bit 0) to Sunday (bit 6); never zero.
    days: u8,
    /// Start minute of the day, 0..1440.
    start: u16,
    /// End minute of the day, 1..=1440 (midnight as an end is 1440); never equal to
    /// `start`.
    end: u16,
}

impl Window {
    /// Every minute of every day.
    pub const ALWAYS: Window = Window {
        days: ALL_DAYS,
        start: 0,
        end: DAY_MINUTES,
    };

    /// Day bits, Monday (bit 0) to Sunday (bit 6).
    pub fn days(&self) -> u8 {
        self.days
    }

    /// Start, in minutes after midnight.
    pub fn start_minute(&self) -> u16 {
        self.start
    }

    /// End, in minutes after midnight (1440 for midnight); at or before the start when the
    /// window runs into the next day.
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// Parses e.g. "Mon-Fri 09:00-18:00", "Sat,Sun 10:00-12:00", "daily 22:00-06:00",
    /// "always", and the Japanese forms "平日 9:00-17:00", "毎日 22:00～6:00",
    /// "月-金 8:30-17:15", "月水金 9:00-12:00", "常時", "24時間".
    ///
    /// Full-width digits, colon and tildes are accepted, "24:00" ends a day, a time with
    /// no days means every day and days with no time mean the whole of those days.
    /// Holidays (祝) are refused: there is no holiday calendar.
    pub fn parse(s: &str) -> Result<Window, String> {
        if s.chars().count() > MAX_WINDOW_CHARS {
            return Err(format!(
                "a maintenance window is at most {MAX_WINDOW_CHARS} characters long"
            ));
        }
        let text = fold(s).replace('ー', "-").to_lowercase();
        let text = text.trim();
        let fail = |why: String| {
            format!(
                "`{}` is not a maintenance window: {why}; expected {EXAMPLES}",
                s.trim()
            )
        };
        if text.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if ALWAYS_WORDS.contains(&text) {
            return Ok(Window::ALWAYS);
        }
        // Days come first, the time from the first digit on.
        let split = text
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(text.len());
        let (days_text, time_text) = text.split_at(split);
        let (days_text, whole_day_word) = strip_whole_day(days_text.trim());
        let days = if days_text.is_empty() {
            ALL_DAYS
        } else {
            parse_days(days_text).map_err(fail)?
        };
        let time_text = time_text.trim();
        let (start, end) = if time_text.is_empty() || WHOLE_DAY_TIMES.contains(&time_text) {
            (0, DAY_MINUTES)
        } else if whole_day_word {
            return Err(fail(format!(
                "it says the whole day and also gives the time `{time_text}`"
            )));
        } else {
            parse_time_range(time_text).map_err(fail)?
        };
        Ok(Window { days, start, end })
    }

    /// Whether the instant (Unix seconds) falls inside, in a zone `utc_offset_secs` east of
    /// UTC (Japan: 32400). Both ends of the time range are inside.
    pub fn contains(&self, unix_secs: i64, utc_offset_secs: i32) -> bool {
        let local = i128::from(unix_secs) + i128::from(utc_offset_secs);
        let day = local.div_euclid(DAY_SECS);
        let second = local.rem_euclid(DAY_SECS);
        // 1970-01-01 was a Thursday (index 3, Monday = 0).
        let weekday = (day + 3).rem_euclid(7) as u8;
        let yesterday = (weekday + 6) % 7;
        let start = i128::from(self.start) * 60;
        let end = i128::from(self.end_after_start()) * 60;
        let today_in = self.has_day(weekday) && start <= second && second <= end;
        // An occurrence that began yesterday and runs past midnight.
        let yesterday_in = self.has_day(yesterday) && second + DAY_SECS <= end;
        today_in || yesterday_in
    }

    /// Whether the whole interval [from, to] lies inside (no second of it outside).
    /// Reversed bounds are swapped. An interval of a week or more is inside only when the
    /// window never closes.
    pub fn covers(&self, from_secs: i64, to_secs: i64, utc_offset_secs: i32) -> bool {
        covered_by_any(
            std::slice::from_ref(self),
            from_secs,
            to_secs,
            utc_offset_secs,
        )
    }

    fn has_day(&self, day: u8) -> bool {
        self.days & (1 << day) != 0
    }

    /// The end as minutes after the start day's midnight (past 1440 when it runs into the
    /// next day).
    fn end_after_start(&self) -> u16 {
        if self.end > self.start {
            self.end
        } else {
            self.end + DAY_MINUTES
        }
    }
}

/// Whole-string forms that mean every minute.
const ALWAYS_WORDS: &[&str] = &[
    "always",
    "24/7",
    "24x7",
    "常時",
    "24時間",
    "24時間365日",
    "365日24時間",
    "終日",
    "随時",
];
/// Time parts that mean the whole day.
const WHOLE_DAY_TIMES: &[&str] = &["24時間", "24h"];
/// Day-part suffixes that mean the whole day.
const WHOLE_DAY_SUFFIXES: &[&str] = &["終日", "all day", "allday"];

fn strip_whole_day(days: &str) -> (&str, bool) {
    for w in WHOLE_DAY_SUFFIXES {
        if let Some(rest) = days.strip_suffix(w) {
            return (rest.trim(), true);
        }
    }
    (days, false)
}

/// One piece of a day list.
#[derive(Clone, Copy)]
enum DayItem {
    One(u8),
    Set(u8),
    Dash,
}

/// Multi-character Japanese words, longest first where they overlap.
const JA_WORDS: &[(&str, Option<u8>)] = &[
    ("祝祭日", None),
    ("祝日", None),
    ("祭日", None),
    ("祝", None),
    ("休日", None),
    ("平日", Some(WEEKDAYS)),
    ("毎日", Some(ALL_DAYS)),
    ("全日", Some(ALL_DAYS)),
    ("週末", Some(WEEKEND)),
    ("毎週", Some(0)),
];

const HOLIDAY_MESSAGE: &str =
    "holidays (祝日) are not supported because there is no holiday calendar; list the days instead, e.g. \"土日 10:00-12:00\"";

fn parse_days(text: &str) -> Result<u8, String> {
    let mut items = Vec::new();
    let mut rest = text;
    'outer: while let Some(c) = rest.chars().next() {
        if matches!(c, ' ' | ',' | '・' | '/' | '、' | ':' | '.') {
            rest = rest.get(c.len_utf8()..).unwrap_or("");
            continue;
        }
        if c == '-' {
            items.push(DayItem::Dash);
            rest = rest.get(1..).unwrap_or("");
            continue;
        }
        if c.is_ascii_alphabetic() {
            let end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let (word, tail) = rest.split_at(end);
            rest = tail;
            match english_day(word) {
                Some(EnglishDay::One(d)) => items.push(DayItem::One(d)),
                Some(EnglishDay::Set(m)) => items.push(DayItem::Set(m)),
                Some(EnglishDay::Noise) => {}
                Some(EnglishDay::Holiday) => return Err(HOLIDAY_MESSAGE.into()),
                None => return Err(format!("`{word}` is not a day")),
            }
            continue;
        }
        for (word, meaning) in JA_WORDS {
            if let Some(tail) = rest.strip_prefix(word) {
                match meaning {
                    None => return Err(HOLIDAY_MESSAGE.into()),
                    Some(0) => {}
                    Some(m) => items.push(DayItem::Set(*m)),
                }
                rest = tail;
                continue 'outer;
            }
        }
        if let Some(d) = DAY_KANJI.iter().position(|k| *k == c) {
            items.push(DayItem::One(d as u8));
            rest = rest.get(c.len_utf8()..).unwrap_or("");
            // 月曜 / 月曜日
            if let Some(tail) = rest.strip_prefix('曜') {
                rest = tail.strip_prefix('日').unwrap_or(tail);
            }
            continue;
        }
        return Err(format!("`{c}` is not part of a day"));
    }
    let mut days = 0u8;
    let mut i = 0;
    while let Some(item) = items.get(i) {
        match (item, items.get(i + 1), items.get(i + 2)) {
            (DayItem::One(a), Some(DayItem::Dash), Some(DayItem::One(b))) => {
                let mut d = *a;
                loop {
                    days |= 1 << d;
                    if d == *b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
                i += 3;
            }
            (DayItem::Dash, _, _) | (_, Some(DayItem::Dash), _) => {
                return Err("a day range needs one day on each side, e.g. Mon-Fri or 月-金".into())
            }
            (DayItem::One(d), _, _) => {
                days |= 1 << d;
                i += 1;
            }
            (DayItem::Set(m), _, _) => {
                days |= m;
                i += 1;
            }
        }
    }
    if days == 0 {
        return Err("no day is named".into());
    }
    Ok(days)
}

enum EnglishDay {
    One(u8),
    Set(u8),
    Noise,
    Holiday,
}

fn english_day(word: &str) -> Option<EnglishDay> {
    let one = match word {
        "mon" | "monday" => 0,
        "tue" | "tues" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thur" | "thurs" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        "daily" | "everyday" => return Some(EnglishDay::Set(ALL_DAYS)),
        "weekday" | "weekdays" => return Some(EnglishDay::Set(WEEKDAYS)),
        "weekend" | "weekends" => return Some(EnglishDay::Set(WEEKEND)),
        // "every day", "every Monday"
        "every" => return Some(EnglishDay::Noise),
        // "every day"; "all day" was taken off before.
        "day" | "days" => return Some(EnglishDay::Set(ALL_DAYS)),
        "holiday" | "holidays" | "hol" => return Some(EnglishDay::Holiday),
        _ => return None,
    };
    Some(EnglishDay::One(one))
}

/// "9:00-17:00", "22:00-6:00", "9時-17時30分"; `-` already stands for every dash and tilde.
fn parse_time_range(text: &str) -> Result<(u16, u16), String> {
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!(
            "`{text}` is not a time range: give a start and an end, e.g. 09:00-18:00"
        ));
    };
    let start = parse_time(a.trim())?;
    if start >= DAY_MINUTES {
        return Err("a window cannot start at 24:00; write 00:00".into());
    }
    let b = b.trim();
    let end = parse_time(b).map_err(|e| {
        if b.contains([',', ';', '-', ' ']) {
            format!("{e} (separate several windows with `;`)")
        } else {
            e
        }
    })?;
    let end = if end == 0 { DAY_MINUTES } else { end };
    if end == start {
        return Err(format!(
            "it starts and ends at {}; for the whole day write 00:00-24:00",
            Hm(start)
        ));
    }
    Ok((start, end))
}

/// "9:00", "09:30", "24:00", "9時", "9時30分", "9時半": minutes after midnight, at most 1440.
fn parse_time(t: &str) -> Result<u16, String> {
    let bad = || format!("`{t}` is not a time of day (expected e.g. 09:00, 9:30 or 24:00)");
    let (h, m) = if let Some((h, m)) = t.split_once(':') {
        (h, m)
    } else if let Some((h, m)) = t.split_once('時') {
        let m = match m {
            "" => "0",
            "半" => "30",
            m => m.strip_suffix('分').ok_or_else(bad)?,
        };
        (h, m)
    } else {
        return Err(bad());
    };
    let number = |s: &str, max_len: usize| -> Option<u16> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let h = number(h, 2).ok_or_else(bad)?;
    let m = number(m, 2).ok_or_else(bad)?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Folds the full-width forms spreadsheets produce (０９：００, ～, 〜, ideographic space)
/// and the dash look-alikes to ASCII; every tilde becomes `-`.
pub(crate) fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF5E}' | '\u{301C}' | '~' => '-',
            // Full-width ASCII block.
            '\u{FF01}'..='\u{FF5D}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            c => c,
        })
        .collect()
}

/// A minute of the day as "HH:MM".
struct Hm(u16);

impl fmt::Display for Hm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Window::ALWAYS {
            return f.write_str("always");
        }
        if self.days == ALL_DAYS {
            f.write_str("daily")?;
        } else {
            // Runs of consecutive days: "Mon-Fri", "Sat,Sun", "Mon,Wed,Fri".
            let mut first = true;
            let mut d = 0u8;
            while d < 7 {
                if !self.has_day(d) {
                    d += 1;
                    continue;
                }
                let mut last = d;
                while last + 1 < 7 && self.has_day(last + 1) {
                    last += 1;
                }
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                let name = |i: u8| DAY_NAMES.get(usize::from(i)).copied().unwrap_or("?");
                match last - d {
                    0 => f.write_str(name(d))?,
                    1 => write!(f, "{},{}", name(d), name(last))?,
                    _ => write!(f, "{}-{}", name(d), name(last))?,
                }
                d = last + 1;
            }
        }
        write!(f, " {}-{}", Hm(self.start), Hm(self.end))
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Several windows separated by `;` or `、`; an empty text gives none (no restriction).
///
/// A `、`-separated part that names only days joins the next part's days, so
/// "月、水、金 9:00-12:00" is one window on three days.
pub fn parse_windows(s: &str) -> Result<Vec<Window>, String> {
    let text = fold(s);
    let mut out = Vec::new();
    for group in text.split(';') {
        let parts: Vec<&str> = group
            .split('、')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let mut pending_days = String::new();
        for (i, part) in parts.iter().enumerate() {
            let days_only = !part.contains(|c: char| c.is_ascii_digit())
                && !ALWAYS_WORDS.contains(&part.to_lowercase().as_str())
                && parse_days(&part.to_lowercase()).is_ok();
            if days_only && i + 1 < parts.len() {
                pending_days.push_str(part);
                pending_days.push(',');
                continue;
            }
            let one = if pending_days.is_empty() {
                Window::parse(part)?
            } else {
                Window::parse(&format!("{pending_days}{part}"))?
            };
            pending_days.clear();
            if out.len() >= MAX_WINDOWS {
                return Err(format!("more than {MAX_WINDOWS} maintenance windows"));
            }
            out.push(one);
        }
    }
    Ok(out)
}

/// Whether the interval [from, to] lies inside the union of the windows (reversed bounds
/// are swapped). An empty list means no restriction and covers everything.
///
/// Cost is in the number of windows times seven days, whatever the interval's length.
pub fn covered_by_any(ws: &[Window], from: i64, to: i64, off: i32) -> bool {
    if ws.is_empty() {
        return true;
    }
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    let local = i128::from(from) + i128::from(off);
    // Position in the week of Monday 00:00 local; a week or more is checked as one week,
    // which any gap in the pattern would meet.
    let x = (local - FIRST_MONDAY_SECS).rem_euclid(WEEK_SECS);
    let len = (i128::from(to) - i128::from(from)).min(WEEK_SECS);
    let y = x + len;
    // Occurrences of the previous, this and the next week reach every point in [0, 2 weeks).
    let mut spans: Vec<(i128, i128)> = Vec::with_capacity(ws.len() * 21);
    for w in ws {
        let start = i128::from(w.start) * 60;
        let end = i128::from(w.end_after_start()) * 60;
        for week in -1i128..=1 {
            for d in 0..7u8 {
                if w.has_day(d) {
                    let base = week * WEEK_SECS + i128::from(d) * DAY_SECS;
                    spans.push((base + start, base + end));
                }
            }
        }
    }
    spans.sort_unstable();
    // Closed intervals: touching ones join.
    let mut cur: Option<(i128, i128)> = None;
    for (s, e) in spans {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            _ => {
                if let Some((cs, ce)) = cur {
                    if cs <= x && y <= ce {
                        return true;
                    }
                }
                cur = Some((s, e));
            }
        }
    }
    matches!(cur, Some((cs, ce)) if cs <= x && y <= ce)
}

/// Parses a UTC offset: "+09:00", "-05:30", "+0900", "+9", "Z", "UTC", "GMT", "JST" (=+09:00),
/// "UTC+09:00". Seconds east of UTC.
pub fn parse_utc_offset(s: &str) -> Result<i32, String> {
    let text = fold(s).trim().to_ascii_uppercase();
    let bad = || {
        format!(
            "`{}` is not a UTC offset (expected e.g. +09:00, -05:30, Z, UTC or JST)",
            s.trim()
        )
    };
    match text.as_str() {
        "Z" | "UTC" | "GMT" => return Ok(0),
        "JST" => return Ok(JST_OFFSET_SECS),
        _ => {}
    }
    let body = text
        .strip_prefix("UTC")
        .or_else(|| text.strip_prefix("GMT"))
        .unwrap_or(&text);
    let (sign, body) = match (body.strip_prefix('+'), body.strip_prefix('-')) {
        (Some(rest), _) => (1, rest),
        (_, Some(rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (h, m) = match (body.split_once(':'), body.get(..2), body.get(2..)) {
        (Some((h, m)), _, _) => (h, m),
        // "+0900"
        (None, Some(h), Some(m)) if body.len() == 4 => (h, m),
        _ => (body, "0"),
    };
    let digits = |x: &str| {
        (!x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse::<i32>().ok())
            .flatten()
    };
    let (h, m) = (digits(h).ok_or_else(bad)?, digits(m).ok_or_else(bad)?);
    if m > 59 {
        return Err(bad());
    }
    let secs = h * 3600 + m * 60;
    if secs > MAX_UTC_OFFSET_SECS {
        return Err(format!(
            "`{}`: a UTC offset is at most 18:00 either way",
            s.trim()
        ));
    }
    Ok(sign * secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JST: i32 = JST_OFFSET_SECS;

    /// Unix seconds of a local time in Japan, 2025-06-02 (a Monday) plus `day` days.
    fn jst(day: i64, h: i64, m: i64, s: i64) -> i64 {
        // 2025-06-02T00:00:00+09:00 = 1748790000.
        1_748_790_000 + day * 86_400 + h * 3600 + m * 60 + s
    }

    fn w(s: &str) -> Window {
        Window::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn reference_monday_is_a_monday() {
        // Anchor for the other tests: only Monday matches at 12:00.
        assert!(w("Mon 00:00-24:00").contains(jst(0, 12, 0, 0), JST));
        assert!(!w("Tue 00:00-24:00").contains(jst(0, 12, 0, 0), JST));
        assert!(w("Sun 00:00-24:00").contains(jst(-1, 12, 0, 0), JST));
    }

    #[test]
    fn english_forms_and_canonical_display() {
        for (input, canon) in [
            ("Mon-Fri 09:00-18:00", "Mon-Fri 09:00-18:00"),
            ("Sat,Sun 10:00-12:00", "Sat,Sun 10:00-12:00"),
            ("sat, sun 10:00 - 12:00", "Sat,Sun 10:00-12:00"),
            ("daily 22:00-06:00", "daily 22:00-06:00"),
            ("always", "always"),
            ("ALWAYS", "always"),
            ("24/7", "always"),
            ("9:00-17:00", "daily 09:00-17:00"),
            ("weekdays 8:30-17:15", "Mon-Fri 08:30-17:15"),
            ("Fri-Mon 20:00-23:00", "Mon,Fri-Sun 20:00-23:00"),
            (
                "Monday Wednesday Friday 9:00-12:00",
                "Mon,Wed,Fri 09:00-12:00",
            ),
            ("Mon-Fri 18:00-24:00", "Mon-Fri 18:00-24:00"),
            ("Mon-Fri 18:00-00:00", "Mon-Fri 18:00-24:00"),
            ("Mon-Sun 00:00-24:00", "always"),
            ("Sat,Sun", "Sat,Sun 00:00-24:00"),
            ("every day 9:00-17:00", "daily 09:00-17:00"),
            ("every Monday 9:00-17:00", "Mon 09:00-17:00"),
        ] {
            assert_eq!(w(input).to_string(), canon, "{input}");
        }
    }

    #[test]
    fn japanese_forms() {
        for (input, canon) in [
            ("平日 9:00-17:00", "Mon-Fri 09:00-17:00"),
            ("毎日 22:00～6:00", "daily 22:00-06:00"),
            ("毎日 22:00〜6:00", "daily 22:00-06:00"),
            ("月-金 8:30-17:15", "Mon-Fri 08:30-17:15"),
            ("月～金 8:30～17:15", "Mon-Fri 08:30-17:15"),
            ("月曜日～金曜日 9時～17時30分", "Mon-Fri 09:00-17:30"),
            ("月水金 9:00-12:00", "Mon,Wed,Fri 09:00-12:00"),
            ("月・水・金 9:00-12:00", "Mon,Wed,Fri 09:00-12:00"),
            ("土日 10:00-12:00", "Sat,Sun 10:00-12:00"),
            ("日曜 10:00-12:00", "Sun 10:00-12:00"),
            ("平日０９：００～１８：００", "Mon-Fri 09:00-18:00"),
            ("　平日　９：００－１８：００　", "Mon-Fri 09:00-18:00"),
            ("常時", "always"),
            ("24時間", "always"),
            ("２４時間", "always"),
            ("平日 24時間", "Mon-Fri 00:00-24:00"),
            ("土日終日", "Sat,Sun 00:00-24:00"),
            ("毎週月曜 9時半-12時", "Mon 09:30-12:00"),
            ("週末 9:00-24:00", "Sat,Sun 09:00-24:00"),
        ] {
            assert_eq!(w(input).to_string(), canon, "{input}");
        }
    }

    #[test]
    fn holidays_are_refused_with_a_reason() {
        for input in [
            "土日祝 10:00-12:00",
            "祝日 9:00-17:00",
            "Sat,Sun,holidays 9:00-12:00",
        ] {
            let e = Window::parse(input).unwrap_err();
            assert!(e.contains("holiday calendar"), "{input}: {e}");
        }
    }

    #[test]
    fn errors_say_what_was_expected() {
        // Days with no time mean those whole days.
        assert_eq!(w("Mon-Fri").to_string(), "Mon-Fri 00:00-24:00");
        for input in [
            "",
            "Mon-Fri 9-17",
            "Mon-Fri 09:00",
            "Mon-Fri 25:00-26:00",
            "Mon-Fri 09:60-10:00",
            "Mon-Fri 24:00-06:00",
            "Mon-Fri 24:30-06:00",
            "Mon-Fri 09:00-09:00",
            "Funday 09:00-10:00",
            "-Fri 09:00-10:00",
            "平日-土 09:00-10:00",
            "Mon-Fri 09:00-18:00, Sat 10:00-12:00",
        ] {
            let e = Window::parse(input).unwrap_err();
            assert!(e.contains("expected"), "{input}: {e}");
            assert!(e.contains("e.g."), "{input}: {e}");
        }
        for two in [
            "Mon-Fri 09:00-18:00, Sat 10:00-12:00",
            "平日9:00～17:00 土日10:00～12:00",
        ] {
            let e = Window::parse(two).unwrap_err();
            assert!(e.contains("separate several windows with `;`"), "{e}");
        }
        let long = "Mon ".repeat(100);
        assert!(Window::parse(&long).is_err());
    }

    #[test]
    fn contains_office_hours_in_japan() {
        let office = w("平日 9:00-18:00");
        assert!(office.contains(jst(0, 9, 0, 0), JST));
        assert!(
            office.contains(jst(0, 18, 0, 0), JST),
            "the end minute is inside"
        );
        assert!(!office.contains(jst(0, 18, 0, 1), JST));
        assert!(!office.contains(jst(0, 8, 59, 59), JST));
        assert!(office.contains(jst(4, 12, 0, 0), JST), "Friday");
        assert!(!office.contains(jst(5, 12, 0, 0), JST), "Saturday");
        // The same instant read as UTC is 03:00, outside.
        assert!(!office.contains(jst(0, 12, 0, 0), 0));
        // 21:00 in Japan is noon in UTC.
        assert!(!office.contains(jst(0, 21, 0, 0), JST));
        assert!(office.contains(jst(0, 21, 0, 0), 0));
    }

    #[test]
    fn overnight_belongs_to_the_day_it_starts() {
        // Friday night into Saturday morning, but not Sunday night.
        let night = w("Mon-Fri 22:00-06:00");
        assert!(night.contains(jst(4, 23, 0, 0), JST));
        assert!(
            night.contains(jst(5, 5, 59, 0), JST),
            "Saturday 05:59 from Friday"
        );
        assert!(night.contains(jst(5, 6, 0, 0), JST));
        assert!(!night.contains(jst(5, 6, 0, 1), JST));
        assert!(!night.contains(jst(5, 23, 0, 0), JST), "Saturday night");
        assert!(
            !night.contains(jst(0, 3, 0, 0), JST),
            "Monday 03:00 came from Sunday"
        );
        assert!(
            night.contains(jst(1, 3, 0, 0), JST),
            "Tuesday 03:00 from Monday"
        );
        // Sunday night runs into Monday.
        let sunday = w("Sun 22:00-02:00");
        assert!(sunday.contains(jst(0, 1, 0, 0), JST));
    }

    #[test]
    fn covers_whole_sessions_only() {
        let office = w("Mon-Fri 09:00-18:00");
        assert!(office.covers(jst(0, 10, 0, 0), jst(0, 17, 0, 0), JST));
        assert!(office.covers(jst(0, 9, 0, 0), jst(0, 18, 0, 0), JST));
        assert!(!office.covers(jst(0, 17, 0, 0), jst(0, 18, 0, 1), JST));
        assert!(
            !office.covers(jst(0, 10, 0, 0), jst(1, 10, 0, 0), JST),
            "overnight gap"
        );
        // Reversed bounds are swapped.
        assert!(office.covers(jst(0, 17, 0, 0), jst(0, 10, 0, 0), JST));
        let night = w("daily 22:00-06:00");
        assert!(
            night.covers(jst(2, 23, 0, 0), jst(3, 5, 0, 0), JST),
            "across midnight"
        );
        assert!(!night.covers(jst(2, 23, 0, 0), jst(3, 7, 0, 0), JST));
        // Adjacent days join: Friday 00:00-24:00 and Saturday are one stretch.
        let long = w("Fri-Sun");
        assert!(
            long.covers(jst(4, 0, 0, 0), jst(7, 0, 0, 0), JST),
            "to Monday 00:00"
        );
        assert!(!long.covers(jst(4, 0, 0, 0), jst(7, 0, 0, 1), JST));
    }

    #[test]
    fn long_intervals_only_under_always() {
        let month = 30 * 86_400;
        assert!(Window::ALWAYS.covers(jst(0, 0, 0, 0), jst(0, 0, 0, 0) + month, JST));
        assert!(w("毎日 00:00-24:00").covers(0, month, JST));
        assert!(!w("daily 00:01-24:00").covers(0, month, JST));
        assert!(!w("Mon-Sat").covers(0, month, JST));
        assert!(Window::ALWAYS.covers(i64::MIN, i64::MAX, i32::MAX));
        assert!(!w("Mon 09:00-10:00").covers(i64::MIN, i64::MAX, i32::MIN));
    }

    #[test]
    fn several_windows_join() {
        let ws = parse_windows("Mon-Fri 09:00-18:00; Mon-Fri 18:00-22:00").unwrap();
        assert_eq!(ws.len(), 2);
        // Neither alone covers 17:00-19:00, together they do.
        let (a, b) = (jst(0, 17, 0, 0), jst(0, 19, 0, 0));
        assert!(!ws.iter().any(|x| x.covers(a, b, JST)));
        assert!(covered_by_any(&ws, a, b, JST));
        assert!(!covered_by_any(&ws, a, jst(0, 22, 0, 1), JST));
        assert!(covered_by_any(&[], a, b, JST), "no windows: no restriction");

        let ja = parse_windows("平日 9:00-17:00、土 9:00-12:00").unwrap();
        assert_eq!(ja.len(), 2);
        assert_eq!(ja[1].to_string(), "Sat 09:00-12:00");
        let listed = parse_windows("月、水、金 9:00-12:00").unwrap();
        assert_eq!(listed, vec![w("Mon,Wed,Fri 09:00-12:00")]);
        assert_eq!(parse_windows("  ").unwrap(), vec![]);
        assert_eq!(
            parse_windows("平日 9:00-17:00；土日 10:00-12:00")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_windows(&"9:00-10:00;".repeat(MAX_WINDOWS + 1)).is_err());
        assert!(parse_windows("平日 9:00-17:00; 祝日").is_err());
    }

    #[test]
    fn serializes_as_its_text() {
        let json = serde_json::to_string(&w("平日 9:00-17:00")).unwrap();
        assert_eq!(json, "\"Mon-Fri 09:00-17:00\"");
    }

    #[test]
    fn utc_offsets() {
        for (input, secs) in [
            ("+09:00", 32_400),
            ("-05:30", -19_800),
            ("+0900", 32_400),
            ("+9", 32_400),
            ("Z", 0),
            ("UTC", 0),
            ("utc", 0),
            ("JST", 32_400),
            ("UTC+09:00", 32_400),
            ("＋０９：００", 32_400),
            ("-00:00", 0),
        ] {
            assert_eq!(parse_utc_offset(input), Ok(secs), "{input}");
        }
        for input in [
            "",
            "09:00",
            "+25:00",
            "+09:60",
            "+123",
            "PST",
            "+",
            "+9:",
            "- 祝",
            "+０９時",
        ] {
            let e = parse_utc_offset(input).unwrap_err();
            assert!(e.contains("UTC offset"), "{input}: {e}");
        }
    }

    fn any_window() -> impl Strategy<Value = Window> {
        (1u8..=ALL_DAYS, 0u16..DAY_MINUTES, 1u16..=DAY_MINUTES)
            .prop_filter("start and end differ", |(_, s, e)| s != e)
            .prop_map(|(days, start, end)| Window { days, start, end })
    }

    proptest! {
        #[test]
        fn a_point_is_covered_when_contained(
            win in any_window(),
            t in -4_000_000_000i64..8_000_000_000,
            off in -50_400i32..=50_400,
        ) {
            prop_assert_eq!(win.covers(t, t, off), win.contains(t, off));
        }

        /// `covers` agrees with sampling every 30 s: windows are whole minutes, so every
        /// gap is an open stretch of at least 60 s and holds a sample.
        #[test]
        fn covers_matches_sampling(
            win in any_window(),
            a in -4_000_000_000i64..8_000_000_000,
            len in 0i64..(3 * 86_400),
            off in -50_400i32..=50_400,
        ) {
            let b = a + len;
            let sampled = win.contains(a, off)
                && win.contains(b, off)
                && (a..b).step_by(30).all(|t| win.contains(t, off));
            prop_assert_eq!(win.covers(a, b, off), sampled);
        }

        #[test]
        fn display_parses_back(win in any_window()) {
            let text = win.to_string();
            prop_assert_eq!(Window::parse(&text), Ok(win), "{}", text);
        }

        #[test]
        fn parse_never_panics(s in "[0-9:～〜ー\\- 月火水木金土日曜平毎祝a-zA-Z,;、]{0,40}") {
            let _ = Window::parse(&s);
            let _ = parse_windows(&s);
            let _ = parse_utc_offset(&s);
        }
    }
}
