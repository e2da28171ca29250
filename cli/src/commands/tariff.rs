//! `faas tariff create|list|show|update|archive|assign` (admin): what a unit of usage costs.
//! Prices are decimal strings of the currency's major unit, exact to a nano-unit.

use faas_spec::api::tariffs::*;

use crate::cli::{TariffCommand, TariffPrices};
use crate::error::{CliError, CliResult};
use crate::printer::Printer;
use crate::session;

fn with_prices(base: Option<&Prices>, p: &TariffPrices) -> Prices {
    let pick = |given: &Option<String>, old: Option<&String>| {
        given
            .clone()
            .or_else(|| old.cloned())
            .unwrap_or_else(|| "0".into())
    };
    Prices {
        vcpu_second: pick(&p.vcpu_second, base.map(|b| &b.vcpu_second)),
        gib_second: pick(&p.gib_second, base.map(|b| &b.gib_second)),
        instance_second: pick(&p.instance_second, base.map(|b| &b.instance_second)),
        million_requests: pick(&p.million_requests, base.map(|b| &b.million_requests)),
        run: pick(&p.run, base.map(|b| &b.run)),
    }
}

fn show(printer: &Printer, t: &Tariff) {
    let mut flags = Vec::new();
    if t.default {
        flags.push("default".to_owned());
    }
    if let Some(at) = &t.archived_at {
        flags.push(format!("archived {at}"));
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" ({})", flags.join(", "))
    };
    printer.result(format!("{} — {}{flags}", t.name, t.currency));
    if !t.tenants.is_empty() {
        printer.result(format!("  tenants: {}", t.tenants.join(", ")));
    }
    for v in &t.versions {
        let until = v
            .effective_to
            .as_deref()
            .map_or_else(|| "on".to_owned(), |to| format!("to {to}"));
        printer.result(format!(
            "  v{} from {} {until}",
            v.version, v.effective_from
        ));
        for (what, price) in [
            ("vCPU-second", &v.prices.vcpu_second),
            ("GiB-second", &v.prices.gib_second),
            ("instance-second", &v.prices.instance_second),
            ("million requests", &v.prices.million_requests),
            ("run", &v.prices.run),
        ] {
            printer.result(format!("    {what:<18} {price} {}", t.currency));
        }
    }
}

pub fn run(printer: &Printer, context: Option<&str>, cmd: TariffCommand) -> CliResult {
    let client = session::connect(printer, context)?;
    match cmd {
        TariffCommand::Create {
            name,
            currency,
            prices,
            from,
            default,
            json,
        } => {
            let t: Tariff = client.post(
                "/v1/tariffs",
                &CreateTariff {
                    name,
                    currency,
                    prices: with_prices(None, &prices),
                    effective_from: from,
                    default,
                },
            )?;
            if json {
                printer.json(&t);
            } else {
                printer.status("Created", format!("the tariff {}", t.name));
                show(printer, &t);
            }
        }
        TariffCommand::List { json } => {
            let list: Vec<Tariff> = client.get("/v1/tariffs")?;
            if json {
                printer.json(&list);
            } else if list.is_empty() {
                printer.info("no tariffs yet: `faas tariff create NAME --currency EUR --vcpu-second 0.00001 …`");
            } else {
                for t in &list {
                    show(printer, t);
                }
            }
        }
        TariffCommand::Show { name, json } => {
            let t: Tariff = client.get(&format!("/v1/tariffs/{name}"))?;
            if json {
                printer.json(&t);
            } else {
                show(printer, &t);
            }
        }
        TariffCommand::Update {
            name,
            prices,
            from,
            json,
        } => {
            // Prices not given stay as the latest version has them.
            let current: Tariff = client.get(&format!("/v1/tariffs/{name}"))?;
            let base = current.versions.last().map(|v| &v.prices);
            let t: Tariff = client.post(
                &format!("/v1/tariffs/{name}/versions"),
                &UpdateTariff {
                    prices: with_prices(base, &prices),
                    effective_from: from,
                },
            )?;
            if json {
                printer.json(&t);
            } else {
                let v = t.versions.last().map_or(0, |v| v.version);
                printer.status("Updated", format!("{name}: version {v}"));
                show(printer, &t);
            }
        }
        TariffCommand::Archive { name } => {
            let _: Tariff = client.post(&format!("/v1/tariffs/{name}/archive"), &())?;
            printer.status(
                "Archived",
                format!("the tariff {name}: it keeps pricing what it priced"),
            );
        }
        TariffCommand::Assign {
            name,
            tenant,
            default,
        } => match (tenant, default) {
            (Some(tenant), false) => {
                let _: TenantTariff = client.put(
                    &format!("/v1/tenants/{tenant}/tariff"),
                    &AssignTariff {
                        tariff: name.clone(),
                    },
                )?;
                printer.status("Assigned", format!("{name} to {tenant}"));
            }
            (None, true) => {
                let _: Tariff = client.post(&format!("/v1/tariffs/{name}/default"), &())?;
                printer.status("Assigned", format!("{name} as the default tariff"));
            }
            _ => {
                return Err(CliError::usage(
                    "say whom the tariff is for",
                    "give `--tenant EMAIL`, or `--default` for every tenant without a tariff of its own",
                ));
            }
        },
    }
    Ok(())
}
