//! The platform API client. A problem document becomes an error with the platform's message,
//! code and hint; an unreachable platform names its URL and how to start it.

use std::io::BufRead;
use std::time::Duration;

use faas_spec::api::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Context;
use crate::error::{CliError, CliResult};

pub struct Client {
    pub context: Context,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(context: Context, token: Option<String>) -> CliResult<Self> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(None)
            .build()
            .map_err(|e| CliError::failed(format!("cannot make an HTTP client: {e}"), None))?;
        Ok(Self {
            context,
            token,
            http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.context.url)
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let hint = if self.context.local {
            "start it with `faas platform start`".to_owned()
        } else {
            format!(
                "check the URL (`faas context list`) or use another context with -C; context `{}`",
                self.context.name
            )
        };
        CliError::failed(
            format!(
                "the platform at {} does not answer: {}",
                self.context.url,
                root_cause(e)
            ),
            Some(hint),
        )
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        timeout: Option<Duration>,
    ) -> CliResult<reqwest::blocking::Response> {
        let mut request = request;
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let response = request.send().map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.problem(response))
    }

    fn problem(&self, response: reqwest::blocking::Response) -> CliError {
        let status = response.status();
        let text = response.text().unwrap_or_default();
        match serde_json::from_str::<Problem>(&text) {
            Ok(p) => {
                let hint = match (p.status, p.hint) {
                    (401, _) if !self.context.local => Some(format!(
                        "run `faas login` for context `{}`",
                        self.context.name
                    )),
                    (_, hint) => hint,
                };
                let mut message = format!("{} [{}]", p.detail.trim_end(), p.code);
                if let Some(id) = &p.request_id {
                    message.push_str(&format!(" (request {id})"));
                }
                CliError::Platform {
                    message,
                    hint,
                    code: p.code,
                    status: p.status,
                    deployment: p.deployment,
                    errors: p.errors,
                }
            }
            Err(_) => CliError::failed(
                format!("the platform answered {status}: {}", text.trim()),
                None,
            ),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        let r = self.send(self.http.get(self.url(path)), Some(Duration::from_secs(30)))?;
        r.json().map_err(|e| {
            CliError::failed(
                format!("the platform's answer to GET {path} is not what this faas expects: {e}"),
                None,
            )
        })
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> CliResult<T> {
        let r = self.send(
            self.http.post(self.url(path)).json(body),
            Some(Duration::from_secs(60)),
        )?;
        r.json().map_err(|e| {
            CliError::failed(
                format!("the platform's answer to POST {path} is not what this faas expects: {e}"),
                None,
            )
        })
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> CliResult<T> {
        let r = self.send(
            self.http.put(self.url(path)).json(body),
            Some(Duration::from_secs(60)),
        )?;
        r.json().map_err(|e| {
            CliError::failed(
                format!("the platform's answer to PUT {path} is not what this faas expects: {e}"),
                None,
            )
        })
    }

    pub fn delete_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<T> {
        let r = self.send(
            self.http.delete(self.url(path)).json(body),
            Some(Duration::from_secs(60)),
        )?;
        r.json().map_err(|e| {
            CliError::failed(
                format!(
                    "the platform's answer to DELETE {path} is not what this faas expects: {e}"
                ),
                None,
            )
        })
    }

    pub fn delete(&self, path: &str) -> CliResult {
        self.send(
            self.http.delete(self.url(path)),
            Some(Duration::from_secs(120)),
        )?;
        Ok(())
    }

    /// Uploads a file (an image tarball) as the body.
    pub fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        file: std::fs::File,
        len: u64,
    ) -> CliResult<T> {
        self.upload_as(path, file, len, "application/x-tar")
    }

    /// Uploads a file as the body, of `content_type`.
    pub fn upload_as<T: DeserializeOwned>(
        &self,
        path: &str,
        file: std::fs::File,
        len: u64,
        content_type: &str,
    ) -> CliResult<T> {
        let body = reqwest::blocking::Body::sized(file, len);
        let r = self.send(
            self.http
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
            None,
        )?;
        r.json()
            .map_err(|e| CliError::failed(format!("unexpected answer to the upload: {e}"), None))
    }

    /// Copies a response body into `out`; returns how many bytes.
    pub fn download(&self, path: &str, out: &mut impl std::io::Write) -> CliResult<u64> {
        let mut r = self.send(self.http.get(self.url(path)), None)?;
        r.copy_to(out)
            .map_err(|e| CliError::failed(format!("the download broke off: {e}"), None))
    }

    /// Reads an NDJSON stream, calling `each` per record until it returns false or the stream
    /// ends.
    pub fn stream<T: DeserializeOwned>(
        &self,
        path: &str,
        mut each: impl FnMut(T) -> bool,
    ) -> CliResult {
        let r = self.send(self.http.get(self.url(path)), None)?;
        let reader = std::io::BufReader::new(r);
        for line in reader.lines() {
            let line = line
                .map_err(|e| CliError::failed(format!("the event stream broke off: {e}"), None))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: T = serde_json::from_str(&line).map_err(|e| {
                CliError::failed(format!("an event this faas does not understand: {e}"), None)
            })?;
            if !each(record) {
                break;
            }
        }
        Ok(())
    }

    /// Whether the platform answers at all (no token needed).
    pub fn info(&self) -> CliResult<faas_spec::api::PlatformInfo> {
        let r = self
            .http
            .get(self.url("/_info"))
            .timeout(Duration::from_secs(5))
            .send()
            .map_err(|e| self.unreachable(&e))?;
        r.json().map_err(|e| {
            CliError::failed(
                format!("{} is not a faas platform: {e}", self.context.url),
                None,
            )
        })
    }
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// Percent-encodes all but the unreserved characters, for a path segment or a query value.
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
