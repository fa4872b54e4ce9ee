//! tailscale detection (not written yet).

use super::{Cx, Verdict};

/// Detects tailscale.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
