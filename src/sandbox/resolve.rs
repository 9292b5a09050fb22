//! Facts read from the materialised root, always in-root (`openat2(RESOLVE_IN_ROOT)`): the image's
//! `User` through its own `/etc/passwd` and `/etc/group` (Docker's rules), the process environment, and
//! whether the entrypoint (and its `#!`/`PT_INTERP` interpreter chain) is for this machine.

use std::io::Read;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::elf;

/// Docker's default `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Read up to `limit` bytes of a regular file at `path` inside `root`; `None` if absent or not a file.
pub fn read_in_root(root: &Path, path: &str, limit: u64) -> Option<Vec<u8>> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Whether `path` (relative) is a directory inside `root` reached without any symlink.
pub fn plain_dir(root: &Path, path: &str) -> bool {
    let Ok(dir) = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

/// The user the healthcheck runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) like Docker: names through the image's
/// passwd/group; a numeric uid not in passwd gets gid 0 and home `/`; an unknown name is an error.
pub fn user(root: &Path, spec: &str) -> Result<User, String> {
    let passwd = read_in_root(root, "etc/passwd", 1 << 20).unwrap_or_default();
    let group = read_in_root(root, "etc/group", 1 << 20).unwrap_or_default();
    let passwd = String::from_utf8_lossy(&passwd);
    let group = String::from_utf8_lossy(&group);
    let (u, g) = spec
        .split_once(':')
        .map_or((spec, None), |(u, g)| (u, Some(g)));
    let u = if u.is_empty() { "0" } else { u };
    let rows = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(':').map(str::to_owned).collect())
            .collect()
    };
    let pw = rows(&passwd);
    let entry = pw.iter().find(|f| f.len() >= 6 && (f[0] == u || f[2] == u));
    let mut out = match (entry, u.parse::<u32>()) {
        (Some(f), _) => User {
            uid: f[2]
                .parse()
                .map_err(|_| format!("/etc/passwd has a bad uid for `{}`", f[0]))?,
            gid: f[3]
                .parse()
                .map_err(|_| format!("/etc/passwd has a bad gid for `{}`", f[0]))?,
            home: f[5].clone(),
        },
        (None, Ok(uid)) => User {
            uid,
            gid: 0,
            home: "/".into(),
        },
        (None, Err(_)) => return Err(format!("User `{u}` is not in the image's /etc/passwd")),
    };
    if let Some(g) = g {
        out.gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => rows(&group)
                .iter()
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group `{g}` is not in the image's /etc/group"))?,
        };
    }
    Ok(out)
}

/// The environment: the image's `Env` exactly (entries that are not `KEY=VALUE` dropped), plus what
/// Docker adds when absent: `PATH` and `HOME`.
pub fn environment(env: &[String], user: &User) -> Vec<String> {
    let mut out: Vec<String> = env
        .iter()
        .filter(|e| {
            e.split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && !k.starts_with('-'))
        })
        .cloned()
        .collect();
    let has = |k: &str, out: &[String]| {
        out.iter()
            .any(|e| e.split_once('=').is_some_and(|(key, _)| key == k))
    };
    if !has("PATH", &out) {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOME", &out) {
        out.push(format!("HOME={}", user.home));
    }
    out
}

/// Why the program at `path` cannot run on this machine, if it cannot: missing, or an ELF (itself or an
/// interpreter in its `#!` chain, up to 4 deep) for another machine. `Ok(())` also when an interpreter
/// is missing: running it then fails, which is the healthcheck's honest result.
pub fn runnable(root: &Path, path: &str) -> Result<(), String> {
    let Some(head) = read_in_root(root, path, 4096) else {
        return Err(format!(
            "{path} is missing from the image (or is not a regular file)"
        ));
    };
    let mut head = head;
    let mut current = path.to_string();
    for _ in 0..4 {
        if let Some(m) = elf::machine(&head) {
            let host = elf::host_machine();
            if host.is_some_and(|h| h != m) {
                return Err(format!(
                    "{current} is an ELF for {}, this machine is {}",
                    elf::machine_name(m),
                    host.map_or_else(|| std::env::consts::ARCH.to_string(), elf::machine_name)
                ));
            }
            return Ok(());
        }
        let Some(interp) = shebang(&head) else {
            return Ok(());
        };
        match read_in_root(root, &interp, 4096) {
            Some(h) => {
                head = h;
                current = interp;
            }
            None => return Ok(()),
        }
    }
    Ok(())
}

fn shebang(head: &[u8]) -> Option<String> {
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str, group: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("etc")).expect("mkdir");
        std::fs::write(d.path().join("etc/passwd"), passwd).expect("passwd");
        std::fs::write(d.path().join("etc/group"), group).expect("group");
        d
    }

    #[test]
    fn users_resolve_like_docker() {
        let d = root_with(
            "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1001::/home/agent:/bin/sh\n",
            "root:x:0:\nstaff:x:50:\n",
        );
        let r = d.path();
        let agent = User {
            uid: 1000,
            gid: 1001,
            home: "/home/agent".into(),
        };
        assert_eq!(user(r, "agent"), Ok(agent.clone()));
        assert_eq!(user(r, "1000"), Ok(agent));
        assert_eq!(user(r, "").map(|u| u.uid), Ok(0));
        assert_eq!(
            user(r, "agent:staff").map(|u| (u.uid, u.gid)),
            Ok((1000, 50))
        );
        assert_eq!(
            user(r, "4242:7").map(|u| (u.uid, u.gid, u.home)),
            Ok((4242, 7, "/".into()))
        );
        assert_eq!(user(r, "4242").map(|u| u.gid), Ok(0));
        assert!(user(r, "ghost").is_err_and(|e| e.contains("ghost")));
        assert!(user(r, "agent:nogroup").is_err_and(|e| e.contains("nogroup")));
    }

    #[test]
    fn environment_is_the_images_plus_docker_defaults() {
        let u = User {
            uid: 1,
            gid: 1,
            home: "/h".into(),
        };
        let env = environment(
            &[
                "A=1".into(),
                "bogus".into(),
                "-x=1".into(),
                "HOME=/x".into(),
            ],
            &u,
        );
        assert_eq!(
            env,
            vec![
                "A=1".to_string(),
                "HOME=/x".into(),
                format!("PATH={DEFAULT_PATH}")
            ]
        );
        let env = environment(&["PATH=/bin".into()], &u);
        assert_eq!(env, vec!["PATH=/bin".to_string(), "HOME=/h".into()]);
    }

    #[test]
    fn elf_machine_and_shebang_chain() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(elf::machine(&elf), Some(183));
        elf[5] = 2;
        elf[18..20].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(elf::machine(&elf), Some(22));
        assert_eq!(elf::machine(b"#!/bin/sh\n"), None);
        assert_eq!(shebang(b"#! /bin/sh -e\nexit 0"), Some("/bin/sh".into()));

        let d = root_with("", "");
        let r = d.path();
        assert!(runnable(r, "/x1/bin/entrypoint").is_err_and(|e| e.contains("missing")));
        std::fs::write(r.join("etc/foreign"), &elf).expect("write");
        std::fs::write(r.join("etc/script"), "#!/etc/foreign\n").expect("write");
        let why = runnable(r, "/etc/script").expect_err("foreign interpreter");
        assert!(
            why.contains("/etc/foreign") && why.contains("s390"),
            "{why}"
        );
        // An absolute symlink resolves inside the root, never on the host.
        std::os::unix::fs::symlink("/etc/script", r.join("etc/link")).expect("symlink");
        assert!(runnable(r, "/etc/link").is_err_and(|e| e.contains("s390")));
        std::os::unix::fs::symlink("/etc/hostname", r.join("etc/host")).expect("symlink");
        assert!(read_in_root(r, "etc/host", 10).is_none());
    }
}
