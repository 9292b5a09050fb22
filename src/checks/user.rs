//! `image-user`, and resolving the config `User` through the image's own `/etc/passwd` and `/etc/group`
//! (names, numeric `uid[:gid]`, supplementary groups) for this and the `entrypoint` check.

use super::support::{config_location, finding, inode, node_location, resolve, skipped};
use super::{CheckInput, CheckOutcome};
use crate::image::{EntryKind, Resolved};
use crate::rules::RuleId;
use crate::rules::preset::PresetUser;

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u64,
    pub gid: u64,
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u64,
    pub members: Vec<String>,
}

/// Parse `/etc/passwd` (malformed lines are ignored, as libc does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// Parse `/etc/group`.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// The identity a container process gets from the config `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u64,
    pub gid: u64,
    /// Supplementary groups (from `/etc/group` membership by name).
    pub groups: Vec<u64>,
    /// The passwd entry, when the user is in `/etc/passwd`.
    pub passwd: Option<PasswdEntry>,
}

impl Identity {
    /// Whether `mode` (with owner `uid`/`gid`) grants execute to this identity. Root may execute any
    /// file with at least one execute bit.
    pub fn may_execute(&self, mode: u32, uid: u64, gid: u64) -> bool {
        if self.uid == 0 {
            return mode & 0o111 != 0;
        }
        self.permits(mode, uid, gid, 0o1)
    }

    /// Whether `mode` grants read to this identity (root reads everything).
    pub fn may_read(&self, mode: u32, uid: u64, gid: u64) -> bool {
        self.uid == 0 || self.permits(mode, uid, gid, 0o4)
    }

    fn permits(&self, mode: u32, uid: u64, gid: u64, bit: u32) -> bool {
        if self.uid == uid {
            return mode & (bit << 6) != 0;
        }
        if self.gid == gid || self.groups.contains(&gid) {
            return mode & (bit << 3) != 0;
        }
        mode & bit != 0
    }
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`, …; empty = root) like runc does: a name
/// must exist in `passwd`; a numeric uid need not (its gid is then 0); a group part overrides the gid.
pub fn resolve_identity(
    user: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<Identity, String> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u64>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid).cloned(),
        Err(_) => Some(
            passwd
                .iter()
                .find(|p| p.name == u)
                .cloned()
                .ok_or_else(|| format!("user `{u}` is not in the image's /etc/passwd"))?,
        ),
    };
    let uid = entry
        .as_ref()
        .map_or_else(|| u.parse().unwrap_or(0), |e| e.uid);
    let mut gid = entry.as_ref().map_or(0, |e| e.gid);
    if let Some(g) = g {
        gid = match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|x| x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| format!("group `{g}` is not in the image's /etc/group"))?,
        };
    }
    let supplementary = entry.as_ref().map_or_else(Vec::new, |e| {
        groups
            .iter()
            .filter(|x| x.members.contains(&e.name))
            .map(|x| x.gid)
            .collect()
    });
    Ok(Identity {
        uid,
        gid,
        groups: supplementary,
        passwd: entry,
    })
}

/// The image's passwd and group databases (empty when absent or not captured).
pub fn user_db(input: &CheckInput<'_>) -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
    let read = |p: &str| {
        super::support::content(input, p)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    (
        parse_passwd(&read("/etc/passwd")),
        parse_group(&read("/etc/group")),
    )
}

/// The identity of the config `User`.
pub fn config_identity(input: &CheckInput<'_>) -> Result<Identity, String> {
    let (passwd, groups) = user_db(input);
    resolve_identity(&input.image.config.user, &passwd, &groups)
}

/// `image-user`.
pub fn image_user(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::ImageUser;
    let Some(preset) = input.preset else {
        return skipped(id, "no preset: the runtime label is missing or unknown");
    };
    let want = &preset.user;
    let user = input.image.config.user.trim();
    let loc = || config_location("/config/User");
    let help = Some(format!(
        "RUN useradd --create-home --uid {} --user-group {} && USER {}",
        want.uid, want.name, want.name
    ));
    let name_part = user.split(':').next().unwrap_or_default();
    let runs_as_root = user.is_empty() || name_part == "root" || name_part.parse::<u64>() == Ok(0);
    let problems = if user.is_empty() {
        vec!["config User is empty: the image runs as root".to_string()]
    } else if runs_as_root {
        vec![format!("config User is `{user}`: the image runs as root")]
    } else {
        match config_identity(input) {
            Err(why) => vec![format!("config User `{user}`: {why}")],
            Ok(ident) => identity_problems(user, &ident, want),
        }
    };
    let mut findings: Vec<_> = problems
        .into_iter()
        .map(|message| finding(id, message, help.clone(), loc()))
        .collect();
    // Running as root is reported alone: the preset user's home is moot then.
    if !runs_as_root {
        findings.extend(home_findings(input, preset));
    }
    CheckOutcome::from_findings(id, findings)
}

/// How the identity `user` resolved to differs from the preset's user: uid 0, another uid or name,
/// another primary gid, another home in /etc/passwd.
fn identity_problems(user: &str, ident: &Identity, want: &PresetUser) -> Vec<String> {
    let mut problems = Vec::new();
    if ident.uid == 0 {
        problems.push(format!("config User `{user}` resolves to uid 0"));
    } else if ident.uid != want.uid || ident.passwd.as_ref().is_some_and(|p| p.name != want.name) {
        problems.push(format!(
            "config User `{user}` is uid {} (`{}`), not the preset's `{}` (uid {})",
            ident.uid,
            ident
                .passwd
                .as_ref()
                .map_or("not in /etc/passwd", |p| p.name.as_str()),
            want.name,
            want.uid
        ));
    }
    if let Some(g) = want.gid.filter(|g| *g != ident.gid) {
        problems.push(format!(
            "config User `{user}` has primary gid {}, the preset wants {g}",
            ident.gid
        ));
    }
    if let Some(p) = ident.passwd.as_ref().filter(|p| p.home != want.home) {
        problems.push(format!(
            "/etc/passwd gives `{}` the home `{}`, the preset wants `{}`",
            p.name, p.home, want.home
        ));
    }
    problems
}

fn home_findings(
    input: &CheckInput<'_>,
    preset: &crate::rules::Preset,
) -> Vec<crate::report::Finding> {
    let id = RuleId::ImageUser;
    let want = &preset.user;
    match resolve(input, &want.home) {
        Resolved::Found { node, .. } => {
            let e = inode(input, node);
            if !matches!(e.kind, EntryKind::Dir) {
                vec![finding(
                    id,
                    format!("home {} is not a directory", want.home),
                    None,
                    node_location(input, node),
                )]
            } else if e.uid != want.uid {
                vec![finding(
                    id,
                    format!(
                        "home {} is owned by uid {}, not {}",
                        want.home, e.uid, want.uid
                    ),
                    Some(format!(
                        "chown {}:{} {}",
                        want.uid,
                        want.gid.unwrap_or(want.uid),
                        want.home
                    )),
                    node_location(input, node),
                )]
            } else {
                Vec::new()
            }
        }
        other => vec![finding(
            id,
            format!(
                "home {} is missing ({})",
                want.home,
                super::support::unresolved_reason(&other)
            ),
            Some("create it with `useradd --create-home`".into()),
            crate::report::Location::Path {
                path: want.home.clone(),
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1000::/home/agent:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nagent:x:1000:\ndocker:x:999:agent,other\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        let (p, g) = (parse_passwd(PASSWD), parse_group(GROUP));
        let a = resolve_identity("agent", &p, &g).expect("agent exists");
        assert_eq!((a.uid, a.gid, a.groups.clone()), (1000, 1000, vec![999]));
        let n = resolve_identity("1000", &p, &g).expect("numeric");
        assert_eq!(n.passwd.as_ref().map(|e| e.name.as_str()), Some("agent"));
        let unknown = resolve_identity("4242:77", &p, &g).expect("numeric uid need not exist");
        assert_eq!((unknown.uid, unknown.gid, unknown.passwd), (4242, 77, None));
        assert_eq!(
            resolve_identity("agent:docker", &p, &g).expect("group").gid,
            999
        );
        assert!(resolve_identity("nobody", &p, &g).is_err());
        assert!(resolve_identity("agent:nogroup", &p, &g).is_err());
        assert_eq!(resolve_identity("", &p, &g).expect("root").uid, 0);
    }

    #[test]
    fn execute_permission_follows_owner_group_other() {
        let (p, g) = (parse_passwd(PASSWD), parse_group(GROUP));
        let a = resolve_identity("agent", &p, &g).expect("agent");
        assert!(a.may_execute(0o755, 0, 0));
        assert!(!a.may_execute(0o744, 0, 0));
        assert!(a.may_execute(0o710, 0, 999), "supplementary group");
        assert!(
            !a.may_execute(0o070, 1000, 1000),
            "owner bits decide for the owner"
        );
        let root = resolve_identity("0", &p, &g).expect("root");
        assert!(root.may_execute(0o001, 5, 5));
        assert!(!root.may_execute(0o644, 0, 0));
    }
}
