//! `POST /v1/images`: a streamed `docker save` tarball, checked against its SHA-256, loaded into
//! the platform's Docker Engine. For callers that do not share the engine; no registry needed.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use faas_spec::api::ImagesLoaded;
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::Query;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImageQuery {
    /// The SHA-256 of the tarball, in hex: the upload is refused when it differs.
    pub sha256: String,
}

/// Loads images from a `docker save` tarball sent as the body (of any content type; the CLI
/// sends `application/x-tar`).
#[utoipa::path(post, path = "/v1/images", tag = "images", params(ImageQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "a `docker save` tarball"),
    responses((status = 201, body = ImagesLoaded), (status = 422, body = faas_spec::api::Problem)))]
pub async fn load_images(
    State(p): State<AppState>,
    Query(q): Query<ImageQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImagesLoaded>)> {
    let expected = q.sha256.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            ApiError::bad_request("invalid-checksum", "`sha256` must be 64 hex digits")
                .hint("send ?sha256=$(sha256sum image.tar | cut -d' ' -f1)"),
        );
    }
    let dir = p.config.data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let path = dir.join(format!("{}.tar", crate::store::short_id()));
    let result = receive(body, &path).await;
    let outcome = async {
        let (bytes, actual) = result?;
        if actual != expected {
            return Err(ApiError::unprocessable(
                "checksum-mismatch",
                format!(
                    "the upload's SHA-256 is {actual}, not {expected}: it was damaged or cut short"
                ),
            )
            .hint("upload it again"));
        }
        let images = p.runtime.load_image(&path).await?;
        Ok((
            StatusCode::CREATED,
            Json(ImagesLoaded {
                images,
                sha256: actual,
                bytes,
            }),
        ))
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    outcome
}

async fn receive(body: Body, path: &std::path::Path) -> ApiResult<(u64, String)> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("upload-interrupted", format!("the upload broke off: {e}"))
        })?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "disk-full",
                format!("cannot store the upload: {e}"),
            )
        })?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}
