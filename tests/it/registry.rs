//! Registry input, `check --attach`, `verify`, `promote` and `scripts/pipeline.sh`, against Debian's real
//! `docker-registry` (CNCF Distribution 2.8: no referrers API, so the referrers tag schema is what runs)
//! started on a free loopback port with a temp config and storage, with and without basic auth.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::checks::good;
use crate::common::{bin, have_tool, random_alnum};

/// A running `docker-registry`, killed (by its own pid) and its storage removed on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    creds: Option<(String, String)>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Start one; `None` (skipped) when docker-registry, skopeo or htpasswd is missing.
    fn start(auth: bool) -> Option<Registry> {
        if !have_tool("docker-registry") || !have_tool("skopeo") || (auth && !have_tool("htpasswd"))
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let creds = auth.then(|| ("ci".to_string(), random_alnum(20)));
        if let Some((u, p)) = &creds {
            let o = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .unwrap();
            assert!(o.status.success());
            std::fs::write(dir.path().join("htpasswd"), &o.stdout).unwrap();
            let _ = write!(
                cfg,
                "auth:\n  htpasswd:\n    realm: x1-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Registry {
            child,
            port,
            dir,
            creds,
        })
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// An auth file (`REGISTRY_AUTH_FILE` / skopeo `--authfile`) with the credentials.
    fn authfile(&self) -> Option<PathBuf> {
        let (u, p) = self.creds.as_ref()?;
        let path = self.dir.path().join("auth.json");
        let enc = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{u}:{p}"),
        );
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"{}":{{"auth":"{enc}"}}}}}}"#, self.host()),
        )
        .unwrap();
        Some(path)
    }

    /// `skopeo copy` a local image to `REPO:TAG`; returns the pushed digest.
    fn push(&self, src: &str, repo_tag: &str) -> String {
        let digest = self.dir.path().join("push.digest");
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest);
        if let Some(a) = self.authfile() {
            c.arg("--dest-authfile").arg(a);
        }
        let o = c
            .arg(src)
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(digest).unwrap().trim().to_string()
    }

    /// x1-validate with `--insecure` and the credentials through `REGISTRY_AUTH_FILE`.
    fn x1(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.args(args)
            .arg("--insecure")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("HOME", self.dir.path())
            .env_remove("X1_REGISTRY_USERNAME")
            .env_remove("DOCKER_CONFIG");
        match self.authfile() {
            Some(a) => c.env("REGISTRY_AUTH_FILE", a),
            None => c.env_remove("REGISTRY_AUTH_FILE"),
        };
        c.output().unwrap()
    }

    /// The digest `REPO:TAG` resolves to (sha256 of the raw manifest, read with skopeo).
    fn resolve(&self, repo_tag: &str) -> String {
        let mut c = Command::new("skopeo");
        c.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(a) = self.authfile() {
            c.arg("--authfile").arg(a);
        }
        let o = c
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        x1_validate::image::Digest::sha256_of(&o.stdout).to_string()
    }

    /// The blob data file of `digest` in the registry's storage.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sample-leaky.oci.tar")
}

/// The JSON report's findings (rule id + message), sorted: what must not depend on the input's shape.
fn findings(json: &[u8]) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let mut out: Vec<(String, String)> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap_or_default().to_string(),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn registry_input_reads_like_the_local_archive() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let digest = reg.push(
        &format!("oci-archive:{}", sample().display()),
        "x1agent/sample:edge",
    );
    let by_tag = format!("docker://{}/x1agent/sample:edge", reg.host());
    let by_digest = format!("docker://{}/x1agent/sample@{digest}", reg.host());
    let local = sample().display().to_string();

    // files: the same listing from the registry, by tag and by digest
    let want = crate::common::run_bin(&["files", &local]);
    assert!(want.status.success());
    for r in [&by_tag, &by_digest] {
        let got = reg.x1(&["files", r]);
        assert!(got.status.success(), "{}", text(&got));
        assert_eq!(got.stdout, want.stdout, "files differs for {r}");
    }
    // check: same findings and exit code (1: the sample leaks keys)
    let want = crate::common::run_bin(&["check", &local, "--exec", "never", "--format", "json"]);
    let got = reg.x1(&["check", &by_digest, "--exec", "never", "--format", "json"]);
    assert_eq!(want.status.code(), Some(1));
    assert_eq!(got.status.code(), Some(1), "{}", text(&got));
    assert!(!findings(&got.stdout).is_empty());
    assert_eq!(findings(&got.stdout), findings(&want.stdout));
    // inspect says where it came from; licenses run too
    let got = reg.x1(&["inspect", &by_tag]);
    assert!(got.status.success(), "{}", text(&got));
    assert!(text(&got).contains("registry") && text(&got).contains(&digest));
    let got = reg.x1(&["licenses", &by_tag]);
    assert!(got.status.success(), "{}", text(&got));
}

#[test]
fn registry_errors_map_to_exit_codes() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let digest = reg.push(
        &format!("oci-archive:{}", sample().display()),
        "x1agent/sample:edge",
    );
    let base = format!("docker://{}/x1agent/sample", reg.host());
    // unknown tag: the image is unreadable (3), with a message that says so
    let o = reg.x1(&["inspect", &format!("{base}:nope")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("not found"), "{}", text(&o));
    // a bad reference is a usage error (2)
    let o = reg.x1(&["inspect", &format!("docker://{}/Upper:x", reg.host())]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // https against a plain-http registry: 3, and the hint names --insecure
    let o = crate::common::run_bin(&["inspect", &format!("{base}:edge")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--insecure"), "{}", text(&o));
    // a layer blob tampered with in the registry's storage: digest mismatch, exit 3
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.blob_file(&digest)).unwrap()).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let f = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55;
    std::fs::write(&f, &bytes).unwrap();
    let o = reg.x1(&["files", &format!("{base}@{digest}")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains(&layer[7..19]) || text(&o).contains("digest"),
        "{}",
        text(&o)
    );
    // truncated: the registry serves fewer bytes than the descriptor says
    std::fs::write(&f, &bytes[..n / 2]).unwrap();
    let o = reg.x1(&["files", &format!("{base}@{digest}")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("size differs"), "{}", text(&o));
}

/// Run scripts/pipeline.sh with the registry's settings.
fn pipeline(reg: &Registry, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pipeline.sh"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("X1_REGISTRY", reg.host())
        .env("X1_VALIDATE", bin())
        .env("X1_INSECURE", "1")
        .env("X1_OUT", out)
        .env("X1_EXEC", "never")
        .env("HOME", reg.dir.path())
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("X1_REGISTRY_USERNAME");
    match &reg.creds {
        Some((u, p)) => c.env("X1_REGISTRY_USER", u).env("X1_REGISTRY_PASSWORD", p),
        None => c.env_remove("X1_REGISTRY_USER"),
    };
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[allow(clippy::too_many_lines)] // one story: edge, promote, then each refusal in turn
fn pipeline_end_to_end(auth: bool) {
    let Some(reg) = Registry::start(auth) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let base = good().write_oci_dir(work.path());
    let base = base.display().to_string();
    let repo = "x1agent/runtime-opencode";

    // render → build → gate → push :edge → gate from the registry with the report attached
    let out1 = work.path().join("run1");
    let o = pipeline(
        &reg,
        &out1,
        &["edge"],
        &[("X1_BASE", &base), ("X1_VERSION", "2.0.0")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let d1 = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "{d1}");
    assert_eq!(reg.resolve(&format!("{repo}:edge")), d1);
    let v = reg.x1(&["verify", &format!("docker://{}/{repo}@{d1}", reg.host())]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(text(&v).contains("pass"), "{}", text(&v));
    // the report is reachable through the referrers tag schema
    let fallback = format!("{repo}:sha256-{}", &d1[7..]);
    let _ = reg.resolve(&fallback);

    // promote to :v2: both tags resolve to the gated digest, and a record is printed
    let o = pipeline(&reg, &out1, &["promote", &d1, "2"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("x1agent.promotion.v1"), "{}", text(&o));
    assert_eq!(reg.resolve(&format!("{repo}:v2")), d1);
    assert_eq!(reg.resolve(&format!("{repo}:edge")), d1);

    // refusals: a lower N; an existing vN with another digest; the vN policy; a failing digest
    let o = reg.x1(&[
        "promote",
        &format!("docker://{}/{repo}@{d1}", reg.host()),
        "--to",
        "v1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not greater than the highest existing tag v2"),
        "{}",
        text(&o)
    );

    let out2 = work.path().join("run2");
    let o = pipeline(
        &reg,
        &out2,
        &["edge"],
        &[("X1_BASE", &base), ("X1_VERSION", "2.1.0")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let d2 = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_ne!(d1, d2);
    let promote2 = |to: &str| {
        reg.x1(&[
            "promote",
            &format!("docker://{}/{repo}@{d2}", reg.host()),
            "--to",
            to,
        ])
    };
    let o = promote2("v2");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("already exists with another digest"),
        "{}",
        text(&o)
    );
    let o = promote2("v3");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("policy fails"), "{}", text(&o));
    assert_eq!(reg.resolve(&format!("{repo}:v2")), d1, ":v2 must not move");

    // a digest whose gate fails: its attached report says fail, so verify and promote refuse
    let bad = reg.push(
        &format!("oci-archive:{}", sample().display()),
        &format!("{repo}:leaky"),
    );
    let o = reg.x1(&[
        "check",
        &format!("docker://{}/{repo}:leaky", reg.host()),
        "--exec",
        "never",
        "--attach",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("attached the gate report (fail)"),
        "{}",
        text(&o)
    );
    let o = reg.x1(&["verify", &format!("docker://{}/{repo}@{bad}", reg.host())]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NOT verified"), "{}", text(&o));
    let o = reg.x1(&[
        "promote",
        &format!("docker://{}/{repo}@{bad}", reg.host()),
        "--to",
        "v3",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("promotion refused"), "{}", text(&o));
    // by tag is a usage error: only an exact digest is promoted
    let o = reg.x1(&[
        "promote",
        &format!("docker://{}/{repo}:edge", reg.host()),
        "--to",
        "v9",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    if !auth {
        // The workflow's path: `pipeline.sh promote` with X1_REGATE=1 runs the whole gate again
        // (`promote --regate`), writes its SARIF report, attaches it and only then moves the tag.
        let out3 = work.path().join("run3");
        let o = pipeline(
            &reg,
            &out3,
            &["edge"],
            &[("X1_BASE", &base), ("X1_VERSION", "3.0.0")],
        );
        assert!(o.status.success(), "{}", text(&o));
        let d3 = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let o = pipeline(
            &reg,
            &out3,
            &["promote", &d3, "3"],
            &[("X1_REGATE", "1"), ("X1_EXEC", "never")],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(reg.resolve(&format!("{repo}:v3")), d3);
        let sarif: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out3.join("promote-report.sarif")).expect("--regate wrote its report"),
        )
        .unwrap();
        assert_eq!(sarif["version"], "2.1.0", "{sarif}");
        let v = reg.x1(&["verify", &format!("docker://{}/{repo}@{d3}", reg.host())]);
        assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    }

    if auth {
        // without credentials the registry answers 401: exit 3 and a message naming where creds go
        let o = Command::new(bin())
            .args([
                "inspect",
                "--insecure",
                &format!("docker://{}/{repo}:v2", reg.host()),
            ])
            .env("HOME", reg.dir.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("X1_REGISTRY_USERNAME")
            .env_remove("DOCKER_CONFIG")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(text(&o).contains("401"), "{}", text(&o));
        assert!(!text(&o).contains(&reg.creds.as_ref().unwrap().1));
    }
}

#[test]
fn pipeline_against_a_real_registry() {
    pipeline_end_to_end(false);
}

#[test]
fn pipeline_against_a_real_registry_with_basic_auth() {
    pipeline_end_to_end(true);
}

#[test]
fn a_multi_arch_index_from_the_registry_is_read_per_platform() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("multi");
    crate::common::layout::amd64_arm64(&dir, false);
    // skopeo --all pushes the index and every platform's manifest.
    let o = Command::new("skopeo")
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:edge", dir.display()))
        .arg(format!("docker://{}/x1agent/multi:edge", reg.host()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = format!("docker://{}/x1agent/multi:edge", reg.host());
    let got = reg.x1(&["inspect", &r, "--format", "json"]);
    assert!(got.status.success(), "{}", text(&got));
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    let plats: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64/v8"]);
    let got = reg.x1(&["files", &r, "--platform", "linux/arm64", "--format", "json"]);
    assert!(got.status.success(), "{}", text(&got));
    let listing = String::from_utf8_lossy(&got.stdout);
    assert!(listing.contains("arch"), "{listing}");
    let got = reg.x1(&["files", &r, "--platform", "linux/s390x"]);
    assert_eq!(got.status.code(), Some(2), "{}", text(&got));
}
