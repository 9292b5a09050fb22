//! The opencode preset's `/x1` overlay, embedded in the binary file by file so an installed
//! `x1-validate` renders without the repository. `tests/it/render.rs` checks this list against
//! `presets/opencode/overlay/` (every shipped file listed, nothing stale).

/// One embedded overlay file: path under `/x1`, contents, Unix mode.
#[derive(Debug, Clone, Copy)]
pub struct OverlayFile {
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub mode: u32,
}

macro_rules! overlay {
    ($($path:literal => $mode:literal),* $(,)?) => {
        &[$(OverlayFile {
            path: $path,
            bytes: include_bytes!(concat!("../../presets/opencode/overlay/", $path)),
            mode: $mode,
        }),*]
    };
}

/// Files of `presets/opencode/overlay/` that `render` writes (the adapter's `test/` stays out of the
/// image; `app/config/opencode.json` and `app/config/opencode-version` are generated).
pub const OPENCODE: &[OverlayFile] = overlay![
    "bin/entrypoint" => 0o755,
    "bin/gh" => 0o755,
    "bin/git-credential-x1" => 0o755,
    "app/run.sh" => 0o755,
    "app/adapter/package.json" => 0o644,
    "app/adapter/main.mjs" => 0o644,
    "app/adapter/hub.mjs" => 0o644,
    "app/adapter/opencode.mjs" => 0o644,
    "app/adapter/policy.mjs" => 0o644,
    "app/adapter/translate.mjs" => 0o644,
    "etc/gitconfig" => 0o644,
];

/// Render defaults for the opencode preset (`presets/opencode/render.toml`).
pub const OPENCODE_DEFAULTS: &str = include_str!("../../presets/opencode/render.toml");

/// Overlay paths under `presets/<preset>/overlay/` that are never rendered.
pub const NOT_RENDERED: &[&str] = &["app/adapter/test/"];
