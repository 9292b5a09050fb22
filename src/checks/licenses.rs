//! License checks: `runtime-license`, `denied-license`, `license-label`. (Owned by the license work.)
