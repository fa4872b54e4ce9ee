//! `setten-collector`: command-line glue over the `setten_collector` library.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use setten_collector::config::{self, Flags, ServeConfig};
use setten_collector::token::Role;
use setten_collector::{admin, open_store, tls, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The setten collector: receives the agents' findings and merges one inventory of the
/// hospital's external connection points (外部接続点).
#[derive(Parser)]
#[command(name = "setten-collector", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data directory comes from, for the administrative commands.
#[derive(clap::Args)]
struct DataArgs {
    /// Data directory (default: the config file's `data`, else /var/lib/setten-collector).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Configuration file, read for its `data` key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataArgs {
    fn dir(&self) -> Result<PathBuf> {
        Ok(config::data_dir(
            self.config.as_deref(),
            self.data.as_deref(),
        )?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (HTTPS; plain HTTP only on loopback with --plain-http).
    Serve {
        /// Configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Data directory.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Address and port to listen on (default 0.0.0.0:8443).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Serve plain HTTP (only on a loopback address).
        #[arg(long)]
        plain_http: bool,
        /// Rules directory (default: the built-in rules).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Enrol, list and revoke agents and readers.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The hospital's ledger (台帳) of expected external connections.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Web UI accounts: add, list, remove.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Import export files carried from an air-gapped site.
    Import {
        /// Export files (`setten-agent export`).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the 現地調査 survey report (HTML, the ledger CSV, JSON, or PDF through Chromium).
    Report(ReportArgs),
    /// Print the TLS certificate's fingerprint, for agents to pin.
    Fingerprint {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Alerts: list, acknowledge, send a test through a channel.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Open,
    Acked,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    Ja,
    En,
}

#[derive(Subcommand)]
enum AlertCommand {
    /// List alerts, newest first.
    List {
        /// Acknowledged or not.
        #[arg(long, value_enum, default_value = "all")]
        state: StateArg,
        /// At least this severity (info, warning, critical).
        #[arg(long)]
        severity: Option<String>,
        /// Of this rule (e.g. alert.point.inbound_internet).
        #[arg(long)]
        rule: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Language of the texts.
        #[arg(long, value_enum, default_value = "ja")]
        lang: LangArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Acknowledge alert ID: it stops escalating.
    Ack {
        /// The alert's id.
        id: i64,
        /// Who acknowledges (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// A note.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Send a test alert through CHANNEL (as configured in --config) and report the result.
    Test {
        /// The channel's name.
        channel: String,
        /// Configuration file with the [[alerts.channel]] entries.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "/etc/setten-collector/collector.toml"
        )]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct ReportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Language.
    #[arg(long, value_enum, default_value = "ja")]
    lang: LangArg,
    /// Format (default: from --out's extension, else html).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The file to write (default: setten-report-DATE.EXT in the current directory).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// The hospital or site name on the cover (default: `[site] name` in the rules).
    #[arg(long, value_name = "NAME")]
    site: Option<String>,
    /// Rules directory (site name, time zone, risk texts; default: the built-in rules).
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// The CSV's encoding.
    #[arg(long, value_enum, default_value = "utf-8")]
    encoding: EncodingArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Html,
    Csv,
    Json,
    Pdf,
}

#[derive(Clone, Copy, ValueEnum)]
enum EncodingArg {
    #[value(name = "utf-8")]
    Utf8,
    #[value(name = "shift_jis")]
    ShiftJis,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Agent,
    Reader,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Enrol NAME and print its token (shown once).
    Add {
        /// 1 to 64 of A-Z a-z 0-9 _ -.
        name: String,
        /// `agent` sends findings and reads; `reader` only reads.
        #[arg(long, value_enum, default_value = "agent")]
        role: RoleArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List enrolled names.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke NAME: its token is refused from the next request on.
    Revoke {
        /// The name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum UserRoleArg {
    Viewer,
    Admin,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a web UI user. The password is asked twice on the terminal, or read from the
    /// first line of standard input when it is not a terminal.
    Add {
        /// 1 to 64 of A-Z a-z 0-9 . _ -.
        name: String,
        /// `viewer` reads; `admin` also acknowledges alerts and manages.
        #[arg(long, value_enum)]
        role: UserRoleArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List web UI users.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a web UI user; their sessions end at once.
    Remove {
        /// The name.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Store a ledger (CSV, UTF-8 or Shift_JIS); it replaces the previous one.
    Import {
        /// The ledger file.
        file: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("setten-collector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            config,
            data,
            listen,
            plain_http,
            rules,
        } => serve(Flags {
            config,
            data,
            listen,
            plain_http,
            rules,
        }),
        Command::Agent { command } => agent(command),
        Command::User { command } => user(command),
        Command::Ledger {
            command: LedgerCommand::Import { file, data },
        } => ledger_import(&file, &data.dir()?),
        Command::Import { files, data } => import(&files, &data.dir()?),
        Command::Report(a) => report(a),
        Command::Fingerprint { data } => fingerprint(&data),
        Command::Alert { command } => alert(command),
    }
}

fn serve(flags: Flags) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = ServeConfig::resolve(&flags)?;
    let server = Server::prepare(&cfg)?;
    if let Some(fp) = server.fingerprint() {
        if server.certificate_generated() {
            tracing::info!(
                fingerprint = fp,
                "made a self-signed certificate; agents pin this fingerprint"
            );
        } else {
            tracing::info!(fingerprint = fp, "TLS certificate");
        }
    }
    tracing::info!(
        addr = %server.local_addr(),
        data = %cfg.data.display(),
        points = server.state().merged().point_count(),
        "setten-collector ready"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server.run(shutdown_signal()))?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C"),
        () = term => tracing::info!("SIGTERM"),
    }
}

fn agent(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Add { name, role, data } => {
            let store = open_store(&data.dir()?)?;
            let role = match role {
                RoleArg::Agent => Role::Agent,
                RoleArg::Reader => Role::Reader,
            };
            let (rec, token) = admin::add_agent(&*store, &name, role)?;
            eprintln!(
                "Enrolled `{}` as {}. Its token follows; it is shown only this once (the collector keeps only its hash), so put it in the {}'s configuration now:",
                rec.name,
                rec.role.as_str(),
                rec.role.as_str()
            );
            println!("{token}");
            Ok(())
        }
        AgentCommand::List { data } => {
            let store = open_store(&data.dir()?)?;
            let agents = setten_collector::Store::agents(&*store)?;
            print!("{}", admin::agent_table(&agents));
            Ok(())
        }
        AgentCommand::Revoke { name, data } => {
            let store = open_store(&data.dir()?)?;
            let rec = admin::revoke_agent(&*store, &name)?;
            eprintln!(
                "Revoked `{}`: its token is refused from the next request on. Its findings stay.",
                rec.name
            );
            Ok(())
        }
    }
}

/// The new user's password: twice on a terminal, else the first line of stdin.
fn read_new_password() -> Result<String> {
    use std::io::{BufRead, IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").context("reading the password")?;
        let b = rpassword::prompt_password("Password again: ").context("reading the password")?;
        if a != b {
            bail!("the two passwords differ; nothing was changed");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(8192)
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn user(command: UserCommand) -> Result<()> {
    use setten_collector::store::{Accounts, UserRole};
    match command {
        UserCommand::Add { name, role, data } => {
            setten_collector::ui::auth::check_user_name(&name)?;
            let store = open_store(&data.dir()?)?;
            let role = match role {
                UserRoleArg::Viewer => UserRole::Viewer,
                UserRoleArg::Admin => UserRole::Admin,
            };
            let password = read_new_password()?;
            let rec = setten_collector::ui::auth::add_user(&*store, &name, role, &password)?;
            eprintln!(
                "Added `{}` as {}: they log in at https://<collector>/ui/ with this password.",
                rec.name,
                rec.role.as_str()
            );
            Ok(())
        }
        UserCommand::List { data } => {
            let store = open_store(&data.dir()?)?;
            println!("{:<24} {:<8} CREATED", "NAME", "ROLE");
            for u in store.users()? {
                println!(
                    "{:<24} {:<8} {}",
                    u.name,
                    u.role.as_str(),
                    setten_collector::time::render(Some(u.created_us)).unwrap_or_default()
                );
            }
            Ok(())
        }
        UserCommand::Remove { name, data } => {
            let store = open_store(&data.dir()?)?;
            let rec = store.remove_user(&name)?;
            eprintln!("Removed `{}`; their sessions have ended.", rec.name);
            Ok(())
        }
    }
}

fn ledger_import(file: &Path, data: &Path) -> Result<()> {
    let store = open_store(data)?;
    let done = match admin::import_ledger(&*store, file) {
        Ok(d) => d,
        Err(e) => {
            if let admin::AdminError::LedgerUnusable { rows, .. } = &e {
                for r in rows {
                    eprintln!("{r}");
                }
            }
            return Err(e.into());
        }
    };
    let l = &done.ledger;
    for e in &l.errors {
        eprintln!("{}", e.display(&l.source));
    }
    if !l.ignored_columns.is_empty() {
        eprintln!(
            "{}: columns not used: {}",
            l.source,
            l.ignored_columns.join(", ")
        );
    }
    println!(
        "imported ledger {} ({}): {} entries{}; it is in force from the next request",
        l.source,
        l.encoding,
        l.entries.len(),
        if l.errors.is_empty() {
            String::new()
        } else {
            format!(", {} rows left out (listed above)", l.errors.len())
        }
    );
    Ok(())
}

fn import(files: &[PathBuf], data: &Path) -> Result<()> {
    let store = open_store(data)?;
    let mut failed = 0;
    for f in files {
        match admin::import_file(&*store, f) {
            Ok(d) => println!(
                "{}: agent {}: {} findings, {} stored, {} duplicates (last seq {})",
                f.display(),
                d.agent,
                d.findings,
                d.ingested.stored,
                d.ingested.duplicates,
                d.ingested.last_seq
            ),
            Err(e) => {
                failed += 1;
                eprintln!("setten-collector: {e}");
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} files refused; nothing from them was stored",
            files.len()
        );
    }
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    use setten_agent::inventory::output::Lang;
    use setten_agent::report::{CsvEncoding, Format};
    use setten_collector::report::{render_with, Options};
    let format = match (a.format, &a.out) {
        (Some(f), _) => match f {
            FormatArg::Html => Format::Html,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Pdf => Format::Pdf,
        },
        (None, Some(p)) => Format::from_path(p).unwrap_or(Format::Html),
        (None, None) => Format::Html,
    };
    if format == Format::Pdf && setten_agent::report::pdf::find_chromium().is_none() {
        bail!("--format pdf needs Chromium (install `chromium` and `fonts-noto-cjk`, or set SETTEN_CHROMIUM); or write html and print it from a browser");
    }
    let dir = a.data.dir()?;
    if !dir.join(setten_collector::store::DB_FILE).is_file() {
        bail!(
            "{}: no store here (give --data or --config of the collector)",
            dir.display()
        );
    }
    let store = open_store(&dir)?;
    let rules = match &a.rules {
        Some(d) => setten_agent::rules::Rules::load_dir(d)?,
        None => setten_agent::rules::Rules::defaults()?,
    };
    let oui_dir = std::env::var_os("SETTEN_IEEE_DATA").map(PathBuf::from);
    let state = setten_collector::api::AppState::new(
        store,
        rules.policy,
        setten_collector::config::Limits::default(),
        oui_dir,
    )?;
    // SOURCE_DATE_EPOCH (seconds) fixes the report's time, as for the agent
    // (https://reproducible-builds.org/specs/source-date-epoch/).
    let now_us = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .and_then(|s| s.checked_mul(1_000_000))
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970"))?,
        ),
        Err(_) => None,
    };
    let lang = match a.lang {
        LangArg::Ja => Lang::Ja,
        LangArg::En => Lang::En,
    };
    let out = render_with(
        &state,
        lang,
        format,
        &Options {
            now_us,
            site: a.site,
            csv_encoding: match a.encoding {
                EncodingArg::Utf8 => CsvEncoding::Utf8Bom,
                EncodingArg::ShiftJis => CsvEncoding::ShiftJis,
            },
        },
    )?;
    let path = a.out.unwrap_or_else(|| PathBuf::from(&out.filename));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, &out.bytes).with_context(|| format!("{}: writing", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}: writing", path.display()))?;
    println!("{} ({} bytes)", path.display(), out.bytes.len());
    Ok(())
}

fn fingerprint(data: &DataArgs) -> Result<()> {
    if let Some(cert) = config::configured_cert(data.config.as_deref())? {
        println!("{}", tls::certificate_fingerprint(&cert)?);
        return Ok(());
    }
    let dir = data.dir()?;
    match tls::existing_self_signed(&dir)? {
        Some(fp) => {
            println!("{fp}");
            Ok(())
        }
        None => bail!(
            "{}: no certificate yet; `setten-collector serve` makes one on first start",
            dir.join(tls::CERT_FILE).display()
        ),
    }
}

fn alert(command: AlertCommand) -> Result<()> {
    use setten_collector::alerts::{self, config::Lang, AlertFilter, AlertState, Severity};
    match command {
        AlertCommand::List {
            state,
            severity,
            rule,
            limit,
            json,
            lang,
            data,
        } => {
            let store = open_store(&data.dir()?)?;
            let min_severity =
                match severity.as_deref() {
                    None => None,
                    Some(s) => Some(Severity::parse(s).with_context(|| {
                        format!("--severity {s:?}: use info, warning or critical")
                    })?),
                };
            let filter = AlertFilter {
                state: match state {
                    StateArg::Open => AlertState::Open,
                    StateArg::Acked => AlertState::Acked,
                    StateArg::All => AlertState::All,
                },
                min_severity,
                rule,
                limit: Some(limit),
                ..AlertFilter::default()
            };
            let lang = match lang {
                LangArg::Ja => Lang::Ja,
                LangArg::En => Lang::En,
            };
            let list = alerts::list(&*store, &filter)?;
            if json {
                for a in &list {
                    println!("{}", alerts::to_json(a, lang));
                }
                return Ok(());
            }
            println!(
                "{:>6}  {:<8}  {:<24}  {:<7}  {:<22}  TITLE",
                "ID", "SEVERITY", "RAISED", "REPEATS", "STATE"
            );
            for a in &list {
                let delivered = a
                    .deliveries
                    .iter()
                    .filter(|d| d.state == "delivered")
                    .count();
                let pending = a.deliveries.iter().filter(|d| d.state == "pending").count();
                let failed = a.deliveries.iter().filter(|d| d.state == "failed").count();
                let mut st = if a.acked_us.is_some() {
                    "acked".to_owned()
                } else {
                    "open".to_owned()
                };
                st.push_str(&format!(" {delivered}/{}", a.deliveries.len()));
                if pending > 0 {
                    st.push_str(&format!(" {pending}p"));
                }
                if failed > 0 {
                    st.push_str(&format!(" {failed}f"));
                }
                if a.escalated_us.is_some() {
                    st.push_str(" esc");
                }
                println!(
                    "{:>6}  {:<8}  {:<24}  {:<7}  {:<22}  {}",
                    a.id,
                    a.severity.as_str(),
                    setten_collector::time::render(Some(a.raised_us)).unwrap_or_default(),
                    a.repeats,
                    st,
                    a.content.texts(lang).title
                );
            }
            Ok(())
        }
        AlertCommand::Ack { id, by, note, data } => {
            let store = open_store(&data.dir()?)?;
            let by = by
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            let a = alerts::acknowledge(&*store, id, &by, note.as_deref())?;
            println!(
                "alert #{} acknowledged by {} at {}",
                a.id,
                a.acked_by.as_deref().unwrap_or("?"),
                setten_collector::time::render(a.acked_us).unwrap_or_default()
            );
            Ok(())
        }
        AlertCommand::Test { channel, config } => {
            let cfg = ServeConfig::resolve(&Flags {
                config: Some(config.clone()),
                ..Flags::default()
            })?;
            let Some(ch) = cfg.alerts.channel(&channel).cloned() else {
                let names: Vec<&str> = cfg
                    .alerts
                    .channels
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                bail!(
                    "{}: no alert channel named `{channel}` (configured: {})",
                    config.display(),
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
            };
            let rules = match &cfg.rules {
                Some(dir) => setten_agent::rules::Rules::load_dir(dir)?,
                None => setten_agent::rules::Rules::defaults()?,
            };
            let kind = ch.kind_name();
            let sender = alerts::channels::Sender::new(ch.clone())
                .map_err(|e| anyhow::anyhow!("channel `{channel}`: {e}"))?;
            let now = setten_collector::now_us();
            let alert = alerts::engine::Engine::test_alert(now);
            let msg = alerts::render::Message {
                alert: &alert,
                delivery: 0,
                escalation: false,
                test: true,
                lang: ch.lang,
                utc_offset_secs: rules.policy.utc_offset_secs,
                now_us: now,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            match rt.block_on(sender.send(&msg)) {
                Ok(()) => {
                    println!(
                        "sent a test alert through `{channel}` ({kind}); the receiver accepted it"
                    );
                    Ok(())
                }
                Err(e) => bail!("the test alert through `{channel}` ({kind}) failed: {e}"),
            }
        }
    }
}
