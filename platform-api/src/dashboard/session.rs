//! Signing in: a platform token, checked once, becomes a session. Its id is 32 random bytes in
//! an HttpOnly, SameSite=Strict cookie scoped to `/dashboard` (only its hash is stored); its
//! cross-site token goes into every form and is checked on every action. A session lasts 12 h
//! (`FAAS_PLATFORM_SESSION_TTL`), and ends at sign-out or when its token is gone.

use std::time::Duration;

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{error_page, render, render_status};
use crate::AppState;
use crate::auth::{Principal, hash_token};
use crate::meter::now_us;
use crate::store::SessionLookup;

pub const COOKIE: &str = "faas_session";
pub const TTL_VAR: &str = "FAAS_PLATFORM_SESSION_TTL";
const TTL: Duration = Duration::from_secs(12 * 3600);

fn ttl() -> Duration {
    std::env::var(TTL_VAR)
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(TTL)
}

/// Who looks at the dashboard, and the token its forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
}

impl Viewer {
    /// What every page shows of the viewer.
    pub fn context(&self) -> minijinja::Value {
        minijinja::context! {
            tenant => self.principal.tenant.clone(),
            admin => self.principal.is_admin(),
            csrf => self.csrf.clone(),
        }
    }

    /// Checks an action's cross-site token (and that the browser did not say it came from
    /// another site).
    pub fn check(&self, headers: &HeaderMap, csrf: &str) -> Result<(), Box<Response>> {
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        if cross_site || !same(csrf.as_bytes(), self.csrf.as_bytes()) {
            return Err(Box::new(error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "This action did not come from a page of this dashboard (its cross-site token is missing or wrong), so nothing was done.",
                Some("Reload the page and try again from there."),
            )));
        }
        Ok(())
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

fn wants_page(parts: &Parts) -> bool {
    parts.method == axum::http::Method::GET
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, p: &AppState) -> Result<Self, Self::Rejection> {
        let lookup = match cookie_of(&parts.headers) {
            Some(id) => p.store.session(&hash_token(&id), now_us()).map_err(|e| {
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    &e.to_string(),
                    None,
                )
            })?,
            None => SessionLookup::Unknown,
        };
        let expired = match lookup {
            SessionLookup::Live(s) => {
                return Ok(Viewer {
                    principal: Principal {
                        tenant: s.tenant,
                        role: s.role,
                    },
                    csrf: s.csrf,
                });
            }
            SessionLookup::Expired => true,
            SessionLookup::Unknown => false,
        };
        if wants_page(parts) {
            let next = parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_else(|| "/dashboard".into());
            let mut to = format!(
                "/dashboard/login?next={}",
                crate::dashboard::view::encode(&next)
            );
            if expired {
                to.push_str("&expired=1");
            }
            return Err(Redirect::to(&to).into_response());
        }
        let why = if expired {
            "your dashboard session has expired; sign in again"
        } else {
            "sign in to the dashboard first"
        };
        Err((StatusCode::UNAUTHORIZED, why).into_response())
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    pub next: Option<String>,
    pub expired: Option<String>,
}

/// Only a page of the dashboard is a place to go after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/dashboard") && !n.starts_with("//") && !n.contains("\\") => {
            n.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let message = q
        .expired
        .is_some()
        .then_some("Your session has expired. Sign in again.");
    render(
        "login.html",
        minijinja::context! { next => safe_next(q.next.as_deref()), message },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub token: String,
    pub next: Option<String>,
}

pub async fn login(
    State(p): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let refuse = |status: StatusCode, message: &str| {
        render_status(
            status,
            "login.html",
            minijinja::context! { next => next.clone(), error => message },
        )
    };
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "Sign in from this dashboard's own page.",
        );
    }
    let token = form.token.trim();
    if token.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Paste a platform token (faas_…) to sign in.",
        );
    }
    let token_hash = hash_token(token);
    match p.store.token(&token_hash) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "That token is not known to this platform. Check it, or ask an admin for one (faas auth token create).",
            );
        }
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
    let id = crate::auth::new_token();
    let csrf = crate::auth::new_token();
    let now = now_us();
    let ttl = ttl();
    if let Err(e) = p.store.create_session(
        &hash_token(&id),
        &token_hash,
        &csrf,
        now,
        now + ttl.as_micros() as i64,
    ) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let cookie = format!(
        "{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}",
        ttl.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(p): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = viewer.check(&headers, &form.csrf) {
        return *refused;
    }
    if let Some(id) = cookie_of(&headers) {
        let _ = p.store.end_session(&hash_token(&id));
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "faas_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}
