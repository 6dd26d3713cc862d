//! The result cache: a repeated query is answered from its kept result
//! only under the same effective policy, and a file change, a Delta commit
//! and a policy reload are seen by the next run.

use std::time::{Duration, Instant};

use meshgate_tests::{extra_user, simple_rows, TestMesh};
use tokio_postgres::Client;

use crate::sql_sources::fixtures;

const POLICY: &str = r#"
[groups]
adjusters = ["alice", "bob", "carol"]
[users.alice.attributes]
region = "CA"
[users.bob.attributes]
region = "CA"
[users.carol.attributes]
region = "NY"

[[grants]]
effect = "allow"
principals = ["group:adjusters", "user:auditor"]
tables = ["members.public.members", "claims.public.*"]

[[row_filters]]
principals = ["group:adjusters"]
tables = ["members.public.members"]
filter = "state = current_user_attribute('region')"

[[masks]]
principals = ["*"]
except = ["user:auditor"]
tables = ["members.public.members"]
column = "last_name"
mask = "'***'"
"#;

const BY_STATE: &str = "SELECT state, count(*) AS n, min(last_name) AS last \
     FROM members.public.members GROUP BY state ORDER BY state";

struct Mesh {
    mesh: TestMesh,
    dir: tempfile::TempDir,
}

impl Mesh {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, POLICY).unwrap();
        let mesh = TestMesh::start_with(|config| {
            for user in ["alice", "bob", "carol", "auditor", "mallory"] {
                config.push_str(&extra_user(user, &format!("{user}-pw")));
            }
            config.push_str(&format!("\n[policy]\nfile = \"{}\"\n", path.display()));
            config.push_str("\n[listeners.http]\naddress = \"127.0.0.1:0\"\n");
        })
        .await;
        Self { mesh, dir }
    }

    async fn pg(&self, user: &str) -> Client {
        self.mesh
            .connect_as(user, &format!("{user}-pw"), "members")
            .await
            .unwrap()
    }

    /// `meshgate_result_cache_<name>` from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        let addr = self.mesh.gateway.http_addr.expect("http listener");
        let (status, body) = crate::ops::get(addr, "/metrics").await;
        assert_eq!(status, 200);
        let prefix = format!("meshgate_result_cache_{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
    }
}

async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    simple_rows(
        &client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
    )
}

/// The EXPLAIN ANALYZE text of `sql`.
async fn analyze(client: &Client, sql: &str) -> String {
    rows(client, &format!("EXPLAIN ANALYZE {sql}"))
        .await
        .into_iter()
        .filter_map(|r| r[1].clone())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn served_from_cache(client: &Client, sql: &str) -> bool {
    analyze(client, sql).await.contains("ResultCacheExec: hit")
}

#[tokio::test]
async fn a_repeated_query_is_answered_from_its_result_only_under_the_same_effective_policy() {
    let mesh = Mesh::start().await;
    let (alice, bob, carol) = (
        mesh.pg("alice").await,
        mesh.pg("bob").await,
        mesh.pg("carol").await,
    );
    let auditor = mesh.pg("auditor").await;

    assert!(
        !served_from_cache(&alice, BY_STATE).await,
        "nothing kept yet"
    );
    let first = rows(&alice, BY_STATE).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0][0].as_deref(), Some("CA"));
    assert_eq!(first[0][2].as_deref(), Some("***"));
    let hits = mesh.metric("hits_total").await;
    assert!(served_from_cache(&alice, BY_STATE).await);
    assert_eq!(rows(&alice, BY_STATE).await, first, "the kept result");
    assert!(mesh.metric("hits_total").await >= hits + 2.0);
    assert!(mesh.metric("bytes").await > 0.0);

    // bob's effective policy is alice's: the same filter and mask values.
    assert!(served_from_cache(&bob, BY_STATE).await);
    assert_eq!(rows(&bob, BY_STATE).await, first);
    // carol's filter differs (NY): her own result, never alice's.
    assert!(!served_from_cache(&carol, BY_STATE).await);
    let ny = rows(&carol, BY_STATE).await;
    assert_eq!(ny.len(), 1);
    assert_eq!(ny[0][0].as_deref(), Some("NY"));
    // The auditor is unmasked and unfiltered: all states, real names.
    assert!(!served_from_cache(&auditor, BY_STATE).await);
    let all = rows(&auditor, BY_STATE).await;
    assert!(all.len() > 1, "{all:?}");
    assert!(
        all.iter().all(|r| r[2].as_deref() != Some("***")),
        "{all:?}"
    );
    // Still masked for alice after the auditor's run.
    assert_eq!(rows(&alice, BY_STATE).await, first);

    // A user without a grant learns nothing from a kept result.
    let mallory = mesh.pg("mallory").await;
    let err = mallory.simple_query(BY_STATE).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
    let err = mallory
        .simple_query(&format!("EXPLAIN ANALYZE {BY_STATE}"))
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");

    // A query with a volatile function is never kept.
    let random = "SELECT count(*), max(random()) FROM members.public.members";
    rows(&auditor, random).await;
    assert!(!served_from_cache(&auditor, random).await);

    // Over Flight SQL, the same kept result under the same rules.
    let hits = mesh.metric("hits_total").await;
    let mut flight = fixtures::flight(&mesh.mesh, "alice").await;
    let info = flight.execute(BY_STATE.to_owned(), None).await.unwrap();
    assert_eq!(fixtures::flight_fetch(&mut flight, info).await, first);
    assert_eq!(mesh.metric("hits_total").await, hits + 1.0);
}

#[tokio::test]
async fn a_file_change_a_delta_commit_and_a_policy_reload_are_seen_at_the_next_run() {
    let mesh = Mesh::start().await;
    let auditor = mesh.pg("auditor").await;
    // Kept: a grouped, ordered query (the dashboard shape).
    let total = |r: Vec<Vec<Option<String>>>| -> i64 {
        r.iter()
            .map(|row| row[1].as_deref().unwrap().parse::<i64>().unwrap())
            .sum()
    };
    let before = total(rows(&auditor, BY_STATE).await);
    assert!(served_from_cache(&auditor, BY_STATE).await);

    // A row appended to the CSV file: the next runs see it (within the
    // file listing's reuse time), never the kept count again after that.
    let csv = mesh.mesh.data_dir().join("members/members.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("999999,Zed,Zulu,CA,gold,2000-01-01\n");
    std::fs::write(&csv, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = total(rows(&auditor, BY_STATE).await);
        if now == before + 1 {
            break;
        }
        assert_eq!(now, before, "only the old or the new count");
        assert!(Instant::now() < deadline, "the new row never appeared");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(total(rows(&auditor, BY_STATE).await), before + 1);

    // A Delta commit: the very next run sees it.
    let claims = "SELECT count(*) FROM claims.public.claims";
    let before = rows(&auditor, claims).await;
    meshgate_connectors::append_delta_table(
        &mesh.mesh.data_dir().join("claims/claims"),
        vec![meshgate_gateway::demo::claims()],
    )
    .await
    .unwrap();
    let after = rows(&auditor, claims).await;
    let n = |r: &Vec<Vec<Option<String>>>| r[0][0].as_deref().unwrap().parse::<i64>().unwrap();
    assert_eq!(n(&after), 2 * n(&before));

    // A policy reload: alice's mask changes, and her next run shows it.
    let alice = mesh.pg("alice").await;
    assert_eq!(rows(&alice, BY_STATE).await[0][2].as_deref(), Some("***"));
    assert!(served_from_cache(&alice, BY_STATE).await);
    let tmp = mesh.dir.path().join("policy.toml.new");
    std::fs::write(&tmp, POLICY.replace("'***'", "'XX'")).unwrap();
    std::fs::rename(&tmp, mesh.dir.path().join("policy.toml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = rows(&alice, BY_STATE).await[0][2].clone();
        if last.as_deref() == Some("XX") {
            break;
        }
        assert_eq!(last.as_deref(), Some("***"));
        assert!(
            Instant::now() < deadline,
            "the policy reload was never seen"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(rows(&alice, BY_STATE).await[0][2].as_deref(), Some("XX"));
}
