//! radmin detection (not written yet).

use super::{Cx, Verdict};

/// Detects radmin.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
