//! setten agent: finds the external connection points (外部接続点) of a hospital network
//! in captured traffic.
//!
//! The packet path reads top-down as its modules:
//! [`capture`] → [`decode`] → [`flow`] → [`classify`] → [`record`], driven by
//! [`analyze`] for capture files and [`live`] for the long-running agent on a mirror port.
//! Signatures and catalogues are data, loaded by [`rules`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod analyze;
pub mod backup;
pub mod capture;
pub mod classify;
pub mod decode;
pub mod findings;
pub mod flow;
pub mod inventory;
pub mod live;
pub mod names;
pub mod record;
pub mod reload;
pub mod report;
pub mod rules;
pub mod ship;
