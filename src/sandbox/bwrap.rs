//! The sandbox: bubblewrap (`bwrap`, what Flatpak uses), started with a clean environment built here.
//!
//! The launch chain, every element a host program that sees only `PATH`/`LC_ALL` from us (never the
//! image's `Env`):
//!
//! ```text
//! x1-validate ─ sh -c 'exec 3<&0 4<"$ROOT" </dev/null; exec "$@"'      (opens the root as fd 4)
//!              └ [as host root only] setpriv --reuid=H --regid=H --clear-groups --   (drop to H)
//!                └ bwrap --unshare-all --unshare-user --unshare-cgroup --disable-userns
//!                        --die-with-parent --new-session --cap-drop ALL --uid U --gid G
//!                        --ro-bind-fd 4 / --proc /proc --dev /dev --tmpfs /dev/shm --remount-ro /dev
//!                        --tmpfs /tmp --tmpfs $HOME --block-fd 3
//!                        --clearenv --setenv K V … --chdir WORKDIR -- ENTRYPOINT --healthcheck
//! ```
//!
//! - **`pivot_root`**: bwrap pivots into a private tmpfs and mounts the materialised root read-only
//!   (`nosuid,nodev`) as `/`; the old root is unmounted. The root is passed as an open descriptor, so
//!   the dropped host uid does not need to traverse `$TMPDIR`'s parents.
//! - **User**: as host root, bwrap itself runs as the unprivileged host uid/gid `BASE + image id`
//!   (`setpriv`), so even a full escape is a nobody on the host, and `RLIMIT_NPROC` is enforced (the
//!   kernel never enforces it for host uid 0). The materialised files are owned by `BASE + image id`, so
//!   the image's user owns exactly its own files, as in a real container. As an ordinary user, bwrap maps
//!   the caller's uid to the image user (all files are the caller's).
//! - **Limits** are set with `prlimit(2)` on the sandbox's init *after* its user namespace exists and
//!   *before* it starts the entrypoint: bwrap blocks on fd 3 (`--block-fd`) right after dropping its
//!   capabilities; [`run`] waits until the init's capabilities are gone (visible in `/proc/PID/status`),
//!   sets the limits, then writes one byte to fd 3. Set this way, `RLIMIT_NPROC` counts the sandbox's own
//!   processes only (Linux ≥ 5.14 counts per user namespace), whoever the caller is.
//! - **Death**: `--die-with-parent` (`PR_SET_PDEATHSIG`) on bwrap and the init; the init is PID 1 of a
//!   new PID namespace, and when it dies the kernel kills every process in it.
//!
//! Not ready in time (bwrap refused the namespaces, a mount failed …) is a sandbox failure (not-run);
//! anything after the byte on fd 3 is the healthcheck's own result, so an entrypoint cannot fake "no
//! sandbox here" by printing bwrap-like errors.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit};

use super::process::{self, Run};

/// First host id of the range the sandbox's files and user live in (as host root).
pub const BASE: u32 = 1_500_000_000;

/// The system `PATH` the host tools are found on, and the only `PATH` they get.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Opens the root as fd 4 and the go-pipe as fd 3, stdin becomes `/dev/null`.
const WRAPPER: &str = r#"exec 3<&0 4<"$1" </dev/null || exit 125
shift
exec "$@"
"#;

/// How long bwrap may take to get ready (namespaces, mounts).
const SETUP: Duration = Duration::from_secs(10);

/// Find an executable on the system PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether this process is host root (then it drops to the `BASE` range before bwrap).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Resource limits inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Processes (threads included) of the sandbox's user.
    pub processes: u64,
    /// `RLIMIT_DATA` per process (heap and private writable mappings).
    pub data_bytes: u64,
    /// Open files per process.
    pub open_files: u64,
    /// CPU seconds per process.
    pub cpu_seconds: u64,
    /// Largest file a process may write.
    pub file_bytes: u64,
    /// Size of each tmpfs (`/tmp`, home, `/dev/shm`).
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            processes: 256,
            data_bytes: 2 << 30,
            open_files: 1024,
            cpu_seconds: 60,
            file_bytes: 64 << 20,
            tmpfs_bytes: 64 << 20,
        }
    }
}

/// What to run, resolved against the image.
#[derive(Debug, Clone)]
pub struct Launch {
    pub root: PathBuf,
    /// The image user inside the sandbox.
    pub uid: u32,
    pub gid: u32,
    /// The host ids bwrap runs as when we are host root (`None`: stay the caller).
    pub host_ids: Option<(u32, u32)>,
    /// `KEY=VALUE`, exactly what the process gets.
    pub env: Vec<String>,
    pub workdir: String,
    /// The user's home, given a writable tmpfs when it is a safe plain directory path.
    pub home: Option<String>,
    pub argv: Vec<String>,
}

/// The host tools.
#[derive(Debug, Clone)]
pub struct Tools {
    pub bwrap: PathBuf,
    pub sh: PathBuf,
    /// `setpriv` and `prlimit` (util-linux), needed as host root only.
    pub setpriv: Option<PathBuf>,
    pub prlimit: Option<PathBuf>,
}

impl Tools {
    /// `Err(reason)` when a tool is missing.
    pub fn find() -> Result<Tools, String> {
        let get = |n: &str, pkg: &str| {
            find_tool(n).ok_or_else(|| {
                format!("`{n}` was not found on {SYSTEM_PATH} (Debian package `{pkg}`)")
            })
        };
        let bwrap = get("bwrap", "bubblewrap")?;
        let sh = get("sh", "dash")?;
        let (setpriv, prlimit) = if running_as_root() {
            (
                Some(get("setpriv", "util-linux")?),
                Some(get("prlimit", "util-linux")?),
            )
        } else {
            (None, None)
        };
        Ok(Tools {
            bwrap,
            sh,
            setpriv,
            prlimit,
        })
    }
}

/// Can bwrap create the sandbox here? Runs the same chain on an empty root, bounded by 10 s.
pub fn probe(tools: &Tools) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("x1-probe-")
        .tempdir()
        .map_err(|e| format!("could not create a temporary directory: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    }
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir(dir.path().join(d)).map_err(|e| e.to_string())?;
    }
    let launch = Launch {
        root: dir.path().to_path_buf(),
        uid: 0,
        gid: 0,
        host_ids: running_as_root().then_some((BASE, BASE)),
        env: Vec::new(),
        workdir: "/".into(),
        home: None,
        // Nothing to execute in an empty root: bwrap's exec fails *after* the sandbox was ready.
        argv: vec!["/x1-probe".into()],
    };
    match run(tools, &launch, Limits::default(), SETUP, 4096) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => Err(why),
        Err(e) => Err(format!("`bwrap` could not be started: {e}")),
    }
}

/// The bwrap command line for `launch` (without the wrapper).
fn bwrap_args(launch: &Launch, limits: Limits) -> Vec<String> {
    let size = limits.tmpfs_bytes.to_string();
    let mut a: Vec<String> = [
        "--unshare-all",
        "--unshare-user",
        "--unshare-cgroup",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "x1-healthcheck",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| (*s).to_string()));
    push(&["--uid", &launch.uid.to_string()]);
    push(&["--gid", &launch.gid.to_string()]);
    push(&["--ro-bind-fd", "4", "/"]);
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--perms", "1777", "--size", &size, "--tmpfs", "/dev/shm"]);
    push(&["--remount-ro", "/dev"]);
    push(&["--perms", "1777", "--size", &size, "--tmpfs", "/tmp"]);
    if let Some(home) = &launch.home {
        push(&["--perms", "0700", "--size", &size, "--tmpfs", home]);
    }
    // A WorkingDir under a tmpfs (`/home/agent/workspace`) is hidden by it: recreate it there, as a
    // container runtime creates a missing WorkingDir.
    let under = |dir: &str| {
        let dir = dir.trim_end_matches('/');
        !dir.is_empty() && launch.workdir.starts_with(&format!("{dir}/"))
    };
    if under("/tmp") || launch.home.as_deref().is_some_and(under) {
        push(&["--dir", &launch.workdir]);
    }
    push(&["--block-fd", "3", "--clearenv"]);
    for kv in &launch.env {
        if let Some((k, v)) = kv.split_once('=') {
            push(&["--setenv", k, v]);
        }
    }
    push(&["--chdir", &launch.workdir, "--"]);
    a.extend(launch.argv.iter().cloned());
    a
}

/// Run `launch` in bwrap. `Ok(Err(reason))`: the sandbox could not be set up (namespaces refused, a
/// mount failed …); `Ok(Ok(run))`: a run of the healthcheck itself.
pub fn run(
    tools: &Tools,
    launch: &Launch,
    limits: Limits,
    timeout: Duration,
    cap: usize,
) -> io::Result<Result<Run, String>> {
    let mut cmd = Command::new(&tools.sh);
    cmd.env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LC_ALL", "C")
        .current_dir("/")
        .args(["-c", WRAPPER, "x1-sandbox"])
        .arg(&launch.root);
    if let (Some((uid, gid)), Some(setpriv)) = (launch.host_ids, &tools.setpriv) {
        cmd.arg(setpriv)
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--"]);
    }
    cmd.arg(&tools.bwrap).args(bwrap_args(launch, limits));
    let mut ready = false;
    let run = process::run(
        cmd,
        |pid| {
            let init = wait_ready(pid)?;
            match (launch.host_ids, &tools.setpriv, &tools.prlimit) {
                (Some(ids), Some(setpriv), Some(prlimit)) => {
                    set_limits_as(setpriv, prlimit, ids, init, limits)?;
                }
                _ => set_limits(init, limits)?,
            }
            ready = true;
            Ok(())
        },
        timeout,
        cap,
    );
    match run {
        Ok(r) => Ok(Ok(r)),
        Err(e) if !ready => {
            let hint = if e.to_string().contains("Can't find source path") {
                " (the sandbox's host user must be able to traverse the workspace's parent \
                 directories: use a world-traversable X1_VALIDATE_TMPDIR or TMPDIR, like /tmp)"
            } else {
                ""
            };
            Ok(Err(format!(
                "the bwrap sandbox could not be set up: {e}{hint}"
            )))
        }
        Err(e) => Err(e),
    }
}

/// Wait until bwrap's sandbox init (the child of `pid`) has dropped every capability, i.e. it is blocked
/// on fd 3 right before starting the entrypoint. Returns its host pid.
fn wait_ready(pid: u32) -> io::Result<i32> {
    let start = Instant::now();
    loop {
        if !alive(pid) {
            return Err(io::Error::other("bwrap exited during setup"));
        }
        for c in process::children_of(pid) {
            if capabilities_dropped(c) {
                return Ok(c);
            }
        }
        if start.elapsed() > SETUP {
            return Err(io::Error::other(
                "bwrap did not get ready within 10 s".to_string(),
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Running and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

/// `/proc/PID/status` says: in a child user namespace with no effective, permitted or bounding caps.
fn capabilities_dropped(pid: i32) -> bool {
    let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .map(str::to_owned)
    };
    let zero = |k: &str| field(k).is_some_and(|v| v.chars().all(|c| c == '0'));
    let nested = field("NSpid:").is_some_and(|v| v.split_whitespace().count() >= 2);
    nested
        && zero("CapEff:")
        && zero("CapPrm:")
        && zero("CapBnd:")
        && field("NoNewPrivs:").as_deref() == Some("1")
}

/// `prlimit(2)` on another uid's process needs `CAP_SYS_RESOURCE`, which host root may lack (it does
/// in many containers); a process with the same ids needs nothing. So as host root the limits are set by
/// util-linux `prlimit`, run as the sandbox's host ids through `setpriv`.
fn set_limits_as(
    setpriv: &Path,
    prlimit: &Path,
    (uid, gid): (u32, u32),
    init: i32,
    l: Limits,
) -> io::Result<()> {
    let both = |k: &str, v: u64| format!("--{k}={v}:{v}");
    let out = Command::new(setpriv)
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LC_ALL", "C")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--"])
        .arg(prlimit)
        .arg(format!("--pid={init}"))
        .arg(both("nproc", l.processes))
        .arg(both("data", l.data_bytes))
        .arg(both("nofile", l.open_files))
        .arg(both("cpu", l.cpu_seconds))
        .arg(both("fsize", l.file_bytes))
        .arg(both("core", 0))
        .arg(both("msgqueue", 0))
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "prlimit on the sandbox failed ({}): {}",
            out.status,
            super::excerpt(&out.stderr, 300)
        )))
    }
}

/// `prlimit(2)` on the sandbox's init; its children (the entrypoint) inherit the limits.
fn set_limits(init: i32, l: Limits) -> io::Result<()> {
    let pid = Pid::from_raw(init).ok_or_else(|| io::Error::other("bad pid"))?;
    let set = |r: Resource, v: u64| {
        rustix::process::prlimit(
            Some(pid),
            r,
            Rlimit {
                current: Some(v),
                maximum: Some(v),
            },
        )
        .map(|_| ())
        .map_err(|e| io::Error::other(format!("prlimit {r:?} on the sandbox: {e}")))
    };
    set(Resource::Nproc, l.processes)?;
    set(Resource::Data, l.data_bytes)?;
    set(Resource::Nofile, l.open_files)?;
    set(Resource::Cpu, l.cpu_seconds)?;
    set(Resource::Fsize, l.file_bytes)?;
    set(Resource::Core, 0)?;
    set(Resource::Msgqueue, 0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_goes_inside_only_and_everything_is_unshared() {
        let l = Launch {
            root: "/r".into(),
            uid: 1000,
            gid: 1000,
            host_ids: None,
            env: vec!["LD_PRELOAD=/x.so".into(), "A=b=c".into()],
            workdir: "/w".into(),
            home: Some("/home/agent".into()),
            argv: vec!["/x1/bin/entrypoint".into(), "--healthcheck".into()],
        };
        let a = bwrap_args(&l, Limits::default()).join(" ");
        for must in [
            "--unshare-all --unshare-user --unshare-cgroup --disable-userns --die-with-parent \
             --new-session --cap-drop ALL",
            "--ro-bind-fd 4 /",
            "--clearenv --setenv LD_PRELOAD /x.so --setenv A b=c",
            "--size 67108864 --tmpfs /tmp",
            "--tmpfs /home/agent",
            "--remount-ro /dev",
            "--chdir /w -- /x1/bin/entrypoint --healthcheck",
        ] {
            assert!(a.contains(must), "{must} missing from {a}");
        }
        assert!(!a.contains("--bind "), "{a}");
        assert!(!a.contains("--dir "), "{a}");
        let mut l = l;
        l.workdir = "/home/agent/workspace".into();
        let a = bwrap_args(&l, Limits::default()).join(" ");
        assert!(
            a.contains("--tmpfs /home/agent --dir /home/agent/workspace"),
            "a WorkingDir under the tmpfs home is recreated: {a}"
        );
        l.workdir = "/home/agentx".into();
        assert!(
            !bwrap_args(&l, Limits::default())
                .join(" ")
                .contains("--dir ")
        );
    }
}
