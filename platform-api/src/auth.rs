//! Bearer tokens: stored as SHA-256 hashes, each with a tenant and a role. An admin sees every
//! service; a member sees only its tenant's (others are 404, as if they did not exist).

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use faas_spec::api::Role;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::store::Store;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see a service owned by `owner`.
    pub fn can_see(&self, owner: &str) -> bool {
        self.is_admin() || self.tenant == owner
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this needs an admin token",
            )
            .hint("ask an admin of the platform"))
        }
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    format!("faas_{}", hex::encode(bytes))
}

pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// On first start: an admin token, written 0600 into the data directory. Returns its path when
/// one was made.
pub fn ensure_admin_token(
    store: &Store,
    data_dir: &Path,
    tenant: &str,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if store.count_admin_tokens()? > 0 {
        return Ok(None);
    }
    let token = new_token();
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_private(&path, &format!("{token}\n"))?;
    store.add_token(
        &hash_token(&token),
        tenant,
        Role::Admin,
        Some("first admin"),
    )?;
    Ok(Some(path))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}

/// Resolves the bearer token into a [`Principal`] request extension, or answers 401.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this needs a bearer token",
        )
        .hint(format!(
            "send `Authorization: Bearer <token>`; the first admin token is in {}",
            state.config.data_dir.join(ADMIN_TOKEN_FILE).display()
        ))
        .into_response();
    };
    match state.store.token(&hash_token(token)) {
        Ok(Some(row)) => {
            request.extensions_mut().insert(Principal {
                tenant: row.tenant,
                role: row.role,
            });
            next.run(request).await
        }
        Ok(None) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            "the bearer token is not known to this platform",
        )
        .hint("log in again with a valid token")
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
