//! The 現地調査 survey report from the collector's store: the merged inventory view, the
//! enrolled agents and their latest health, the agents' capture-quality records and
//! their backup findings, rendered by the agent crate's [`setten_agent::report`] (the
//! same code as `setten-agent analyze --report`).
//!
//! One entry point for every caller — `setten-collector report`, `GET /api/v1/report`
//! and the web UI:
//!
//! ```text
//! let out = setten_collector::report::render(&state, Lang::Ja, Format::Html)?;
//! // out.bytes, out.content_type ("text/html; charset=utf-8"), out.filename
//! // ("setten-report-2026-10-05.html")
//! ```
//!
//! It is blocking (it reads the store): call it from a blocking thread.

use crate::api::AppState;
use crate::store::{Replay, StoreError};
use crate::token::Role;
use setten_agent::findings::Body;
use setten_agent::inventory::output::{local_time, Lang};
use setten_agent::report::backups::RawBackup;
use setten_agent::report::{self, CsvEncoding, Format, Quality, ReportInput, SensorInput, Source};

/// Backup findings read at most (the newest win per medium; older ones beyond are skipped).
pub const MAX_BACKUP_FINDINGS: usize = 100_000;

/// A report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Rendering.
    #[error(transparent)]
    Render(#[from] report::ReportError),
}

/// A rendered report.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// HTTP Content-Type.
    pub content_type: &'static str,
    /// A file name with the date: `setten-report-2026-10-05.html`.
    pub filename: String,
}

/// What [`render_with`] may be told beyond language and format.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The report's time, µs (default: now).
    pub now_us: Option<u64>,
    /// Site name (default: `[site] name` of the rules).
    pub site: Option<String>,
    /// CSV encoding.
    pub csv_encoding: CsvEncoding,
}

/// Renders the report now, with the rules' site name and UTF-8 CSV.
pub fn render(state: &AppState, lang: Lang, format: Format) -> Result<Rendered, ReportError> {
    render_with(state, lang, format, &Options::default())
}

/// Renders the report with explicit options.
pub fn render_with(
    state: &AppState,
    lang: Lang,
    format: Format,
    opts: &Options,
) -> Result<Rendered, ReportError> {
    let r = build(state, lang, opts)?;
    let bytes = report::render(&r, format, opts.csv_encoding)?;
    let now = opts
        .now_us
        .unwrap_or_else(|| u64::try_from(crate::now_us()).unwrap_or(0));
    let date: String = local_time(now, state.merged().policy().utc_offset_secs)
        .chars()
        .take(10)
        .collect();
    Ok(Rendered {
        bytes,
        content_type: format.content_type(),
        filename: format!("setten-report-{date}.{}", format.extension()),
    })
}

/// Builds the report's data from the store.
pub fn build(state: &AppState, lang: Lang, opts: &Options) -> Result<report::Report, ReportError> {
    let store = state.store();
    let view = state.merged().view(&**store)?;
    let policy = state.merged().policy();
    let sensors: Vec<SensorInput> = store
        .agents()?
        .into_iter()
        .filter(|a| a.role == Role::Agent && !a.is_revoked())
        .map(|a| SensorInput {
            name: a.name,
            last_seen_us: a.last_seen_us,
            health: a.health,
        })
        .collect();
    let mut quality: Option<Quality> = None;
    let mut backups: Vec<RawBackup> = Vec::new();
    store.replay(
        Replay::All,
        &["capture_quality", "backup"],
        &mut |row| match serde_json::from_str::<Body>(row.body) {
            Ok(Body::CaptureQuality(m)) => {
                if let Some(q) = Quality::from_json(serde_json::Value::Object(m)) {
                    match &mut quality {
                        Some(acc) => acc.merge(&q),
                        None => quality = Some(q),
                    }
                }
            }
            Ok(Body::Backup(m)) if backups.len() < MAX_BACKUP_FINDINGS => {
                backups.push(RawBackup {
                    agent: row.agent.to_owned(),
                    at_us: 0,
                    body: m,
                });
            }
            _ => {}
        },
    )?;
    let ledger_given = view.ledger_id.is_some();
    let input = ReportInput {
        points: &view.points,
        unseen: &view.unseen,
        ledger_given,
        quality,
        sensors,
        backups,
        policy,
        site: opts.site.clone().or_else(|| policy.site_name.clone()),
        generated_us: opts
            .now_us
            .unwrap_or_else(|| u64::try_from(crate::now_us()).unwrap_or(0)),
        tool: format!("setten-collector {}", env!("CARGO_PKG_VERSION")),
        source: Source::Collector,
    };
    Ok(report::build(&input, lang))
}
