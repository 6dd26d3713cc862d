//! The PostgreSQL policy store (`[policy] store = "postgres://…"`): the
//! access policy that several gateways share.
//!
//! Every version of the policy is a row of `meshgate_policy` (version,
//! document, time); the highest version is in force. A change made on any
//! gateway (SQL `GRANT`/`REVOKE`, the admin API or the CLI through it) is
//! checked there like a policy file, then inserted in one transaction that
//! also notifies `meshgate_policy`; a version another gateway inserted
//! first is refused as a conflict, so no change overwrites another. Every
//! gateway listens for the notification (and looks every few seconds, in
//! case one was missed while its connection was down), checks the new
//! version against its catalogs and swaps it in whole, as a policy file
//! reload does: no statement ever sees half a policy, and a version this
//! gateway cannot apply is logged and the one in force stays.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use meshgate_planner::policy::Policy;
use meshgate_planner::{PolicyStore, QueryError, QueryResult, QueryService};
use tokio_postgres::{AsyncMessage, Client};
use tokio_util::sync::CancellationToken;

/// The channel changes are announced on (and the table's name).
const CHANNEL: &str = "meshgate_policy";
/// How often a gateway looks for a new version without a notification.
const POLL: Duration = Duration::from_secs(5);

/// What `/readyz` says of the store: whether this gateway enforces the
/// newest version it holds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreHealth {
    /// `current`, `stale` (a newer version could not be applied here),
    /// `unreachable`, or `unknown` before the first look.
    pub status: &'static str,
    /// The version this gateway enforces.
    pub in_force: u64,
    /// The newest version the store holds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<u64>,
    /// Why the newest version is not in force, or the store not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The store's health, shared by the task that follows it and `/readyz`.
pub type SharedStoreHealth = Arc<std::sync::RwLock<StoreHealth>>;

fn report(health: &SharedStoreHealth, update: StoreHealth) {
    *health.write().expect("store health lock") = update;
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS meshgate_policy (
    version bigint PRIMARY KEY,
    document text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now())";

/// A connection to the policy store.
pub struct PgPolicyStore {
    url: String,
    client: tokio::sync::Mutex<Client>,
}

impl std::fmt::Debug for PgPolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgPolicyStore")
    }
}

async fn connect(url: &str) -> Result<crate::pg_store::Connection, String> {
    crate::pg_store::connect(url, "the policy store").await
}

impl PgPolicyStore {
    /// Connect to the store and create its table if it has none.
    pub async fn open(url: &str) -> Result<Self, String> {
        let (client, connection) = connect(url).await?;
        tokio::spawn(connection);
        client
            .batch_execute(CREATE)
            .await
            .map_err(|e| format!("cannot create the policy table: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            client: tokio::sync::Mutex::new(client),
        })
    }

    /// The version in force there and its document, if any.
    pub async fn latest(&self) -> Result<Option<(u64, String)>, String> {
        let client = self.client().await?;
        latest(&client).await
    }

    /// Keep `text` as version `version` if the store has no policy yet (a
    /// policy file seeds an empty store).
    pub async fn seed(&self, version: u64, text: &str) -> Result<(), String> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meshgate_policy (version, document)
                 SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM meshgate_policy)",
                &[&(version as i64), &text],
            )
            .await
            .map(drop)
            .map_err(|e| format!("cannot seed the policy store: {e}"))
    }

    /// The connection, made again if it was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, String> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            let (fresh, connection) = connect(&self.url).await?;
            tokio::spawn(connection);
            *client = fresh;
        }
        Ok(client)
    }
}

async fn latest(client: &Client) -> Result<Option<(u64, String)>, String> {
    let row = client
        .query_opt(
            "SELECT version, document FROM meshgate_policy ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read the policy store: {e}"))?;
    Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1))))
}

#[async_trait]
impl PolicyStore for PgPolicyStore {
    async fn save(&self, version: u64, text: &str) -> QueryResult<()> {
        let mut client = self.client().await.map_err(QueryError::Internal)?;
        let failed = |e: tokio_postgres::Error| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                QueryError::Conflict(format!(
                    "policy version {version} was saved by another gateway meanwhile: \
                     fetch the policy again and reapply your change"
                ))
            } else {
                QueryError::Internal(format!("cannot save the policy: {e}"))
            }
        };
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute(
            "INSERT INTO meshgate_policy (version, document) VALUES ($1, $2)",
            &[&(version as i64), &text],
        )
        .await
        .map_err(failed)?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &version.to_string()],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    fn describe(&self) -> String {
        "the PostgreSQL policy store".into()
    }
}

/// Apply every new version of the store's policy to `service` until `stop`.
pub async fn follow(
    service: Arc<QueryService>,
    url: String,
    health: SharedStoreHealth,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = listen(&service, &url, &health, &stop).await {
            tracing::warn!("policy store: {e}; listening again shortly");
            report(
                &health,
                StoreHealth {
                    status: "unreachable",
                    in_force: in_force(&service),
                    newest: None,
                    error: Some(e),
                },
            );
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One listening connection: returns when it fails or `stop` is cancelled.
async fn listen(
    service: &QueryService,
    url: &str,
    health: &SharedStoreHealth,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = connect(url).await?;
    // Notifications only wake the loop (many coalesce into one read); the
    // sender is dropped when the connection ends.
    let (notified, mut notifications) = tokio::sync::watch::channel(0u64);
    let messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        futures::pin_mut!(messages);
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => notified.send_modify(|n| *n += 1),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| format!("cannot listen for changes: {e}"))?;
    loop {
        let outcome = apply_latest(service, &client).await?;
        report(health, outcome);
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            changed = notifications.changed() => {
                if changed.is_err() {
                    return Err("the connection was lost".into());
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

fn in_force(service: &QueryService) -> u64 {
    service.policy().map_or(0, |p| p.document().version)
}

/// Swap in the store's latest version when it is newer than the one in
/// force and fits this gateway's catalogs; what came of it.
async fn apply_latest(service: &QueryService, client: &Client) -> Result<StoreHealth, String> {
    let current = in_force(service);
    let Some((version, text)) = latest(client).await? else {
        return Ok(StoreHealth {
            status: "current",
            in_force: current,
            ..StoreHealth::default()
        });
    };
    let stale = |error: String| {
        tracing::error!(
            version,
            "policy store: version rejected, previous policy stays in force: {error}"
        );
        Ok(StoreHealth {
            status: "stale",
            in_force: current,
            newest: Some(version),
            error: Some(error),
        })
    };
    if version > current {
        let policy = match Policy::from_toml(&text) {
            Ok(policy) if policy.document().version != version => {
                return stale(format!(
                    "the row's document says version {}",
                    policy.document().version
                ))
            }
            Ok(policy) => policy,
            Err(e) => return stale(e.to_string()),
        };
        let problems = service.check_policy(&policy).await;
        if !problems.is_empty() {
            return stale(problems.join("; "));
        }
        if service.set_policy_unless_older(policy).is_ok() {
            tracing::info!(version, "policy reloaded from the policy store");
        }
    }
    Ok(StoreHealth {
        status: "current",
        in_force: in_force(service),
        newest: Some(version),
        error: None,
    })
}
