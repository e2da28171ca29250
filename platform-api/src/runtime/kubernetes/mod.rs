//! The Kubernetes runtime (kube-rs, typed objects, server-side apply under one field manager):
//! an instance is a Deployment of one pod labelled like a Docker container (`io.faas.*`), its
//! secret variables a Secret it owns, its environment a Service whose Endpoints the platform
//! watches. The router keeps routing, weighting and measuring: it sends requests to pod IPs.
//! Images come from the Docker Engine the nodes use (a local cluster on the platform's host, or
//! minikube's docker-env), pinned by their immutable id and never pulled. Nothing of kube
//! leaves this module.

mod endpoints;
mod events;
mod find;
pub mod images;
mod logs;
mod namespaces;
pub mod objects;
mod placement;
pub mod pods;
mod stats;

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use faas_spec::api::DockerStatus;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::{
    BoxStream, DockerRuntime, InstanceSpec, InstanceState, LABEL_ENV, LABEL_INSTANCE,
    LABEL_PLATFORM, LABEL_RELEASE, LABEL_RUN, LABEL_RUN_PLATFORM, LABEL_SERVICE, LogChunk,
    PlatformInstance, Result, Runtime, RuntimeError, RuntimeEvent, Stats,
};
use namespaces::{make_namespace, scope};
use objects::FIELD_MANAGER;

/// Where the platform's cluster is and which namespace is its own.
#[derive(Debug, Clone, Default)]
pub struct KubernetesConfig {
    /// The kubeconfig file [default: `$KUBECONFIG`, else `~/.kube/config`].
    pub kubeconfig: Option<PathBuf>,
    /// Its context [default: the current one].
    pub context: Option<String>,
    /// The namespace everything of this platform goes in (with `per_tenant`, the prefix of
    /// its tenants' namespaces).
    pub namespace: String,
    /// A namespace per tenant (`<namespace>-<tenant>`) in place of one for the platform.
    pub per_tenant: bool,
    /// Where the nodes take images from; None: as the context's name says (`kind-NAME`,
    /// `k3d-NAME`), else the platform's Docker Engine.
    pub images: Option<Images>,
    /// With `Images::Registry`, the registry the platform pushes releases' images to
    /// (`HOST[:PORT][/PATH]`); None: releases name their image by digest themselves.
    pub registry: Option<String>,
}

pub use images::{Images, is_pinned};

/// Whether `name` is a DNS label (RFC 1123), as namespaces and Services must be.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn kube_error(e: kube::Error) -> RuntimeError {
    match e {
        kube::Error::Api(status) => {
            RuntimeError::Kubernetes(format!("{} ({})", status.message, status.reason))
        }
        other => RuntimeError::Unavailable(format!("the Kubernetes API: {other}")),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub struct KubernetesRuntime {
    this: Weak<KubernetesRuntime>,
    client: Client,
    namespaces: namespaces::Namespaces,
    platform_id: String,
    /// Where releases' images come from, and how they get to the nodes.
    images: images::ImageSource,
    server: String,
    status_error: RwLock<Option<String>>,
    /// The platform's pods, as the watch last saw them.
    pods_seen: kube::runtime::reflector::Store<Pod>,
}

impl KubernetesRuntime {
    /// Connects to the cluster named by `config`, checks that it answers, and makes the
    /// platform's namespace. Fails with what to fix when it cannot.
    pub async fn connect(
        platform_id: String,
        config: &KubernetesConfig,
        docker: Arc<DockerRuntime>,
    ) -> anyhow::Result<Arc<Self>> {
        // The context the client uses, named or the kubeconfig's current one.
        let context = match (&config.context, &config.kubeconfig) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(path)) => kube::config::Kubeconfig::read_from(path)
                .ok()
                .and_then(|k| k.current_context),
            (None, None) => kube::config::Kubeconfig::read()
                .ok()
                .and_then(|k| k.current_context),
        };
        let (guessed, cluster) = context
            .as_deref()
            .map_or((Images::Docker, None), Images::of_context);
        let images = images::ImageSource::new(
            config.images.unwrap_or(guessed),
            cluster,
            config.registry.clone(),
            docker,
        )?;
        let options = kube::config::KubeConfigOptions {
            context: config.context.clone(),
            ..Default::default()
        };
        let kube_config = match (&config.kubeconfig, &config.context) {
            (Some(path), _) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the kubeconfig {}: {e}", path.display())
                })?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| e.to_string())
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| e.to_string()),
            // $KUBECONFIG, ~/.kube/config, else the pod's service account (in the cluster).
            (None, None) => kube::Config::infer().await.map_err(|e| e.to_string()),
        }
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot use the kubeconfig{}: {e} (name one with --kubeconfig, and a context with --context)",
                config
                    .kubeconfig
                    .as_ref()
                    .map(|p| format!(" {}", p.display()))
                    .unwrap_or_default()
            )
        })?;
        let url = kube_config.cluster_url.to_string();
        let client = Client::try_from(kube_config)
            .map_err(|e| anyhow::anyhow!("cannot make a client for {url}: {e}"))?;
        let version = tokio::time::timeout(Duration::from_secs(15), client.apiserver_version())
            .await
            .map_err(|_| anyhow::anyhow!("the Kubernetes API at {url} did not answer within 15 s"))?
            .map_err(|e| anyhow::anyhow!("the Kubernetes API at {url} does not answer: {e}"))?;
        if !config.per_tenant {
            make_namespace(&client, &config.namespace, &platform_id)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot make the namespace `{}` on {url}: {e}",
                        config.namespace
                    )
                })?;
        }
        tracing::info!(
            cluster = %url,
            version = %version.git_version,
            namespace = %config.namespace,
            "the platform runs its instances on Kubernetes"
        );
        let namespaces = namespaces::Namespaces::new(config.namespace.clone(), config.per_tenant);
        if !config.per_tenant {
            namespaces.made(&config.namespace);
        }
        let pods_seen = placement::watch(
            scope(&client, &namespaces),
            &format!("{LABEL_PLATFORM}={platform_id}"),
        );
        Ok(Arc::new_cyclic(|this| Self {
            this: this.clone(),
            client,
            namespaces,
            platform_id,
            images,
            server: format!("Kubernetes {} at {url}", version.git_version),
            status_error: RwLock::new(None),
            pods_seen,
        }))
    }

    fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn note(&self, result: &std::result::Result<(), &RuntimeError>) {
        let error = match result {
            Err(RuntimeError::Unavailable(why)) => Some(why.clone()),
            _ => None,
        };
        *self.status_error.write().unwrap_or_else(|p| p.into_inner()) = error;
    }

    async fn apply<K>(&self, api: &Api<K>, name: &str, obj: &K) -> Result<K>
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut out = api.patch(name, &params, &Patch::Apply(obj)).await;
        // Two instances starting at once both create their environment's Service: the one that
        // lost the race applies again, onto the object the other made.
        if let Err(kube::Error::Api(s)) = &out
            && s.code == 409
            && s.reason == "AlreadyExists"
        {
            out = api.patch(name, &params, &Patch::Apply(obj)).await;
        }
        let out = out.map_err(kube_error);
        self.note(&out.as_ref().map(|_| ()));
        out
    }

    /// The objects whose `label` names this platform.
    async fn mine<K>(&self, api: Api<K>, label: &str) -> Result<Vec<K>>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let selector = format!("{label}={}", self.platform_id);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_error)?;
        for item in &list.items {
            let meta = item.meta();
            if let (Some(name), Some(ns)) = (&meta.name, &meta.namespace) {
                self.namespaces.remember(name, ns);
            }
        }
        Ok(list.items)
    }
}

#[async_trait::async_trait]
impl Runtime for KubernetesRuntime {
    fn platform_id(&self) -> &str {
        &self.platform_id
    }

    fn status(&self) -> DockerStatus {
        let error = self
            .status_error
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.images.status(&self.server, error)
    }

    async fn image_id(&self, reference: &str) -> Result<String> {
        self.images.image_id(reference).await
    }

    async fn load_image(&self, tarball: &std::path::Path) -> Result<Vec<String>> {
        self.images.load_image(tarball).await
    }

    async fn start_instance(&self, spec: &InstanceSpec<'_>) -> Result<(String, InstanceState)> {
        let name = spec.container_name();
        let ns = self.tenant_ns(spec.tenant).await?;
        self.namespaces.remember(&name, &ns);
        let labels = objects::labels(&self.platform_id, spec);
        let service = objects::service(
            &objects::service_name(spec.service, spec.env),
            &self.platform_id,
            spec.service,
            spec.env,
            spec.manifest.run.port,
        );
        self.apply(
            &self.services(&ns),
            &objects::service_name(spec.service, spec.env),
            &service,
        )
        .await?;
        // The Secret first (the pod cannot start without it), then the Deployment, then the
        // Secret again, owned by the Deployment so that it goes with it.
        let (_, data) = objects::env_vars(spec, &name);
        let secret = objects::secret(&name, &labels, data.clone(), None);
        self.apply(&self.secrets(&ns), &name, &secret).await?;
        let deployment = objects::deployment(&name, &self.platform_id, spec);
        let applied = self
            .apply(&self.deployments(&ns), &name, &deployment)
            .await?;
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.clone(),
            uid: applied.metadata.uid.clone().unwrap_or_default(),
            ..Default::default()
        };
        let secret = objects::secret(&name, &labels, data, Some(owner));
        self.apply(&self.secrets(&ns), &name, &secret).await?;
        let state = self.placed(&name).await?;
        Ok((name, state))
    }

    /// The cluster restarts a Deployment's pod whenever it exits: nothing to turn on.
    async fn keep_running(&self, _id: &str) -> Result<()> {
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<InstanceState> {
        let deployment = self.deployment(id).await?;
        let pod = self.newest_pod(id).await?;
        if deployment.is_none() && pod.is_none() {
            return Ok(InstanceState::default());
        }
        let mut state = pods::state_of(pod.as_ref());
        if let Some(d) = &deployment {
            match pods::rolled_out(d) {
                Ok(done) => state.rolled_out = Some(done),
                Err(why) => {
                    state.rolled_out = Some(false);
                    if state.failure().is_none() {
                        state.stuck = true;
                        state.error = Some(why);
                    }
                }
            }
        }
        Ok(state)
    }

    async fn restart(&self, id: &str, grace: Duration) -> Result<()> {
        // Its Deployment starts a new pod for the one deleted.
        let ns = self.ns_of(id).await?;
        let Some(pod) = self.newest_pod(id).await? else {
            return Err(RuntimeError::Kubernetes(format!(
                "instance {id} has no pod to restart"
            )));
        };
        let params = DeleteParams {
            grace_period_seconds: Some(grace.as_secs().max(1) as u32),
            ..Default::default()
        };
        let name = pod.metadata.name.unwrap_or_default();
        match self.pods(&ns).delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(kube_error(e)),
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let scale = serde_json::json!({"spec": {"replicas": 0}});
        let ns = self.ns_of(id).await?;
        match self
            .deployments(&ns)
            .patch(id, &PatchParams::default(), &Patch::Merge(&scale))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_error(e)),
        }
        // Its pods get SIGTERM now, and SIGKILL after `grace`.
        let params = DeleteParams {
            grace_period_seconds: Some(grace.as_secs().max(1) as u32),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + grace + Duration::from_secs(30);
        let mut asked = std::collections::HashSet::new();
        loop {
            let pod = self.newest_pod(id).await?;
            let Some(pod) = pod else { return Ok(()) };
            let name = pod.metadata.name.clone().unwrap_or_default();
            // Once per pod, even one the scale-down is deleting already: a shorter grace than
            // its own (the drain timeout and 10 s) shortens it.
            if asked.insert(name.clone()) {
                match self.pods(&ns).delete(&name, &params).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(kube_error(e)),
                }
            }
            let finished = pods::state_of(Some(&pod));
            if (pod.metadata.deletion_timestamp.is_some() && !finished.running)
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let labels = self
            .deployment(id)
            .await?
            .and_then(|d| d.metadata.labels)
            .unwrap_or_default();
        let ns = self.ns_of(id).await?;
        let params = DeleteParams::background();
        for result in [
            self.deployments(&ns).delete(id, &params).await.map(|_| ()),
            self.secrets(&ns).delete(id, &params).await.map(|_| ()),
            self.pods(&ns).delete(id, &params).await.map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(kube_error(e)),
            }
        }
        if let (Some(service), Some(env)) = (labels.get(LABEL_SERVICE), labels.get(LABEL_ENV)) {
            self.drop_unused_service(&ns, service, env).await;
        }
        Ok(())
    }

    fn follow_logs(&self, id: &str, since: i64) -> Result<BoxStream<Result<LogChunk>>> {
        self.follow(id, since)
    }

    async fn logs_tail(&self, id: &str, n: usize) -> Vec<String> {
        self.tail(id, n).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        let pod = self
            .newest_pod(id)
            .await?
            .ok_or_else(|| RuntimeError::Kubernetes(format!("no pod of {id}")))?;
        stats::of_pod(&self.client, &pod).await
    }

    async fn list_instances(&self) -> Result<Vec<PlatformInstance>> {
        Ok(self
            .mine(self.scoped::<Deployment>(), LABEL_PLATFORM)
            .await?
            .into_iter()
            .filter_map(|d| {
                let name = d.metadata.name.clone()?;
                let labels = d.metadata.labels.clone().unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0;
                // It has a pod: a readiness probe failing for a moment must not get a running
                // instance removed at a restart (the router's checks judge its health).
                let ready = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0;
                Some(PlatformInstance {
                    id: name.clone(),
                    name,
                    service: label(LABEL_SERVICE),
                    env: label(LABEL_ENV),
                    release: label(LABEL_RELEASE),
                    instance: label(LABEL_INSTANCE),
                    running: wanted && ready,
                })
            })
            .collect())
    }

    fn placement(&self, instance: &str) -> Option<faas_spec::api::PodPlacement> {
        placement::of(&self.pods_seen, instance)
    }

    fn address_changes(&self) -> Option<BoxStream<super::AddressChange>> {
        Some(self.watch_addresses())
    }

    fn events(&self) -> Result<BoxStream<Result<RuntimeEvent>>> {
        Ok(self.watch_events())
    }

    async fn start_run(&self, spec: &super::RunSpec<'_>) -> Result<(String, InstanceState)> {
        let pod = objects::run_pod(&self.platform_id, spec);
        let ns = self.tenant_ns(spec.tenant).await?;
        self.namespaces.remember(spec.name, &ns);
        match self.pods(&ns).create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            // Made before a crash: left as it is.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_error(e)),
        }
        let state = self.placed(spec.name).await?;
        Ok((spec.name.to_owned(), state))
    }

    async fn list_runs(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .mine(self.scoped::<Pod>(), LABEL_RUN_PLATFORM)
            .await?
            .into_iter()
            .filter_map(|p| {
                let run = p.metadata.labels.as_ref()?.get(LABEL_RUN)?.clone();
                Some((run, p.metadata.name?))
            })
            .collect())
    }

    async fn ensure_server(&self, spec: &super::ServerSpec<'_>) -> Result<InstanceState> {
        Err(RuntimeError::Unsupported(format!(
            "the platform does not run managed {} servers on Kubernetes: name an external one (e.g. --{}-admin-url)",
            spec.engine, spec.engine
        )))
    }

    async fn exec(
        &self,
        _id: &str,
        _cmd: &[String],
        _env: &[(String, String)],
        _stdin: Option<Vec<u8>>,
    ) -> Result<super::ExecOutput> {
        Err(RuntimeError::Unsupported(
            "running commands in instances is not available on the Kubernetes runtime yet".into(),
        ))
    }

    async fn prepare_exec(
        &self,
        _id: &str,
        _cmd: &[String],
        _env: &[(String, String)],
        _tty: bool,
    ) -> Result<String> {
        Err(RuntimeError::Unsupported(
            "interactive sessions are not available on the Kubernetes runtime yet".into(),
        ))
    }
}
