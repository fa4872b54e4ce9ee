//! teamviewer detection (not written yet).

use super::{Cx, Verdict};

/// Detects teamviewer.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
