//! API errors as RFC 9457 problem documents with a stable code and the request id. A 5xx says
//! nothing internal to the client; the log has the whole story under the same request id.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faas_spec::api::Problem;

tokio::task_local! {
    /// The id of the request being handled (from X-Request-Id, or generated).
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Each problem of a task definition, with its place.
#[derive(Debug)]
pub struct DefinitionErrors(pub Vec<faas_spec::api::tasks::DefinitionError>);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub hint: Option<String>,
    pub deployment: Option<Box<str>>,
    /// A task definition's problems (boxed: errors travel in every `Result` of the API).
    pub errors: Option<Box<DefinitionErrors>>,
    /// Logged, never sent.
    pub internal: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            hint: None,
            deployment: None,
            errors: None,
            internal: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }
    pub fn internal(why: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the platform failed to handle this request; its log has the details under this request id",
        );
        e.internal = Some(why.to_string());
        e
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::runtime::RuntimeError> for ApiError {
    fn from(e: crate::runtime::RuntimeError) -> Self {
        use crate::runtime::RuntimeError as R;
        match e {
            R::Unavailable(why) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "docker-unavailable",
                format!("the platform's Docker Engine does not answer: {why}"),
            )
            .hint("start the Docker Engine (e.g. `sudo systemctl start docker` or `dockerd &`); the platform reconnects by itself"),
            R::NoSuchImage(image) => Self::unprocessable(
                "image-not-found",
                format!("there is no image `{image}` on the platform's Docker Engine"),
            )
            .hint("upload it with POST /v1/images (a `docker save` tarball), or build it on the same engine"),
            R::Kubernetes(why) => {
                let mut e = Self::new(StatusCode::BAD_GATEWAY, "kubernetes-error", format!("the Kubernetes API refused: {why}"));
                e.internal = Some(why);
                e
            }
            R::Unsupported(why) => Self::new(StatusCode::NOT_IMPLEMENTED, "not-on-this-runtime", why),
            R::Docker(why) => {
                let mut e = Self::new(StatusCode::BAD_GATEWAY, "docker-error", format!("the Docker Engine refused: {why}"));
                e.internal = Some(why);
                e
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), "invalid-body", r.body_text())
            .hint("send a JSON body that matches the API (GET /openapi.json describes it)")
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(r.status(), "invalid-path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid-query", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if self.status.is_server_error() {
            tracing::error!(
                request_id = request_id.as_deref().unwrap_or("-"),
                code = self.code,
                internal = self.internal.as_deref().unwrap_or(""),
                "{}",
                self.detail
            );
        }
        let problem = Problem {
            kind: format!("https://faas.dev/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            hint: self.hint,
            request_id,
            deployment: self.deployment.map(String::from),
            errors: self.errors.map(|e| e.0).unwrap_or_default(),
        };
        let mut response = (self.status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
