//! pptp detection (not written yet).

use super::{Cx, Verdict};

/// Detects pptp.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
