//! `setten-agent`: command-line glue over the `setten_agent` library.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use setten_agent::analyze;
use setten_agent::classify::Classifier;
use setten_agent::flow;
use setten_agent::inventory::ledger::Ledger;
use setten_agent::inventory::output::{self, Collect, Lang};
use setten_agent::inventory::{quality, PointsCx};
use setten_agent::names::oui::Oui;
use setten_agent::record::sink::{self, FlowSink};
use setten_agent::record::{Cidr, LocalNets};
use setten_agent::rules::Rules;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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
    /// Analyse capture files (pcap, pcapng, optionally .gz) and report every flow.
    Analyze(AnalyzeArgs),
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
    /// Capture files.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
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
        Command::Analyze(a) => analyze_cmd(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("setten-agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
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
    let inventory = a.inventory || a.ledger.is_some();
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
        let summary = analyze::run(&a.captures, cfg, &classifier, on_open, &mut |f| {
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
        summary
    } else {
        let sink_format = match a.format {
            Format::Jsonl => sink::Format::Jsonl,
            _ => sink::Format::Table,
        };
        let mut sink = FlowSink::spawn(
            sink_format,
            nets,
            rules.clone(),
            Box::new(std::io::stdout()),
        );
        let summary = analyze::run(&a.captures, cfg, &classifier, on_open, &mut |f| {
            sink.push(f)
        });
        ui.stop();
        sink.finish().context("writing the output")?;
        summary
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
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &summary.errors {
            eprintln!("setten-agent: error: {e}");
        }
        Ok(ExitCode::from(1))
    }
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
