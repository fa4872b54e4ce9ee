//! common detection (not written yet).

use super::{Cx, Verdict};

/// Detects common.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
