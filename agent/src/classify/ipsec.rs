//! ipsec detection (not written yet).

use super::{Cx, Verdict};

/// Detects ipsec.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
