//! systemd's service notification protocol (sd_notify(3)), spoken directly: one datagram
//! of `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`). Without the variable every call does
//! nothing, so the agent runs the same outside systemd.
//!
//! The watchdog (`WatchdogSec=`) is read from `$WATCHDOG_USEC`, honoured only when
//! `$WATCHDOG_PID` is unset or names this process (systemd.service(5)).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Longest `STATUS=` text sent (systemd shows one line).
pub const MAX_STATUS: usize = 512;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::new(
            socket.as_deref().and_then(|s| s.to_str()),
            usec.as_deref(),
            pid.as_deref(),
            std::process::id(),
        )
    }

    /// A notifier for the given variables (tests give them directly).
    pub fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        own_pid: u32,
    ) -> Notifier {
        let target = socket.filter(|s| !s.is_empty()).and_then(|s| {
            let t = match s.strip_prefix('@') {
                Some(name) => Target::Abstract(name.as_bytes().to_vec()),
                None if s.starts_with('/') => Target::Path(PathBuf::from(s)),
                None => return None,
            };
            UnixDatagram::unbound().ok().map(|sock| (sock, t))
        });
        let for_us = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>().ok() == Some(own_pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog period, when one is set for this process.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to send `WATCHDOG=1`: half the period, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    fn send(&self, text: &str) {
        let Some((sock, target)) = &self.target else {
            return;
        };
        let res = match target {
            Target::Path(p) => sock.send_to(text.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(text.as_bytes(), &a))
            }
        };
        if let Err(e) = res {
            tracing::debug!("service manager notification not sent: {e}");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=…`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`.
    pub fn watchdog_ping(&self) {
        self.send("WATCHDOG=1");
    }

    /// `RELOADING=1` (a reload started) and, with `done`, `READY=1` after it.
    pub fn reloading(&self, done: bool) {
        if done {
            self.send("READY=1");
        } else {
            self.send("RELOADING=1");
        }
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

/// A status on one line, capped.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str(), None, None, 1);
        assert!(n.enabled());
        n.ready("capturing on eth1\nsecond line");
        let mut buf = [0u8; 1024];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "READY=1\nSTATUS=capturing on eth1 second line"
        );
        n.stopping("flushing");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=flushing");
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("setten-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Some(&format!("@{name}")), None, None, 1);
        n.watchdog_ping();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn the_watchdog_is_for_this_process_only() {
        let n = Notifier::new(None, Some("30000000"), None, 7);
        assert!(!n.enabled());
        assert_eq!(n.watchdog(), Some(Duration::from_secs(30)));
        assert_eq!(n.watchdog_ping_every(), Some(Duration::from_secs(15)));
        assert_eq!(
            Notifier::new(None, Some("30000000"), Some("7"), 7)
                .watchdog()
                .map(|d| d.as_secs()),
            Some(30)
        );
        assert_eq!(
            Notifier::new(None, Some("30000000"), Some("8"), 7).watchdog(),
            None
        );
        assert_eq!(Notifier::new(None, Some("0"), None, 7).watchdog(), None);
        assert_eq!(Notifier::new(None, Some("x"), None, 7).watchdog(), None);
        // Relative paths are not a notification socket.
        assert!(!Notifier::new(Some("notify"), None, None, 7).enabled());
    }
}
