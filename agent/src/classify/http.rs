//! http detection (not written yet).

use super::{Cx, Verdict};

/// Detects http.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
