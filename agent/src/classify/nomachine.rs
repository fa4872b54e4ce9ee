//! nomachine detection (not written yet).

use super::{Cx, Verdict};

/// Detects nomachine.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
