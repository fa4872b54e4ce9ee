//! Rules that follow their directory: long-running modes load the rules once at start
//! (a bad file refuses the start) and then reload them when a file changes. A reload that
//! fails keeps the rules in force and says which file, line and key is wrong; nothing
//! else is touched, so flow state and the inventory survive every reload.
//!
//! Changes are seen through `notify` (inotify on Linux). Editors write a file in several
//! steps (truncate, write, rename), so events are gathered for [`SETTLE`] before the
//! directory is read again.

use crate::rules::{Rules, RulesError};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Quiet time after the last change before the directory is read again.
pub const SETTLE: Duration = Duration::from_millis(300);

struct Shared {
    current: RwLock<Arc<Rules>>,
    generation: AtomicU64,
    last_error: Mutex<Option<String>>,
    stop: AtomicBool,
}

/// The rules in force, reloaded from their directory on change.
pub struct LiveRules {
    dir: PathBuf,
    shared: Arc<Shared>,
    _watcher: notify::RecommendedWatcher,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveRules {
    /// Loads the directory (an error refuses the start) and starts watching it.
    pub fn watch(dir: &Path) -> Result<LiveRules, RulesError> {
        let rules = Rules::load_dir(dir)?;
        let shared = Arc::new(Shared {
            current: RwLock::new(Arc::new(rules)),
            generation: AtomicU64::new(0),
            last_error: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<()>();
        let watch_err = |e: notify::Error| RulesError {
            file: dir.to_owned(),
            line: None,
            key: None,
            message: format!("cannot watch the rules directory for changes: {e}"),
        };
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !ev.kind.is_access() {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(watch_err)?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(watch_err)?;
        let (d, s) = (dir.to_owned(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("setten-rules".into())
            .spawn(move || reload_loop(&d, &s, &rx))
            .map_err(|e| RulesError {
                file: dir.to_owned(),
                line: None,
                key: None,
                message: format!("cannot start the reload thread: {e}"),
            })?;
        Ok(LiveRules {
            dir: dir.to_owned(),
            shared,
            _watcher: watcher,
            thread: Some(thread),
        })
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        match self.shared.current.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// How many successful reloads have happened.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The error of the latest failed reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LiveRules {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // The watcher (and with it the event sender) goes when `self` is dropped; the
        // detached thread notices the stop flag within one settle period.
        self.thread.take();
    }
}

fn reload_loop(dir: &Path, s: &Shared, rx: &mpsc::Receiver<()>) {
    loop {
        match rx.recv_timeout(SETTLE) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // Let the burst of events from one save settle.
        while rx.recv_timeout(SETTLE).is_ok() {}
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        match Rules::load_dir(dir) {
            Ok(r) => {
                if let Ok(mut cur) = s.current.write() {
                    *cur = Arc::new(r);
                }
                s.generation.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut e) = s.last_error.lock() {
                    *e = None;
                }
                tracing::info!(dir = %dir.display(), "rules reloaded");
            }
            Err(e) => {
                tracing::warn!("rules not reloaded, the previous rules stay in force: {e}");
                if let Ok(mut le) = s.last_error.lock() {
                    *le = Some(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_rules_in_force() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in crate::rules::DEFAULT_FILES {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let live = LiveRules::watch(dir.path()).unwrap();
        assert_eq!(live.current().policy.many_sources, 5);

        let site = dir.path().join("site.toml");
        let text = std::fs::read_to_string(&site).unwrap();
        std::fs::write(&site, text.replace("many_sources = 5", "many_sources = 9")).unwrap();
        wait_for("the reload", || live.generation() >= 1);
        assert_eq!(live.current().policy.many_sources, 9);

        // A typo in a key: refused, named, and the rules in force stay.
        std::fs::write(&site, "[site]\nmany_source = 3\n").unwrap();
        wait_for("the reload error", || live.last_error().is_some());
        let err = live.last_error().unwrap();
        assert!(err.contains("site.toml"), "{err}");
        assert!(err.contains("many_source"), "{err}");
        assert_eq!(live.current().policy.many_sources, 9);
    }

    #[test]
    fn a_broken_directory_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            "[site]\ntimezone = \"Mars\"\n",
        )
        .unwrap();
        let err = LiveRules::watch(dir.path()).err().unwrap().to_string();
        assert!(err.contains("site.toml:2"), "{err}");
        assert!(err.contains("timezone"), "{err}");
    }
}
