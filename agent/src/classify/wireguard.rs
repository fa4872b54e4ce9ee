//! wireguard detection (not written yet).

use super::{Cx, Verdict};

/// Detects wireguard.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
