//! Pushing a release's image to a registry a cluster's nodes pull from: tagged with its id,
//! pushed, and named back by the digest the registry gave it, so that a release always runs the
//! bytes it was made with.

use bollard::query_parameters::{PushImageOptions, TagImageOptions};
use futures_util::StreamExt;

use super::DockerRuntime;
use crate::runtime::{Result, RuntimeError};

/// The repository of a registry that holds the platform's images (`HOST[:PORT][/PATH]/faas`).
pub fn repository(registry: &str) -> String {
    format!("{}/faas", registry.trim_end_matches('/'))
}

impl DockerRuntime {
    /// Names the image `id` `repo:tag` as well.
    pub async fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<()> {
        let docker = self.docker()?;
        self.timed(docker.tag_image(
            id,
            Some(TagImageOptions {
                repo: Some(repo.to_owned()),
                tag: Some(tag.to_owned()),
            }),
        ))
        .await
    }

    /// Pushes the image `id` (`sha256:…`) to `registry`; returns its reference by digest there
    /// (`REGISTRY/faas@sha256:…`). Pushing what is there already only checks it.
    pub async fn push(&self, id: &str, registry: &str) -> Result<String> {
        let docker = self.docker()?;
        let repo = repository(registry);
        let tag = id.strip_prefix("sha256:").unwrap_or(id).to_owned();
        self.tag(id, &repo, &tag).await?;
        let mut progress = std::pin::pin!(docker.push_image(
            &repo,
            Some(PushImageOptions {
                tag: Some(tag),
                ..Default::default()
            }),
            None,
        ));
        while let Some(step) = progress.next().await {
            let step = match step {
                Ok(step) => step,
                Err(e) => return self.failed(e),
            };
            if let Some(detail) = step.error_detail {
                return Err(RuntimeError::Docker(format!(
                    "cannot push to {repo}: {}",
                    detail.message.unwrap_or_default()
                )));
            }
        }
        let inspected = self.timed(docker.inspect_image(id)).await?;
        let prefix = format!("{repo}@");
        inspected
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.starts_with(&prefix))
            .ok_or_else(|| {
                RuntimeError::Docker(format!("{repo} gave no digest for the pushed image {id}"))
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_repository_sits_under_the_registry() {
        assert_eq!(super::repository("127.0.0.1:5001"), "127.0.0.1:5001/faas");
        assert_eq!(
            super::repository("reg.example/team/"),
            "reg.example/team/faas"
        );
    }
}
