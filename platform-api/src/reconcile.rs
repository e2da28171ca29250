//! Start-up reconciliation: what Docker runs is matched against what the store says should
//! run. Containers of live releases are adopted into the router; everything else this platform
//! labelled is removed; then unfinished deployments resume.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::Platform;
use crate::router::health_check_of;
use crate::router::pool::{Backend, Split};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub adopted: usize,
    pub removed: usize,
    pub resumed: usize,
}

/// Adopts live containers, removes orphans, resumes unfinished deployments.
pub async fn reconcile(p: &Arc<Platform>) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let containers = p.runtime.list_instances().await?;
    let unfinished = p.store.unfinished_deployments()?;

    // Releases that may have instances: each environment's current release, and the target and
    // previous release of every unfinished deployment.
    let mut live: HashSet<String> = HashSet::new();
    for service in p.store.services(None)? {
        for (env, current) in p.store.environments(&service.name)? {
            // The router learns each environment's dependencies and who may call it.
            if let Some(m) = current
                .as_deref()
                .and_then(|id| p.store.release(id).ok().flatten())
                .and_then(|r| r.manifest().ok())
            {
                p.router.callers.set_manifest(&service.name, &env, &m);
            }
            live.extend(current);
        }
    }
    for d in &unfinished {
        live.insert(d.release_id.clone());
        live.extend(d.previous_release.clone());
    }
    // The traffic splits come back before any instance is adopted, so no request goes where
    // the split did not send it: a canary keeps its weight, a blue-green set before its switch
    // none, a warm previous set none.
    let splits = p.store.split_environments()?;
    for (service, env, traffic) in &splits {
        live.extend(traffic.canary.as_ref().map(|(r, _)| r.clone()));
        live.extend(traffic.standby.as_ref().map(|(r, _)| r.clone()));
        p.router.set_split(
            service,
            env,
            Split {
                live: traffic.current.clone(),
                canary: traffic.canary.clone(),
                standby: traffic.standby.as_ref().map(|(r, _)| r.clone()),
            },
        );
    }

    let rows = p.store.all_instances()?;
    let mut known: HashSet<String> = HashSet::new();
    for row in rows {
        let container = containers.iter().find(|c| c.instance == row.id);
        let release = p.store.release(&row.release_id)?;
        let adoptable = container.is_some_and(|c| c.running)
            && live.contains(&row.release_id)
            && release.is_some();
        if !adoptable {
            if let Some(c) = container {
                p.meter.read_one(p, &row).await;
                let _ = p
                    .runtime
                    .stop_and_remove(&c.id, Duration::from_secs(5))
                    .await;
                report.removed += 1;
            }
            p.store.remove_instance(&row.id)?;
            continue;
        }
        let (Some(c), Some(release)) = (container, release) else {
            continue;
        };
        known.insert(c.id.clone());
        let state = p.runtime.state(&c.id).await?;
        let manifest = release.manifest().ok();
        let addr = manifest
            .as_ref()
            .and_then(|m| p.upstream_addr(&state, m.run.port));
        let (Some(addr), Some(manifest)) = (addr, manifest) else {
            let _ = p
                .runtime
                .stop_and_remove(&c.id, Duration::from_secs(5))
                .await;
            p.store.remove_instance(&row.id)?;
            report.removed += 1;
            continue;
        };
        let mut updated = row.clone();
        updated.container_id = Some(c.id.clone());
        updated.host_port = state.host_port;
        if updated.state == "draining" {
            updated.state = "healthy".into();
        }
        p.store.add_instance(&updated)?;
        p.router.add_backend(
            &row.service,
            &row.env,
            Backend::new(&row.id, &row.release_id, addr, health_check_of(&manifest)),
        );
        p.logs.start(
            p.runtime.clone(),
            crate::logs::Source {
                service: row.service.clone(),
                env: row.env.clone(),
                instance: row.id.clone(),
                release: row.release_id.clone(),
                container: c.id.clone(),
            },
        );
        report.adopted += 1;
    }

    // Containers with our label but no row: created by a daemon that died before recording them,
    // or left from a deleted service.
    for c in containers.iter().filter(|c| !known.contains(&c.id)) {
        let _ = p
            .runtime
            .stop_and_remove(&c.id, Duration::from_secs(5))
            .await;
        report.removed += 1;
    }

    for (service, env, traffic) in splits {
        if let Some((release, until)) = traffic.standby {
            crate::deployer::schedule_standby_end(p.clone(), service, env, release, until);
        }
    }
    for d in unfinished {
        crate::deployer::spawn(p, &d.id);
        report.resumed += 1;
    }
    tracing::info!(
        adopted = report.adopted,
        removed = report.removed,
        resumed = report.resumed,
        "reconciled with the runtime"
    );
    Ok(report)
}

/// Reconciles now, or, while the Docker Engine does not answer, as soon as it does.
pub fn reconcile_when_docker_answers(p: Arc<Platform>) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            if p.runtime.status().available {
                match reconcile(&p).await {
                    Ok(_) => {
                        crate::runs::adopt(&p).await;
                        return;
                    }
                    Err(e) => tracing::warn!("reconciliation failed, retrying: {e}"),
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    });
}
