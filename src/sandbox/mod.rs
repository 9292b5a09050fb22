//! The healthcheck sandbox: materialise the merged root filesystem into a private temporary directory and
//! run `/x1/bin/entrypoint --healthcheck` in new user/mount/PID/network/IPC/UTS namespaces, with a time
//! limit and an output cap; fall back to docker/podman; otherwise not-run.
//!
//! # Why a helper process and not syscalls here
//! The crate forbids `unsafe`, and `unshare(CLONE_NEWUSER)` is refused to a multi-threaded process (we
//! run rayon pools), so namespaces must be entered by a freshly spawned, single-threaded process; with
//! std's safe `Command` the only such process we can start is an existing program. A re-exec of our own
//! binary would not work when the library is used from another binary (tests, embedders). So the
//! sandbox is util-linux `unshare` plus a ten-line POSIX `sh` script, both present on every Linux that
//! has namespaces; everything that needs care is done here in Rust with safe `rustix` calls:
//! materialisation through `openat2(RESOLVE_IN_ROOT)` ([`materialise`]), the user-namespace maps
//! ([`namespace`]), the time limit, output cap and whole-tree kill ([`process`]), and removal of the
//! temporary directory on every exit path, signals included ([`cleanup`]).
//!
//! # Isolation
//! - user namespace: as host root the sandbox's ids are the unprivileged host range
//!   `BASE..BASE+65536` (even the image's root is nobody on the host); otherwise the caller's id;
//! - mount namespace, `chroot` into the materialised root, `/proc` of the new PID namespace, a tmpfs
//!   `/dev` with `null zero full random urandom tty` bind-mounted from the host and a tmpfs `/dev/shm`;
//! - network namespace with only `lo` (brought up when `ip` is present); IPC and UTS namespaces;
//! - the process runs as the image's `User` (resolved through the image's own `/etc/passwd` and
//!   `/etc/group`; supplementary groups are not set), with exactly the image's `Env` (plus Docker's
//!   `PATH`/`HOME` defaults when absent) and its `WorkingDir`;
//! - at the time limit the PID namespace's init is killed (the kernel then kills every process in it)
//!   and the process group after it.
//!
//! # Outcomes
//! [`Outcome::Passed`], [`Outcome::Failed`] (exit code or signal, output excerpt), [`Outcome::TimedOut`],
//! [`Outcome::NotRun`] with the reason: entrypoint missing, ELF for another machine, or no sandbox
//! (namespaces refused and no working docker/podman). Not-run is never passed.

pub mod cleanup;
pub mod engine;
pub mod materialise;
pub mod namespace;
pub mod process;
pub mod resolve;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::image::{Image, ImageConfig, LayerListing, MergedTree, Source};

pub use cleanup::Workspace;
pub use materialise::{Ownership, Stats};
pub use process::Exit;

/// The program the healthcheck runs.
pub const ENTRYPOINT: &str = "/x1/bin/entrypoint";

/// Default wall-clock limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default cap per output stream.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// Which sandboxes may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backends {
    /// Namespaces, then docker/podman.
    #[default]
    Auto,
    /// Namespaces only.
    Namespaces,
    /// docker/podman only (as if namespaces were refused).
    Engine,
}

/// Sandbox options.
#[derive(Debug, Clone)]
pub struct Options {
    pub timeout: Duration,
    pub output_cap: usize,
    pub backends: Backends,
    /// The command line (default `[ENTRYPOINT, "--healthcheck"]`).
    pub argv: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            output_cap: DEFAULT_OUTPUT_CAP,
            backends: Backends::Auto,
            argv: vec![ENTRYPOINT.into(), "--healthcheck".into()],
        }
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
    NotRun {
        reason: String,
    },
}

/// The outcome plus how it was obtained.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    /// "namespaces", "podman", "docker", or "none".
    pub backend: &'static str,
    pub stats: Option<Stats>,
    pub materialise_time: Option<Duration>,
    pub run_time: Option<Duration>,
    /// The temporary directory that was used (already removed when the report is returned).
    pub workspace: Option<PathBuf>,
}

impl Report {
    fn not_run(reason: impl Into<String>) -> Report {
        Report {
            outcome: Outcome::NotRun {
                reason: reason.into(),
            },
            backend: "none",
            stats: None,
            materialise_time: None,
            run_time: None,
            workspace: None,
        }
    }
}

/// Which backend will run, decided before materialising (it decides the file ownership).
enum Backend {
    Namespaces(namespace::Tools),
    Engine(engine::Engine),
}

fn choose(backends: Backends) -> Result<Backend, String> {
    let ns = if backends == Backends::Engine {
        Err("namespaces not tried".to_string())
    } else {
        namespace::Tools::find().and_then(|t| namespace::probe(&t).map(|()| t))
    };
    let ns_err = match ns {
        Ok(t) => return Ok(Backend::Namespaces(t)),
        Err(e) => e,
    };
    if backends == Backends::Namespaces {
        return Err(format!("namespaces are not available: {ns_err}"));
    }
    engine::find().map(Backend::Engine).map_err(|e| {
        format!("namespaces are not available ({ns_err}) and no container engine works ({e})")
    })
}

/// Whether the namespace sandbox can be used here (`Err` says why not).
pub fn namespaces_available() -> Result<(), String> {
    namespace::Tools::find().and_then(|t| namespace::probe(&t))
}

/// Materialise `image` and run the healthcheck in it. The temporary directory is gone when this returns.
pub fn healthcheck(
    source: &Source,
    image: &Image,
    listings: &[LayerListing],
    tree: &MergedTree,
    opts: &Options,
) -> Report {
    let backend = match choose(opts.backends) {
        Ok(b) => b,
        Err(e) => return Report::not_run(e),
    };
    let own = match (&backend, namespace::running_as_root()) {
        (Backend::Namespaces(_), true) => Ownership::Shifted {
            base: namespace::BASE,
        },
        (Backend::Engine(_), true) => Ownership::Shifted { base: 0 },
        (_, false) => Ownership::Caller,
    };
    let ws = match Workspace::new() {
        Ok(ws) => ws,
        Err(e) => return Report::not_run(format!("could not create a temporary directory: {e}")),
    };
    let workspace = Some(ws.path().to_path_buf());
    let start = Instant::now();
    let stats = match materialise::materialise(source, image, listings, tree, &ws.root(), own) {
        Ok(s) => s,
        Err(e) => {
            return Report::not_run(format!("could not materialise the root filesystem: {e}"));
        }
    };
    let mat = start.elapsed();
    let mut report = run_in_root(&ws.root(), &image.config, own, &backend, opts);
    report.stats = Some(stats);
    report.materialise_time = Some(mat);
    report.workspace = workspace;
    drop(ws);
    report
}

fn run_in_root(
    root: &Path,
    config: &ImageConfig,
    own: Ownership,
    backend: &Backend,
    opts: &Options,
) -> Report {
    let Some(program) = opts.argv.first() else {
        return Report::not_run("no program to run");
    };
    if let Err(why) = resolve::runnable(root, program) {
        return Report::not_run(why);
    }
    let user = match resolve::user(root, &config.user) {
        Ok(u) => u,
        Err(why) => {
            return Report {
                outcome: Outcome::Failed {
                    exit: None,
                    output: why,
                },
                ..Report::not_run("")
            };
        }
    };
    let workdir = if config.working_dir.is_empty() {
        "/".to_string()
    } else {
        config.working_dir.clone()
    };
    for dir in ["proc", "dev", workdir.as_str()] {
        if let Err(e) = materialise::ensure_dir(root, dir, own) {
            return Report::not_run(format!(
                "could not prepare /{}: {e}",
                dir.trim_start_matches('/')
            ));
        }
    }
    let launch = namespace::Launch {
        root: root.to_path_buf(),
        uid: user.uid,
        gid: user.gid,
        env: resolve::environment(&config.env, &user),
        workdir,
        argv: opts.argv.clone(),
    };
    let (name, result) = match backend {
        Backend::Namespaces(t) => (
            "namespaces",
            namespace::run(t, &launch, opts.timeout, opts.output_cap),
        ),
        Backend::Engine(e) => (
            match e {
                engine::Engine::Podman(_) => "podman",
                engine::Engine::Docker(_) => "docker",
            },
            engine::run(e, &launch, opts.timeout, opts.output_cap),
        ),
    };
    let run = match result {
        Ok(Ok(run)) => run,
        Ok(Err(why)) => return Report::not_run(why),
        Err(e) => return Report::not_run(format!("could not start the {name} sandbox: {e}")),
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
    Report {
        outcome,
        backend: name,
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
