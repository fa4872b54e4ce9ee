//! rdp detection (not written yet).

use super::{Cx, Verdict};

/// Detects rdp.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
