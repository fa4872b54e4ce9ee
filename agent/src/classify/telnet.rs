//! telnet detection (not written yet).

use super::{Cx, Verdict};

/// Detects telnet.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
