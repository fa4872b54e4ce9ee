//! openvpn detection (not written yet).

use super::{Cx, Verdict};

/// Detects openvpn.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
