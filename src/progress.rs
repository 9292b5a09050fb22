//! Progress of long image reads: a bar of layer bytes read, on stderr, only where a person watches it.
//!
//! [`wanted`] decides (stderr a terminal, the human format, not in CI, a large input); [`Progress`]
//! draws through `indicatif` and counts the bytes that pass through [`Progress::wrap`]. Reports never
//! carry progress: it goes to stderr and is cleared when the read ends.

use std::io::Read;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Format;

/// The smallest input (compressed layer bytes to read) that gets a bar: below it a read takes a few
/// seconds and a bar would only flash.
pub const MIN_BYTES: u64 = 256 * 1024 * 1024;

/// Whether a read of `bytes` layer bytes shows a bar: stderr is a terminal, the report is human, `CI`
/// is not set (CI logs keep every redraw) and the input is at least [`MIN_BYTES`].
pub fn wanted(stderr_is_terminal: bool, format: Format, ci: bool, bytes: u64) -> bool {
    stderr_is_terminal && format == Format::Human && !ci && bytes >= MIN_BYTES
}

/// Whether the environment says this runs in CI: `CI` set to anything but empty, `0` or `false` (what
/// GitHub Actions, GitLab CI and most others set).
pub fn in_ci(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A bar of bytes read, shared by the threads that read layers.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr for `total` bytes, labelled `what`.
    pub fn stderr(total: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                // `wide_bar` takes what the terminal has left, so the line never wraps.
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Progress { bar }
    }

    /// `r`, counting its bytes on the bar.
    pub fn wrap<R: Read>(&self, r: R) -> impl Read + use<R> {
        self.bar.wrap_read(r)
    }

    /// Remove the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_human_reads_on_a_terminal_outside_ci() {
        let big = MIN_BYTES;
        assert!(wanted(true, Format::Human, false, big));
        assert!(!wanted(true, Format::Human, false, big - 1), "small input");
        assert!(
            !wanted(false, Format::Human, false, big),
            "stderr not a terminal"
        );
        assert!(!wanted(true, Format::Human, true, big), "in CI");
        for f in [Format::Json, Format::Sarif, Format::Junit, Format::Github] {
            assert!(!wanted(true, f, false, u64::MAX), "{f:?}");
        }
    }

    #[test]
    fn ci_is_any_true_value() {
        use std::ffi::OsStr;
        assert!(in_ci(Some(OsStr::new("true"))));
        assert!(in_ci(Some(OsStr::new("1"))));
        assert!(!in_ci(None));
        assert!(!in_ci(Some(OsStr::new(""))));
        assert!(!in_ci(Some(OsStr::new("0"))));
        assert!(!in_ci(Some(OsStr::new("False"))));
    }

    #[test]
    fn wrapped_reads_are_counted_and_unchanged() {
        let p = Progress {
            bar: ProgressBar::hidden(),
        };
        let mut out = Vec::new();
        p.wrap(&b"twelve bytes"[..])
            .read_to_end(&mut out)
            .expect("reads");
        assert_eq!(out, b"twelve bytes");
        assert_eq!(p.bar.position(), 12);
    }
}
