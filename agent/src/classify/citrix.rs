//! citrix detection (not written yet).

use super::{Cx, Verdict};

/// Detects citrix.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
