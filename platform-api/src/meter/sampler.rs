//! The meter's rounds: at every interval, one reading of every instance the platform runs
//! (the runtime's stats) and of every release's request counter in the router, turned into
//! usage records against the last committed reading (the cursor). Records and cursors are
//! committed together, so a restarted meter starts from the last committed reading: nothing is
//! counted twice, and no more than the interval in flight is lost. A container that stopped is
//! closed at its finish time; one that started again is closed and opened anew.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;

use super::usage::{self, Resource, Sample, Usage};
use crate::Platform;
use crate::runtime::InstanceState;
use crate::store::{Cursor, InstanceRow, MeterRound, UsageRecord};

/// An instance's container, its state, and a reading of its counters when it runs.
type Read = (String, InstanceState, Option<Sample>);

/// How many instances the engine is asked about at once.
const READS_AT_ONCE: usize = 16;

/// What a record is of, before its resource and interval.
struct Subject<'a> {
    tenant: &'a str,
    service: &'a str,
    env: &'a str,
    release: &'a str,
    instance: &'a str,
}

impl<'a> Subject<'a> {
    /// An instance's subject.
    fn of(row: &'a InstanceRow, tenant: &'a str) -> Self {
        Subject {
            tenant,
            service: &row.service,
            env: &row.env,
            release: &row.release_id,
            instance: &row.id,
        }
    }

    fn record(&self, resource: Resource, from_us: i64, to_us: i64, quantity: i64) -> UsageRecord {
        UsageRecord {
            id: 0,
            // Derived from what it measures: the same interval read again is the same record.
            key: format!(
                "usage:{}/{}/{}/{}/{}/{}/{from_us}-{to_us}",
                self.tenant,
                self.service,
                self.env,
                self.release,
                self.instance,
                resource.name()
            ),
            tenant: self.tenant.to_owned(),
            service: self.service.to_owned(),
            env: self.env.to_owned(),
            release: self.release.to_owned(),
            instance: self.instance.to_owned(),
            resource: resource.name().to_owned(),
            from_us,
            to_us,
            quantity,
            priced: None,
        }
    }

    /// The records of an interval of a container's usage, one per day and resource; nothing
    /// of a resource that used nothing.
    fn records_of(&self, u: Option<Usage>, out: &mut Vec<UsageRecord>) {
        for part in u.into_iter().flat_map(usage::split_days) {
            for (resource, quantity) in usage::quantities(&part) {
                if quantity > 0 {
                    out.push(self.record(resource, part.from_us, part.to_us, quantity));
                }
            }
        }
    }
}

fn sample_of(c: &Cursor) -> Sample {
    Sample {
        at_us: c.at_us,
        cpu_ns: c.cpu_ns,
        memory_bytes: c.memory_bytes,
    }
}

fn cursor(subject: &str, container: &str, s: Sample, finished: bool) -> Cursor {
    Cursor {
        subject: subject.to_owned(),
        container: container.to_owned(),
        at_us: s.at_us,
        cpu_ns: s.cpu_ns,
        memory_bytes: s.memory_bytes,
        requests: 0,
        finished,
    }
}

/// What one instance adds to a round, from its state (and a reading, when it runs).
fn instance_round(
    subject: &Subject<'_>,
    container: &str,
    state: &InstanceState,
    reading: Option<Sample>,
    last: Option<&Cursor>,
    round: &mut MeterRound,
) {
    let id = subject.instance;
    if !state.exists {
        round.forget.push(id.to_owned());
        return;
    }
    // The cursor of this container's current run, if it is one.
    let last = last.filter(|c| c.container == container);
    let started = state.started_at_us;
    match (reading, last) {
        // Counters lower than the last reading of the same run of the container: its cgroup
        // is going away (it is stopping). Ignored: its end closes the interval.
        (Some(now), Some(c))
            if !c.finished
                && started.is_none_or(|s| c.at_us >= s)
                && (now.cpu_ns < c.cpu_ns || now.at_us <= c.at_us) => {}
        (Some(now), Some(c)) if !c.finished && started.is_none_or(|s| c.at_us >= s) => {
            subject.records_of(usage::between(&sample_of(c), &now), &mut round.records);
            round.cursors.push(cursor(id, container, now, false));
        }
        (Some(now), last) => {
            // A run we have not read yet: the container is new to the meter, or it started
            // again since the last reading (then the run before closes at its finish).
            if let Some(c) = last.filter(|c| !c.finished)
                && let Some(fin) = state.finished_at_us.filter(|f| *f > c.at_us)
            {
                subject.records_of(
                    usage::until_finish(&sample_of(c), fin, None),
                    &mut round.records,
                );
            }
            if let Some(s) = started {
                subject.records_of(usage::since_start(s, &now), &mut round.records);
            }
            round.cursors.push(cursor(id, container, now, false));
        }
        (None, Some(c)) if c.finished => {}
        (None, Some(c)) => {
            // Stopped since the last reading: the interval in flight closes at its finish.
            let fin = state.finished_at_us.filter(|f| *f > c.at_us);
            if let Some(fin) = fin {
                subject.records_of(
                    usage::until_finish(&sample_of(c), fin, None),
                    &mut round.records,
                );
            }
            let end = Sample {
                at_us: fin.unwrap_or(c.at_us),
                ..sample_of(c)
            };
            round.cursors.push(cursor(id, container, end, true));
        }
        (None, None) => {
            // Ran and stopped between two rounds, never read: its time run is known, its
            // counters are gone with its cgroup.
            if let (Some(s), Some(f)) = (started, state.finished_at_us) {
                let end = Sample {
                    at_us: f,
                    cpu_ns: 0,
                    memory_bytes: 0,
                };
                subject.records_of(usage::since_start(s, &end), &mut round.records);
                round.cursors.push(cursor(id, container, end, true));
            }
        }
    }
}

/// What a reading of an instance adds to a round.
fn apply(
    row: &InstanceRow,
    tenant: &str,
    read: Read,
    last: Option<&Cursor>,
    round: &mut MeterRound,
) {
    let (container, state, reading) = read;
    instance_round(
        &Subject::of(row, tenant),
        &container,
        &state,
        reading,
        last,
        round,
    );
}

/// The cursor subject of a release's request counter.
fn requests_subject(service: &str, env: &str, release: &str) -> String {
    format!("requests/{service}/{env}/{release}")
}

impl super::Meter {
    /// One round: every instance of the store, every request counter; returns the new
    /// records. Rounds and the closing of single instances never run at once.
    pub async fn round(&self, p: &Platform) -> anyhow::Result<usize> {
        let _one = self.lock.lock().await;
        let rows = p.store.all_instances()?;
        let cursors: HashMap<String, Cursor> = p
            .store
            .meter_cursors()?
            .into_iter()
            .map(|c| (c.subject.clone(), c))
            .collect();
        let mut owners = Owners::default();
        let mut round = MeterRound::default();
        let seen: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        // The engine answers several readings at once; each takes a few milliseconds.
        let pending: Vec<_> = rows.iter().map(|row| Self::read_row(p, row)).collect();
        let reads: Vec<_> = futures_util::stream::iter(pending)
            .buffer_unordered(READS_AT_ONCE)
            .collect()
            .await;
        for (row, read) in reads {
            if let (Some(read), Some(tenant)) = (read, owners.of(p, &row.service)) {
                apply(row, &tenant, read, cursors.get(&row.id), &mut round);
            }
        }
        // Instances the store forgot (removed after their last reading); runs are read and
        // closed by their watchers.
        for c in cursors.values() {
            if !c.subject.starts_with("requests/")
                && !c.subject.starts_with("run-")
                && !seen.contains(&c.subject)
            {
                round.forget.push(c.subject.clone());
            }
        }
        self.read_requests(p, &rows, &cursors, &mut owners, &mut round);
        Ok(p.store.commit_meter_round(&round)?)
    }

    /// Meters one instance now, alone: before its container is stopped (the last reading of
    /// its counters) and after (its usage closes at its finish time).
    pub async fn read_one(&self, p: &Platform, row: &InstanceRow) {
        if !self.enabled() {
            return;
        }
        let Some(tenant) = Owners::default().of(p, &row.service) else {
            return;
        };
        self.read_for(p, row, &tenant, false).await;
    }

    /// Meters one container now, billed to `tenant` (a run's, who may own no service). With
    /// `while_running`, a container found stopped is left alone: its watcher closes it
    /// ([`super::Meter::close_run`]).
    pub async fn read_for(
        &self,
        p: &Platform,
        row: &InstanceRow,
        tenant: &str,
        while_running: bool,
    ) {
        if !self.enabled() {
            return;
        }
        let _one = self.lock.lock().await;
        let last = p.store.meter_cursor(&row.id).ok().flatten();
        let mut round = MeterRound::default();
        if let Some(read) = Self::read(p, row).await
            && (!while_running || read.1.running)
        {
            apply(row, tenant, read, last.as_ref(), &mut round);
        }
        if let Err(e) = p.store.commit_meter_round(&round) {
            tracing::warn!(instance = %row.id, "meter: cannot store a reading: {e}");
        }
    }

    /// Closes a run that has ended: its usage from the last reading to its finish, and the run
    /// itself (the tariff's per-run price), in one commit; its cursor is forgotten. Its counters
    /// went with its container: the CPU at its end is the kernel's last count the watcher read
    /// (`last_cpu`: when, and how much), else the last reading's, each carried to the finish at
    /// the run's average rate since its start.
    pub async fn close_run(
        &self,
        p: &Platform,
        row: &InstanceRow,
        tenant: &str,
        (started_us, finished_us): (i64, i64),
        last_cpu: Option<(i64, u64)>,
    ) {
        if !self.enabled() {
            return;
        }
        let _one = self.lock.lock().await;
        let subject = Subject::of(row, tenant);
        let mut round = MeterRound::default();
        let cursor = p
            .store
            .meter_cursor(&row.id)
            .ok()
            .flatten()
            .filter(|c| !c.finished);
        // The latest count known, carried to the finish at the average rate so far.
        let anchor = match (&cursor, last_cpu) {
            (Some(c), Some((at, cpu))) if at < c.at_us || cpu < c.cpu_ns => {
                Some((c.at_us, c.cpu_ns))
            }
            (_, Some(known)) => Some(known),
            (Some(c), None) => Some((c.at_us, c.cpu_ns)),
            (None, None) => None,
        };
        let at_end = anchor.map(|(at, cpu)| {
            let ran_us = (at - started_us).max(1) as u128;
            let tail_us = (finished_us - at).max(0) as u128;
            let tail = u128::from(cpu) * tail_us / ran_us;
            cpu.saturating_add(u64::try_from(tail).unwrap_or(u64::MAX))
        });
        match cursor {
            Some(c) => subject.records_of(
                usage::until_finish(&sample_of(&c), finished_us, at_end),
                &mut round.records,
            ),
            None => {
                // Never read by the meter: its time is known, and its CPU when the kernel's
                // count was read.
                let end = Sample {
                    at_us: finished_us,
                    cpu_ns: at_end.unwrap_or(0),
                    memory_bytes: 0,
                };
                subject.records_of(usage::since_start(started_us, &end), &mut round.records);
            }
        }
        // The run is priced at its start: one run, whatever tariff versions it spans.
        round
            .records
            .push(subject.record(Resource::Run, started_us, started_us + 1, 1));
        round.forget.push(row.id.clone());
        if let Err(e) = p.store.commit_meter_round(&round) {
            tracing::warn!(run = %row.id, "meter: cannot close the run's usage: {e}");
        }
    }

    async fn read_row<'r>(p: &Platform, row: &'r InstanceRow) -> (&'r InstanceRow, Option<Read>) {
        (row, Self::read(p, row).await)
    }

    /// An instance's container, its state and, when it runs, a reading of its counters;
    /// None when the engine cannot say now (the next round reads it again).
    async fn read(
        p: &Platform,
        row: &InstanceRow,
    ) -> Option<(String, InstanceState, Option<Sample>)> {
        // Still starting (its container's id not recorded yet): its first reading, later,
        // counts from the container's start.
        let container = row.container_id.clone()?;
        let state = match p.runtime.state(&container).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(instance = %row.id, "meter: no state ({e})");
                return None;
            }
        };
        let reading = if state.running {
            match p.runtime.stats(&container).await {
                Ok(s) => Some(Sample {
                    // Stamped when the engine collected it, not when we asked: a stale
                    // collection stamped now would shift every interval.
                    at_us: s
                        .read_at_us
                        .filter(|t| *t > 0)
                        .unwrap_or_else(super::now_us),
                    cpu_ns: s.cpu_ns,
                    memory_bytes: s.memory_bytes,
                }),
                Err(e) => {
                    tracing::debug!(instance = %row.id, "meter: no stats ({e})");
                    return None;
                }
            }
        } else {
            None
        };
        Some((container, state, reading))
    }

    /// Request counts of every release with instances (or with a counter read before), from
    /// the router's counters of this daemon's life.
    fn read_requests(
        &self,
        p: &Platform,
        rows: &[InstanceRow],
        cursors: &HashMap<String, Cursor>,
        owners: &mut Owners,
        round: &mut MeterRound,
    ) {
        let now = super::now_us();
        let mut releases: HashSet<(String, String, String)> = rows
            .iter()
            .map(|r| (r.service.clone(), r.env.clone(), r.release_id.clone()))
            .collect();
        for c in cursors.values() {
            let mut parts = c.subject.splitn(4, '/');
            if let (Some("requests"), Some(s), Some(e), Some(r)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            {
                releases.insert((s.to_owned(), e.to_owned(), r.to_owned()));
            }
        }
        for (service, env, release) in releases {
            let subject_id = requests_subject(&service, &env, &release);
            let count = p.router.metrics.snapshot(&service, &env, &release).requests;
            let last = cursors.get(&subject_id);
            // The router's counters start at 0 with each daemon: a cursor of another life of
            // the daemon does not count against them.
            let (from, before) = match last.filter(|c| c.container == self.life) {
                Some(c) => (c.at_us, c.requests.min(count)),
                None => (
                    last.map_or(self.started_us, |c| c.at_us.max(self.started_us)),
                    0,
                ),
            };
            let live = rows
                .iter()
                .any(|r| r.service == service && r.env == env && r.release_id == release);
            let delta = count - before;
            if delta > 0
                && let Some(tenant) = owners.of(p, &service)
            {
                let subject = Subject {
                    tenant: &tenant,
                    service: &service,
                    env: &env,
                    release: &release,
                    instance: "router",
                };
                round.records.push(subject.record(
                    Resource::Requests,
                    from,
                    now.max(from + 1),
                    delta as i64,
                ));
            }
            if delta == 0 && !live {
                round.forget.push(subject_id);
                continue;
            }
            round.cursors.push(Cursor {
                subject: subject_id,
                container: self.life.clone(),
                at_us: now.max(from + 1),
                cpu_ns: 0,
                memory_bytes: 0,
                requests: count,
                finished: false,
            });
        }
    }
}

/// Each service's tenant, read once a round.
#[derive(Default)]
struct Owners(HashMap<String, Option<String>>);

impl Owners {
    fn of(&mut self, p: &Platform, service: &str) -> Option<String> {
        self.0
            .entry(service.to_owned())
            .or_insert_with(|| p.store.service(service).ok().flatten().map(|s| s.owner))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn subject() -> Subject<'static> {
        Subject {
            tenant: "ada@example.com",
            service: "api",
            env: "prod",
            release: "r1",
            instance: "i1",
        }
    }

    fn running(started: i64) -> InstanceState {
        InstanceState {
            exists: true,
            running: true,
            started_at_us: Some(started),
            ..Default::default()
        }
    }

    fn reading(at_s: i64, cpu_s: u64) -> Sample {
        Sample {
            at_us: at_s * S,
            cpu_ns: cpu_s * 1_000_000_000,
            memory_bytes: 1 << 20,
        }
    }

    fn vcpu(round: &MeterRound) -> Vec<(i64, i64, i64)> {
        round
            .records
            .iter()
            .filter(|r| r.resource == "vcpu")
            .map(|r| (r.from_us / S, r.to_us / S, r.quantity / 1_000_000_000))
            .collect()
    }

    #[test]
    fn a_new_container_is_metered_from_its_start_then_reading_to_reading() {
        let mut round = MeterRound::default();
        instance_round(
            &subject(),
            "c1",
            &running(10 * S),
            Some(reading(12, 2)),
            None,
            &mut round,
        );
        assert_eq!(vcpu(&round), [(10, 12, 2)]);
        let c = round.cursors[0].clone();
        let mut next = MeterRound::default();
        instance_round(
            &subject(),
            "c1",
            &running(10 * S),
            Some(reading(13, 3)),
            Some(&c),
            &mut next,
        );
        assert_eq!(vcpu(&next), [(12, 13, 1)]);
        assert!(
            next.records
                .iter()
                .all(|r| r.key.ends_with("/12000000-13000000"))
        );
    }

    #[test]
    fn a_stopped_container_closes_at_its_finish_and_only_once() {
        let c = cursor("i1", "c1", reading(20, 5), false);
        let stopped = InstanceState {
            exists: true,
            started_at_us: Some(0),
            finished_at_us: Some(23 * S),
            ..Default::default()
        };
        let mut round = MeterRound::default();
        instance_round(&subject(), "c1", &stopped, None, Some(&c), &mut round);
        let instance: Vec<_> = round
            .records
            .iter()
            .filter(|r| r.resource == "instance")
            .map(|r| (r.from_us / S, r.to_us / S))
            .collect();
        assert_eq!(instance, [(20, 23)]);
        let closed = round.cursors[0].clone();
        assert!(closed.finished);
        let mut again = MeterRound::default();
        instance_round(&subject(), "c1", &stopped, None, Some(&closed), &mut again);
        assert!(again.records.is_empty() && again.cursors.is_empty());
    }

    #[test]
    fn a_restarted_container_closes_the_run_before_and_opens_the_next() {
        let c = cursor("i1", "c1", reading(20, 5), false);
        let restarted = InstanceState {
            finished_at_us: Some(22 * S),
            ..running(25 * S)
        };
        let mut round = MeterRound::default();
        instance_round(
            &subject(),
            "c1",
            &restarted,
            Some(reading(26, 1)),
            Some(&c),
            &mut round,
        );
        let spans: Vec<_> = round
            .records
            .iter()
            .filter(|r| r.resource == "instance")
            .map(|r| (r.from_us / S, r.to_us / S))
            .collect();
        assert_eq!(spans, [(20, 22), (25, 26)]);
    }

    #[test]
    fn a_gone_container_is_forgotten() {
        let mut round = MeterRound::default();
        instance_round(
            &subject(),
            "c1",
            &InstanceState::default(),
            None,
            None,
            &mut round,
        );
        assert_eq!(round.forget, ["i1"]);
    }
}
