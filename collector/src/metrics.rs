//! Counters for `GET /metrics`, in the Prometheus text exposition format (version
//! 0.0.4). Fixed label sets (routes, rejection reasons), so the memory is bounded
//! whatever the clients send.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No or unknown token (401).
    Unauthenticated,
    /// Revoked token (403).
    Revoked,
    /// The role may not do this, or the batch names another agent (403).
    Forbidden,
    /// Body over the limit (413).
    TooLarge,
    /// Malformed or invalid input (400).
    BadRequest,
    /// Over the per-agent rate (429).
    RateLimited,
    /// The collector is busy (503) or the store failed (500).
    Unavailable,
    /// The body did not arrive in time (408).
    Timeout,
    /// No such resource (404).
    NotFound,
    /// A sequence number reused for another finding (409).
    Conflict,
}

impl Reason {
    const ALL: [Reason; 10] = [
        Reason::Unauthenticated,
        Reason::Revoked,
        Reason::Forbidden,
        Reason::TooLarge,
        Reason::BadRequest,
        Reason::RateLimited,
        Reason::Unavailable,
        Reason::Timeout,
        Reason::NotFound,
        Reason::Conflict,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unauthenticated => "unauthenticated",
            Reason::Revoked => "revoked",
            Reason::Forbidden => "forbidden",
            Reason::TooLarge => "too_large",
            Reason::BadRequest => "bad_request",
            Reason::RateLimited => "rate_limited",
            Reason::Unavailable => "unavailable",
            Reason::Timeout => "timeout",
            Reason::NotFound => "not_found",
            Reason::Conflict => "conflict",
        }
    }
}

/// The routes timed.
pub const ROUTES: &[&str] = &[
    "POST /api/v1/findings",
    "POST /api/v1/heartbeat",
    "GET /api/v1/connection-points",
    "GET /api/v1/connection-points/{id}",
    "GET /api/v1/hosts",
    "GET /api/v1/agents",
    "GET /api/v1/alerts",
    "GET /api/v1/alerts/{id}",
    "POST /api/v1/alerts/{id}/ack",
    "GET /healthz",
    "GET /metrics",
    "other",
];

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; 13],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// The collector's counters.
#[derive(Default)]
pub struct Metrics {
    batches: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    heartbeats: AtomicU64,
    connections_refused: AtomicU64,
    rejections: [AtomicU64; 9],
    latency: [Histogram; 12],
    alerts_raised: AtomicU64,
    /// Delivered, failed (to be retried), given up.
    deliveries: [AtomicU64; 3],
}

/// What became of a delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver accepted it.
    Delivered,
    /// It failed and will be retried.
    Failed,
    /// It failed and was given up.
    GivenUp,
}

/// Values read from elsewhere at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Connection points in the merged inventory.
    pub connection_points: u64,
    /// Enrolled, not revoked agents (role agent).
    pub agents: u64,
    /// Enrolled, not revoked readers.
    pub readers: u64,
    /// Revoked credentials.
    pub revoked: u64,
    /// Findings stored.
    pub findings: u64,
    /// Stored findings that could not be read back.
    pub unreadable: u64,
}

impl Metrics {
    /// A stored batch.
    pub fn batch(&self, stored: u64, duplicates: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.stored.fetch_add(stored, Relaxed);
        self.duplicates.fetch_add(duplicates, Relaxed);
    }

    /// A heartbeat.
    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Relaxed);
    }

    /// A connection closed at once because too many were open.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// Alerts raised.
    pub fn alerts_raised(&self, n: u64) {
        self.alerts_raised.fetch_add(n, Relaxed);
    }

    /// A delivery attempt.
    pub fn delivery(&self, o: DeliveryOutcome) {
        let i = match o {
            DeliveryOutcome::Delivered => 0,
            DeliveryOutcome::Failed => 1,
            DeliveryOutcome::GivenUp => 2,
        };
        self.deliveries[i].fetch_add(1, Relaxed);
    }

    /// A refused request.
    pub fn reject(&self, r: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|x| *x == r) {
            self.rejections[i].fetch_add(1, Relaxed);
        }
    }

    /// A request's latency on a route (an index into [`ROUTES`]).
    pub fn observe(&self, route: usize, d: Duration) {
        let Some(h) = self.latency.get(route) else {
            return;
        };
        let secs = d.as_secs_f64();
        for (b, le) in h.buckets.iter().zip(BUCKETS) {
            if secs <= *le {
                b.fetch_add(1, Relaxed);
            }
        }
        h.count.fetch_add(1, Relaxed);
        h.sum_us
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The route index of a matched path.
    pub fn route(method: &str, matched: Option<&str>) -> usize {
        let Some(path) = matched else {
            return ROUTES.len() - 1;
        };
        ROUTES
            .iter()
            .position(|r| {
                r.split_once(' ')
                    .is_some_and(|(m, p)| m == method && p == path)
            })
            .unwrap_or(ROUTES.len() - 1)
    }

    /// The text exposition.
    pub fn render(&self, g: Gauges) -> String {
        let mut o = String::with_capacity(8192);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "setten_ingest_batches_total",
            "Batches of findings stored (API and file import by this process).",
            self.batches.load(Relaxed),
        );
        counter(
            "setten_findings_stored_total",
            "Findings newly stored.",
            self.stored.load(Relaxed),
        );
        counter(
            "setten_findings_duplicates_total",
            "Findings received again and not stored twice.",
            self.duplicates.load(Relaxed),
        );
        counter(
            "setten_heartbeats_total",
            "Heartbeats received.",
            self.heartbeats.load(Relaxed),
        );
        counter(
            "setten_connections_refused_total",
            "Connections closed at once because the connection cap was reached.",
            self.connections_refused.load(Relaxed),
        );
        counter(
            "setten_alerts_raised_total",
            "Alerts raised (repeats folded into an alert not counted).",
            self.alerts_raised.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP setten_alert_deliveries_total Alert delivery attempts, by result.\n# TYPE setten_alert_deliveries_total counter"
        );
        for (r, c) in ["delivered", "failed", "given_up"]
            .iter()
            .zip(&self.deliveries)
        {
            let _ = writeln!(
                o,
                "setten_alert_deliveries_total{{result=\"{r}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP setten_rejections_total Requests refused, by reason.\n# TYPE setten_rejections_total counter"
        );
        for (r, c) in Reason::ALL.iter().zip(&self.rejections) {
            let _ = writeln!(
                o,
                "setten_rejections_total{{reason=\"{}\"}} {}",
                r.as_str(),
                c.load(Relaxed)
            );
        }
        let mut gauge = |name: &str, help: &str, labels: &str, v: u64, head: bool| {
            if head {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            }
            let _ = writeln!(o, "{name}{labels} {v}");
        };
        gauge(
            "setten_connection_points",
            "External connection points in the merged inventory.",
            "",
            g.connection_points,
            true,
        );
        gauge(
            "setten_agents",
            "Enrolled credentials, by role and state.",
            "{role=\"agent\",state=\"active\"}",
            g.agents,
            true,
        );
        gauge(
            "setten_agents",
            "",
            "{role=\"reader\",state=\"active\"}",
            g.readers,
            false,
        );
        gauge("setten_agents", "", "{state=\"revoked\"}", g.revoked, false);
        gauge(
            "setten_findings",
            "Findings in the store.",
            "",
            g.findings,
            true,
        );
        gauge(
            "setten_findings_unreadable",
            "Stored findings that could not be read back into the inventory.",
            "",
            g.unreadable,
            true,
        );
        let _ = writeln!(
            o,
            "# HELP setten_request_duration_seconds Request latency, by route.\n# TYPE setten_request_duration_seconds histogram"
        );
        for (route, h) in ROUTES.iter().zip(&self.latency) {
            for (b, le) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    o,
                    "setten_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {}",
                    b.load(Relaxed)
                );
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(
                o,
                "setten_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "setten_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "setten_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_labels() {
        let m = Metrics::default();
        assert_eq!(BUCKETS.len(), m.latency[0].buckets.len());
        let r = Metrics::route("POST", Some("/api/v1/findings"));
        assert_eq!(ROUTES[r], "POST /api/v1/findings");
        assert_eq!(ROUTES[Metrics::route("GET", None)], "other");
        m.observe(r, Duration::from_millis(3));
        m.observe(r, Duration::from_millis(30));
        m.batch(5, 2);
        m.reject(Reason::TooLarge);
        let t = m.render(Gauges {
            connection_points: 7,
            ..Gauges::default()
        });
        let route = "route=\"POST /api/v1/findings\"";
        assert!(
            t.contains(&format!(
                "setten_request_duration_seconds_bucket{{{route},le=\"0.0025\"}} 0"
            )),
            "{t}"
        );
        assert!(t.contains(&format!(
            "setten_request_duration_seconds_bucket{{{route},le=\"0.005\"}} 1"
        )));
        assert!(t.contains(&format!(
            "setten_request_duration_seconds_bucket{{{route},le=\"0.05\"}} 2"
        )));
        assert!(t.contains(&format!(
            "setten_request_duration_seconds_count{{{route}}} 2"
        )));
        assert!(t.contains("setten_findings_stored_total 5"));
        assert!(t.contains("setten_findings_duplicates_total 2"));
        assert!(t.contains("setten_rejections_total{reason=\"too_large\"} 1"));
        assert!(t.contains("setten_connection_points 7"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }
}
