//! The fallback where namespaces are refused: a container engine, only when one is present *and*
//! answers (a `docker` client without a daemon must not make us hang or claim a run). Probing is bounded
//! by a few seconds. podman runs the materialised directory directly (`--rootfs`); docker gets it through
//! `docker import` and the temporary image is removed afterwards.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::namespace::{Launch, find_tool};
use super::process::{self, Exit, Run};

/// How long probing an engine may take.
const PROBE: Duration = Duration::from_secs(5);

/// A working engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Podman(std::path::PathBuf),
    Docker(std::path::PathBuf),
}

/// The first engine that answers, or why none does.
pub fn find() -> Result<Engine, String> {
    let mut why = Vec::new();
    for (name, args) in [
        ("podman", ["info", "--format", "{{.Host.Arch}}"]),
        ("docker", ["version", "--format", "{{.Server.Version}}"]),
    ] {
        let Some(path) = find_tool(name) else {
            why.push(format!("no `{name}`"));
            continue;
        };
        let mut cmd = Command::new(&path);
        cmd.args(args);
        match process::run(cmd, |_| Ok(()), PROBE, 4096) {
            Ok(Run {
                exit: Exit::Code(0),
                ..
            }) => {
                return Ok(if name == "podman" {
                    Engine::Podman(path)
                } else {
                    Engine::Docker(path)
                });
            }
            Ok(r) => why.push(format!("`{name}` does not work ({})", describe(&r))),
            Err(e) => why.push(format!("`{name}` could not be started ({e})")),
        }
    }
    Err(why.join("; "))
}

fn describe(r: &Run) -> String {
    match r.exit {
        Exit::TimedOut => "no answer within 5 s".into(),
        Exit::Code(c) => format!("exit {c}: {}", super::excerpt(&r.stderr, 160)),
        Exit::Signal(s) => format!("killed by signal {s}"),
    }
}

/// Run `launch` with `engine`, network off.
pub fn run(
    engine: &Engine,
    launch: &Launch,
    timeout: Duration,
    cap: usize,
) -> io::Result<Result<Run, String>> {
    let name = format!("x1-validate-healthcheck-{}", std::process::id());
    let common = |cmd: &mut Command| {
        cmd.args(["run", "--rm", "--name", &name, "--network", "none"])
            .arg(format!("--user={}:{}", launch.uid, launch.gid))
            .arg(format!("--workdir={}", launch.workdir));
        for e in &launch.env {
            cmd.arg("--env").arg(e);
        }
    };
    let (path, image) = match engine {
        Engine::Podman(p) => (p, None),
        Engine::Docker(p) => (p, Some(import(p, &launch.root, &name)?)),
    };
    let mut cmd = Command::new(path);
    common(&mut cmd);
    let (entry, args) = launch.argv.split_first().expect("argv has the entrypoint");
    cmd.arg(format!("--entrypoint={entry}"));
    match &image {
        None => {
            cmd.arg("--rootfs").arg(&launch.root);
        }
        Some(id) => {
            cmd.arg(id);
        }
    }
    cmd.args(args);
    let run = process::run(cmd, |_| Ok(()), timeout, cap);
    // The engine's container outlives its killed client: remove it, and the imported image.
    let _ = Command::new(path)
        .args(["rm", "-f", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(id) = image {
        let _ = Command::new(path)
            .args(["rmi", "-f", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Ok(Ok(run?))
}

/// `tar -C root -c . | docker import -` → image id.
fn import(docker: &Path, root: &Path, tag: &str) -> io::Result<String> {
    let tar =
        find_tool("tar").ok_or_else(|| io::Error::other("`tar` not found for docker import"))?;
    let mut t = Command::new(tar)
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let out = Command::new(docker)
        .args(["import", "-", &format!("{tag}:latest")])
        .stdin(t.stdout.take().map_or(Stdio::null(), Stdio::from))
        .output()?;
    let _ = t.wait();
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "docker import failed: {}",
            super::excerpt(&out.stderr, 200)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
