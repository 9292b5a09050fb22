//! A small blocking client for the OCI distribution API over `ureq`: token (Bearer) and Basic auth from
//! the `WWW-Authenticate` challenge, retries with back-off on 429/502/503/504 (honouring `Retry-After`),
//! registry error bodies turned into messages. Bodies are returned as streaming readers.

use std::fmt::Write as _;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::{Request, Response};

use super::auth::Credentials;
use crate::error::{Error, Result};

/// Attempts for a request answered 429/5xx or failing to connect.
const ATTEMPTS: u32 = 5;
/// Longest wait between attempts, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Largest error body read for a message.
const ERROR_BODY_LIMIT: u64 = 16 * 1024;

/// One repository on one registry.
pub struct Client {
    agent: ureq::Agent,
    /// `https://HOST[:PORT]` (or `http://` with `--insecure`).
    pub base: String,
    /// `HOST[:PORT]` as given.
    pub host: String,
    pub repo: String,
    creds: Option<Credentials>,
    /// The `Authorization` header in use (Basic, or the last Bearer token).
    auth: Mutex<Option<String>>,
    /// Base delay of the back-off (tests shorten it through `X1_REGISTRY_RETRY_MS`).
    backoff: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({}/{})", self.base, self.repo)
    }
}

/// A response: status, headers and the streaming body.
pub type Resp = Response<ureq::Body>;

impl Client {
    pub fn new(host: &str, repo: &str, insecure: bool) -> Result<Client> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .user_agent(concat!("x1-validate/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if insecure { "http" } else { "https" };
        let api_host = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let backoff = std::env::var("X1_REGISTRY_RETRY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_millis(500), Duration::from_millis);
        Ok(Client {
            agent,
            base: format!("{scheme}://{api_host}"),
            host: host.to_string(),
            repo: repo.to_string(),
            creds: super::auth::lookup(api_host)?,
            auth: Mutex::new(None),
            backoff,
        })
    }

    /// `https://HOST/v2/REPO/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repo)
    }

    /// What the messages call this repository.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }

    /// Send a request with auth and retries. Any status is returned; the caller decides.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp> {
        let mut attempt = 0;
        let mut authed = false;
        loop {
            attempt += 1;
            let mut req = Request::builder().method(method).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let current = self.auth.lock().ok().and_then(|g| g.clone());
            if let Some(a) = &current {
                req = req.header("Authorization", a.as_str());
            }
            let req = req
                .body(body.unwrap_or_default().to_vec())
                .map_err(|e| Error::Usage(format!("registry request {url}: {e}")))?;
            let resp = match self.agent.run(req) {
                Ok(r) => r,
                Err(e) => {
                    if attempt < ATTEMPTS && transient(&e) {
                        std::thread::sleep(self.backoff * 2u32.pow(attempt - 1));
                        continue;
                    }
                    return Err(self.transport_error(url, &e));
                }
            };
            let status = resp.status().as_u16();
            if status == 401 && !authed {
                authed = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if let Some(h) = self.authorize(&challenge)? {
                    if let Ok(mut g) = self.auth.lock() {
                        *g = Some(h);
                    }
                    attempt -= 1;
                    continue;
                }
                return Ok(resp);
            }
            if matches!(status, 429 | 502 | 503 | 504) && attempt < ATTEMPTS {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(self.backoff * 2u32.pow(attempt - 1), Duration::from_secs);
                std::thread::sleep(wait.min(MAX_WAIT));
                continue;
            }
            return Ok(resp);
        }
    }

    fn transport_error(&self, url: &str, e: &ureq::Error) -> Error {
        let hint = match e {
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Timeout(_) => {
                ""
            }
            _ if self.base.starts_with("https") => " (a plain-http registry needs --insecure)",
            _ => "",
        };
        Error::corrupt(
            format!("registry {}", self.host),
            format!("cannot reach {url}: {e}{hint}"),
        )
    }

    /// Answer a `WWW-Authenticate` challenge: the header value to send, or `None` without credentials
    /// for Basic (an anonymous token is still fetched for Bearer).
    fn authorize(&self, challenge: &str) -> Result<Option<String>> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let basic = self.creds.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", c.username, c.secret))
            )
        });
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let Some(realm) = get("realm") else {
            return Ok(None);
        };
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for k in ["service", "scope"] {
            if let Some(v) = get(k) {
                url.push(sep);
                url.push_str(k);
                url.push('=');
                url.push_str(&urlencode(v));
                sep = '&';
            }
        }
        let mut req = self.agent.get(&url);
        if let Some(b) = &basic {
            req = req.header("Authorization", b.as_str());
        }
        let resp = req.call().map_err(|e| self.transport_error(&url, &e))?;
        if resp.status().as_u16() != 200 {
            return Err(self.status_error("token request", resp));
        }
        let body = resp
            .into_body()
            .into_with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| Error::corrupt(format!("registry {}", self.host), e.to_string()))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            Error::corrupt(
                format!("registry {}", self.host),
                "the token endpoint did not answer JSON",
            )
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                Error::corrupt(
                    format!("registry {}", self.host),
                    "the token endpoint answered no token",
                )
            })?;
        Ok(Some(format!("Bearer {token}")))
    }

    /// An error for an unexpected status, with the registry's own error codes when it sent some.
    pub fn status_error(&self, what: &str, resp: Resp) -> Error {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let _ = resp
            .into_body()
            .into_reader()
            .take(ERROR_BODY_LIMIT)
            .read_to_end(&mut body);
        let codes = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
            .map(|errs| {
                errs.iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("?");
                        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                        clean(&format!("{code}: {msg}"))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty());
        let meaning = match status {
            401 => {
                if self.creds.is_some() {
                    "unauthorized: the registry refused the credentials"
                } else {
                    "unauthorized: the registry wants credentials (~/.docker/config.json, \
                     REGISTRY_AUTH_FILE, a credential helper, or X1_REGISTRY_USERNAME/X1_REGISTRY_PASSWORD)"
                }
            }
            403 => "forbidden: these credentials may not do this",
            404 => "not found",
            429 => "too many requests (still refused after retries)",
            _ => "unexpected answer",
        };
        Error::corrupt(
            format!("registry {}: {what}", self.name()),
            format!(
                "HTTP {status} {meaning}{}",
                codes.map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        )
    }
}

/// Control characters out, length capped: registry answers are attacker-written.
pub fn clean(s: &str) -> String {
    s.chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::Io(_)
    )
}

/// Parse `k="v",k2=v2` challenge parameters.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].to_string(), &after[end..]),
                None => (after.to_string(), ""),
            }
        };
        out.push((k, v));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

fn urlencode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write as _};
    use std::net::TcpListener;

    /// A fake registry answering each request with the next canned response (keep-alive aware);
    /// returns its `HOST:PORT` and a handle yielding the request lines it saw.
    fn fake(responses: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = l.local_addr().expect("addr").to_string();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut queue = responses.into_iter();
            'conns: for conn in l.incoming() {
                let Ok(conn) = conn else { break };
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        continue 'conns;
                    }
                    seen.push(first.trim().to_string());
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        line.clear();
                    }
                    let Some(resp) = queue.next() else {
                        return seen;
                    };
                    let _ = w.write_all(resp.as_bytes());
                    if queue.len() == 0 {
                        return seen;
                    }
                }
            }
            seen
        });
        (host, h)
    }

    #[test]
    fn retries_429_then_reads_the_manifest() {
        let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        let (host, h) = fake(vec![
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n".into(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".into(),
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        ]);
        let mut c = Client::new(&host, "a/b", true).expect("client");
        c.backoff = Duration::from_millis(1);
        let m = c.manifest("edge").expect("ok").expect("found");
        assert_eq!(m.bytes, body.as_bytes());
        assert_eq!(m.digest, crate::image::Digest::sha256_of(body.as_bytes()));
        let seen = h.join().expect("server");
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen.iter()
                .all(|l| l.starts_with("GET /v2/a/b/manifests/edge "))
        );
    }

    #[test]
    fn persistent_429_and_401_are_clear_errors() {
        let r429 = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n";
        let (host, h) = fake(vec![r429.to_string(); ATTEMPTS as usize]);
        let mut c = Client::new(&host, "a/b", true).expect("client");
        c.backoff = Duration::from_millis(1);
        let e = c.manifest("edge").expect_err("refused");
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("429"), "{e}");
        assert_eq!(h.join().expect("server").len(), ATTEMPTS as usize);

        let body =
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required\u001b[31m"}]}"#;
        let (host, _h) = fake(vec![format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )]);
        let mut c = Client::new(&host, "a/b", true).expect("client");
        c.creds = None;
        let e = c.manifest("edge").expect_err("refused");
        let msg = e.to_string();
        assert_eq!(e.exit_code(), 3);
        assert!(msg.contains("401") && msg.contains("UNAUTHORIZED"), "{msg}");
        assert!(
            !msg.contains('\u{1b}'),
            "control characters must not pass: {msg}"
        );
    }

    #[test]
    fn challenge_params_parse() {
        let p = parse_params(
            r#"realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2].1, "repository:a/b:pull,push");
        assert_eq!(
            urlencode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
