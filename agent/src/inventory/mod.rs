//! The 外部接続点 inventory: remote-access and VPN flows grouped into external connection
//! points, with names, risks and the hospital's ledger.

pub mod ledger;
pub mod window;
pub mod quality;
