//! ssh detection (not written yet).

use super::{Cx, Verdict};

/// Detects ssh.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
