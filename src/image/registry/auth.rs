//! Registry credentials, looked up the way skopeo/podman and docker do: `X1_REGISTRY_USERNAME` +
//! `X1_REGISTRY_PASSWORD` (for any host), then `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: per-host `credHelpers`, `auths` (`auth` =
//! base64 `user:password`, or `username`/`password`), then the default `credsStore` helper.
//! Credential helpers are run as `docker-credential-NAME get` with the host on stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;

use crate::error::{Error, Result};

/// A user name and its password or token. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// The credentials for `host` (`HOST[:PORT]`), if any source has some.
pub fn lookup(host: &str) -> Result<Option<Credentials>> {
    if let (Ok(u), Ok(p)) = (
        std::env::var("X1_REGISTRY_USERNAME"),
        std::env::var("X1_REGISTRY_PASSWORD"),
    ) && !u.is_empty()
    {
        return Ok(Some(Credentials {
            username: u,
            secret: p,
        }));
    }
    for file in auth_files() {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        let doc: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::Usage(format!("{}: not a valid auth file: {e}", file.display())))?;
        if let Some(c) = from_doc(&doc, host, &file)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p).join("containers/auth.json"));
    }
    match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(d) => v.push(PathBuf::from(d).join("config.json")),
        None => {
            if let Some(h) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
                v.push(PathBuf::from(h).join(".docker/config.json"));
            }
        }
    }
    v
}

/// The keys an `auths` map may use for `host`.
fn host_keys(host: &str) -> Vec<String> {
    let mut v = vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
        format!("https://{host}/v2/"),
    ];
    if host == "registry-1.docker.io" || host == "docker.io" {
        v.push("https://index.docker.io/v1/".into());
        v.push("docker.io".into());
    }
    v
}

fn from_doc(doc: &Value, host: &str, file: &std::path::Path) -> Result<Option<Credentials>> {
    let keys = host_keys(host);
    if let Some(helpers) = doc.get("credHelpers").and_then(Value::as_object) {
        for k in &keys {
            if let Some(name) = helpers.get(k).and_then(Value::as_str) {
                return helper(name, host);
            }
        }
    }
    if let Some(auths) = doc.get("auths").and_then(Value::as_object) {
        for k in &keys {
            let Some(entry) = auths.get(k) else { continue };
            if let Some(a) = entry
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{}: the `auth` of {k} is not base64 of `user:password`",
                            file.display()
                        ))
                    })?;
                let (u, p) = raw.split_once(':').ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: the `auth` of {k} has no `:` between user and password",
                        file.display()
                    ))
                })?;
                return Ok(Some(Credentials {
                    username: u.into(),
                    secret: p.into(),
                }));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credentials {
                    username: u.into(),
                    secret: p.into(),
                }));
            }
        }
    }
    if let Some(store) = doc.get("credsStore").and_then(Value::as_str) {
        return helper(store, host);
    }
    Ok(None)
}

/// Run `docker-credential-NAME get`; "not found" is `None`, a missing helper a usage error.
fn helper(name: &str, host: &str) -> Result<Option<Credentials>> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::Usage(format!(
            "credential helper name {name:?} is not a plain program suffix"
        )));
    }
    let prog = format!("docker-credential-{name}");
    let mut child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Usage(format!("credential helper {prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Usage(format!("credential helper {prog}: {e}")))?;
    if !out.status.success() {
        // Helpers answer "credentials not found in native keychain" with a failure status.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| Error::Usage(format!("credential helper {prog}: its answer is not JSON")))?;
    match (
        v.get("Username").and_then(Value::as_str),
        v.get("Secret").and_then(Value::as_str),
    ) {
        (Some(u), Some(s)) if !s.is_empty() => Ok(Some(Credentials {
            username: u.into(),
            secret: s.into(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entry_decodes_and_is_per_host() {
        let enc = base64::engine::general_purpose::STANDARD.encode("ci:pw-for-test");
        let doc: Value = serde_json::json!({"auths": {"reg.example:5000": {"auth": enc}}});
        let p = std::path::Path::new("auth.json");
        let c = from_doc(&doc, "reg.example:5000", p)
            .expect("ok")
            .expect("found");
        assert_eq!(c.username, "ci");
        assert_eq!(c.secret, "pw-for-test");
        assert!(!format!("{c:?}").contains("pw-for-test"));
        assert!(from_doc(&doc, "other:5000", p).expect("ok").is_none());
        let bad: Value = serde_json::json!({"auths": {"h": {"auth": "%%%"}}});
        assert!(from_doc(&bad, "h", p).is_err());
    }
}
