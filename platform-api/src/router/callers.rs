//! Who is calling: the platform's own instances, known by their address on its network (each
//! backend the router has), so a call's `X-Source` comes from the connection and never from what
//! the caller sends. Also each environment's declared dependencies and whether it takes calls
//! only from services that declare it, and how many calls each caller made.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::RwLock;

use faas_spec::{Callers as Policy, Manifest};

type Env = (String, String);

#[derive(Debug, Default)]
pub struct Callers {
    by_ip: RwLock<HashMap<IpAddr, Env>>,
    /// Each environment's `[[dependencies]]` (service names), from its current release.
    declared: RwLock<HashMap<Env, HashSet<String>>>,
    /// Environments that take calls only from services that declare them.
    declared_only: RwLock<HashSet<Env>>,
}

fn key(service: &str, env: &str) -> Env {
    (service.to_owned(), env.to_owned())
}

impl Callers {
    /// An instance of `service` in `env` reaches the router from `ip`.
    pub fn register(&self, ip: IpAddr, service: &str, env: &str) {
        if ip.is_loopback() || ip.is_unspecified() {
            return;
        }
        self.by_ip
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, key(service, env));
    }

    pub fn forget(&self, ip: IpAddr) {
        self.by_ip
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }

    /// The service and environment of the instance at `ip`, if it is one of the platform's.
    pub fn caller_of(&self, ip: IpAddr) -> Option<Env> {
        if ip.is_loopback() {
            return None;
        }
        self.by_ip
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .cloned()
    }

    /// What an environment's current release declares: its dependencies and its policy.
    pub fn set_manifest(&self, service: &str, env: &str, m: &Manifest) {
        let k = key(service, env);
        let deps: HashSet<String> = m
            .dependencies
            .iter()
            .map(|d| d.service.as_str().to_owned())
            .collect();
        self.declared
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone(), deps);
        let mut only = self
            .declared_only
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if m.access.callers == Policy::Declared {
            only.insert(k);
        } else {
            only.remove(&k);
        }
    }

    /// Whether `caller` may call `service` (in `env`): always, unless the callee takes calls
    /// only from services that declare it.
    pub fn allowed(&self, caller: &Env, service: &str, env: &str) -> bool {
        if !self
            .declared_only
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key(service, env))
        {
            return true;
        }
        caller.0 == service
            || self
                .declared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(caller)
                .is_some_and(|deps| deps.contains(service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        faas_spec::ManifestFile::parse("app.toml", text)
            .unwrap()
            .manifest
    }

    #[test]
    fn callers_are_known_by_address_and_declared_only_holds() {
        let c = Callers::default();
        let ip: IpAddr = "172.20.0.5".parse().unwrap();
        c.register(ip, "front", "prod");
        c.register("127.0.0.1".parse().unwrap(), "x", "prod");
        assert_eq!(c.caller_of(ip), Some(key("front", "prod")));
        assert_eq!(c.caller_of("127.0.0.1".parse().unwrap()), None);
        let b = manifest(
            "name = \"back\"\nowner = \"o@example.com\"\n[access]\ncallers = \"declared\"\n",
        );
        c.set_manifest("back", "prod", &b);
        assert!(!c.allowed(&key("front", "prod"), "back", "prod"));
        let a = manifest(
            "name = \"front\"\nowner = \"o@example.com\"\n[[dependencies]]\nservice = \"back\"\n",
        );
        c.set_manifest("front", "prod", &a);
        assert!(c.allowed(&key("front", "prod"), "back", "prod"));
        assert!(
            c.allowed(&key("z", "prod"), "a", "prod"),
            "a takes any caller"
        );
        c.forget(ip);
        assert_eq!(c.caller_of(ip), None);
    }
}
