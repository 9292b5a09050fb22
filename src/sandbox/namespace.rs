//! The namespace backend: util-linux `unshare` creates user, mount, PID, network, IPC and UTS namespaces;
//! a short POSIX `sh` script (host `/bin/sh`, `mount`, `ip`) stages `/proc`, a minimal `/dev` and
//! loopback inside them; a second `unshare` (no new namespaces) chroots into the root, changes to the
//! working directory and drops to the image's user; `env -i` before it sets exactly the image's Env.
//!
//! User namespace maps are written by this process (plain file writes into `/proc/<pid>/`), not by
//! `unshare`, while the script waits on its stdin:
//! - as host root, the launcher runs as host uid/gid [`BASE`] and the map is `0 BASE 65536`: image uid
//!   `n` is host uid `BASE + n` (the materialised files are chowned so), and even the image's root is an
//!   unprivileged host user;
//! - otherwise the caller's uid/gid is mapped to 0 (`setgroups` denied), the files stay the caller's, and
//!   the inner `unshare --user --map-user=U --map-group=G` maps the image's user onto it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{self, Run};

/// First host id of the range the sandbox's user namespace maps (as host root).
pub const BASE: u32 = 1_500_000_000;

/// Written to stderr by the setup script right before it execs the healthcheck; stripped from output.
pub const MARK: &str = "x1-validate-sandbox: exec";

const SCRIPT: &str = r#"set -eu
read -r _go || exit 97
R=$1; shift
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t tmpfs -o nosuid,noexec,mode=0755,size=1m x1dev "$R/dev"
for d in null zero full random urandom tty; do
  : > "$R/dev/$d"
  mount --bind "/dev/$d" "$R/dev/$d" 2>/dev/null || rm -f "$R/dev/$d"
done
mkdir "$R/dev/shm" "$R/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
ip link set lo up 2>/dev/null || true
exec </dev/null
printf '%s\n' "$X1_MARK" >&2
exec "$@"
"#;

/// What to run, resolved against the image.
#[derive(Debug, Clone)]
pub struct Launch {
    pub root: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `KEY=VALUE`, exactly what the process gets.
    pub env: Vec<String>,
    pub workdir: String,
    pub argv: Vec<String>,
}

/// The host tools the backend needs, found on a fixed system PATH.
#[derive(Debug, Clone)]
pub struct Tools {
    pub unshare: PathBuf,
    pub sh: PathBuf,
    pub env: PathBuf,
}

const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find an executable on the system PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// `Err(reason)` when a tool is missing.
    pub fn find() -> Result<Tools, String> {
        let get =
            |n: &str| find_tool(n).ok_or_else(|| format!("`{n}` was not found on {SYSTEM_PATH}"));
        get("mount")?;
        Ok(Tools {
            unshare: get("unshare")?,
            sh: get("sh")?,
            env: get("env")?,
        })
    }
}

/// Whether files must be chowned into the shifted range (host root) or left as the caller's.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Can this process create the sandbox's namespaces? Runs `unshare … true` the way [`run`] will (as
/// [`BASE`] when host root), bounded by 5 s.
pub fn probe(tools: &Tools) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&tools.unshare);
    cmd.env_clear()
        .env("PATH", SYSTEM_PATH)
        .args([
            "--map-root-user",
            "--mount",
            "--pid",
            "--fork",
            "--net",
            "--ipc",
            "--uts",
            "--",
        ])
        .arg(&tools.sh)
        .args(["-c", "exit 0"]);
    if running_as_root() {
        cmd.uid(BASE).gid(BASE);
    }
    match process::run(cmd, |_| Ok(()), Duration::from_secs(5), 4096) {
        Ok(Run {
            exit: process::Exit::Code(0),
            ..
        }) => Ok(()),
        Ok(r) => Err(format!(
            "`unshare` refused ({:?}): {}",
            r.exit,
            super::excerpt(String::from_utf8_lossy(&r.stderr).trim().as_bytes(), 200)
        )),
        Err(e) => Err(format!("`unshare` could not be started: {e}")),
    }
}

/// Run `launch` in the namespaces. `Ok(Err(reason))` means the sandbox could not be set up (namespaces
/// refused, mount failed …); `Ok(Ok(run))` is a run of the healthcheck itself, marker stripped.
pub fn run(
    tools: &Tools,
    launch: &Launch,
    timeout: Duration,
    cap: usize,
) -> io::Result<Result<Run, String>> {
    use std::os::unix::process::CommandExt;
    let root = running_as_root();
    let mut cmd = Command::new(&tools.unshare);
    cmd.env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LC_ALL", "C")
        .env("X1_MARK", MARK)
        .args([
            "--user",
            "--mount",
            "--pid",
            "--fork",
            "--net",
            "--ipc",
            "--uts",
            "--kill-child",
            "--propagation",
            "private",
            "--",
        ])
        .arg(&tools.sh)
        .args(["-c", SCRIPT, "x1-sandbox"])
        .arg(&launch.root)
        .arg(&tools.env)
        .args(["-i", "--"])
        .args(&launch.env)
        .arg(&tools.unshare);
    if root {
        cmd.uid(BASE).gid(BASE);
        cmd.args([
            "--setuid",
            &launch.uid.to_string(),
            "--setgid",
            &launch.gid.to_string(),
        ]);
    } else {
        cmd.arg("--user")
            .arg(format!("--map-user={}", launch.uid))
            .arg(format!("--map-group={}", launch.gid));
    }
    let mut root_arg = OsString::from("--root=");
    root_arg.push(&launch.root);
    cmd.arg(root_arg)
        .arg(format!("--wd={}", launch.workdir))
        .arg("--")
        .args(&launch.argv);

    let run = match process::run(cmd, |pid| write_maps(pid, root), timeout, cap) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("could not set up user namespace: {e}"))),
    };
    Ok(strip_mark(run))
}

/// Wait until `pid` is in a new user namespace, then write its maps.
fn write_maps(pid: u32, root: bool) -> io::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/user")?;
    let ns = format!("/proc/{pid}/ns/user");
    let start = std::time::Instant::now();
    loop {
        match std::fs::read_link(&ns) {
            Ok(l) if l != own => break,
            Ok(_) => {}
            Err(e) => {
                return Err(io::Error::other(format!(
                    "the launcher exited early ({e}); namespaces are probably refused"
                )));
            }
        }
        if start.elapsed() > Duration::from_secs(5) {
            return Err(io::Error::other(
                "the launcher did not enter a new user namespace within 5 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if root {
        std::fs::write(proc.join("uid_map"), format!("0 {BASE} 65536\n"))?;
        std::fs::write(proc.join("gid_map"), format!("0 {BASE} 65536\n"))?;
    } else {
        let (u, g) = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        std::fs::write(proc.join("uid_map"), format!("0 {u} 1\n"))?;
        std::fs::write(proc.join("setgroups"), "deny")?;
        std::fs::write(proc.join("gid_map"), format!("0 {g} 1\n"))?;
    }
    Ok(())
}

/// No marker: the setup failed before the healthcheck started (reason from stderr).
fn strip_mark(mut run: Run) -> Result<Run, String> {
    let needle = format!("{MARK}\n");
    let Some(at) = run
        .stderr
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    else {
        let text = String::from_utf8_lossy(&run.stderr);
        let why = text.trim();
        return Err(if why.is_empty() {
            format!(
                "the sandbox setup ended with {:?} before the healthcheck started",
                run.exit
            )
        } else {
            format!(
                "the sandbox setup failed: {}",
                super::excerpt(why.as_bytes(), 400)
            )
        });
    };
    // Setup noise before the marker is not the healthcheck's output.
    run.stderr.drain(..at + needle.len());
    Ok(run)
}
