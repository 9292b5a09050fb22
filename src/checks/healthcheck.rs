//! The `healthcheck` rule: runs `/x1/bin/entrypoint --healthcheck` through `crate::sandbox`.
//! (Owned by the sandbox work.)
//!
//! Statuses: `Passed` (exit 0), `Failed` with one finding (non-zero exit, signal, time limit, a `User`
//! the image cannot resolve, or a root filesystem the image itself makes impossible to materialise: a
//! name the kernel refuses, a directory under a dangling symlink, over the size cap), `NotRun` with the
//! reason in `detail` and no finding (this machine has no sandbox, entrypoint missing, ELF for another
//! machine), `Skipped` under `--exec never`.
//!
//! The entrypoint's output is image-derived text: the finding's message ends with
//! `; output:\n<excerpt>` (the raw excerpt, capped, control characters replaced) so that the report
//! layer's masking can process that one part.

use crate::rules::RuleId;
use std::fmt::Write as _;
use std::time::Duration;

use super::{CheckInput, CheckOutcome, ExecMode};
use crate::report::{Finding, Location, RuleStatus, Severity};
use crate::sandbox::{self, Exit, Outcome};

/// Characters of output shown in a finding.
const EXCERPT: usize = 2000;

/// Outcome for `healthcheck`. Not-run is never passed; with `--exec always` the orchestrator turns a
/// not-run into exit 4.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    // Built through `from_findings` so fields added to `CheckOutcome` later keep their defaults.
    let outcome = |status, detail: String, findings| {
        let mut o = CheckOutcome::from_findings(RuleId::Healthcheck, findings);
        o.status = status;
        o.detail = Some(detail);
        o
    };
    if input.opts.exec == ExecMode::Never {
        return outcome(
            RuleStatus::Skipped,
            "not run: --exec never".into(),
            Vec::new(),
        );
    }
    if input.image.platform.os != "linux" {
        let why = format!(
            "the image is for {}, the sandbox runs Linux images only",
            input.image.platform
        );
        return outcome(RuleStatus::NotRun, why, Vec::new());
    }
    let opts = match options(input) {
        Ok(o) => o,
        Err(why) => return outcome(RuleStatus::NotRun, why, Vec::new()),
    };
    let report = sandbox::healthcheck(
        &input.opened.source,
        input.image,
        input.listings,
        input.tree,
        &opts,
    );
    let mut summary = format!("via {}", report.backend);
    if let (Some(s), Some(t)) = (&report.stats, report.materialise_time) {
        let _ = write!(
            summary,
            "; root filesystem of {} files, {} dirs, {} symlinks materialised in {}",
            s.files,
            s.dirs,
            s.symlinks,
            secs(t)
        );
    }
    if let Some(t) = report.run_time {
        let _ = write!(summary, "; ran {}", secs(t));
    }
    let cmd = opts.argv.join(" ");
    let failed = |what: String, output: &str| finding(&cmd, &what, Some(output));
    match report.outcome {
        Outcome::Passed { .. } => outcome(
            RuleStatus::Passed,
            format!("exited 0 ({summary})"),
            Vec::new(),
        ),
        Outcome::Failed { exit, output } => {
            let what = match exit {
                Some(Exit::Code(c)) => format!("exited with code {c}"),
                Some(Exit::Signal(s)) => format!("was killed by signal {s}"),
                Some(Exit::TimedOut) => "timed out".into(),
                None => "could not start".into(),
            };
            outcome(
                RuleStatus::Failed,
                format!("{what} ({summary})"),
                failed(what, &output),
            )
        }
        Outcome::TimedOut { output } => {
            let what = format!(
                "did not finish within {} and was killed with its process tree",
                secs(opts.timeout)
            );
            outcome(
                RuleStatus::Failed,
                format!("timed out ({summary})"),
                failed(what, &output),
            )
        }
        Outcome::Unrunnable { reason } => {
            let what = format!("could not be run because of the image's own content: {reason}");
            outcome(
                RuleStatus::Failed,
                format!("{what} ({summary})"),
                finding(&cmd, &what, None),
            )
        }
        Outcome::NotRun { reason } => outcome(RuleStatus::NotRun, reason, Vec::new()),
    }
}

/// The one finding of a failed healthcheck, with the output excerpt.
fn finding(cmd: &str, what: &str, output: Option<&str>) -> Vec<Finding> {
    let mut message = format!("`{cmd}` {what}");
    let Some(output) = output else {
        return vec![Finding {
            rule_id: RuleId::Healthcheck,
            severity: Severity::Error,
            message,
            help: Some(
                "Make the image's root filesystem one a container runtime can unpack: no names the \
                 kernel refuses, no entries below symlinks that lead nowhere, within the size cap \
                 (X1_VALIDATE_MAX_ROOTFS_SIZE)."
                    .into(),
            ),
            location: Location::Path {
                path: sandbox::ENTRYPOINT.into(),
            },
            evidence: None,
        }];
    };
    if output.is_empty() {
        message.push_str(" (no output)");
    } else {
        let _ = write!(
            message,
            "; output:\n{}",
            // Masked whole before it is cut: a key across the cut must not leave its head behind.
            sandbox::excerpt(crate::report::mask_multiline(output).as_bytes(), EXCERPT)
        );
    }
    vec![Finding {
        rule_id: RuleId::Healthcheck,
        severity: Severity::Error,
        message,
        help: Some(
            "Run the image's entrypoint with --healthcheck (no network, the image's User/Env/WorkingDir) \
             and make it exit 0 within the time limit (--healthcheck-timeout)."
                .into(),
        ),
        location: Location::Path { path: sandbox::ENTRYPOINT.into() },
        evidence: None,
    }]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The sandbox options: the command line's timeout, the environment's size cap and layer store.
fn options(input: &CheckInput<'_>) -> Result<sandbox::Options, String> {
    Ok(sandbox::Options {
        max_rootfs: sandbox::max_rootfs_from_env()?,
        layer_store: sandbox::store::bound_from_env()?.filter(|_| !input.opts.no_layer_store),
        timeout: if input.opts.healthcheck_timeout.is_zero() {
            sandbox::DEFAULT_TIMEOUT
        } else {
            input.opts.healthcheck_timeout
        },
        ..sandbox::Options::default()
    })
}
