//! Running one sandbox launcher: its own process group, stdout/stderr captured up to a cap (the rest is
//! drained, never buffered), a wall-clock limit, and a kill of the whole tree at the limit.
//!
//! Killing the tree: the launcher's direct children are killed first (for the namespace backend that is
//! the PID namespace's init, whose death makes the kernel kill every process in the namespace, including
//! ones that left the process group), then the whole process group.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::cleanup;

/// How the launcher ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Run {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Some output was beyond the cap and dropped.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Spawn `cmd` in a new process group with piped stdio. `setup(pid)` runs after the spawn (e.g. to write
/// user-namespace maps); then `go\n` is written to the child's stdin and stdin is closed. The whole tree
/// is killed at `timeout` (counted from the spawn) and again after the launcher exits.
pub fn run(
    mut cmd: Command,
    setup: impl FnOnce(u32) -> io::Result<()>,
    timeout: Duration,
    cap: usize,
) -> io::Result<Run> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let _guard = cleanup::register_group(i32::try_from(pid).unwrap_or(i32::MAX));
    let out = reader(child.stdout.take(), cap);
    let err = reader(child.stderr.take(), cap);
    if let Err(e) = setup(pid) {
        kill_tree(pid);
        let _ = child.wait();
        let _ = out.join();
        let (stderr, _) = err.join().unwrap_or_default();
        let said = String::from_utf8_lossy(&stderr);
        let said = said.trim();
        if said.is_empty() {
            return Err(e);
        }
        return Err(io::Error::other(format!(
            "{e}: {}",
            super::excerpt(said.as_bytes(), 400)
        )));
    }
    if let Some(mut stdin) = child.stdin.take() {
        // The launcher may already be gone (then wait() below tells why).
        let _ = stdin.write_all(b"go\n");
    }
    let exit = wait_until(&mut child, start + timeout)?;
    kill_tree(pid);
    let (stdout, t1) = out.join().unwrap_or_default();
    let (stderr, t2) = err.join().unwrap_or_default();
    Ok(Run {
        exit,
        stdout,
        stderr,
        truncated: t1 || t2,
        elapsed: start.elapsed(),
    })
}

fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Exit> {
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st
                .code()
                .map_or_else(|| Exit::Signal(st.signal().unwrap_or(0)), Exit::Code));
        }
        if Instant::now() >= deadline {
            kill_tree(child.id());
            let _ = child.wait();
            return Ok(Exit::TimedOut);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

type Reader = JoinHandle<(Vec<u8>, bool)>;

fn reader(pipe: Option<impl Read + Send + 'static>, cap: usize) -> Reader {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let Some(mut pipe) = pipe else {
            return (kept, truncated);
        };
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    truncated |= n > room;
                }
            }
        }
        (kept, truncated)
    })
}

/// SIGKILL the direct children of `pid` (a PID namespace's init dies with its whole namespace), then
/// the process group `pid` leads. Processes already gone are ignored.
pub fn kill_tree(pid: u32) {
    for c in children_of(pid) {
        if let Some(p) = Pid::from_raw(c) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    }
    if let Some(p) = Pid::from_raw(i32::try_from(pid).unwrap_or(0)) {
        let _ = rustix::process::kill_process_group(p, Signal::KILL);
    }
}

/// Pids whose parent is `pid`, from `/proc/*/stat`.
pub fn children_of(pid: u32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| parent_of(p) == Some(pid))
        .collect()
}

/// The parent pid from `/proc/<pid>/stat` (the comm field may contain spaces and parentheses).
pub fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}
