//! vnc detection (not written yet).

use super::{Cx, Verdict};

/// Detects vnc.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
