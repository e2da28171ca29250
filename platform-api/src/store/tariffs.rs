//! Tariffs: a currency and prices per unit of usage, in nano-units, in versions that each take
//! effect from an instant; one tariff is the default, and a tenant may be assigned another.
//! Versions are never edited: a new one takes effect from its date, and usage is priced at the
//! version in force when it happened.

use rusqlite::{OptionalExtension, params};

use super::{Migration, Result, Store, now};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    version: 5,
    sql: r#"
    CREATE TABLE tariffs (
        name TEXT PRIMARY KEY,
        currency TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        archived_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX one_default_tariff ON tariffs (is_default) WHERE is_default = 1;
    CREATE TABLE tariff_versions (
        tariff TEXT NOT NULL REFERENCES tariffs (name),
        version INTEGER NOT NULL,
        effective_from INTEGER NOT NULL,
        vcpu_second INTEGER NOT NULL,
        gib_second INTEGER NOT NULL,
        instance_second INTEGER NOT NULL,
        million_requests INTEGER NOT NULL,
        run INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (tariff, version),
        UNIQUE (tariff, effective_from)
    );
    CREATE TABLE tariff_assignments (
        tenant TEXT PRIMARY KEY,
        tariff TEXT NOT NULL REFERENCES tariffs (name),
        assigned_at TEXT NOT NULL
    );
    "#,
}];

/// Prices per unit, in nano-units of the tariff's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceRow {
    pub vcpu_second: i64,
    pub gib_second: i64,
    pub instance_second: i64,
    pub million_requests: i64,
    pub run: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariffVersionRow {
    pub version: u32,
    /// Microseconds since the epoch.
    pub effective_from: i64,
    pub prices: PriceRow,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariffRow {
    pub name: String,
    pub currency: String,
    pub default: bool,
    pub archived_at: Option<String>,
    pub tenants: Vec<String>,
    /// Oldest first.
    pub versions: Vec<TariffVersionRow>,
}

/// Why a tariff change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TariffRefusal {
    Exists,
    NotFound,
    Archived,
    /// A new version must start after the latest one's start (given).
    NotAfter(i64),
    /// The default tariff cannot be archived.
    IsDefault,
}

fn version_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<TariffVersionRow> {
    Ok(TariffVersionRow {
        version: r.get(0)?,
        effective_from: r.get(1)?,
        prices: PriceRow {
            vcpu_second: r.get(2)?,
            gib_second: r.get(3)?,
            instance_second: r.get(4)?,
            million_requests: r.get(5)?,
            run: r.get(6)?,
        },
        created_at: r.get(7)?,
    })
}

/// Whether a tariff exists and takes changes (is not archived).
fn open_tariff(
    c: &rusqlite::Connection,
    name: &str,
) -> rusqlite::Result<std::result::Result<(), TariffRefusal>> {
    let archived: Option<Option<String>> = c
        .query_row(
            "SELECT archived_at FROM tariffs WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match archived {
        None => Err(TariffRefusal::NotFound),
        Some(Some(_)) => Err(TariffRefusal::Archived),
        Some(None) => Ok(()),
    })
}

const VERSION_COLUMNS: &str = "version, effective_from, vcpu_second, gib_second, instance_second, million_requests, run, created_at";

fn insert_version(
    c: &rusqlite::Connection,
    tariff: &str,
    version: u32,
    from: i64,
    p: &PriceRow,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO tariff_versions (tariff, version, effective_from, vcpu_second, gib_second,
           instance_second, million_requests, run, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            tariff,
            version,
            from,
            p.vcpu_second,
            p.gib_second,
            p.instance_second,
            p.million_requests,
            p.run,
            now()
        ],
    )?;
    Ok(())
}

impl Store {
    /// Creates a tariff with its first version; it becomes the default when asked to or when
    /// there is none.
    pub fn create_tariff(
        &self,
        name: &str,
        currency: &str,
        from: i64,
        prices: &PriceRow,
        default: bool,
    ) -> Result<std::result::Result<(), TariffRefusal>> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM tariffs WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )?;
            if exists {
                return Ok(Err(TariffRefusal::Exists));
            }
            let has_default: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM tariffs WHERE is_default = 1)",
                [],
                |r| r.get(0),
            )?;
            let default = default || !has_default;
            if default {
                tx.execute("UPDATE tariffs SET is_default = 0 WHERE is_default = 1", [])?;
            }
            tx.execute(
                "INSERT INTO tariffs (name, currency, is_default, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, currency, default, now()],
            )?;
            insert_version(&tx, name, 1, from, prices)?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// A new version from `from` on, which must be after the latest version's start.
    pub fn add_tariff_version(
        &self,
        name: &str,
        from: i64,
        prices: &PriceRow,
    ) -> Result<std::result::Result<u32, TariffRefusal>> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            if let Err(refusal) = open_tariff(&tx, name)? {
                return Ok(Err(refusal));
            }
            let (latest, start): (u32, i64) = tx.query_row(
                "SELECT version, effective_from FROM tariff_versions WHERE tariff = ?1
                 ORDER BY version DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if from <= start {
                return Ok(Err(TariffRefusal::NotAfter(start)));
            }
            insert_version(&tx, name, latest + 1, from, prices)?;
            tx.commit()?;
            Ok(Ok(latest + 1))
        })
    }

    pub fn tariff(&self, name: &str) -> Result<Option<TariffRow>> {
        let Some((currency, default, archived_at)) = self.one(
            "SELECT currency, is_default, archived_at FROM tariffs WHERE name = ?1",
            [name],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get(2)?)),
        )?
        else {
            return Ok(None);
        };
        let versions = self.all(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM tariff_versions WHERE tariff = ?1 ORDER BY version"
            ),
            [name],
            version_from,
        )?;
        let tenants = self.all(
            "SELECT tenant FROM tariff_assignments WHERE tariff = ?1 ORDER BY tenant",
            [name],
            |r| r.get(0),
        )?;
        Ok(Some(TariffRow {
            name: name.to_owned(),
            currency,
            default,
            archived_at,
            tenants,
            versions,
        }))
    }

    pub fn tariffs(&self) -> Result<Vec<TariffRow>> {
        let names: Vec<String> =
            self.all("SELECT name FROM tariffs ORDER BY name", [], |r| r.get(0))?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(t) = self.tariff(&n)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn archive_tariff(&self, name: &str) -> Result<std::result::Result<(), TariffRefusal>> {
        self.with(|c| {
            let row: Option<(bool, Option<String>)> = c
                .query_row(
                    "SELECT is_default, archived_at FROM tariffs WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                None => Err(TariffRefusal::NotFound),
                Some((true, _)) => Err(TariffRefusal::IsDefault),
                Some((false, Some(_))) => Ok(()),
                Some((false, None)) => {
                    c.execute(
                        "UPDATE tariffs SET archived_at = ?2 WHERE name = ?1",
                        params![name, now()],
                    )?;
                    Ok(())
                }
            })
        })
    }

    pub fn set_default_tariff(&self, name: &str) -> Result<std::result::Result<(), TariffRefusal>> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            if let Err(refusal) = open_tariff(&tx, name)? {
                return Ok(Err(refusal));
            }
            tx.execute("UPDATE tariffs SET is_default = 0 WHERE is_default = 1", [])?;
            tx.execute("UPDATE tariffs SET is_default = 1 WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    pub fn assign_tariff(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<std::result::Result<(), TariffRefusal>> {
        self.with(|c| {
            if let Err(refusal) = open_tariff(c, name)? {
                return Ok(Err(refusal));
            }
            c.execute(
                "INSERT INTO tariff_assignments (tenant, tariff, assigned_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant) DO UPDATE SET tariff = ?2, assigned_at = ?3",
                params![tenant, name, now()],
            )?;
            Ok(Ok(()))
        })
    }

    /// The tariff a tenant is priced at: its own, else the default; and whether by default.
    pub fn tenant_tariff(&self, tenant: &str) -> Result<Option<(String, bool)>> {
        if let Some(name) = self.one(
            "SELECT tariff FROM tariff_assignments WHERE tenant = ?1",
            [tenant],
            |r| r.get(0),
        )? {
            return Ok(Some((name, false)));
        }
        Ok(self
            .one("SELECT name FROM tariffs WHERE is_default = 1", [], |r| {
                r.get(0)
            })?
            .map(|n| (n, true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(vcpu: i64) -> PriceRow {
        PriceRow {
            vcpu_second: vcpu,
            ..Default::default()
        }
    }

    #[test]
    fn versions_follow_each_other_and_the_first_tariff_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("p.db")).unwrap();
        assert_eq!(
            s.create_tariff("standard", "EUR", 100, &prices(5), false)
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            s.create_tariff("standard", "EUR", 100, &prices(5), false)
                .unwrap(),
            Err(TariffRefusal::Exists)
        );
        assert_eq!(
            s.add_tariff_version("standard", 100, &prices(6)).unwrap(),
            Err(TariffRefusal::NotAfter(100))
        );
        assert_eq!(
            s.add_tariff_version("standard", 200, &prices(6)).unwrap(),
            Ok(2)
        );
        let t = s.tariff("standard").unwrap().unwrap();
        assert!(t.default);
        assert_eq!(
            t.versions
                .iter()
                .map(|v| v.prices.vcpu_second)
                .collect::<Vec<_>>(),
            [5, 6]
        );
        s.create_tariff("startup", "EUR", 100, &prices(1), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.tenant_tariff("a@b.io").unwrap(),
            Some(("standard".into(), true))
        );
        s.assign_tariff("a@b.io", "startup").unwrap().unwrap();
        assert_eq!(
            s.tenant_tariff("a@b.io").unwrap(),
            Some(("startup".into(), false))
        );
        assert_eq!(
            s.archive_tariff("standard").unwrap(),
            Err(TariffRefusal::IsDefault)
        );
        s.set_default_tariff("startup").unwrap().unwrap();
        assert_eq!(s.archive_tariff("standard").unwrap(), Ok(()));
        assert_eq!(
            s.assign_tariff("c@d.io", "standard").unwrap(),
            Err(TariffRefusal::Archived)
        );
    }
}
