//! softether detection (not written yet).

use super::{Cx, Verdict};

/// Detects softether.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
