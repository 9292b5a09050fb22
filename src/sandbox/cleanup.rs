//! Removal of the sandbox's temporary directory on every exit path.
//!
//! Normal returns and panics (unwinding) are covered by [`Workspace`]'s `Drop`. For SIGINT, SIGTERM and
//! SIGHUP a handler thread (signal-hook's iterator, no `unsafe` here) is installed once per process: it
//! kills the live sandbox process groups, removes the live workspaces, and then performs the signal's
//! default action, so the process still dies exactly as it would have without us.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

#[derive(Default)]
struct Live {
    dirs: Vec<PathBuf>,
    groups: Vec<i32>,
}

fn live() -> &'static Mutex<Live> {
    static LIVE: OnceLock<Mutex<Live>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(Live::default()))
}

fn install_handler() {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return false;
        };
        std::thread::Builder::new()
            .name("x1-sandbox-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    cleanup_all();
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                }
            })
            .is_ok()
    });
}

/// Kill every registered process group and remove every registered directory.
fn cleanup_all() {
    let mut l = live()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for g in l.groups.drain(..) {
        if let Some(pid) = rustix::process::Pid::from_raw(g) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    for d in l.dirs.drain(..) {
        force_remove(&d);
    }
}

/// Register a sandbox process group to kill on a signal; returns a guard that unregisters it.
pub(crate) fn register_group(pgid: i32) -> GroupGuard {
    install_handler();
    live()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .groups
        .push(pgid);
    GroupGuard(pgid)
}

/// Unregisters a process group on drop.
pub(crate) struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let mut l = live()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        l.groups.retain(|g| *g != self.0);
    }
}

/// A private temporary directory on disk that is removed on drop and on signals.
/// Layout: `<dir>/root` is the materialised root filesystem.
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
    parent: PathBuf,
}

/// Workspaces are named `x1-healthcheck-<pid>-<random>`; the pid lets a later run remove the ones a
/// killed (SIGKILL, OOM) x1-validate had to leave behind.
const PREFIX: &str = "x1-healthcheck-";

impl Workspace {
    /// Create `x1-healthcheck-<pid>-*` under `$X1_VALIDATE_TMPDIR` when set, else under `$TMPDIR` (or
    /// `/tmp`): on disk, never host RAM (`/dev/shm`). The directory is `0711`: bwrap, running as the
    /// sandbox's unprivileged host uid, must traverse it to the root (so must it the parents: `$TMPDIR`
    /// has to be world-traversable, as `/tmp` is); nobody can list it. Stale workspaces of dead
    /// x1-validate processes of this user in the same directory are removed first.
    pub fn new() -> std::io::Result<Workspace> {
        use std::os::unix::fs::PermissionsExt;
        install_handler();
        let parent =
            std::env::var_os("X1_VALIDATE_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
        sweep_stale(&parent);
        let made = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(&parent)?;
        let parent = made.path().parent().map_or(parent, Path::to_path_buf);
        let dir = made.keep();
        live()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .dirs
            .push(dir.clone());
        let ws = Workspace { dir, parent };
        std::fs::set_permissions(&ws.dir, std::fs::Permissions::from_mode(0o711))?;
        std::fs::create_dir(ws.root())?;
        Ok(ws)
    }

    /// The workspace directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The directory the workspace was made in (the layer store lives there too).
    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// Where the root filesystem goes.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        force_remove(&self.dir);
        let mut l = live()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        l.dirs.retain(|d| *d != self.dir);
    }
}

/// Remove `x1-healthcheck-<pid>-*` directories (never symlinks) owned by us whose pid is not running.
fn sweep_stale(parent: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir()
            && meta.uid() == me
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            force_remove(&e.path());
        }
    }
}

/// `rm -rf`, also when the image made directories read-only (a non-root caller then needs `u+rwx` on
/// each directory first). Symlinks are never followed.
pub(crate) fn force_remove(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return;
    }
    make_writable(dir);
    let _ = std::fs::remove_dir_all(dir);
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&e.path());
        }
    }
}
