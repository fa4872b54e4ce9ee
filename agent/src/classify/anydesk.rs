//! anydesk detection (not written yet).

use super::{Cx, Verdict};

/// Detects anydesk.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
