//! Bar charts drawn as inline SVG by the templates: this module only computes numbers
//! and labels of its own making (dates, hours), never text from the network.

use serde::Serialize;

/// Width of the drawing area, in SVG user units.
pub const WIDTH: u32 = 720;
/// Height of the bars' area.
pub const HEIGHT: u32 = 140;
/// Days shown at most in a per-day chart (the latest ones).
pub const MAX_DAYS: usize = 92;

/// One bar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// What it counts (shown on hover and in the table).
    pub label: String,
    /// The count.
    pub value: u64,
    /// Whether an axis label is drawn under it.
    pub tick: bool,
}

/// A bar chart.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Chart {
    /// Bars, left to right.
    pub bars: Vec<Bar>,
    /// Largest value (the top of the scale).
    pub max: u64,
    /// Drawing width.
    pub width: u32,
    /// Bars' height.
    pub height: u32,
}

/// A chart of `(label, value)` pairs; every `tick_every`-th bar gets an axis label.
pub fn bars(values: &[(String, u64)], tick_every: usize) -> Chart {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let n = values.len().max(1) as f64;
    let slot = f64::from(WIDTH) / n;
    let w = (slot * 0.8).max(1.0);
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, (label, v))| {
            let h = (*v as f64 / max as f64) * f64::from(HEIGHT);
            Bar {
                x: ((i as f64 * slot + (slot - w) / 2.0) * 100.0).round() / 100.0,
                y: ((f64::from(HEIGHT) - h) * 100.0).round() / 100.0,
                w: (w * 100.0).round() / 100.0,
                h: (h * 100.0).round() / 100.0,
                label: label.clone(),
                value: *v,
                tick: tick_every > 0 && i % tick_every == 0,
            }
        })
        .collect();
    Chart {
        bars,
        max,
        width: WIDTH,
        height: HEIGHT,
    }
}

/// Local civil date of a time: (year, month, day) at `offset_secs` from UTC
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`).
pub fn civil(us: i64, offset_secs: i32) -> (i64, u32, u32, u32, u32) {
    let secs = us.div_euclid(1_000_000) + i64::from(offset_secs);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (rem / 3600) as u32, ((rem % 3600) / 60) as u32)
}

/// `YYYY-MM-DD HH:MM` in local time.
pub fn local_time(us: i64, offset_secs: i32) -> String {
    let (y, m, d, hh, mm) = civil(us, offset_secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}")
}

/// Sessions started per local day, from the first active day to the last (the latest
/// [`MAX_DAYS`] of them).
pub fn per_day(sessions: &[(u64, u64)], offset_secs: i32) -> Chart {
    let day = |us: u64| {
        (i64::try_from(us).unwrap_or(i64::MAX) / 1_000_000 + i64::from(offset_secs))
            .div_euclid(86_400)
    };
    let (Some(first), Some(last)) = (
        sessions.iter().map(|s| day(s.0)).min(),
        sessions.iter().map(|s| day(s.0)).max(),
    ) else {
        return bars(&[], 1);
    };
    let first = first.max(last - MAX_DAYS as i64 + 1);
    let n = (last - first + 1) as usize;
    let mut counts = vec![0u64; n];
    for s in sessions {
        let d = day(s.0);
        if d >= first {
            if let Some(c) = counts.get_mut((d - first) as usize) {
                *c += 1;
            }
        }
    }
    let values: Vec<(String, u64)> = counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (y, m, d, _, _) = civil((first + i as i64) * 86_400 * 1_000_000, 0);
            (format!("{y:04}-{m:02}-{d:02}"), c)
        })
        .collect();
    let tick = values.len().div_ceil(8).max(1);
    bars(&values, tick)
}

/// Sessions active in each hour of the day (the point's `hours`).
pub fn per_hour(hours: &[u32; 24]) -> Chart {
    let values: Vec<(String, u64)> = hours
        .iter()
        .enumerate()
        .map(|(h, c)| (format!("{h:02}:00"), u64::from(*c)))
        .collect();
    bars(&values, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-10-05T00:00:00Z.
    const T0: u64 = 1_791_158_400_000_000;

    #[test]
    fn local_dates_follow_the_offset() {
        assert_eq!(local_time(T0 as i64, 9 * 3600), "2026-10-05 09:00");
        assert_eq!(local_time(T0 as i64 - 1, 0), "2026-10-04 23:59");
        assert_eq!(local_time(0, 0), "1970-01-01 00:00");
        assert_eq!(
            civil(951_782_400_000_000, 0).0..=civil(951_782_400_000_000, 0).0,
            2000..=2000
        );
        assert_eq!(local_time(951_782_400_000_000, 0), "2000-02-29 00:00");
    }

    #[test]
    fn sessions_are_counted_per_local_day_with_empty_days_between() {
        let h = 3_600_000_000u64;
        // 09:00 and 23:00 JST on 10-05, nothing on 10-06, 01:00 JST on 10-07 (still 10-06 UTC).
        let s = [
            (T0, T0 + h),
            (T0 + 14 * h, T0 + 15 * h),
            (T0 + 40 * h, T0 + 41 * h),
        ];
        let c = per_day(&s, 9 * 3600);
        let got: Vec<(&str, u64)> = c.bars.iter().map(|b| (b.label.as_str(), b.value)).collect();
        assert_eq!(
            got,
            [("2026-10-05", 2), ("2026-10-06", 0), ("2026-10-07", 1)]
        );
        assert_eq!(c.max, 2);
        let tallest = c.bars.iter().map(|b| b.h).fold(0.0, f64::max);
        assert_eq!(tallest, f64::from(HEIGHT));
        assert!(per_day(&[], 0).bars.is_empty());
        // Long spans keep the latest days only.
        let long: Vec<(u64, u64)> = (0..200)
            .map(|d| (T0 + d * 24 * h, T0 + d * 24 * h))
            .collect();
        assert_eq!(per_day(&long, 0).bars.len(), MAX_DAYS);
    }

    #[test]
    fn hours_chart_has_24_bars() {
        let mut hours = [0u32; 24];
        hours[9] = 4;
        hours[14] = 2;
        let c = per_hour(&hours);
        assert_eq!(c.bars.len(), 24);
        assert_eq!(c.bars[9].value, 4);
        assert_eq!(c.bars[9].label, "09:00");
        assert!(c.bars[9].h > c.bars[14].h && c.bars[3].h == 0.0);
        // Left to right, inside the drawing, not overlapping.
        for pair in c.bars.windows(2) {
            assert!(pair[0].x + pair[0].w <= pair[1].x, "{pair:?}");
        }
        let last = c.bars.last().unwrap();
        assert!(last.x + last.w <= f64::from(WIDTH));
        assert!(c.bars[0].x >= 0.0);
    }
}
