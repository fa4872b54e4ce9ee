//! tls detection (not written yet).

use super::{Cx, Verdict};

/// Detects tls.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
