//! rsh detection (not written yet).

use super::{Cx, Verdict};

/// Detects rsh.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
