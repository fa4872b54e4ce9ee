//! PDF: the HTML report printed by headless Chromium (Debian `chromium`; Japanese glyphs
//! need `fonts-noto-cjk`). The HTML is written to a private temporary directory and
//! printed with `--print-to-pdf`; Chromium gets its own throw-away profile there, no
//! network (`--disable-background-networking`; the report fetches nothing anyway) and a
//! time limit, after which it is killed.
//!
//! `SETTEN_CHROMIUM` names the browser binary; otherwise `chromium`,
//! `chromium-browser`, `google-chrome` are looked for on `PATH`.

use super::ReportError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long Chromium may take to print.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest PDF read back.
const MAX_PDF_BYTES: u64 = 256 << 20;

/// The Chromium binary to use, if one is installed.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SETTEN_CHROMIUM") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(name);
            if c.is_file() {
                return Some(c);
            }
        }
    }
    None
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for i in 0..100u32 {
            let p = base.join(format!("setten-report-{}-{nanos}-{i}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => {
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
                    }
                    return Ok(TempDir(p));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("cannot make a temporary directory"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prints HTML to PDF with the installed Chromium.
pub fn print(html: &[u8], timeout: Duration) -> Result<Vec<u8>, ReportError> {
    let chromium = find_chromium().ok_or_else(|| {
        ReportError::Pdf(
            "Chromium is not installed (install the `chromium` and `fonts-noto-cjk` packages, or set SETTEN_CHROMIUM); write --format html and print it from a browser instead".into(),
        )
    })?;
    print_with(&chromium, html, timeout)
}

/// Prints HTML to PDF with a given Chromium binary.
pub fn print_with(chromium: &Path, html: &[u8], timeout: Duration) -> Result<Vec<u8>, ReportError> {
    let dir = TempDir::new()?;
    let src = dir.0.join("report.html");
    let out = dir.0.join("report.pdf");
    std::fs::write(&src, html)?;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", src.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ReportError::Pdf(format!("{}: cannot start: {e}", chromium.display())))?;
    // Chromium's stderr is read on a thread so a chatty browser cannot block on a full pipe.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            use std::io::Read;
            let _ = (&mut e).take(64 << 10).read_to_string(&mut s);
            let _ = std::io::copy(&mut e, &mut std::io::sink());
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ReportError::Pdf(format!(
                "{} did not finish printing within {} s",
                chromium.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = reader.join().unwrap_or_default();
    let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if !status.success() || len == 0 {
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return Err(ReportError::Pdf(format!(
            "{} failed ({status}): {tail}",
            chromium.display()
        )));
    }
    if len > MAX_PDF_BYTES {
        return Err(ReportError::Pdf(format!(
            "the PDF is larger than {MAX_PDF_BYTES} bytes"
        )));
    }
    Ok(std::fs::read(&out)?)
}
