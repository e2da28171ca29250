//! What a service costs, where owners already look: the month so far per environment in
//! `faas service status`, and each release's whole cost in `faas service releases`, from the
//! platform's billing. A platform that cannot say (an older one) leaves the figures out.

use std::collections::BTreeMap;

use faas_spec::api::billing::BillingReport;

use crate::client::Client;

/// Cost per group value of `dimension`, of one service, as "1.23 EUR" (exact sums rounded
/// once, to the currency's minor unit).
fn costs(
    client: &Client,
    owner: &str,
    service: &str,
    dimension: &str,
    period: &str,
) -> Option<BTreeMap<String, String>> {
    let path = format!(
        "/v1/billing/{owner}?by=service,{dimension}&{period}",
        owner = crate::client::encode(owner)
    );
    let bill: BillingReport = client.get(&path).ok()?;
    let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in bill
        .rows
        .iter()
        .filter(|r| r.group.get("service").map(String::as_str) == Some(service))
    {
        let key = r.group.get(dimension).cloned().unwrap_or_default();
        *sums.entry((key, r.currency.clone())).or_default() += r.cost_nanos;
    }
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for ((key, currency), nanos) in sums {
        let text = format!(
            "{} {currency}",
            faas_spec::money::format_amount(nanos, &currency)
        );
        out.entry(key)
            .and_modify(|t| *t = format!("{t} + {text}"))
            .or_insert(text);
    }
    Some(out)
}

/// The current month's cost so far, per environment.
pub fn month_so_far(
    client: &Client,
    owner: &str,
    service: &str,
) -> Option<BTreeMap<String, String>> {
    costs(client, owner, service, "env", "")
}

/// Each release's cost over its whole life, by release id.
pub fn per_release(
    client: &Client,
    owner: &str,
    service: &str,
) -> Option<BTreeMap<String, String>> {
    costs(
        client,
        owner,
        service,
        "release",
        "from=2000-01-01&to=2200-01-01",
    )
}
