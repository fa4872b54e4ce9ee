//! `setten-agent`: command-line glue over the `setten_agent` library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use setten_agent::analyze;
use setten_agent::classify::Classifier;
use setten_agent::findings::Body;
use setten_agent::flow;
use setten_agent::inventory::ledger::Ledger;
use setten_agent::inventory::output::{self, Collect, Lang};
use setten_agent::inventory::{quality, PointsCx};
use setten_agent::names::oui::Oui;
use setten_agent::record::sink::{self, FlowSink};
use setten_agent::record::{Cidr, LocalNets, RecordCx};
use setten_agent::report;
use setten_agent::rules::Rules;
use setten_agent::ship::client::{self, Collector, Fingerprint, ShipError, ShipOptions, Trust};
use setten_agent::ship::export;
use setten_agent::ship::spool::{self, Spool};
use setten_agent::ship::Token;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod alloc;

/// mimalloc: flows allocate and free their reassembly buffers and names at a high rate.
#[global_allocator]
static ALLOC: alloc::MiMalloc = alloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "setten-agent",
    version,
    about = "setten (接点) agent: finds remote-access and VPN connection points in network traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run as the long-running agent: capture on the configured interfaces (a mirror /
    /// SPAN port), keep the connection-point inventory, ship findings to the collector.
    /// Stops on SIGTERM or SIGINT; SIGHUP reloads the configuration and the rules.
    Run(RunArgs),
    /// Analyse capture files (pcap, pcapng, optionally .gz) and report every flow.
    Analyze(AnalyzeArgs),
    /// Send the findings waiting in the spool to the collector (after an outage).
    Ship(ShipArgs),
    /// Write the findings waiting in the spool to a signed file, to carry to the
    /// collector by hand (air-gapped sites).
    Export(ExportArgs),
    /// Look at the spool.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Offline backups: seal a generation into a signed manifest, verify a medium against it.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write a new secret key file (mode 0600); it must never be stored on a medium.
    Keygen {
        /// The key file to create.
        file: PathBuf,
    },
    /// Hash a backup generation into a manifest signed with the key.
    Seal(SealArgs),
    /// Re-read a medium and compare it with its signed manifest.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct SealArgs {
    /// The backup tree (the mounted medium or a directory on it).
    dir: PathBuf,
    /// The medium's name (as in the media configuration).
    #[arg(long)]
    medium: String,
    /// The secret key (default: <state dir>/backup.key).
    #[arg(long, value_name = "F")]
    key_file: Option<PathBuf>,
    /// Also write the manifest here (it is always kept in the state directory).
    #[arg(long, value_name = "OUT")]
    manifest: Option<PathBuf>,
    /// Put a copy of the manifest on the medium too.
    #[arg(long)]
    copy_to_medium: bool,
    /// Seal a generation that looks encrypted anyway (it is flagged in every report).
    #[arg(long)]
    force: bool,
    /// Record the result for the collector in this spool (default: <state dir>/spool.db;
    /// the running agent, or `setten-agent ship`, delivers it).
    #[arg(long, value_name = "F")]
    spool: Option<PathBuf>,
    /// Do not record the result for the collector.
    #[arg(long, conflicts_with = "spool")]
    no_spool: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum VerifyModeArg {
    /// Every chunk of every file.
    Full,
    /// A random share of chunks (--fraction).
    Sample,
    /// Continue where the last run stopped; successive runs cover every chunk.
    Rolling,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormat {
    /// A table for a person.
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The backup tree.
    dir: PathBuf,
    /// The manifest (default: the latest one for the medium in the state directory).
    #[arg(long, value_name = "F")]
    manifest: Option<PathBuf>,
    /// The medium's name (default: read from the copy on the medium).
    #[arg(long)]
    medium: Option<String>,
    /// The secret key (default: <state dir>/backup.key).
    #[arg(long, value_name = "F")]
    key_file: Option<PathBuf>,
    /// How much to read.
    #[arg(long, value_enum, default_value_t = VerifyModeArg::Full)]
    mode: VerifyModeArg,
    /// With --mode sample: the share of chunks ("5%" or "0.05").
    #[arg(long, default_value = "5%")]
    fraction: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    /// Start over instead of resuming an interrupted run.
    #[arg(long)]
    restart: bool,
    /// Record the result for the collector in this spool (default: <state dir>/spool.db;
    /// the running agent, or `setten-agent ship`, delivers it).
    #[arg(long, value_name = "F")]
    spool: Option<PathBuf>,
    /// Do not record the result for the collector.
    #[arg(long, conflicts_with = "spool")]
    no_spool: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    /// A readable summary: remote-access and VPN flows first.
    Table,
    /// One JSON object per flow (or per connection point) on stdout.
    Jsonl,
    /// With --inventory: one row per connection point, UTF-8 with BOM (opens in Excel).
    Csv,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LangArg {
    /// 日本語.
    Ja,
    /// English.
    En,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// A network that belongs to the hospital (repeatable), in addition to the private,
    /// shared, link-local, loopback and ULA ranges.
    #[arg(long = "local-net", value_name = "CIDR")]
    local_net: Vec<String>,
    /// Load rules from this directory instead of the built-in set.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Most flows tracked at once; the least recently seen is evicted beyond it.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_flows: usize,
    /// Flow tables, each on a thread of its own, with one more thread reading and dealing
    /// the frames (0: one per CPU core, at most 8). It pays off with cores to spare: the
    /// frames are copied once more and each table keeps its own memory. With one table
    /// and a second core, the classification runs on a thread beside the table's. The
    /// flows found are the same whatever the number; their ids and order are the same on
    /// every run with the same number.
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// Show a progress bar even when stderr is not a terminal, or never (auto: only on a terminal).
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// List external connection points (外部接続点) instead of flows.
    #[arg(long)]
    inventory: bool,
    /// The hospital's ledger of expected external connections (CSV, UTF-8 or Shift_JIS;
    /// see docs/ledger.md). Implies --inventory.
    #[arg(long, value_name = "FILE")]
    ledger: Option<PathBuf>,
    /// Language of the table and CSV headers.
    #[arg(long, value_enum, default_value_t = LangArg::Ja)]
    lang: LangArg,
    /// After the run, spool the inventory's findings and the capture-quality record and
    /// send them to the collector at URL (https://HOST:PORT). Implies --inventory.
    #[arg(long, value_name = "URL")]
    ship: Option<String>,
    /// With --ship: the file holding the agent's token (NAME.SECRET); else $SETTEN_TOKEN.
    #[arg(long, value_name = "FILE", requires = "ship")]
    token_file: Option<PathBuf>,
    /// With --ship: trust exactly the collector certificate with this SHA-256.
    #[arg(
        long,
        value_name = "sha256:HEX",
        requires = "ship",
        conflicts_with = "ca"
    )]
    pin: Option<String>,
    /// With --ship: trust only the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", requires = "ship")]
    ca: Option<PathBuf>,
    /// With --ship: the spool file (default: /var/lib/setten/spool.db for root, else
    /// $XDG_STATE_HOME/setten/spool.db or ~/.local/state/setten/spool.db).
    #[arg(long, value_name = "FILE", requires = "ship")]
    spool: Option<PathBuf>,
    /// With --ship: the spool's size cap; beyond it the oldest findings are evicted
    /// (counted and reported). Bytes, or with K, M, G (KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", requires = "ship", value_parser = parse_size, default_value = "256M")]
    spool_max_bytes: u64,
    /// With --ship: how long to keep trying while the collector is unreachable or busy
    /// (then the findings stay spooled). Seconds, or with ms, s, m, h.
    #[arg(long, value_name = "DURATION", requires = "ship", value_parser = parse_duration, default_value = "60s")]
    ship_timeout: Duration,
    /// Also write the 現地調査 survey report to PATH (implies --inventory).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// The report's format (default: from PATH's extension, else html). pdf needs Chromium.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "report")]
    report_format: Option<ReportFormatArg>,
    /// The CSV report's encoding.
    #[arg(long, value_enum, default_value_t = CsvEncodingArg::Utf8, requires = "report")]
    report_encoding: CsvEncodingArg,
    /// The hospital or site name on the report's cover (default: `[site] name` in the rules).
    #[arg(long, value_name = "NAME", requires = "report")]
    site: Option<String>,
    /// Capture files.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (see deploy/etc/setten/agent.toml for every setting).
    #[arg(long, default_value = "/etc/setten/agent.toml")]
    config: PathBuf,
    /// Check the configuration, the rules and the interfaces, then exit without capturing.
    #[arg(long)]
    check: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ReportFormatArg {
    /// One self-contained HTML file, print-ready on A4.
    Html,
    /// The device and line ledger (機器・回線一覧).
    Csv,
    /// The report's data as JSON.
    Json,
    /// PDF, printed by headless Chromium.
    Pdf,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum CsvEncodingArg {
    /// UTF-8 with a byte-order mark (Excel opens it).
    #[value(name = "utf-8")]
    Utf8,
    /// Shift_JIS (a character it cannot hold is an error).
    #[value(name = "shift_jis")]
    ShiftJis,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Progress {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SETTEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run_cmd(a),
        Command::Analyze(a) => analyze_cmd(a),
        Command::Ship(a) => ship_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Spool {
            command: SpoolCommand::Status(a),
        } => spool_status_cmd(a),
        Command::Backup { command } => backup_cmd(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("setten-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Name of the file, in the state directory, that a stopped agent leaves its last
/// health record and totals in.
const LAST_RUN_FILE: &str = "last-run.json";

fn run_cmd(a: RunArgs) -> Result<ExitCode> {
    use setten_agent::live::{self, Config, Shutdown};
    // These errors already name their cause; anyhow's chain would repeat it.
    let flat = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let cfg = Config::load(&a.config).map_err(|e| flat(&e))?;
    if a.check {
        live::check(&cfg).map_err(|e| flat(&e))?;
        println!(
            "{}: configuration, rules and interfaces are usable",
            a.config.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let shutdown = Shutdown::on_signals().map_err(|e| flat(&e))?;
    let summary = live::run(&cfg, shutdown).map_err(|e| flat(&e))?;
    tracing::info!("stopped: {}", summary.health.summary_line());
    let out = serde_json::json!({
        "stopped_at_us": setten_agent::ship::now_us(),
        "health": summary.health.to_map(),
        "points": summary.points,
        "reports": summary.reports,
        "spooled": summary.spooled,
        "state_file": summary.state_file,
    });
    let path = cfg.inventory.state_dir.join(LAST_RUN_FILE);
    if let Err(e) = std::fs::write(&path, serde_json::to_vec_pretty(&out)?) {
        tracing::warn!("{}: {e}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn analyze_cmd(a: AnalyzeArgs) -> Result<ExitCode> {
    let extra: Vec<Cidr> = a
        .local_net
        .iter()
        .map(|s| Cidr::parse(s).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()
        .context("--local-net")?;
    if a.max_flows == 0 {
        bail!("--max-flows must be at least 1");
    }
    let rules = match &a.rules {
        Some(dir) => Rules::load_dir(dir)?,
        None => Rules::defaults().context("built-in rules")?,
    };
    let rules = Arc::new(rules);
    let mut extra = extra;
    extra.extend_from_slice(&rules.policy.local_nets);
    let nets = LocalNets::with(&extra);
    let inventory = a.inventory || a.ledger.is_some() || a.ship.is_some() || a.report.is_some();
    // The report's format is settled before the analysis, which can be long.
    let report_format = match (&a.report, a.report_format) {
        (None, _) => None,
        (Some(_), Some(f)) => Some(match f {
            ReportFormatArg::Html => report::Format::Html,
            ReportFormatArg::Csv => report::Format::Csv,
            ReportFormatArg::Json => report::Format::Json,
            ReportFormatArg::Pdf => report::Format::Pdf,
        }),
        (Some(p), None) => Some(report::Format::from_path(p).unwrap_or(report::Format::Html)),
    };
    if report_format == Some(report::Format::Pdf) && report::pdf::find_chromium().is_none() {
        bail!("--report-format pdf needs Chromium (install `chromium` and `fonts-noto-cjk`, or set SETTEN_CHROMIUM); or write html and print it from a browser");
    }
    let generated_us = report_time()?;
    // Everything about shipping is checked before the analysis, which can be long.
    let mut shipping = match &a.ship {
        Some(url) => Shipping::prepare(
            url,
            &Conn {
                token_file: a.token_file.clone(),
                pin: a.pin.clone(),
                ca: a.ca.clone(),
                spool: a.spool.clone(),
            },
            a.spool_max_bytes,
            a.ship_timeout,
            true,
        )?,
        None => None,
    };
    let mut ship_code = ExitCode::SUCCESS;
    if a.format == Format::Csv && !inventory {
        bail!("--format csv lists connection points: add --inventory");
    }
    let ledger = match &a.ledger {
        Some(path) => {
            let l = Ledger::load(path)?;
            for e in &l.errors {
                tracing::warn!("{}", e.display(&l.source));
            }
            if !l.ignored_columns.is_empty() {
                tracing::warn!(
                    "{}: columns not used: {}",
                    l.source,
                    l.ignored_columns.join(", ")
                );
            }
            tracing::info!(
                "{}: {} ledger entries ({})",
                l.source,
                l.entries.len(),
                l.encoding
            );
            Some(l)
        }
        None => None,
    };
    let classifier = Classifier::new(rules.clone());
    let cfg = flow::Config {
        max_flows: a.max_flows,
        ..flow::Config::default()
    };
    let parts = match a.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        n => n.min(64),
    };
    let show_progress = match a.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let lang = match a.lang {
        LangArg::Ja => Lang::Ja,
        LangArg::En => Lang::En,
    };
    let mut ui = ProgressUi::default();
    let on_open = |cap: &setten_agent::capture::CaptureFile, counter| {
        ui.stop();
        if show_progress {
            ui.start(cap, counter);
        }
    };
    let summary = if inventory {
        let mut sink = FlowSink::with(Collect::new(rules.policy.clone()), nets, rules.clone());
        let summary = run_flows(&a.captures, cfg, &classifier, parts, on_open, &mut |f| {
            sink.push(f)
        });
        ui.stop();
        let (inv, fq) = sink.finish().context("building the inventory")?;
        // SETTEN_IEEE_DATA points at another copy of the registry (tests pin one).
        let macs = inv.point_macs();
        let oui = match std::env::var_os("SETTEN_IEEE_DATA") {
            Some(dir) => Oui::load_dir_for(std::path::Path::new(&dir), &macs)
                .with_context(|| format!("SETTEN_IEEE_DATA={}", dir.to_string_lossy()))?,
            None if macs.is_empty() => Oui::default(),
            None => Oui::load_default_for(&macs),
        };
        let points = inv.points(&PointsCx {
            policy: &rules.policy,
            ledger: ledger.as_ref(),
            oui: &oui,
        });
        let quality = quality::build(&summary.captures, &fq);
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match a.format {
            Format::Jsonl => output::write_jsonl(&mut out, &points, &quality),
            Format::Table => output::write_table(&mut out, &points, &quality, &rules.policy, lang),
            Format::Csv => output::write_csv(&mut out, &points, &rules.policy, lang),
        }
        .and_then(|_| std::io::Write::flush(&mut out))
        .context("writing the output")?;
        drop(out);
        if let (Some(path), Some(format)) = (&a.report, report_format) {
            let q = serde_json::to_value(&quality)
                .ok()
                .and_then(report::Quality::from_json);
            let input = report::ReportInput {
                points: &points.points,
                unseen: &points.unseen,
                ledger_given: ledger.is_some(),
                quality: q,
                sensors: a
                    .captures
                    .iter()
                    .map(|c| report::SensorInput {
                        name: c.display().to_string(),
                        last_seen_us: None,
                        health: None,
                    })
                    .collect(),
                backups: Vec::new(),
                policy: &rules.policy,
                site: a.site.clone().or_else(|| rules.policy.site_name.clone()),
                generated_us,
                tool: format!("setten-agent {}", env!("CARGO_PKG_VERSION")),
                source: report::Source::Captures,
            };
            let r = report::build(&input, lang);
            let enc = match a.report_encoding {
                CsvEncodingArg::Utf8 => report::CsvEncoding::Utf8Bom,
                CsvEncodingArg::ShiftJis => report::CsvEncoding::ShiftJis,
            };
            let bytes = report::render(&r, format, enc)
                .with_context(|| format!("{}: making the report", path.display()))?;
            write_file_atomically(path, &bytes)
                .with_context(|| format!("{}: writing the report", path.display()))?;
            tracing::info!(
                "{}: report written ({} points, {} bytes)",
                path.display(),
                r.points.len(),
                bytes.len()
            );
        }
        if let Some(s) = shipping.as_mut() {
            let mut bodies = inv.to_findings();
            match serde_json::to_value(&quality).context("encoding the capture-quality record")? {
                serde_json::Value::Object(m) => bodies.push(Body::CaptureQuality(m)),
                _ => bail!("the capture-quality record is not a JSON object"),
            }
            s.push(&bodies)?;
            ship_code = s.ship(ShipContext::Analyze)?;
        }
        summary
    } else {
        let sink_format = match a.format {
            Format::Jsonl => sink::Format::Jsonl,
            _ => sink::Format::Table,
        };
        if parts > 1 && sink_format == sink::Format::Jsonl {
            // Each flow table renders its own flows; the lines are written here in order.
            let cx = RecordCx {
                nets: &nets,
                rules: &rules,
            };
            let render = |mut f: flow::Flow, out: &mut Vec<u8>| sink::jsonl_line(&mut f, &cx, out);
            let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let mut error: Option<std::io::Error> = None;
            let summary = analyze::run_parts(
                &a.captures,
                cfg,
                &classifier,
                parts,
                on_open,
                &render,
                &mut |lines: Vec<u8>| {
                    // After a failed write (closed pipe, full disk) the rest is dropped and
                    // the analysis goes on to its end; the error is reported then.
                    if error.is_none() {
                        error = std::io::Write::write_all(&mut w, &lines).err();
                    }
                },
            );
            ui.stop();
            if let Some(e) = error.or_else(|| std::io::Write::flush(&mut w).err()) {
                return Err(e).context("writing the output");
            }
            summary
        } else {
            let mut sink = FlowSink::spawn(
                sink_format,
                nets,
                rules.clone(),
                Box::new(std::io::stdout()),
            );
            let summary = run_flows(&a.captures, cfg, &classifier, parts, on_open, &mut |f| {
                sink.push(f)
            });
            ui.stop();
            sink.finish().context("writing the output")?;
            summary
        }
    };
    tracing::info!(
        files = summary.files,
        packets = summary.packets,
        flows = summary.table.created,
        not_ip = summary.not_ip,
        malformed = summary.malformed,
        unsupported_link = summary.unsupported_link,
        orphan_fragments = summary.orphan_fragments,
        evicted = summary.table.evicted,
        "analysis done"
    );
    if summary.errors.is_empty() {
        Ok(ship_code)
    } else {
        for e in &summary.errors {
            eprintln!("setten-agent: error: {e}");
        }
        Ok(ExitCode::from(1))
    }
}

/// The packet path over `parts` flow tables (one: on this thread), each finished flow to
/// `ended` in a fixed order.
fn run_flows(
    paths: &[PathBuf],
    cfg: flow::Config,
    classifier: &Classifier,
    parts: usize,
    on_open: impl FnMut(&setten_agent::capture::CaptureFile, Arc<AtomicU64>) + Send,
    ended: &mut impl FnMut(flow::Flow),
) -> analyze::Summary {
    if parts <= 1 {
        // With a second core, the packet path and the classification each get one.
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            return analyze::run_staged(paths, cfg, classifier, on_open, ended);
        }
        return analyze::run(paths, cfg, classifier, on_open, ended);
    }
    let keep = |f: flow::Flow, batch: &mut Vec<flow::Flow>| batch.push(f);
    analyze::run_parts(
        paths,
        cfg,
        classifier,
        parts,
        on_open,
        &keep,
        &mut |batch| batch.into_iter().for_each(&mut *ended),
    )
}

/// The report's time: `SOURCE_DATE_EPOCH` (seconds, the reproducible-builds convention,
/// https://reproducible-builds.org/specs/source-date-epoch/) when set, else now.
fn report_time() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970")),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)),
    }
}

/// Writes a file through a temporary beside it, so a reader never sees half of it.
fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

/// A progress bar on stderr for one capture file, updated from the reader's byte counter.
#[derive(Default)]
struct ProgressUi {
    running: Option<(ProgressBar, std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
}

impl ProgressUi {
    fn start(&mut self, cap: &setten_agent::capture::CaptureFile, counter: Arc<AtomicU64>) {
        let bar = ProgressBar::with_draw_target(Some(cap.file_len()), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(cap.path().display().to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, s2) = (bar.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                b2.set_position(counter.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        self.running = Some((bar, handle, stop));
    }

    fn stop(&mut self) {
        if let Some((bar, handle, stop)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
            bar.finish_and_clear();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shipping: spool, collector, export.

/// How the agent reaches its collector and where its spool is.
#[derive(clap::Args, Clone)]
struct Conn {
    /// The file holding the agent's token (NAME.SECRET, from `setten-collector agent
    /// add NAME`); else the environment variable SETTEN_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Trust exactly the collector certificate with this SHA-256 (of its DER), as the
    /// collector prints it.
    #[arg(long, value_name = "sha256:HEX", conflicts_with = "ca")]
    pin: Option<String>,
    /// Trust only the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The spool file (default: /var/lib/setten/spool.db for root, else
    /// $XDG_STATE_HOME/setten/spool.db or ~/.local/state/setten/spool.db).
    #[arg(long, value_name = "FILE")]
    spool: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ShipArgs {
    /// The collector (https://HOST:PORT; http:// only to a loopback address).
    #[arg(value_name = "URL")]
    url: String,
    #[command(flatten)]
    conn: Conn,
    /// How long to keep trying while the collector is unreachable or busy. Seconds, or
    /// with ms, s, m, h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "300s")]
    ship_timeout: Duration,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The file to write (never overwritten; a large spool continues in FILE.2, FILE.3, …).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The file holding the agent's token (signs the export); else $SETTEN_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The spool file (default as for `ship`).
    #[arg(long, value_name = "FILE")]
    spool: Option<PathBuf>,
    /// Delete the exported findings from the spool once the file is written and synced.
    #[arg(long)]
    clear: bool,
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Findings waiting, their size, evictions, the oldest.
    Status(SpoolStatusArgs),
}

#[derive(clap::Args)]
struct SpoolStatusArgs {
    /// The spool file (default as for `ship`).
    #[arg(long, value_name = "FILE")]
    spool: Option<PathBuf>,
}

/// A size: bytes, or with K, M, G (binary multiples; KiB, MiB, GiB also read).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of bytes, e.g. 256M"))?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unit must be K, M or G")),
    };
    let v = n
        .checked_mul(mul)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if v < 4096 {
        return Err(format!("{s:?}: the spool needs at least 4K"));
    }
    Ok(v)
}

/// A duration: seconds, or with ms, s, m, h.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mul) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration, e.g. 60s or 5m"))?;
    let secs = v * mul;
    if !secs.is_finite() || !(0.0..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("{s:?}: must be between 0 and 7 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The token from --token-file or SETTEN_TOKEN. The token itself is never printed.
fn load_token(file: Option<&Path>) -> Result<Token> {
    match file {
        Some(path) => {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        "token file {} can be read by other users; `chmod 600 {}`",
                        path.display(),
                        path.display()
                    );
                }
            }
            Ok(Token::from_file(path)?)
        }
        None => match std::env::var("SETTEN_TOKEN") {
            Ok(t) => Ok(Token::parse(&t, "SETTEN_TOKEN")?),
            Err(std::env::VarError::NotUnicode(_)) => bail!("SETTEN_TOKEN is not valid UTF-8"),
            Err(std::env::VarError::NotPresent) => bail!(
                "no token: give --token-file FILE or set SETTEN_TOKEN (the token is printed once by `setten-collector agent add NAME` on the collector)"
            ),
        },
    }
}

fn spool_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_owned()),
        None => Ok(spool::default_path()?),
    }
}

/// Which command ships: decides the exit status when the collector cannot be reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ShipContext {
    /// `analyze --ship`: the findings are safe in the spool, so this is not a failure.
    Analyze,
    /// `ship`: its only job was delivering (exit 3).
    Ship,
}

/// A collector and a spool, checked and ready.
struct Shipping {
    collector: Collector,
    spool: Spool,
    budget: Duration,
    /// The command that sends the spool later, for messages.
    later: String,
}

impl Shipping {
    /// Checks the token, the URL and the trust settings, then opens the spool (creating
    /// it only when `create`; without it, a missing spool gives `None`).
    fn prepare(
        url: &str,
        c: &Conn,
        max_bytes: u64,
        budget: Duration,
        create: bool,
    ) -> Result<Option<Shipping>> {
        let token = load_token(c.token_file.as_deref())?;
        let trust = match (&c.pin, &c.ca) {
            (Some(pin), _) => Trust::Pin(Fingerprint::parse(pin)?),
            (None, Some(ca)) => Trust::CaFile(ca.clone()),
            (None, None) => Trust::WebPki,
        };
        let agent = token.agent().to_owned();
        let collector = Collector::new(url, token, trust)?;
        let path = spool_path(c.spool.as_deref())?;
        if !create && !path.exists() {
            return Ok(None);
        }
        let mut spool = Spool::open(&path, max_bytes)?;
        spool.claim(&agent)?;
        let mut later = format!("setten-agent ship {url} --spool {}", path.display());
        if let Some(f) = &c.token_file {
            later.push_str(&format!(" --token-file {}", f.display()));
        }
        if let Some(p) = &c.pin {
            later.push_str(&format!(" --pin {p}"));
        }
        if let Some(ca) = &c.ca {
            later.push_str(&format!(" --ca {}", ca.display()));
        }
        Ok(Some(Shipping {
            collector,
            spool,
            budget,
            later,
        }))
    }

    fn push(&mut self, bodies: &[Body]) -> Result<()> {
        let p = self.spool.push(bodies)?;
        if let Some((first, last)) = p.seqs {
            tracing::info!(
                "spooled {} findings (seq {first} to {last}) in {}",
                p.count,
                self.spool.path().display()
            );
        }
        Ok(())
    }

    /// Ships the spool and says what happened; returns the exit status.
    fn ship(&mut self, cx: ShipContext) -> Result<ExitCode> {
        let result = client::ship(
            &mut self.spool,
            &self.collector,
            ShipOptions::with_budget(self.budget),
        );
        let left = |spool: &Spool| spool.stats().map(|s| s.pending).unwrap_or(0);
        match result {
            Ok(s) => {
                if s.delivered == 0 {
                    if cx == ShipContext::Ship {
                        eprintln!("setten-agent: nothing to ship: the spool is empty");
                    }
                } else {
                    tracing::info!(
                        "delivered {} findings to {} in {} batches ({} were already there)",
                        s.delivered,
                        self.collector.url(),
                        s.batches,
                        s.duplicates
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(ShipError::Refused { error, shipped }) => {
                eprintln!("setten-agent: error: {error}");
                eprintln!(
                    "setten-agent: {} findings delivered before; {} remain in {} (nothing is lost); correct the cause, then run `{}`",
                    shipped.delivered,
                    left(&self.spool),
                    self.spool.path().display(),
                    self.later
                );
                Ok(ExitCode::from(1))
            }
            Err(ShipError::GaveUp {
                error,
                after,
                shipped,
            }) => {
                tracing::warn!(
                    "could not deliver to the collector within {:.0} s ({error}); {} findings delivered, {} remain safely in {}: send them later with `{}`, or carry them with `setten-agent export FILE --spool {}`",
                    after.as_secs_f64(),
                    shipped.delivered,
                    left(&self.spool),
                    self.spool.path().display(),
                    self.later,
                    self.spool.path().display()
                );
                Ok(match cx {
                    ShipContext::Analyze => ExitCode::SUCCESS,
                    ShipContext::Ship => ExitCode::from(3),
                })
            }
            Err(ShipError::Spool(e)) => Err(e.into()),
        }
    }
}

fn ship_cmd(a: ShipArgs) -> Result<ExitCode> {
    let prepared = Shipping::prepare(
        &a.url,
        &a.conn,
        spool::DEFAULT_MAX_BYTES,
        a.ship_timeout,
        false,
    )?;
    match prepared {
        Some(mut s) => s.ship(ShipContext::Ship),
        None => {
            eprintln!(
                "setten-agent: nothing to ship: there is no spool at {}",
                spool_path(a.conn.spool.as_deref())?.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn export_cmd(a: ExportArgs) -> Result<ExitCode> {
    let token = load_token(a.token_file.as_deref())?;
    let path = spool_path(a.spool.as_deref())?;
    if !path.exists() {
        eprintln!(
            "setten-agent: nothing to export: there is no spool at {}",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut spool = Spool::open(&path, spool::DEFAULT_MAX_BYTES)?;
    let ex = export::export(&mut spool, &token, &a.file, a.clear)?;
    let Some((first, last)) = ex.seqs else {
        eprintln!("setten-agent: nothing to export: the spool is empty (no file written)");
        return Ok(ExitCode::SUCCESS);
    };
    for f in &ex.files {
        println!("{}", f.display());
    }
    eprintln!(
        "setten-agent: exported {} findings of agent {} (seq {first} to {last}) to {} file(s); {}",
        ex.findings,
        token.agent(),
        ex.files.len(),
        if a.clear {
            format!("{} removed from the spool", ex.cleared)
        } else {
            "they stay in the spool (--clear removes them)".to_owned()
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn spool_status_cmd(a: SpoolStatusArgs) -> Result<ExitCode> {
    let path = spool_path(a.spool.as_deref())?;
    if !path.exists() {
        println!(
            "spool:       {} (none yet: nothing was spooled)",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let spool = Spool::open(&path, spool::DEFAULT_MAX_BYTES)?;
    let st = spool.stats()?;
    println!("spool:       {}", path.display());
    println!(
        "agent:       {}",
        st.agent.as_deref().unwrap_or("(none yet)")
    );
    println!("pending:     {} findings", st.pending);
    println!("bytes:       {}", st.bytes);
    match st.oldest {
        Some((seq, at)) => println!(
            "oldest:      seq {seq}, spooled {}",
            setten_agent::record::Rfc3339(at)
        ),
        None => println!("oldest:      -"),
    }
    println!(
        "evicted:     {} (oldest first, over the size cap)",
        st.evicted
    );
    if st.quarantined > 0 {
        println!(
            "quarantined: {} (unreadable; kept in the spool's quarantine table)",
            st.quarantined
        );
    }
    println!("next seq:    {}", st.next_seq);
    Ok(ExitCode::SUCCESS)
}

/// Records a backup result in the spool for the collector. A spool that cannot be used
/// is a warning: the result itself was printed.
fn spool_backup(spool: Option<&Path>, body: Body) {
    let Some(path) = spool else { return };
    match Spool::open(path, spool::DEFAULT_MAX_BYTES).and_then(|mut s| s.push(&[body])) {
        Ok(_) => eprintln!(
            "setten-agent: result recorded for the collector in {} (the running agent or `setten-agent ship` delivers it)",
            path.display()
        ),
        Err(e) => eprintln!(
            "setten-agent: warning: result not recorded for the collector ({}: {e}); --no-spool to skip",
            path.display()
        ),
    }
}

fn backup_cmd(c: BackupCommand) -> Result<ExitCode> {
    use setten_agent::backup;
    let state = backup::default_state_dir();
    let code = |c: i32| ExitCode::from(u8::try_from(c).unwrap_or(2));
    match c {
        BackupCommand::Keygen { file } => match backup::keygen(&file) {
            Ok(k) => {
                println!("{}", k.path.display());
                eprintln!(
                    "setten-agent: new backup key written (mode 0600); keep it off the backup media"
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("setten-agent: error: {e}");
                Ok(code(e.exit_code()))
            }
        },
        BackupCommand::Seal(a) => {
            let medium = backup::MediumName::new(&a.medium).context("--medium")?;
            let mut o = backup::SealOptions::new(&a.dir, medium, &state);
            if let Some(k) = a.key_file {
                o.key_file = k;
            }
            o.manifest_out = a.manifest;
            o.copy_to_medium = a.copy_to_medium;
            o.force = a.force;
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let mut progress = backup::progress_bar(bar);
            let spool = (!a.no_spool).then(|| a.spool.unwrap_or_else(|| state.join("spool.db")));
            let id = backup::finding::MediumId::named(&a.medium);
            let now = setten_agent::ship::now_us();
            match backup::seal(&o, &mut progress) {
                Ok(r) => {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    spool_backup(
                        spool.as_deref(),
                        backup::finding::seal(&id, now, &r, a.force),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("setten-agent: error: {e}");
                    if let backup::Error::Suspicious { score } = &e {
                        let reasons: Vec<String> =
                            score.reasons.iter().map(|r| r.summary.clone()).collect();
                        spool_backup(
                            spool.as_deref(),
                            backup::finding::seal_refused(&id, now, &reasons),
                        );
                    }
                    Ok(code(e.exit_code()))
                }
            }
        }
        BackupCommand::Verify(a) => {
            let mut o = backup::VerifyOptions::new(&a.dir, &state);
            o.manifest = a.manifest;
            if let Some(m) = &a.medium {
                o.medium = Some(backup::MediumName::new(m).context("--medium")?);
            }
            if let Some(k) = a.key_file {
                o.key_file = k;
            }
            o.restart = a.restart;
            o.mode = match a.mode {
                VerifyModeArg::Full => backup::VerifyMode::Full,
                VerifyModeArg::Sample => backup::VerifyMode::Sample {
                    fraction: a
                        .fraction
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--fraction: {e}"))?,
                    seed: None,
                },
                VerifyModeArg::Rolling => backup::VerifyMode::Rolling {
                    max_bytes: None,
                    max_duration: None,
                },
            };
            let cancel = Arc::new(AtomicBool::new(false));
            o.cancel = Some(cancel);
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let mut progress = backup::progress_bar(bar);
            let spool = (!a.no_spool).then(|| a.spool.unwrap_or_else(|| state.join("spool.db")));
            let mode = match a.mode {
                VerifyModeArg::Full => "full",
                VerifyModeArg::Sample => "sample",
                VerifyModeArg::Rolling => "rolling",
            };
            match backup::verify(&o, &mut progress) {
                Ok(r) => {
                    match a.format {
                        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                        ReportFormat::Table => print!("{}", r.to_table(200)),
                    }
                    let id = backup::finding::MediumId::named(&r.manifest.medium);
                    spool_backup(
                        spool.as_deref(),
                        backup::finding::verify(&id, setten_agent::ship::now_us(), &r),
                    );
                    Ok(code(r.exit_code))
                }
                Err(e) => {
                    eprintln!("setten-agent: error: {e}");
                    // Only a named medium can be reported: the manifest did not say.
                    if let Some(m) = &a.medium {
                        spool_backup(
                            spool.as_deref(),
                            backup::finding::verify_failed(
                                &backup::finding::MediumId::named(m),
                                setten_agent::ship::now_us(),
                                mode,
                                &e.to_string(),
                            ),
                        );
                    }
                    Ok(code(e.exit_code()))
                }
            }
        }
    }
}
