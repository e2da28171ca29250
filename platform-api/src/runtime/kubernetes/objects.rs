//! The Kubernetes objects of an instance, built from the same [`InstanceSpec`] a Docker
//! container is: a Deployment of one pod (the deployer adds, drains and removes instances one
//! by one, which a scaled ReplicaSet cannot do on 1.20: it picks the pod it deletes), the
//! Secret its secret variables come from, and the Service of its environment. Pure functions:
//! the runtime applies them with server-side apply under one field manager.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::runtime::{
    InstanceSpec, LABEL_ENV, LABEL_INSTANCE, LABEL_PLATFORM, LABEL_RELEASE, LABEL_SERVICE,
};

/// The one field manager every object is applied with.
pub const FIELD_MANAGER: &str = "faas-platform";
/// The name of an instance's one container.
pub const CONTAINER: &str = "app";

/// The labels of an instance's Deployment and pod: the same as a Docker container's.
pub fn labels(platform: &str, spec: &InstanceSpec<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PLATFORM.to_owned(), platform.to_owned()),
        (LABEL_SERVICE.to_owned(), spec.service.to_owned()),
        (LABEL_ENV.to_owned(), spec.env.to_owned()),
        (LABEL_RELEASE.to_owned(), spec.release_id.to_owned()),
        (LABEL_INSTANCE.to_owned(), spec.instance_id.to_owned()),
    ])
}

/// The variables of an instance, last one winning as in Docker, each either a plain value
/// (the manifest's and the platform's own) or a key of its Secret (secrets, database URLs).
pub fn env_vars(spec: &InstanceSpec<'_>, secret: &str) -> (Vec<EnvVar>, BTreeMap<String, String>) {
    let secret_names: std::collections::HashSet<&str> =
        spec.extra_env.iter().map(|(k, _)| k.as_str()).collect();
    let mut order: Vec<String> = Vec::new();
    let mut last: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let platform_start = spec.manifest.run.env.len() + spec.extra_env.len();
    for (i, (k, v)) in spec.environment().into_iter().enumerate() {
        // The manifest's own come first, then the extra (secret) ones, then the platform's.
        let from_secret = i >= spec.manifest.run.env.len()
            && i < platform_start
            && secret_names.contains(k.as_str());
        if !last.contains_key(&k) {
            order.push(k.clone());
        }
        last.insert(k, (v, from_secret));
    }
    let mut vars = Vec::new();
    let mut data = BTreeMap::new();
    for name in order {
        let Some((value, from_secret)) = last.remove(&name) else {
            continue;
        };
        if from_secret {
            vars.push(EnvVar {
                name: name.clone(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.to_owned(),
                        key: name.clone(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
            data.insert(name, value);
        } else {
            vars.push(EnvVar {
                name,
                value: Some(value),
                ..Default::default()
            });
        }
    }
    (vars, data)
}

/// The Secret that holds an instance's secret variables; owned by its Deployment, so the
/// cluster removes it with the Deployment.
pub fn secret(
    name: &str,
    labels: &BTreeMap<String, String>,
    data: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        string_data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// An instance's Deployment: one replica of its release's image, pinned by its immutable id
/// (`sha256:…`) and never pulled when the node has it.
pub fn deployment(name: &str, platform: &str, spec: &InstanceSpec<'_>) -> Deployment {
    let m = spec.manifest;
    let labels = labels(platform, spec);
    let selector = BTreeMap::from([
        (LABEL_PLATFORM.to_owned(), platform.to_owned()),
        (LABEL_INSTANCE.to_owned(), spec.instance_id.to_owned()),
    ]);
    let (env, _) = env_vars(spec, name);
    let cpu = Quantity(format!(
        "{}m",
        ((m.size.cpu * 1000.0).round() as i64).max(1)
    ));
    let memory = Quantity(m.size.memory.bytes().to_string());
    // Requested as sized; memory capped there, CPU not (CFS throttling costs latency, and what
    // is used is metered). That is the Burstable class: its OOM score stays positive, which
    // nodes that refuse negative scores (the test cluster) need.
    let requests = BTreeMap::from([
        ("cpu".to_owned(), cpu),
        ("memory".to_owned(), memory.clone()),
    ]);
    let limits = BTreeMap::from([("memory".to_owned(), memory)]);
    let port = i32::from(m.run.port);
    let period = (m.health.interval.as_std().as_secs() as i32).max(1);
    let timeout = (m.health.timeout.as_std().as_secs() as i32).max(1);
    let readiness = Probe {
        http_get: m.health.path.as_ref().map(|path| HTTPGetAction {
            path: Some(path.clone()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        tcp_socket: m.health.path.is_none().then(|| TCPSocketAction {
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(1),
        ..Default::default()
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image_id.to_owned()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: (!m.run.command.is_empty()).then(|| m.run.command.clone()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            container_port: port,
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            limits: Some(limits),
            requests: Some(requests),
            ..Default::default()
        }),
        readiness_probe: Some(readiness),
        ..Default::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            // The cluster's own verdict on a pod that never becomes ready, within the grace
            // the platform gives it.
            progress_deadline_seconds: Some((m.health.grace.as_std().as_secs() as i32).max(1)),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            // One pod: a replaced pod (a lost node) is replaced, never doubled.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(
                        m.deploy.rolling.drain_timeout.as_std().as_secs() as i64 + 10,
                    ),
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(false),
                    // The pod's pause process is PID 1 and reaps, as Docker's init does: the
                    // service is not PID 1, so SIGTERM stops it even without a handler.
                    share_process_namespace: Some(true),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service of a service's environment: every ready pod of it, on its port. The router
/// reads its Endpoints; in-cluster clients may call it by name.
pub fn service(name: &str, platform: &str, svc: &str, env: &str, port: u16) -> Service {
    let selector = BTreeMap::from([
        (LABEL_PLATFORM.to_owned(), platform.to_owned()),
        (LABEL_SERVICE.to_owned(), svc.to_owned()),
        (LABEL_ENV.to_owned(), env.to_owned()),
    ]);
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(selector.clone()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(port),
                target_port: Some(IntOrString::Int(i32::from(port))),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A one-off run's pod: run once to its end, never restarted.
pub fn run_pod(
    platform: &str,
    spec: &crate::runtime::RunSpec<'_>,
) -> k8s_openapi::api::core::v1::Pod {
    use crate::runtime::{LABEL_RUN, LABEL_RUN_PLATFORM};
    let labels = BTreeMap::from([
        (LABEL_RUN.to_owned(), spec.run_id.to_owned()),
        (LABEL_RUN_PLATFORM.to_owned(), platform.to_owned()),
    ]);
    let cpu = Quantity(format!("{}m", ((spec.cpu * 1000.0).round() as i64).max(1)));
    let memory = Quantity(spec.memory.to_string());
    let requests = BTreeMap::from([
        ("cpu".to_owned(), cpu),
        ("memory".to_owned(), memory.clone()),
    ]);
    let limits = BTreeMap::from([("memory".to_owned(), memory)]);
    k8s_openapi::api::core::v1::Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(spec.image.to_owned()),
                image_pull_policy: Some("IfNotPresent".into()),
                args: (!spec.command.is_empty()).then(|| spec.command.to_vec()),
                env: Some(
                    spec.env
                        .iter()
                        .map(|(k, v)| EnvVar {
                            name: k.clone(),
                            value: Some(v.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    requests: Some(requests),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            enable_service_links: Some(false),
            automount_service_account_token: Some(false),
            share_process_namespace: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The name of an environment's Service (a DNS label: at most 63 characters).
pub fn service_name(svc: &str, env: &str) -> String {
    let name = format!("faas-{svc}-{env}");
    if name.len() <= 63 {
        return name;
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    format!("{}-{}", &name[..50], &digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> faas_spec::Manifest {
        faas_spec::ManifestFile::parse(
            "app.toml",
            r#"
name = "web"
owner = "team@example.com"
[run]
port = 8080
command = ["serve", "--fast"]
env = { MODE = "prod", TOKEN = "plain" }
[health]
path = "/_info"
[size]
cpu = 0.25
memory = "128Mi"
"#,
        )
        .expect("a valid manifest")
        .manifest
    }

    fn spec(m: &faas_spec::Manifest) -> InstanceSpec<'_> {
        InstanceSpec {
            tenant: "team@example.com",
            service: "web",
            env: "prod",
            release_id: "r1",
            instance_id: "i1",
            image_id: "sha256:abc",
            manifest: m,
            extra_env: vec![
                ("TOKEN".into(), "s3cret".into()),
                ("DB_URL".into(), "postgres://x".into()),
            ],
            hosts: Vec::new(),
        }
    }

    #[test]
    fn secret_values_come_from_the_secret_and_never_sit_in_the_deployment() {
        let m = manifest();
        let s = spec(&m);
        let (vars, data) = env_vars(&s, "faas-web-prod-i1");
        assert_eq!(
            data,
            BTreeMap::from([
                ("DB_URL".to_owned(), "postgres://x".to_owned()),
                ("TOKEN".to_owned(), "s3cret".to_owned())
            ])
        );
        let token = vars.iter().find(|v| v.name == "TOKEN").expect("TOKEN");
        assert!(
            token.value.is_none(),
            "the secret overrides the manifest's TOKEN"
        );
        let mode = vars.iter().find(|v| v.name == "MODE").expect("MODE");
        assert_eq!(mode.value.as_deref(), Some("prod"));
        let port = vars.iter().find(|v| v.name == "PORT").expect("PORT");
        assert_eq!(port.value.as_deref(), Some("8080"));
        assert_eq!(vars.iter().filter(|v| v.name == "TOKEN").count(), 1);
        let d = serde_json::to_string(&deployment("faas-web-prod-i1", "p1", &s)).expect("json");
        assert!(!d.contains("s3cret") && !d.contains("postgres://x"));
    }

    #[test]
    fn the_deployment_carries_the_manifest() {
        let m = manifest();
        let d = deployment("faas-web-prod-i1", "p1", &spec(&m));
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("sha256:abc"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.args.as_deref(),
            Some(&["serve".to_owned(), "--fast".to_owned()][..])
        );
        let requests = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .expect("requests");
        assert_eq!(requests["cpu"].0, "250m");
        assert_eq!(requests["memory"].0, (128u64 << 20).to_string());
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .expect("limits");
        assert_eq!(limits["memory"].0, (128u64 << 20).to_string());
        assert!(!limits.contains_key("cpu"), "CPU is requested, not capped");
        let probe = c
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.clone())
            .expect("probe");
        assert_eq!(probe.path.as_deref(), Some("/_info"));
        let labels = d.metadata.labels.expect("labels");
        assert_eq!(labels[LABEL_INSTANCE], "i1");
        assert_eq!(labels[LABEL_RELEASE], "r1");
        assert_eq!(labels[LABEL_PLATFORM], "p1");
    }

    #[test]
    fn long_service_names_are_cut_to_a_dns_label() {
        assert_eq!(service_name("web", "prod"), "faas-web-prod");
        let long = service_name(&"a".repeat(60), "prod");
        assert_eq!(long.len(), 63);
        assert_ne!(long, service_name(&"a".repeat(61), "prod"));
    }
}
