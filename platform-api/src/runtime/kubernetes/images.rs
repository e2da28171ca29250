//! Where a cluster's nodes take releases' images from, and how an image gets there: the
//! platform's own Docker Engine (nodes that use it), loaded into kind or k3d nodes, pushed to a
//! registry, or already in a registry by digest.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use faas_spec::api::DockerStatus;

use crate::runtime::{DockerRuntime, Result, Runtime, RuntimeError};

/// Where a cluster's nodes take the images of releases from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Images {
    /// The platform's Docker Engine, which the nodes use too (a local cluster on this host,
    /// minikube's docker-env): a built image is used as it is, by its id.
    Docker,
    /// kind's nodes: each release's image is loaded into them (`kind load docker-image`).
    Kind,
    /// k3d's nodes: each release's image is imported into them (`k3d image import`).
    K3d,
    /// A registry the nodes pull from: the platform pushes each release's image there from its
    /// Docker Engine (`--registry`), or releases name theirs by digest
    /// (`REGISTRY/REPO@sha256:…`), pushed beforehand.
    Registry,
}

impl Images {
    /// What a kubeconfig context's name says of its cluster, as Skaffold reads it: `kind-NAME`
    /// and `k3d-NAME` are those tools' own; anything else shares the platform's engine.
    pub fn of_context(context: &str) -> (Self, Option<String>) {
        for (prefix, images) in [("kind-", Images::Kind), ("k3d-", Images::K3d)] {
            if let Some(name) = context.strip_prefix(prefix).filter(|n| !n.is_empty()) {
                return (images, Some(name.to_owned()));
            }
        }
        (Images::Docker, None)
    }
}

/// A reference pinned by its digest (`REPO@sha256:<64 hex>`), the only kind a registry-backed
/// cluster runs: a tag can move under a running release.
pub fn is_pinned(reference: &str) -> bool {
    reference
        .rsplit_once("@sha256:")
        .is_some_and(|(repo, hex)| {
            !repo.is_empty()
                && hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The name an image is loaded into nodes by: its id is the tag, so it never moves.
pub fn node_tag(id: &str) -> String {
    format!(
        "faas.local/image:{}",
        id.strip_prefix("sha256:").unwrap_or(id)
    )
}

/// The command that loads `tag` into the nodes of the cluster `name`.
pub fn load_command(images: Images, tag: &str, name: &str) -> Option<(&'static str, Vec<String>)> {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect();
    match images {
        Images::Kind => Some(("kind", args(&["load", "docker-image", tag, "--name", name]))),
        Images::K3d => Some(("k3d", args(&["image", "import", tag, "--cluster", name]))),
        Images::Docker | Images::Registry => None,
    }
}

pub enum ImageSource {
    /// The nodes use this engine.
    Shared(Arc<DockerRuntime>),
    /// Loaded from this engine into the nodes of a kind or k3d cluster.
    Loaded {
        docker: Arc<DockerRuntime>,
        images: Images,
        cluster: String,
        done: Mutex<HashSet<String>>,
    },
    /// Pushed from this engine to a registry.
    Pushed(Arc<DockerRuntime>, String),
    /// In a registry already, named by digest.
    Digest,
}

impl ImageSource {
    pub fn new(
        images: Images,
        cluster: Option<String>,
        registry: Option<String>,
        docker: Arc<DockerRuntime>,
    ) -> anyhow::Result<Self> {
        Ok(match (images, registry) {
            (Images::Docker, _) => Self::Shared(docker),
            (Images::Registry, Some(registry)) => Self::Pushed(docker, registry),
            (Images::Registry, None) => Self::Digest,
            (Images::Kind | Images::K3d, _) => Self::Loaded {
                docker,
                images,
                cluster: cluster.ok_or_else(|| {
                    anyhow::anyhow!(
                        "which {images:?} cluster? Pick its context (`kind-NAME`, `k3d-NAME`) with --context"
                    )
                })?,
                done: Mutex::default(),
            },
        })
    }

    fn engine(&self) -> Option<&Arc<DockerRuntime>> {
        match self {
            Self::Shared(d) | Self::Pushed(d, _) => Some(d),
            Self::Loaded { docker, .. } => Some(docker),
            Self::Digest => None,
        }
    }

    /// What the status says of the runtime: the cluster's, and the engine images come from.
    pub fn status(&self, server: &str, error: Option<String>) -> DockerStatus {
        let Some(docker) = self.engine() else {
            return DockerStatus {
                available: error.is_none(),
                engine_id: None,
                version: Some(format!("{server} (images: a registry, by digest)")),
                error,
            };
        };
        let engine = docker.status();
        let from = match self {
            Self::Pushed(_, registry) => format!("pushed to {registry}"),
            Self::Loaded {
                images, cluster, ..
            } => format!("loaded into {images:?} cluster {cluster}"),
            _ => "the nodes'".to_owned(),
        };
        DockerStatus {
            available: engine.available && error.is_none(),
            // Images are built on this engine: a client on it need not upload them.
            engine_id: engine.engine_id,
            version: Some(format!(
                "{server} (images: Docker {}, {from})",
                engine.version.unwrap_or_else(|| "?".into())
            )),
            error: error.or(engine.error),
        }
    }

    /// The reference a release's pods run its image by.
    pub async fn image_id(&self, reference: &str) -> Result<String> {
        match self {
            Self::Shared(docker) => docker.image_id(reference).await,
            Self::Digest if is_pinned(reference) => Ok(reference.to_owned()),
            Self::Digest => Err(RuntimeError::Unsupported(format!(
                "the cluster pulls images from a registry: name `{reference}` by its digest (`REGISTRY/REPO@sha256:…`, as `docker push` prints it)"
            ))),
            Self::Pushed(docker, registry) => {
                let id = docker.image_id(reference).await?;
                docker.push(&id, registry).await
            }
            Self::Loaded {
                docker,
                images,
                cluster,
                done,
            } => {
                let id = docker.image_id(reference).await?;
                let tag = node_tag(&id);
                if done
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&tag)
                {
                    return Ok(tag);
                }
                let (repo, version) = tag.rsplit_once(':').unwrap_or((&tag, "latest"));
                docker.tag(&id, repo, version).await?;
                if let Some((tool, args)) = load_command(*images, &tag, cluster) {
                    let out = tokio::process::Command::new(tool)
                        .args(&args)
                        .output()
                        .await
                        .map_err(|e| {
                            RuntimeError::Unsupported(format!(
                                "cannot run `{tool}` to load {tag} into the nodes: {e} (install it, or use --images registry)"
                            ))
                        })?;
                    if !out.status.success() {
                        return Err(RuntimeError::Kubernetes(format!(
                            "`{tool} {}` failed: {}",
                            args.join(" "),
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                }
                done.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tag.clone());
                Ok(tag)
            }
        }
    }

    pub async fn load_image(&self, tarball: &std::path::Path) -> Result<Vec<String>> {
        match self.engine() {
            Some(docker) => docker.load_image(tarball).await,
            None => Err(RuntimeError::Unsupported(
                "the cluster pulls images from a registry: push the image there and deploy it by its digest".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_digest_references_are_pinned() {
        let hex = "a".repeat(64);
        assert!(is_pinned(&format!(
            "registry.example:5000/web@sha256:{hex}"
        )));
        assert!(!is_pinned("registry.example:5000/web:latest"));
        assert!(!is_pinned(&format!("@sha256:{hex}")));
        assert!(!is_pinned("web@sha256:abc"));
    }

    #[test]
    fn kind_and_k3d_contexts_name_their_clusters() {
        assert_eq!(
            Images::of_context("kind-dev"),
            (Images::Kind, Some("dev".into()))
        );
        assert_eq!(
            Images::of_context("k3d-team"),
            (Images::K3d, Some("team".into()))
        );
        assert_eq!(Images::of_context("minikube"), (Images::Docker, None));
        assert_eq!(Images::of_context("kind-"), (Images::Docker, None));
    }

    #[test]
    fn each_tool_is_told_the_tag_and_the_cluster() {
        let tag = node_tag("sha256:abc");
        assert_eq!(tag, "faas.local/image:abc");
        assert_eq!(
            load_command(Images::Kind, &tag, "dev"),
            Some((
                "kind",
                vec![
                    "load".into(),
                    "docker-image".into(),
                    tag.clone(),
                    "--name".into(),
                    "dev".into()
                ]
            ))
        );
        assert_eq!(
            load_command(Images::K3d, &tag, "team"),
            Some((
                "k3d",
                vec![
                    "image".into(),
                    "import".into(),
                    tag.clone(),
                    "--cluster".into(),
                    "team".into()
                ]
            ))
        );
        assert_eq!(load_command(Images::Docker, &tag, "x"), None);
    }
}
