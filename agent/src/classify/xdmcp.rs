//! xdmcp detection (not written yet).

use super::{Cx, Verdict};

/// Detects xdmcp.
pub fn detect(_cx: &Cx<'_>) -> Verdict {
    Verdict::No
}
