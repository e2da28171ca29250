//! The golden metrics over time: per service, environment and release, one point a minute and
//! one an hour (requests, 5xx, the latency histogram, CPU and memory); per function of a
//! python-function service the same for its calls. Minute points are kept 3 days, hour points
//! 40, so a month's overview reads hundreds of rows, not millions.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store};
use crate::router::metrics::BUCKETS_US;

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 11,
    sql: r#"
    CREATE TABLE metric_points (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        release_id TEXT NOT NULL,
        res INTEGER NOT NULL,
        at INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        buckets BLOB,
        cpu_ns INTEGER NOT NULL DEFAULT 0,
        cpu_wall_ns INTEGER NOT NULL DEFAULT 0,
        cpu_limit REAL,
        mem_bytes INTEGER,
        mem_limit INTEGER,
        PRIMARY KEY (service, env, release_id, res, at)
    ) WITHOUT ROWID;
    CREATE INDEX metric_points_by_time ON metric_points (res, at);
    CREATE TABLE function_points (
        service TEXT NOT NULL,
        env TEXT NOT NULL,
        function TEXT NOT NULL,
        res INTEGER NOT NULL,
        at INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        buckets BLOB,
        PRIMARY KEY (service, env, function, res, at)
    ) WITHOUT ROWID;
    "#,
}];

/// The resolutions kept, in seconds, and for how long.
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
const KEEP_MINUTES_S: i64 = 3 * 86_400;
const KEEP_HOURS_S: i64 = 40 * 86_400;

pub type Buckets = [u64; BUCKETS_US.len()];

/// What one release (or function) did over a stretch of time, to add into its points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub requests: u64,
    pub errors: u64,
    pub buckets: Buckets,
    pub cpu_ns: u64,
    /// The wall time the CPU reading covers, summed over instances.
    pub cpu_wall_ns: u64,
    pub cpu_limit: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit: Option<u64>,
}

impl Delta {
    /// Adds another stretch: counts add up, memory keeps the highest, limits the latest.
    pub fn add(&mut self, other: &Delta) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.cpu_ns += other.cpu_ns;
        self.cpu_wall_ns += other.cpu_wall_ns;
        self.cpu_limit = other.cpu_limit.or(self.cpu_limit);
        self.mem_bytes = self.mem_bytes.max(other.mem_bytes);
        self.mem_limit = other.mem_limit.or(self.mem_limit);
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.cpu_wall_ns == 0 && self.mem_bytes.is_none()
    }
}

/// One stored point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    pub service: String,
    pub env: String,
    /// The release, or the function of a function point.
    pub key: String,
    pub at: i64,
    pub delta: Delta,
}

fn to_blob(b: &Buckets) -> Vec<u8> {
    b.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_blob(blob: Option<Vec<u8>>) -> Buckets {
    let mut out = [0; BUCKETS_US.len()];
    if let Some(blob) = blob {
        for (i, chunk) in blob.chunks_exact(8).take(out.len()).enumerate() {
            out[i] = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
    }
    out
}

fn point_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Point> {
    Ok(Point {
        service: r.get(0)?,
        env: r.get(1)?,
        key: r.get(2)?,
        at: r.get(3)?,
        delta: Delta {
            requests: r.get::<_, i64>(4)? as u64,
            errors: r.get::<_, i64>(5)? as u64,
            buckets: from_blob(r.get(6)?),
            cpu_ns: r.get::<_, i64>(7)? as u64,
            cpu_wall_ns: r.get::<_, i64>(8)? as u64,
            cpu_limit: r.get(9)?,
            mem_bytes: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
            mem_limit: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
        },
    })
}

impl Store {
    /// Adds what releases did at `at_s` (Unix seconds) into their minute and hour points.
    pub fn add_release_points(
        &self,
        at_s: i64,
        deltas: &[(&str, &str, &str, Delta)],
    ) -> Result<()> {
        self.add_points("metric_points", "release_id", at_s, deltas)
    }

    /// Adds what functions did at `at_s` into their minute and hour points.
    pub fn add_function_points(
        &self,
        at_s: i64,
        deltas: &[(&str, &str, &str, Delta)],
    ) -> Result<()> {
        self.add_points("function_points", "function", at_s, deltas)
    }

    fn add_points(
        &self,
        table: &str,
        key: &str,
        at_s: i64,
        deltas: &[(&str, &str, &str, Delta)],
    ) -> Result<()> {
        let cpu = table == "metric_points";
        let select = if cpu {
            format!(
                "SELECT service, env, {key}, at, requests, errors, buckets, cpu_ns, cpu_wall_ns, cpu_limit, mem_bytes, mem_limit
                 FROM {table} WHERE service = ?1 AND env = ?2 AND {key} = ?3 AND res = ?4 AND at = ?5"
            )
        } else {
            format!(
                "SELECT service, env, {key}, at, requests, errors, buckets, 0, 0, NULL, NULL, NULL
                 FROM {table} WHERE service = ?1 AND env = ?2 AND {key} = ?3 AND res = ?4 AND at = ?5"
            )
        };
        let upsert = if cpu {
            format!(
                "INSERT OR REPLACE INTO {table} (service, env, {key}, res, at, requests, errors, buckets, cpu_ns, cpu_wall_ns, cpu_limit, mem_bytes, mem_limit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            )
        } else {
            format!(
                "INSERT OR REPLACE INTO {table} (service, env, {key}, res, at, requests, errors, buckets)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            )
        };
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            for (service, env, k, delta) in deltas {
                for res in [MINUTE, HOUR] {
                    let at = at_s - at_s.rem_euclid(res);
                    let mut sum = tx
                        .prepare_cached(&select)?
                        .query_row(params![service, env, k, res, at], point_of)
                        .optional()?
                        .map(|p| p.delta)
                        .unwrap_or_default();
                    sum.add(delta);
                    let mut stmt = tx.prepare_cached(&upsert)?;
                    let base = params![
                        service,
                        env,
                        k,
                        res,
                        at,
                        sum.requests as i64,
                        sum.errors as i64,
                        to_blob(&sum.buckets)
                    ];
                    if cpu {
                        let mut all: Vec<&dyn rusqlite::ToSql> = base.to_vec();
                        let cpu_ns = sum.cpu_ns as i64;
                        let wall = sum.cpu_wall_ns as i64;
                        let mem = sum.mem_bytes.map(|v| v as i64);
                        let limit = sum.mem_limit.map(|v| v as i64);
                        all.extend([
                            &cpu_ns as &dyn rusqlite::ToSql,
                            &wall,
                            &sum.cpu_limit,
                            &mem,
                            &limit,
                        ]);
                        stmt.execute(all.as_slice())?;
                    } else {
                        stmt.execute(base)?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// An environment's points of resolution `res` from `from_s` on (every release), oldest
    /// first.
    pub fn release_points(
        &self,
        service: &str,
        env: &str,
        res: i64,
        from_s: i64,
    ) -> Result<Vec<Point>> {
        self.all(
            "SELECT service, env, release_id, at, requests, errors, buckets, cpu_ns, cpu_wall_ns, cpu_limit, mem_bytes, mem_limit
             FROM metric_points WHERE service = ?1 AND env = ?2 AND res = ?3 AND at >= ?4 ORDER BY at",
            params![service, env, res, from_s],
            point_of,
        )
    }

    /// Every environment's points of resolution `res` from `from_s` on, for the overview.
    pub fn all_release_points(&self, res: i64, from_s: i64) -> Result<Vec<Point>> {
        self.all(
            "SELECT service, env, release_id, at, requests, errors, buckets, cpu_ns, cpu_wall_ns, cpu_limit, mem_bytes, mem_limit
             FROM metric_points WHERE res = ?1 AND at >= ?2 ORDER BY at",
            params![res, from_s],
            point_of,
        )
    }

    /// An environment's function points from `from_s` on.
    pub fn function_points(
        &self,
        service: &str,
        env: &str,
        res: i64,
        from_s: i64,
    ) -> Result<Vec<Point>> {
        self.all(
            "SELECT service, env, function, at, requests, errors, buckets, 0, 0, NULL, NULL, NULL
             FROM function_points WHERE service = ?1 AND env = ?2 AND res = ?3 AND at >= ?4 ORDER BY at",
            params![service, env, res, from_s],
            point_of,
        )
    }

    /// Drops the points past their keeping, as of `now_s`.
    pub fn prune_points(&self, now_s: i64) -> Result<usize> {
        self.with(|c| {
            let mut n = 0;
            for table in ["metric_points", "function_points"] {
                n += c.execute(
                    &format!(
                        "DELETE FROM {table} WHERE (res = ?1 AND at < ?2) OR (res = ?3 AND at < ?4)"
                    ),
                    params![MINUTE, now_s - KEEP_MINUTES_S, HOUR, now_s - KEEP_HOURS_S],
                )?;
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_into_minute_and_hour_points() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let mut d = Delta {
            requests: 10,
            errors: 2,
            cpu_ns: 5,
            cpu_wall_ns: 10,
            mem_bytes: Some(100),
            ..Default::default()
        };
        d.buckets[3] = 10;
        store
            .add_release_points(7_260, &[("s", "prod", "r1", d.clone())])
            .unwrap();
        d.mem_bytes = Some(50);
        store
            .add_release_points(7_290, &[("s", "prod", "r1", d.clone())])
            .unwrap();
        store
            .add_release_points(7_330, &[("s", "prod", "r1", d.clone())])
            .unwrap();
        let minutes = store.release_points("s", "prod", MINUTE, 0).unwrap();
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].at, 7_260);
        assert_eq!(minutes[0].delta.requests, 20);
        assert_eq!(minutes[0].delta.buckets[3], 20);
        assert_eq!(minutes[0].delta.mem_bytes, Some(100));
        let hours = store.release_points("s", "prod", HOUR, 0).unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!((hours[0].at, hours[0].delta.errors), (7_200, 6));
        assert_eq!(store.prune_points(7_200 + KEEP_MINUTES_S + 200).unwrap(), 2);
    }
}
