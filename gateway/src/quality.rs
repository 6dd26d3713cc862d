//! The data products' quality rules on a schedule (`[products]
//! quality_interval`): every interval, each product with rules is checked
//! with `CALL system.check_product`, in a session of `quality_user` — the
//! same statement, policy, limits and audit as when a person calls it.

use std::sync::Arc;
use std::time::Duration;

use meshgate_planner::{Identity, QueryService, SessionOptions};
use tokio_util::sync::CancellationToken;

/// The protocol scheduled checks are recorded under.
const PROTOCOL: &str = "scheduler";

/// Check every product's quality rules every `every` (the first time at
/// once) as `user`, until `stop`.
pub async fn run_on_schedule(
    service: Arc<QueryService>,
    user: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = check_all(&service, &user) => {}
        }
    }
}

async fn check_all(service: &QueryService, user: &str) {
    let products: Vec<String> = service
        .registry()
        .products()
        .products()
        .iter()
        .filter(|p| !p.descriptor.quality.is_empty())
        .map(|p| p.name().to_owned())
        .collect();
    if products.is_empty() {
        return;
    }
    let options = SessionOptions {
        protocol: PROTOCOL.into(),
        ..SessionOptions::default()
    };
    let mut session = match service.open_session(Identity::new(user), options) {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!(%user, error = %e, "scheduled quality checks cannot open a session");
            return;
        }
    };
    for product in products {
        let call = format!(
            "CALL system.check_product('{}')",
            product.replace('\'', "''")
        );
        if let Err(e) = session.run(&call).await {
            tracing::warn!(%product, %user, error = %e, "scheduled quality check failed");
        }
    }
}
