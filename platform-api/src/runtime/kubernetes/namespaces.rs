//! Which namespace an object of the platform lives in: the platform's one, or (when configured)
//! one per tenant, `<base>-<tenant>`, so that a tenant's pods, Secrets and Services sit apart and
//! a cluster's own policies (quotas, network policies, RBAC) can be set per tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use sha2::Digest;

use super::objects::FIELD_MANAGER;
use super::{KubernetesRuntime, kube_error};
use crate::runtime::{LABEL_PLATFORM, LABEL_RUN_PLATFORM, Result};

/// The namespace of a tenant's objects: `<base>-<tenant>` made a DNS label (lowercase letters,
/// digits and `-`, at most 63), with a hash of the tenant when it had to be cut, so two tenants
/// never share one.
pub fn of_tenant(base: &str, tenant: &str) -> String {
    let mut slug = String::new();
    for c in tenant.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let name = format!("{base}-{slug}");
    if name.len() <= 63 && !slug.is_empty() {
        return name;
    }
    let digest = hex::encode(sha2::Sha256::digest(tenant.as_bytes()));
    let keep = 63 - 9;
    let mut cut: String = name.chars().take(keep).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    format!("{cut}-{}", &digest[..8])
}

/// Where the platform's objects are, as far as it knows.
pub struct Namespaces {
    /// The platform's namespace, or the prefix of its tenants' ones.
    pub base: String,
    pub per_tenant: bool,
    /// Object name → its namespace, learnt when the object was made or listed.
    located: Mutex<HashMap<String, String>>,
    /// The namespaces made (or found) since the daemon started.
    ensured: Mutex<HashSet<String>>,
}

impl Namespaces {
    pub fn new(base: String, per_tenant: bool) -> Self {
        Self {
            base,
            per_tenant,
            located: Mutex::default(),
            ensured: Mutex::default(),
        }
    }

    /// The namespace of a tenant's objects.
    pub fn for_tenant(&self, tenant: &str) -> String {
        if self.per_tenant {
            of_tenant(&self.base, tenant)
        } else {
            self.base.clone()
        }
    }

    pub fn remember(&self, name: &str, namespace: &str) {
        self.located
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), namespace.to_owned());
    }

    /// The namespace an object is known to be in; with one namespace, that one.
    pub fn known(&self, name: &str) -> Option<String> {
        if !self.per_tenant {
            return Some(self.base.clone());
        }
        self.located
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Whether `namespace` must still be made (first time it is asked for).
    pub fn first_use(&self, namespace: &str) -> bool {
        !self
            .ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(namespace)
    }

    pub fn made(&self, namespace: &str) {
        self.ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(namespace.to_owned());
    }
}

/// The platform's namespace, or every namespace (one per tenant), for lists and watches.
pub(super) fn scope<K>(client: &Client, namespaces: &Namespaces) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    if namespaces.per_tenant {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &namespaces.base)
    }
}

/// Makes (or keeps) a namespace, labelled with the platform it belongs to.
pub(super) async fn make_namespace(
    client: &Client,
    name: &str,
    platform: &str,
) -> kube::Result<Namespace> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(LABEL_PLATFORM.to_owned(), platform.to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&ns))
        .await
}

impl KubernetesRuntime {
    /// Every namespace the platform's objects may be in: its own, or all (one per tenant).
    pub(super) fn scoped<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        scope(&self.client, &self.namespaces)
    }

    /// The namespace an object of this platform is in: known since it was made or listed, or
    /// (a namespace per tenant) found by its name; the platform's own when it is nowhere.
    pub(super) async fn ns_of(&self, name: &str) -> Result<String> {
        if let Some(ns) = self.namespaces.known(name) {
            return Ok(ns);
        }
        let by_name = |label: &str| {
            ListParams::default()
                .labels(&format!("{label}={}", self.platform_id))
                .fields(&format!("metadata.name={name}"))
        };
        let found = match self
            .scoped::<Deployment>()
            .list(&by_name(LABEL_PLATFORM))
            .await
            .map_err(kube_error)?
            .items
            .pop()
        {
            Some(d) => d.metadata.namespace,
            None => self
                .scoped::<Pod>()
                .list(&by_name(LABEL_RUN_PLATFORM))
                .await
                .map_err(kube_error)?
                .items
                .pop()
                .and_then(|p| p.metadata.namespace),
        };
        match found {
            Some(ns) => {
                self.namespaces.remember(name, &ns);
                Ok(ns)
            }
            None => Ok(self.namespaces.base.clone()),
        }
    }

    /// The namespace of a tenant's objects, made on its first use.
    pub(super) async fn tenant_ns(&self, tenant: &str) -> Result<String> {
        let ns = self.namespaces.for_tenant(tenant);
        if self.namespaces.first_use(&ns) {
            make_namespace(&self.client, &ns, &self.platform_id)
                .await
                .map_err(kube_error)?;
            self.namespaces.made(&ns);
        }
        Ok(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_a_dns_label_of_its_own() {
        assert_eq!(
            of_tenant("faas-1a2b", "Team@Example.com"),
            "faas-1a2b-team-example-com"
        );
        let long = format!("{}@example.com", "a".repeat(80));
        let ns = of_tenant("faas-1a2b", &long);
        assert_eq!(ns.len(), 63, "{ns}");
        assert_ne!(
            ns,
            of_tenant("faas-1a2b", &format!("{}@example.com", "a".repeat(81)))
        );
        assert!(crate::runtime::kubernetes::is_dns_label(&ns), "{ns}");
        // Nothing usable in the name: the hash alone tells tenants apart.
        assert!(crate::runtime::kubernetes::is_dns_label(&of_tenant(
            "faas", "@@@"
        )));
    }

    #[test]
    fn one_namespace_is_known_for_everything() {
        let one = Namespaces::new("faas".into(), false);
        assert_eq!(one.known("anything").as_deref(), Some("faas"));
        assert_eq!(one.for_tenant("a@b.c"), "faas");
        let per = Namespaces::new("faas".into(), true);
        assert_eq!(per.known("x"), None);
        per.remember("x", "faas-a-b-c");
        assert_eq!(per.known("x").as_deref(), Some("faas-a-b-c"));
        assert_eq!(per.for_tenant("a@b.c"), "faas-a-b-c");
    }
}
