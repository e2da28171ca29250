//! A tenant's bill for a period, from the ledger: the cost (`usage` account, one per currency)
//! and the quantity (`metered` account) that moved over the period, per resource and tariff
//! version and the dimensions asked for; subtotals per group, and per currency a total that is
//! the exact sum of the rows, rounded once.

use std::collections::{BTreeMap, BTreeSet};

use faas_ledger::{AccountId, BalanceQuery, Turnover};
use faas_spec::api::billing::*;
use faas_spec::money;

use super::period::Period;
use crate::Platform;
use crate::meter::pricing::{COST_ACCOUNT, QUANTITY_ACCOUNT};
use crate::meter::usage::Resource;
use crate::store::TariffRow;

/// `--by` as given: a comma-separated list of dimensions, each known, none twice.
pub fn parse_by(text: Option<&str>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        if !BILLING_DIMENSIONS.contains(&part) {
            return Err(format!(
                "`{part}` is not something a bill can be grouped by; give any of {}",
                BILLING_DIMENSIONS.join(", ")
            ));
        }
        if !out.iter().any(|d| d == part) {
            out.push(part.to_owned());
        }
    }
    Ok(out)
}

/// Exact decimal of millionths.
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let n = micros.unsigned_abs();
    let (whole, frac) = (n / 1_000_000, n % 1_000_000);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{frac:06}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// What moved in one group of the period: quantity and cost.
#[derive(Debug, Default, Clone)]
struct Moved {
    quantity: i64,
    cost: i64,
    currency: Option<String>,
}

fn moved(t: &Turnover) -> i64 {
    t.debit - t.credit
}

/// The group of a turnover less the resource and version, with the day named as asked.
fn split_group(
    mut g: BTreeMap<String, String>,
    day: Option<&str>,
) -> (BTreeMap<String, String>, String, String) {
    let resource = g.remove("resource").unwrap_or_default();
    let version = g.remove("version").unwrap_or_default();
    if let Some(d) = day {
        g.insert("day".into(), d.to_owned());
    }
    (g, resource, version)
}

type Key = (BTreeMap<String, String>, String, String);

async fn window(
    p: &Platform,
    tenant: &str,
    currencies: &BTreeSet<String>,
    grouping: &[String],
    (from, to): (i64, i64),
    day: Option<&str>,
    out: &mut BTreeMap<Key, Moved>,
) -> anyhow::Result<()> {
    let account = |kind: &str, currency: Option<&str>| {
        let mut key = BTreeMap::from([("tenant".to_owned(), tenant.to_owned())]);
        if let Some(c) = currency {
            key.insert("currency".into(), c.to_owned());
        }
        BalanceQuery {
            account: AccountId {
                kind: kind.to_owned(),
                key,
            },
            group_by: grouping.to_vec(),
        }
    };
    for t in p
        .ledger
        .turnovers(&account(QUANTITY_ACCOUNT, None), from, to)
        .await?
    {
        let m = moved(&t);
        out.entry(split_group(t.group, day)).or_default().quantity += m;
    }
    for c in currencies {
        for t in p
            .ledger
            .turnovers(&account(COST_ACCOUNT, Some(c)), from, to)
            .await?
        {
            let m = moved(&t);
            let e = out.entry(split_group(t.group, day)).or_default();
            e.cost += m;
            e.currency = Some(c.clone());
        }
    }
    Ok(())
}

/// The bill of `tenant` over `period`, grouped by `by` (dimensions from [`parse_by`]).
pub async fn report(
    p: &Platform,
    tenant: &str,
    period: &Period,
    by: &[String],
    all: bool,
) -> anyhow::Result<BillingReport> {
    let tariffs: BTreeMap<String, TariffRow> = p
        .store
        .tariffs()?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let currencies: BTreeSet<String> = tariffs.values().map(|t| t.currency.clone()).collect();
    let dims: Vec<String> = by.iter().filter(|d| *d != "resource").cloned().collect();
    // Days in UTC are an attribute of every charge; in another zone, one window per day.
    let per_day = dims.iter().any(|d| d == "day") && !period.is_utc();
    let mut grouping: Vec<String> = dims
        .iter()
        .filter(|d| !(per_day && *d == "day"))
        .cloned()
        .collect();
    grouping.extend(["resource".to_owned(), "version".to_owned()]);
    let mut moved = BTreeMap::new();
    if per_day {
        for (label, a, b) in period.days() {
            window(
                p,
                tenant,
                &currencies,
                &grouping,
                (a, b),
                Some(&label),
                &mut moved,
            )
            .await?;
        }
    } else {
        let whole = (period.from_us, period.to_us);
        window(p, tenant, &currencies, &grouping, whole, None, &mut moved).await?;
    }

    let mut rows = Vec::new();
    let mut hidden = 0;
    let mut used_versions = BTreeSet::new();
    for ((group, resource, version), m) in moved {
        if m.quantity == 0 && m.cost == 0 && !all {
            hidden += 1;
            continue;
        }
        let (tariff_name, number) = version
            .rsplit_once(" v")
            .map(|(t, v)| (t.to_owned(), v.parse::<u32>().unwrap_or(0)))
            .unwrap_or((version.clone(), 0));
        let tariff = tariffs.get(&tariff_name);
        let r = Resource::parse(&resource);
        let price = tariff
            .and_then(|t| t.versions.iter().find(|v| v.version == number))
            .zip(r)
            .map_or(0, |(v, r)| r.price(&v.prices));
        let currency = m
            .currency
            .or_else(|| tariff.map(|t| t.currency.clone()))
            .unwrap_or_default();
        used_versions.insert((tariff_name.clone(), number));
        rows.push(BillingRow {
            group,
            resource: resource.clone(),
            quantity: format_micros(m.quantity),
            quantity_micros: m.quantity,
            unit: r.map_or("", Resource::unit).to_owned(),
            tariff: tariff_name,
            version: number,
            currency,
            unit_price: money::format_nanos(price),
            price_unit: r.map_or("", Resource::price_unit).to_owned(),
            cost: money::format_nanos(m.cost),
            cost_nanos: m.cost,
        });
    }
    rows.sort_by(|a, b| {
        b.cost_nanos
            .cmp(&a.cost_nanos)
            .then_with(|| a.group.cmp(&b.group))
            .then_with(|| a.resource.cmp(&b.resource))
            .then_with(|| a.version.cmp(&b.version))
    });

    let mut subtotals: BTreeMap<(BTreeMap<String, String>, String), i64> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        if !dims.is_empty() {
            *subtotals
                .entry((r.group.clone(), r.currency.clone()))
                .or_default() += r.cost_nanos;
        }
        *totals.entry(r.currency.clone()).or_default() += r.cost_nanos;
    }
    let mut subtotals: Vec<BillingSubtotal> = subtotals
        .into_iter()
        .map(|((group, currency), nanos)| BillingSubtotal {
            group,
            currency,
            cost: money::format_nanos(nanos),
            cost_nanos: nanos,
        })
        .collect();
    subtotals.sort_by(|a, b| {
        b.cost_nanos
            .cmp(&a.cost_nanos)
            .then_with(|| a.group.cmp(&b.group))
    });
    let totals = totals
        .into_iter()
        .map(|(currency, nanos)| {
            let rounded = money::round_nanos(nanos, &currency);
            BillingTotal {
                amount: money::format_amount(nanos, &currency),
                rounding_nanos: rounded - nanos,
                cost: money::format_nanos(nanos),
                cost_nanos: nanos,
                currency,
            }
        })
        .collect();

    let tariff_versions = used_versions
        .into_iter()
        .filter_map(|(name, number)| {
            let t = tariffs.get(&name)?;
            let i = t.versions.iter().position(|v| v.version == number)?;
            Some(BillingTariffVersion {
                tariff: name,
                version: number,
                currency: t.currency.clone(),
                effective_from: period.show(t.versions[i].effective_from),
                effective_to: t.versions.get(i + 1).map(|n| period.show(n.effective_from)),
            })
        })
        .collect();
    let progress = p.store.usage_progress()?;
    Ok(BillingReport {
        schema_version: BILLING_SCHEMA_VERSION,
        tenant: tenant.to_owned(),
        period: BillingPeriod {
            from: period.show(period.from_us),
            to: period.show(period.to_us),
            tz: period.tz_name.clone(),
        },
        group_by: dims,
        usage_through: progress.through.map(|us| period.show(us.min(period.to_us))),
        unpriced_records: progress.pending,
        tariff_versions,
        rows,
        subtotals,
        totals,
        hidden_rows: hidden,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_checked_and_kept_in_order() {
        assert_eq!(
            parse_by(Some("day, service,day")).unwrap(),
            ["day", "service"]
        );
        assert!(
            parse_by(Some("colour"))
                .unwrap_err()
                .contains("service, env")
        );
        assert!(parse_by(None).unwrap().is_empty());
    }

    #[test]
    fn money_rounds_once_half_away_from_zero() {
        assert_eq!(money::round_nanos(12_345_000_000, "EUR"), 12_350_000_000);
        assert_eq!(money::round_nanos(-5_000_000, "EUR"), -10_000_000);
        assert_eq!(money::round_nanos(1_499_999_999, "JPY"), 1_000_000_000);
        assert_eq!(format_micros(12_500_000), "12.5");
        assert_eq!(format_micros(-1), "-0.000001");
    }
}
