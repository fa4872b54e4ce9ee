//! Health: what the agent itself is doing — frames read and lost (kernel ring, interface,
//! worker queues), frames that did not parse, flows evicted, the spool, CPU and memory —
//! as a record that is logged and shipped as a [`Body::Health`](crate::findings::Body)
//! finding.
//!
//! The loss of a period is `(kernel + interface + queue drops) / (frames read + kernel +
//! interface drops)` over the frames offered in that period; above the configured share
//! the record carries `"drop_alarm": true`.

use super::counters::Shared;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's USER_HZ, 100 on every
/// Linux architecture the agent is built for (proc(5)).
const USER_HZ: f64 = 100.0;

/// CPU time and memory of this process, from `/proc/self`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time of all threads, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size, bytes.
    pub rss_peak_bytes: u64,
    /// Anonymous resident memory (the heap: flows, queues, inventory), bytes; the rest
    /// is mostly the kernel's capture rings and the program's own pages.
    pub rss_anon_bytes: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcessStats {
    /// Reads `/proc/self/stat` and `/proc/self/status` (zeros where unreadable).
    pub fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        ProcessStats::parse(&stat, &status)
    }

    /// Parses the two files' text (proc(5)).
    pub fn parse(stat: &str, status: &str) -> ProcessStats {
        // The command name (field 2) is in parentheses and may hold spaces and ')':
        // fields are counted after the last ')'. Field 3 (state) is then index 0, so
        // utime (14) is index 11, stime (15) index 12, num_threads (20) index 17.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |k| k.saturating_mul(1024))
        };
        ProcessStats {
            cpu_seconds: (num(11) + num(12)) as f64 / USER_HZ,
            rss_bytes: kb("VmRSS:"),
            rss_peak_bytes: kb("VmHWM:"),
            rss_anon_bytes: kb("RssAnon:"),
            threads: num(17),
        }
    }
}

/// One interface in the health record.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InterfaceHealth {
    /// Interface.
    pub name: String,
    /// Capture backend.
    pub backend: &'static str,
    /// Frames read from the kernel.
    pub frames: u64,
    /// Bytes of those frames as captured.
    pub bytes: u64,
    /// Frames the kernel dropped because the ring was full (`None`: the backend does not
    /// say).
    pub kernel_drops: Option<u64>,
    /// Frames the interface or its driver dropped.
    pub interface_drops: Option<u64>,
    /// Frames dropped because a worker's queue stayed full.
    pub queue_drops: u64,
    /// Frames cut by the snap length.
    pub truncated: u64,
    /// Times the capture was reopened after an error.
    pub reopened: u64,
    /// The capture's latest error, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The health record.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Health {
    /// Record type: `health`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Agent version.
    pub version: &'static str,
    /// Seconds since the start.
    pub uptime_seconds: u64,
    /// Seconds this record's rates cover.
    pub period_seconds: f64,
    /// Per interface, totals since the start.
    pub interfaces: Vec<InterfaceHealth>,
    /// Frames the workers processed.
    pub packets: u64,
    /// Frames too short or malformed to decode, or of an unsupported link type.
    pub not_parsed: u64,
    /// Frames that were not IP.
    pub not_ip: u64,
    /// Later fragments whose first fragment was not seen.
    pub orphan_fragments: u64,
    /// Flows in the tables now.
    pub flows_live: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows evicted because a table was full.
    pub flows_evicted: u64,
    /// The tables' combined cap.
    pub max_flows: u64,
    /// Frames lost (kernel, interface, queues) since the start.
    pub dropped: u64,
    /// Share of offered frames lost in this period.
    pub drop_rate: f64,
    /// The drop rate passed the threshold.
    pub drop_alarm: bool,
    /// The threshold.
    pub drop_alarm_threshold: f64,
    /// Findings waiting in the spool.
    pub spool_pending: Option<u64>,
    /// Their size.
    pub spool_bytes: Option<u64>,
    /// Findings ever evicted from the spool for its cap.
    pub spool_evicted: Option<u64>,
    /// Findings delivered to the collector since the start.
    pub delivered: u64,
    /// The latest shipping error, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_error: Option<String>,
    /// Successful rule reloads.
    pub rules_reloads: u64,
    /// The latest failed rule reload, while it lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_error: Option<String>,
    /// CPU time of the process, seconds.
    pub cpu_seconds: f64,
    /// CPU use in this period, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Peak resident memory, bytes.
    pub rss_peak_bytes: u64,
    /// Of the resident memory, the heap (flows, queues, inventory), bytes.
    pub rss_anon_bytes: u64,
}

impl Health {
    /// The record as a finding body's map.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// One line for the log.
    pub fn summary_line(&self) -> String {
        let sum = |f: fn(&InterfaceHealth) -> u64| self.interfaces.iter().map(f).sum::<u64>();
        // A backend without kernel statistics (pnet) cannot say what the kernel dropped.
        let known = |f: fn(&InterfaceHealth) -> Option<u64>| {
            self.interfaces
                .iter()
                .map(f)
                .sum::<Option<u64>>()
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
        };
        format!(
            "{} frames, {} lost (kernel {}, interface {}, queues {}; {:.3}% this period), {} not parsed, {} flows live ({} evicted), spool {} pending, CPU {:.1}%, RSS {} MiB ({} MiB heap)",
            sum(|i| i.frames),
            self.dropped,
            known(|i| i.kernel_drops),
            known(|i| i.interface_drops),
            sum(|i| i.queue_drops),
            self.drop_rate * 100.0,
            self.not_parsed,
            self.flows_live,
            self.flows_evicted,
            self.spool_pending.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            self.cpu_percent,
            self.rss_bytes >> 20,
            self.rss_anon_bytes >> 20
        )
    }
}

/// Keeps the previous totals, to give each record its period's rates.
pub(crate) struct Meter {
    started: Instant,
    last: Instant,
    last_cpu: f64,
    last_offered: u64,
    last_lost: u64,
    threshold: f64,
}

impl Meter {
    /// A meter starting now.
    pub fn new(threshold: f64) -> Meter {
        let now = Instant::now();
        Meter {
            started: now,
            last: now,
            last_cpu: ProcessStats::read().cpu_seconds,
            last_offered: 0,
            last_lost: 0,
            threshold,
        }
    }

    /// Changes the alarm threshold (configuration reloaded).
    pub fn set_threshold(&mut self, threshold: f64) {
        self.threshold = threshold;
    }

    /// The record for the period since the previous call.
    pub fn sample(&mut self, shared: &Shared) -> Health {
        let now = Instant::now();
        let period = now.duration_since(self.last).as_secs_f64();
        let proc_stats = ProcessStats::read();
        let mut interfaces = Vec::new();
        let (mut offered, mut lost) = (0u64, 0u64);
        for c in &shared.interfaces {
            let frames = c.frames.load(Ordering::Relaxed);
            let has_stats = c.has_kernel_stats.load(Ordering::Relaxed);
            let kernel = c.kernel_drops.load(Ordering::Relaxed);
            let ifd = c.interface_drops.load(Ordering::Relaxed);
            let queue = c.queue_drops.load(Ordering::Relaxed);
            offered = offered.saturating_add(frames + kernel + ifd);
            lost = lost.saturating_add(kernel + ifd + queue);
            interfaces.push(InterfaceHealth {
                name: c.name.clone(),
                backend: c.backend.as_str(),
                frames,
                bytes: c.bytes.load(Ordering::Relaxed),
                kernel_drops: has_stats.then_some(kernel),
                interface_drops: has_stats.then_some(ifd),
                queue_drops: queue,
                truncated: c.truncated.load(Ordering::Relaxed),
                reopened: c.reopened.load(Ordering::Relaxed),
                error: c.error.lock().ok().and_then(|e| e.clone()),
            });
        }
        let d_offered = offered.saturating_sub(self.last_offered);
        let d_lost = lost.saturating_sub(self.last_lost);
        let drop_rate = if d_offered == 0 {
            0.0
        } else {
            (d_lost as f64 / d_offered as f64).min(1.0)
        };
        let w = shared.workers_total();
        let spool = shared.spool.lock().ok().and_then(|s| s.clone());
        let (delivered, ship_error) = shared
            .ship
            .lock()
            .map(|s| (s.delivered, s.error.clone()))
            .unwrap_or_default();
        let cpu_percent = if period > 0.0 {
            ((proc_stats.cpu_seconds - self.last_cpu).max(0.0) / period) * 100.0
        } else {
            0.0
        };
        let h = Health {
            kind: "health",
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: now.duration_since(self.started).as_secs(),
            period_seconds: (period * 1000.0).round() / 1000.0,
            interfaces,
            packets: w.packets,
            not_parsed: w.malformed + w.unsupported_link,
            not_ip: w.not_ip,
            orphan_fragments: w.orphan_fragments,
            flows_live: w.flows_live,
            flows_created: w.created,
            flows_evicted: w.evicted,
            max_flows: shared.max_flows,
            dropped: lost,
            drop_rate: (drop_rate * 1e6).round() / 1e6,
            drop_alarm: d_lost > 0 && drop_rate > self.threshold,
            drop_alarm_threshold: self.threshold,
            spool_pending: spool.as_ref().map(|s| s.pending),
            spool_bytes: spool.as_ref().map(|s| s.bytes),
            spool_evicted: spool.as_ref().map(|s| s.evicted),
            delivered,
            ship_error,
            rules_reloads: shared.rules_reloads.load(Ordering::Relaxed),
            rules_error: shared.rules_error.lock().ok().and_then(|e| e.clone()),
            cpu_seconds: (proc_stats.cpu_seconds * 100.0).round() / 100.0,
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            rss_bytes: proc_stats.rss_bytes,
            rss_peak_bytes: proc_stats.rss_peak_bytes,
            rss_anon_bytes: proc_stats.rss_anon_bytes,
        };
        self.last = now;
        self.last_cpu = proc_stats.cpu_seconds;
        self.last_offered = offered;
        self.last_lost = lost;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_past_a_hostile_command_name() {
        // proc(5) /proc/pid/stat: the name may contain ") " itself.
        let stat = "4242 (evil) 1 2 (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 7 0 123 456 789";
        let status = "Name:\tsetten-agent\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    2048 kB\nThreads:\t7\n";
        let p = ProcessStats::parse(stat, status);
        assert_eq!(p.cpu_seconds, 3.25);
        assert_eq!(p.rss_bytes, 10 << 20);
        assert_eq!(p.rss_peak_bytes, 20 << 20);
        assert_eq!(p.rss_anon_bytes, 2 << 20);
        assert_eq!(p.threads, 7);
        assert_eq!(ProcessStats::parse("", ""), ProcessStats::default());
    }

    #[test]
    fn this_process_has_memory_and_threads() {
        let p = ProcessStats::read();
        assert!(p.rss_bytes > 0);
        assert!(p.threads >= 1);
    }
}
