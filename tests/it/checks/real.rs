//! Gate rules on images real tools make: umoci-built OCI layouts (each rule passing and failing, a real
//! whiteout, a real history entry) and the corpus image built by `scripts/corpus.sh`.

use std::path::Path;
use std::process::Command;

use x1_validate::elf::synth_elf64;
use x1_validate::report::{RuleStatus, Severity};
use x1_validate::rules::RuleId;

use super::{
    GATE_RULES, GROUP, OPENCODE_JSON, OS_RELEASE, PASSWD, Run, SH, assert_all_pass, assert_fails,
    check_path, findings,
};
use crate::common::{have_tool, random_alnum};

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Write the files of `layer`-like content into `root` (the unpacked bundle's rootfs).
fn write_tree(root: &Path, files: &[(&str, &[u8], u32)], dirs: &[&str]) {
    use std::os::unix::fs::PermissionsExt as _;
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (path, content, mode) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

struct Umoci {
    dir: tempfile::TempDir,
}

impl Umoci {
    fn layout(&self) -> std::path::PathBuf {
        self.dir.path().join("oci")
    }
    fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.layout().display())
    }
    fn bundle(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A two-layer umoci image (`good`) equivalent to [`good`].
    fn new() -> Umoci {
        let u = Umoci {
            dir: tempfile::tempdir().unwrap(),
        };
        let img = u.image("good");
        sh(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(u.layout()));
        sh(Command::new("umoci").args(["new", "--image", &img]));
        let b = u.bundle("b0");
        sh(Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(&b));
        let root = b.join("rootfs");
        let sh_elf = synth_elf64(62, Some("/lib64/ld-linux-x86-64.so.2"));
        let loader = synth_elf64(62, None);
        write_tree(
            &root,
            &[
                ("usr/lib/os-release", OS_RELEASE.as_bytes(), 0o644),
                ("lib64/ld-linux-x86-64.so.2", &loader, 0o755),
                ("bin/sh", &sh_elf, 0o755),
                ("etc/passwd", PASSWD.as_bytes(), 0o644),
                ("etc/group", GROUP.as_bytes(), 0o644),
            ],
            &["etc"],
        );
        std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
        sh(Command::new("umoci")
            .args(["repack", "--history.created_by", "base", "--image", &img])
            .arg(&b));
        let b = u.bundle("b1");
        sh(Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(&b));
        let root = b.join("rootfs");
        let node = synth_elf64(62, Some("/lib64/ld-linux-x86-64.so.2"));
        write_tree(
            &root,
            &[
                ("x1/bin/entrypoint", SH, 0o755),
                ("x1/bin/gh", b"#!/bin/sh\nexit 0\n", 0o755),
                ("x1/bin/git-credential-x1", b"#!/bin/sh\nexit 0\n", 0o755),
                ("x1/app/run.sh", b"#!/bin/sh\nexit 0\n", 0o755),
                ("x1/app/adapter/index.mjs", b"export {};\n", 0o644),
                (
                    "x1/app/config/opencode.json",
                    OPENCODE_JSON.as_bytes(),
                    0o644,
                ),
                ("x1/runtime/bin/node", &node, 0o755),
                ("x1/etc/gitconfig", b"[credential]\n", 0o644),
            ],
            &["home/agent"],
        );
        std::os::unix::fs::chown(root.join("home/agent"), Some(1000), Some(1000)).unwrap();
        std::fs::create_dir_all(root.join("etc/opencode")).unwrap();
        std::os::unix::fs::symlink(
            "/x1/app/config/opencode.json",
            root.join("etc/opencode/opencode.json"),
        )
        .unwrap();
        sh(Command::new("umoci")
            .args([
                "repack",
                "--history.created_by",
                "COPY x1/ /x1/",
                "--image",
                &img,
            ])
            .arg(&b));
        sh(Command::new("umoci").args([
            "config",
            "--image",
            &img,
            "--config.user",
            "agent",
            "--config.entrypoint",
            "/x1/bin/entrypoint",
            "--config.env",
            "PATH=/x1/bin:/usr/bin:/bin",
            "--config.env",
            "OPENCODE_DISABLE_PROJECT_CONFIG=1",
            "--config.label",
            "org.x1agent.runtime=opencode",
            "--config.label",
            "org.opencontainers.image.licenses=MIT",
            "--config.label",
            "org.opencontainers.image.version=1.0.0",
        ]));
        u
    }

    /// Derive tag `tag` from `good` by changing the rootfs (in a new layer) and/or the config.
    fn variant(&self, tag: &str, change: impl FnOnce(&Path), config: &[&str]) -> String {
        let img = self.image(tag);
        sh(Command::new("umoci").args(["tag", "--image", &self.image("good"), tag]));
        let b = self.bundle(&format!("v-{tag}"));
        sh(Command::new("umoci")
            .args(["unpack", "--image", &img])
            .arg(&b));
        change(&b.join("rootfs"));
        sh(Command::new("umoci")
            .args(["repack", "--history.created_by", tag, "--image", &img])
            .arg(&b));
        if !config.is_empty() {
            sh(Command::new("umoci")
                .args(["config", "--image", &img])
                .args(config));
        }
        img
    }
}

/// One umoci variant: tag, change to the unpacked rootfs, `umoci config` flags, rule, message.
type Case = (
    &'static str,
    fn(&Path),
    Vec<String>,
    &'static str,
    &'static str,
);

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn cases(key: &str) -> Vec<Case> {
    vec![
        (
            "nolabel",
            |_| {},
            vec!["--clear=config.labels".into()],
            "runtime-label",
            "is missing",
        ),
        (
            "noexec",
            |r| chmod(&r.join("x1/bin/entrypoint"), 0o644),
            vec![],
            "entrypoint",
            "not executable",
        ),
        (
            "envkey",
            |_| {},
            vec!["--config.env".into(), format!("ANTHROPIC_API_KEY={key}")],
            "provider-env",
            "ANTHROPIC_API_KEY",
        ),
        (
            "gitcred",
            |r| std::fs::write(r.join("home/agent/.git-credentials"), "https://u:tok@h\n").unwrap(),
            vec![],
            "credential-file",
            "/home/agent/.git-credentials",
        ),
        (
            "nogh",
            |r| std::fs::remove_file(r.join("x1/bin/gh")).unwrap(),
            vec![],
            "preset-files",
            "/x1/bin/gh is missing",
        ),
        (
            "badcfg",
            |r| {
                let j =
                    OPENCODE_JSON.replace("\"autoupdate\": false", "\"autoupdate\": \"notify\"");
                std::fs::write(r.join("x1/app/config/opencode.json"), j).unwrap();
            },
            vec![],
            "sidecar-config",
            "auto-update is not off",
        ),
        (
            "root",
            |_| {},
            vec!["--config.user".into(), "root".into()],
            "image-user",
            "runs as root",
        ),
        (
            "noloader",
            |r| std::fs::remove_file(r.join("lib64/ld-linux-x86-64.so.2")).unwrap(),
            vec![],
            "base-os",
            "glibc dynamic loader",
        ),
        (
            "suid",
            |r| {
                std::fs::write(r.join("bin/su"), b"x").unwrap();
                chmod(&r.join("bin/su"), 0o4755);
            },
            vec![],
            "layer-hygiene",
            "setuid",
        ),
    ]
}

fn check_tag(img: &str, reference: Option<&str>) -> x1_validate::report::ImageReport {
    check_path(
        Path::new(img),
        &Run {
            reference,
            preset: None,
            exec: None,
        },
    )
}

#[test]
fn umoci_image_passes_every_gate_rule() {
    if !have_tool("umoci") {
        return;
    }
    let u = Umoci::new();
    assert_all_pass(&check_tag(
        &u.image("good"),
        Some("x1agent/runtime-opencode:v1"),
    ));
}

#[test]
fn umoci_images_fail_each_rule() {
    if !have_tool("umoci") {
        return;
    }
    let u = Umoci::new();
    let key = random_alnum(40);
    for (tag, change, config, rule, needle) in cases(&key) {
        let cfg: Vec<&str> = config.iter().map(String::as_str).collect();
        let img = u.variant(tag, change, &cfg);
        let r = check_tag(&img, None);
        assert_fails(&r, rule, needle);
        assert!(
            !format!("{:?}", r.findings).contains(&key),
            "{tag}: a value leaked"
        );
    }
}

#[test]
fn umoci_whiteout_and_history() {
    if !have_tool("umoci") {
        return;
    }
    let u = Umoci::new();
    // a credential file deleted by a later umoci layer (a real whiteout) still fails
    let img = u.variant(
        "gitcred",
        |r| std::fs::write(r.join("home/agent/.git-credentials"), "https://u:tok@h\n").unwrap(),
        &[],
    );
    let b = u.bundle("rm-gitcred");
    sh(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&b));
    std::fs::remove_file(b.join("rootfs/home/agent/.git-credentials")).unwrap();
    sh(Command::new("umoci")
        .args(["repack", "--history.created_by", "rm", "--image", &img])
        .arg(&b));
    let r = check_tag(&img, None);
    assert_fails(&r, "credential-file", "/home/agent/.git-credentials");
    let loc = serde_json::to_value(&findings(&r, "credential-file")[0].location).unwrap();
    assert!(
        loc["fate"]
            .as_str()
            .unwrap()
            .starts_with("deleted by layer 3"),
        "{loc}"
    );
    // build-secret from a umoci history entry; tag-policy on a umoci image
    let key = random_alnum(32);
    let img = u.image("good");
    sh(Command::new("umoci")
        .args(["config", "--image", &img, "--history.created_by"])
        .arg(format!("ARG OPENAI_API_KEY={key}")));
    let r = check_tag(&img, Some("x1agent/runtime-opencode:v2"));
    assert_fails(&r, "build-secret", "OPENAI_API_KEY");
    assert_fails(&r, "tag-policy", "disagrees with label");
    assert!(!format!("{:?}", r.findings).contains(&key));
}

// ---------------------------------------------------------------------------------------------------
// the corpus image

/// The structural checks run directly on the corpus (no secret scan: that is `secrets.rs`'s, and it is
/// slow in a debug build), through the real reader, capture policy and merge.
fn corpus_outcomes(path: &Path) -> Vec<x1_validate::checks::CheckOutcome> {
    use x1_validate::checks::{CheckInput, CheckOptions, ExecMode};
    use x1_validate::image::layer::NoScan;
    use x1_validate::image::{MergedTree, read_layers};
    let rules = x1_validate::rules::RuleSet::embedded().unwrap();
    let opened = x1_validate::image::open(path.to_str().unwrap(), None).unwrap();
    let image = &opened.images[0];
    let preset = rules.presets.get("opencode");
    let capture = x1_validate::app::capture_policy(&rules, preset).unwrap();
    let listings: Vec<_> = read_layers(&opened.source, image, &capture, |_| NoScan)
        .unwrap()
        .into_iter()
        .map(|o| o.listing)
        .collect();
    let tree = MergedTree::merge(&listings);
    let opts = CheckOptions {
        reference: Some("x1agent/runtime-opencode:edge".into()),
        preset_flag: None,
        exec: ExecMode::Never,
        healthcheck_timeout: std::time::Duration::from_secs(10),
        no_layer_store: false,
    };
    let input = CheckInput {
        opened: &opened,
        image,
        listings: &listings,
        scans: &[],
        tree: &tree,
        rules: &rules,
        preset,
        opts: &opts,
        cache: None,
    };
    // The structural kinds: every registered check whose rules are all gate rules of this module.
    x1_validate::checks::all()
        .iter()
        .filter(|c| c.decides.iter().all(|r| GATE_RULES.contains(&r.as_str())))
        .flat_map(|c| (c.run)(&input))
        .collect()
}

#[test]
fn corpus_passes_every_gate_rule() {
    let Some(corpus) = crate::common::corpus_dir() else {
        crate::common::skip("corpus image not found (set X1_CORPUS_DIR or run scripts/corpus.sh)");
        return;
    };
    for shape in ["oci"] {
        let outcomes = corpus_outcomes(&corpus.join(shape));
        let ids: Vec<&str> = outcomes.iter().map(|o| o.rule_id.as_str()).collect();
        assert_eq!(ids, GATE_RULES, "every gate rule decided");
        for o in outcomes {
            if o.rule_id == RuleId::LayerHygiene {
                // Debian's own setuid binaries (su, passwd, mount, …) are the only hygiene findings;
                // none is pinned to error (no root escape).
                for f in &o.findings {
                    assert_ne!(f.severity, Severity::Error, "{f:#?}");
                    assert!(f.message.contains("setuid/setgid"), "{f:#?}");
                }
            } else {
                assert_eq!(
                    o.status,
                    RuleStatus::Passed,
                    "{shape} {}: {:#?}",
                    o.rule_id,
                    o.findings
                );
            }
        }
    }
}
