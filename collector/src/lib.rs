//! setten collector: receives the agents' findings, keeps them in an embedded store and
//! merges one external-connection-point (外部接続点) inventory.
//!
//! The pieces, in the order a finding meets them:
//! - [`server`]: the HTTPS service (`run(listener, transport, state, shutdown)`), with a
//!   cap on connections and graceful shutdown;
//! - [`api`]: the `/api/v1` routes, authentication by bearer token, the per-agent rate
//!   limit, body limits;
//! - [`ingest`]: strict parsing and validation of a [`setten_agent::findings::Batch`],
//!   shared by the API and by `setten-collector import` ([`export`]);
//! - [`store`]: everything accepted, behind the [`store::Store`] trait (SQLite today);
//! - [`merged`]: the in-memory inventory built from the stored findings with the agent's
//!   own merge code, and the points derived from it on request.
//! - [`alerts`]: alert rules, evaluation after each commit and on a timer, the durable
//!   outbox and delivery to e-mail, webhooks and syslog.
//!
//! - [`ui`]: the web UI under `/ui/` (server-rendered pages, local accounts, sessions).
//!
//! [`report`] makes the 現地調査 survey report and the ledger CSV from the store.
//!
//! [`admin`] holds what the command line does besides serving (enrolment, ledger and file
//! import), so the binary stays thin glue.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod alerts;
pub mod api;
pub mod config;
pub mod export;
pub mod ingest;
pub mod merged;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod server;
pub mod store;
pub mod time;
pub mod tls;
pub mod token;
pub mod ui;

pub use server::{run, ServeError, Server, Transport};
pub use store::{open_store, Store};

/// Now, in microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
