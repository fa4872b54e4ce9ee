//! tinc detection (not written yet).

use super::{Cx, Verdict};

/// Detects tinc.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
