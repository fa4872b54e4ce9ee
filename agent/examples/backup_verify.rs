//! A small driver for the backup library, used by `benches/backup.sh` until the
//! `setten-agent backup` commands are wired: whole-process timings of seal and verify.
//!
//! ```text
//! backup_verify keygen KEYFILE
//! backup_verify seal ROOT --state DIR --medium NAME [--force]
//! backup_verify verify ROOT --state DIR [--medium NAME] [--manifest F]
//!               [--mode full|sample|rolling] [--fraction 5%] [--threads auto|seq|N] [--json]
//! ```
//!
//! Exit codes as the CLI will have them: 0 everything matched, 1 differences, 2 could not
//! verify.

use setten_agent::backup::{
    self, Concurrency, MediumName, SampleFraction, SealOptions, VerifyMode, VerifyOptions,
};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: backup_verify keygen KEYFILE\n\
         \x20      backup_verify seal ROOT --state DIR --medium NAME [--force]\n\
         \x20      backup_verify verify ROOT --state DIR [--medium NAME] [--manifest F] [--mode full|sample|rolling] [--fraction F] [--threads auto|seq|N] [--json]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(target)) = (args.first(), args.get(1)) else {
        return usage();
    };
    let mut state = backup::default_state_dir();
    let mut medium = None;
    let mut manifest = None;
    let mut mode = "full".to_owned();
    let mut fraction = SampleFraction::DEFAULT;
    let mut threads = Concurrency::Auto;
    let mut json = false;
    let mut force = false;
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--state" => state = PathBuf::from(val()),
            "--medium" => match MediumName::new(&val()) {
                Ok(m) => medium = Some(m),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            },
            "--manifest" => manifest = Some(PathBuf::from(val())),
            "--mode" => mode = val(),
            "--fraction" => match val().parse() {
                Ok(f) => fraction = f,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            },
            "--threads" => {
                threads = match val().as_str() {
                    "auto" => Concurrency::Auto,
                    "seq" => Concurrency::Sequential,
                    n => match n.parse::<NonZeroUsize>() {
                        Ok(n) => Concurrency::Threads(n),
                        Err(_) => return usage(),
                    },
                }
            }
            "--json" => json = true,
            "--force" => force = true,
            _ => return usage(),
        }
    }
    match cmd.as_str() {
        "keygen" => match backup::keygen(target.as_ref()) {
            Ok(k) => {
                println!("{} (key id {})", k.path.display(), k.key_id);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        "seal" => {
            let Some(medium) = medium else {
                return usage();
            };
            let mut o = SealOptions::new(target, medium, &state);
            o.force = force;
            o.concurrency = threads;
            match backup::seal(&o, &mut |_| {}) {
                Ok(r) => {
                    eprintln!(
                        "sealed generation {} of {}: {} files, {} bytes, {} in {:.2} s{}",
                        r.generation,
                        r.medium,
                        r.totals.files,
                        r.totals.bytes,
                        r.concurrency.reason,
                        r.elapsed_secs,
                        if r.flagged { " (FLAGGED)" } else { "" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        "verify" => {
            let mut o = VerifyOptions::new(target, &state);
            o.medium = medium;
            o.manifest = manifest;
            o.concurrency = threads;
            o.mode = match mode.as_str() {
                "full" => VerifyMode::Full,
                "sample" => VerifyMode::Sample {
                    fraction,
                    seed: None,
                },
                "rolling" => VerifyMode::Rolling {
                    max_bytes: None,
                    max_duration: None,
                },
                _ => return usage(),
            };
            match backup::verify(&o, &mut |_| {}) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    }
                    eprintln!(
                        "{:?}: {} entries, {} findings, {} bytes read in {:.3} s ({}), exit {}",
                        r.outcome,
                        r.counts.entries,
                        r.findings.len(),
                        r.bytes_read,
                        r.elapsed_secs,
                        r.concurrency.reason,
                        r.exit_code
                    );
                    ExitCode::from(r.exit_code as u8)
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(e.exit_code() as u8)
                }
            }
        }
        _ => usage(),
    }
}
