//! Billing's own loop: notifications due are sent every second, and once a month is over (and
//! a grace has passed for its last intervals to be metered and priced) its invoices close.

use std::sync::Arc;
use std::time::Duration;

use crate::Platform;

/// How long after a month ends its invoices wait: the intervals in flight at midnight are
/// metered and priced by then.
pub const CLOSE_GRACE: Duration = Duration::from_secs(300);
const CLOSE_CHECK: Duration = Duration::from_secs(60);

pub async fn run(p: Arc<Platform>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = p.stopping.subscribe();
    let mut last_check: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        let now = crate::meter::now_us();
        super::notify::send_due(&p, now).await;
        crate::runs::notify::send_due(&p).await;
        if last_check.is_none_or(|t| t.elapsed() >= CLOSE_CHECK) {
            last_check = Some(tokio::time::Instant::now());
            super::invoices::close_last_month(&p, now - CLOSE_GRACE.as_micros() as i64).await;
        }
    }
}
