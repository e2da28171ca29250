//! The report of a function run, mailed to its e-mail address once it has ended and been
//! priced: what it ran, how it ended, how long, what it cost. Sent through billing's SMTP
//! relay; a failure is kept on the run and tried again on billing's next pass, up to
//! [`MAX_ATTEMPTS`] times.

use faas_spec::money::format_nanos;

use crate::Platform;
use crate::store::RunRow;

pub const MAX_ATTEMPTS: i64 = 10;

/// The subject and body of a run's report.
pub fn text(run: &RunRow) -> (String, String) {
    let cost = match (&run.cost, run.currency.as_deref()) {
        // Exact: a run's cost is rarely a whole number of cents.
        (Some(c), Some(cur)) if !cur.is_empty() => format!("{} {cur}", format_nanos(*c)),
        _ => "nothing (no tariff priced it)".into(),
    };
    let how = run.reason.clone().unwrap_or_else(|| run.state.clone());
    let subject = format!("faas: run {} {how} — {cost}", run.id);
    let duration = run
        .started_us
        .zip(run.finished_us)
        .map_or("-".to_owned(), |(s, f)| {
            format!("{:.1} s", (f - s) as f64 / 1e6)
        });
    let command = if run.command.is_empty() {
        "(the image's own)".to_owned()
    } else {
        run.command.join(" ")
    };
    let body = format!(
        "Your run {id} has ended.\n\n  image     {image}\n  command   {command}\n  ended     {how}\n  state     {state}\n  ran for   {duration}\n  cost      {cost} (billed to {tenant})\n\nIts output: faas function logs {id}\n",
        id = run.id,
        image = run.image_ref,
        state = run.state,
        tenant = run.tenant,
    );
    (subject, body)
}

/// Sends the reports due; returns how many went out.
pub async fn send_due(p: &Platform) -> usize {
    let due = match p.store.runs_to_notify() {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!("cannot read the run reports due: {e}");
            return 0;
        }
    };
    let mut sent = 0;
    for run in due {
        let Some(to) = run.email.clone() else {
            continue;
        };
        let (subject, body) = text(&run);
        let outcome = match crate::billing::notify::mail(&p.config.notify, &to, subject, body).await
        {
            Ok(()) => {
                sent += 1;
                "sent".to_owned()
            }
            Err(why) if run.notify_attempts + 1 < MAX_ATTEMPTS => format!("retry: {why}"),
            Err(why) => format!("failed: {why}"),
        };
        if let Err(e) = p.store.set_run_notified(&run.id, &outcome) {
            tracing::warn!(run = %run.id, "cannot record its report: {e}");
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_how_it_ended_and_what_it_cost() {
        let run = RunRow {
            id: "run-1".into(),
            tenant: "ada@example.com".into(),
            image_ref: "busybox".into(),
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            state: "failed".into(),
            reason: Some("exited with code 3".into()),
            started_us: Some(1_000_000),
            finished_us: Some(3_500_000),
            cost: Some(1_503_000_000),
            currency: Some("EUR".into()),
            ..Default::default()
        };
        let (subject, body) = text(&run);
        assert!(subject.contains("exited with code 3"), "{subject}");
        assert!(subject.contains("1.503 EUR"), "{subject}");
        assert!(body.contains("ran for   2.5 s"), "{body}");
        assert!(body.contains("sh -c exit 3"), "{body}");
    }
}
