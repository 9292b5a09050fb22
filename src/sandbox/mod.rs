//! The healthcheck sandbox: materialise the merged root filesystem into a private directory on disk and
//! run `/x1/bin/entrypoint --healthcheck` in it under bubblewrap ([`bwrap`]), with the image's user, env
//! and working directory, no network, resource limits, a time limit and an output cap.
//!
//! # Why bubblewrap
//! A real, audited sandboxing tool (Flatpak's) rather than a hand-made namespace script: it pivots into
//! the new root (never `chroot`), unshares every namespace, sets `no_new_privs`, drops every capability,
//! mounts the root read-only `nosuid,nodev`, and dies with its parent; it takes the environment as
//! arguments (`--clearenv --setenv`), so nothing from the image reaches a host process or loader. It
//! works as root and as an ordinary user (unprivileged user namespaces), needs no daemon, and starts in
//! milliseconds. An OCI runtime (crun) would need a generated `config.json` and a rootless cgroup setup
//! for the same result. The crate forbids `unsafe` and runs rayon pools (a multi-threaded process cannot
//! enter a user namespace), so the sandbox has to be a separate program anyway.
//!
//! The docker/podman fallback of the first version is gone: it could not give the same properties
//! here (no engine runs on this machine, so it could not be tested) and it ran the image's `Env` through
//! an engine client. Where bwrap is missing or user namespaces are refused, the check is not-run.
//!
//! # Outcomes
//! [`Outcome::Passed`], [`Outcome::Failed`] (exit code or signal, output excerpt), [`Outcome::TimedOut`],
//! [`Outcome::Unrunnable`] (the image's own content kept it from running: a tree the kernel refuses, too
//! large to materialise — a finding), [`Outcome::NotRun`] (this machine has no sandbox, the entrypoint is
//! missing, an ELF for another machine). Not-run is never passed.

pub mod bwrap;
pub mod cleanup;
pub mod materialise;
pub mod process;
pub mod resolve;
pub mod store;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::image::{Image, ImageConfig, LayerListing, MergedTree, Source};

pub use bwrap::Limits;
pub use cleanup::Workspace;
pub use materialise::{Ownership, Stats};
pub use process::Exit;

/// The program the healthcheck runs.
pub const ENTRYPOINT: &str = "/x1/bin/entrypoint";

/// Default wall-clock limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap per output stream.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// Default cap on the materialised root filesystem (file bytes + 512 per entry): 4 GiB.
pub const DEFAULT_MAX_ROOTFS: u64 = 4 << 30;

/// The environment variable that overrides [`DEFAULT_MAX_ROOTFS`] (bytes, or with a `K`/`M`/`G` suffix,
/// binary multiples).
pub const MAX_ROOTFS_ENV: &str = "X1_VALIDATE_MAX_ROOTFS_SIZE";

/// Sandbox options.
#[derive(Debug, Clone)]
pub struct Options {
    pub timeout: Duration,
    pub output_cap: usize,
    /// The command line (default `[ENTRYPOINT, "--healthcheck"]`).
    pub argv: Vec<String>,
    pub limits: Limits,
    /// Cap on the materialised tree, see [`DEFAULT_MAX_ROOTFS`].
    pub max_rootfs: u64,
    /// The layer store's bound (`None`: no store, every file is written).
    pub layer_store: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            output_cap: DEFAULT_OUTPUT_CAP,
            argv: vec![ENTRYPOINT.into(), "--healthcheck".into()],
            limits: Limits::default(),
            max_rootfs: DEFAULT_MAX_ROOTFS,
            layer_store: Some(store::DEFAULT_BOUND),
        }
    }
}

/// `X1_VALIDATE_MAX_ROOTFS_SIZE` if set (`Err` when it is not a size), else the default.
pub fn max_rootfs_from_env() -> Result<u64, String> {
    match std::env::var(MAX_ROOTFS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAX_ROOTFS),
        Err(_) => Err(format!("{MAX_ROOTFS_ENV} is not valid UTF-8")),
        Ok(v) => crate::units::parse_size(&v)
            .map_err(|_| format!("{MAX_ROOTFS_ENV}={v:?} is not a size (e.g. 4G, 512M, 1000000)")),
    }
}

/// What the healthcheck did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed {
        output: String,
    },
    /// `exit` is `None` when the image's own settings kept the process from starting (unknown `User`).
    Failed {
        exit: Option<Exit>,
        output: String,
    },
    TimedOut {
        output: String,
    },
    /// The image's own content kept the healthcheck from running (a finding, not not-run).
    Unrunnable {
        reason: String,
    },
    NotRun {
        reason: String,
    },
}

/// The outcome plus how it was obtained.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: Outcome,
    /// "bwrap", or "none".
    pub backend: &'static str,
    pub stats: Option<Stats>,
    pub materialise_time: Option<Duration>,
    pub run_time: Option<Duration>,
    /// The temporary directory that was used (already removed when the report is returned).
    pub workspace: Option<PathBuf>,
}

impl RunReport {
    fn not_run(reason: impl Into<String>) -> RunReport {
        RunReport::with(Outcome::NotRun {
            reason: reason.into(),
        })
    }

    fn with(outcome: Outcome) -> RunReport {
        RunReport {
            outcome,
            backend: "none",
            stats: None,
            materialise_time: None,
            run_time: None,
            workspace: None,
        }
    }
}

/// Whether the sandbox can be used here (`Err` says why not).
pub fn available() -> Result<(), String> {
    bwrap::Tools::find().and_then(|t| bwrap::probe(&t))
}

/// How files are owned for a run: shifted into the unprivileged `BASE` range as host root.
pub fn ownership() -> Ownership {
    if bwrap::running_as_root() {
        Ownership::Shifted { base: bwrap::BASE }
    } else {
        Ownership::Caller
    }
}

/// Materialise `image` and run the healthcheck in it. The temporary directory is gone when this returns.
pub fn healthcheck(
    source: &Source,
    image: &Image,
    listings: &[LayerListing],
    tree: &MergedTree,
    opts: &Options,
) -> RunReport {
    let tools = match bwrap::Tools::find().and_then(|t| bwrap::probe(&t).map(|()| t)) {
        Ok(t) => t,
        Err(e) => return RunReport::not_run(format!("no sandbox: {e}")),
    };
    let own = ownership();
    let ws = match Workspace::new() {
        Ok(ws) => ws,
        Err(e) => {
            return RunReport::not_run(format!("could not create a temporary directory: {e}"));
        }
    };
    let workspace = Some(ws.path().to_path_buf());
    let start = Instant::now();
    let store = opts
        .layer_store
        .and_then(|bound| store::Store::open(ws.parent(), own, bound));
    let stats = match materialise::materialise(
        source,
        image,
        listings,
        tree,
        &ws.root(),
        own,
        opts.max_rootfs,
        store.as_ref(),
    ) {
        Ok(s) => s,
        Err(e) if e.image_caused() => {
            let why = format!("the image's root filesystem cannot be materialised: {e}");
            return RunReport {
                workspace,
                backend: "bwrap",
                ..RunReport::with(Outcome::Unrunnable {
                    reason: excerpt(why.as_bytes(), 600),
                })
            };
        }
        Err(e) => {
            return RunReport {
                workspace,
                ..RunReport::not_run(format!("could not materialise the root filesystem: {e}"))
            };
        }
    };
    let mat = start.elapsed();
    let mut report = run_in_root(&ws.root(), &image.config, own, &tools, opts);
    report.stats = Some(stats);
    report.materialise_time = Some(mat);
    report.workspace = workspace;
    drop(ws);
    report
}

/// A directory that bwrap may mount on: created (in-root) when missing; `None` when the path goes
/// through a symlink (bwrap would resolve it outside the new root during setup).
fn mount_point(root: &Path, dir: &str, own: Ownership) -> Result<Option<String>, String> {
    let rel = materialise::normalise(dir);
    if rel.is_empty() {
        return Ok(None);
    }
    if let Err(e) = materialise::ensure_dir(root, &rel, own) {
        return Err(format!("could not prepare /{rel}: {e}"));
    }
    Ok(resolve::plain_dir(root, &rel).then(|| format!("/{rel}")))
}

fn run_in_root(
    root: &Path,
    config: &ImageConfig,
    own: Ownership,
    tools: &bwrap::Tools,
    opts: &Options,
) -> RunReport {
    let Some(program) = opts.argv.first() else {
        return RunReport::not_run("no program to run");
    };
    if let Err(why) = resolve::runnable(root, program) {
        return RunReport::not_run(why);
    }
    let user = match resolve::user(root, &config.user) {
        Ok(u) => u,
        Err(why) => {
            return RunReport::with(Outcome::Failed {
                exit: None,
                output: why,
            });
        }
    };
    let workdir = if config.working_dir.is_empty() {
        "/".to_string()
    } else {
        config.working_dir.clone()
    };
    // Mount points bwrap needs: /proc, /dev and /tmp are replaced by directories when the image has
    // something else there (as a runtime's mounts would hide it); the working directory is created.
    for dir in ["proc", "dev", "tmp", workdir.as_str()] {
        match mount_point(root, dir, own) {
            Ok(_) => {}
            Err(why) => {
                return RunReport {
                    backend: "bwrap",
                    ..RunReport::with(Outcome::Unrunnable {
                        reason: excerpt(why.as_bytes(), 600),
                    })
                };
            }
        }
    }
    let home = match user.home.as_str() {
        "" | "/" => None,
        h if ["/proc", "/dev", "/tmp"]
            .iter()
            .any(|m| h == *m || h.starts_with(&format!("{m}/"))) =>
        {
            None
        }
        h => mount_point(root, h, own).ok().flatten(),
    };
    let launch = bwrap::Launch {
        root: root.to_path_buf(),
        uid: user.uid,
        gid: user.gid,
        host_ids: own.host_ids(user.uid, user.gid),
        env: resolve::environment(&config.env, &user),
        workdir,
        home,
        argv: opts.argv.clone(),
    };
    let run = match bwrap::run(tools, &launch, opts.limits, opts.timeout, opts.output_cap) {
        Ok(Ok(run)) => run,
        Ok(Err(why)) => return RunReport::not_run(why),
        Err(e) => return RunReport::not_run(format!("could not start the sandbox: {e}")),
    };
    let mut output = combined(&run.stdout, &run.stderr);
    if run.truncated {
        output.push_str("\n[output truncated]");
    }
    let outcome = match run.exit {
        Exit::Code(0) => Outcome::Passed { output },
        Exit::TimedOut => Outcome::TimedOut { output },
        exit => Outcome::Failed {
            exit: Some(exit),
            output,
        },
    };
    RunReport {
        outcome,
        backend: "bwrap",
        stats: None,
        materialise_time: None,
        run_time: Some(run.elapsed),
        workspace: None,
    }
}

fn combined(stdout: &[u8], stderr: &[u8]) -> String {
    let (o, e) = (
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr),
    );
    match (o.trim_end().is_empty(), e.trim_end().is_empty()) {
        (true, true) => String::new(),
        (false, true) => o.trim_end().to_string(),
        (true, false) => e.trim_end().to_string(),
        (false, false) => format!("{}\n{}", o.trim_end(), e.trim_end()),
    }
}

/// At most `max` characters of `bytes` (lossy UTF-8, control characters other than newline and tab
/// replaced), with `…` when cut.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
