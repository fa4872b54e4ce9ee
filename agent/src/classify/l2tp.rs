//! l2tp detection (not written yet).

use super::{Cx, Verdict};

/// Detects l2tp.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
