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

/// A private temporary directory (on tmpfs where available) that is removed on drop and on signals.
/// Layout: `<dir>/root` is the materialised root filesystem.
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    /// Create `x1-healthcheck-*` under `$X1_VALIDATE_TMPDIR` when set, else under `/dev/shm` (tmpfs)
    /// when it is a writable directory, else under `$TMPDIR`. The directory is `0711`: the sandbox's
    /// mapped root must be able to traverse it, nobody can list it.
    pub fn new() -> std::io::Result<Workspace> {
        use std::os::unix::fs::PermissionsExt;
        install_handler();
        let builder = || {
            let mut b = tempfile::Builder::new();
            b.prefix("x1-healthcheck-");
            b
        };
        let made = match std::env::var_os("X1_VALIDATE_TMPDIR") {
            Some(dir) => builder().tempdir_in(dir)?,
            None => builder()
                .tempdir_in("/dev/shm")
                .or_else(|_| builder().tempdir())?,
        };
        let dir = made.keep();
        live()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .dirs
            .push(dir.clone());
        let ws = Workspace { dir };
        std::fs::set_permissions(&ws.dir, std::fs::Permissions::from_mode(0o711))?;
        std::fs::create_dir(ws.root())?;
        Ok(ws)
    }

    /// The workspace directory.
    pub fn path(&self) -> &Path {
        &self.dir
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
