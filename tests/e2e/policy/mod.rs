//! The access policy, attacked through both protocols.
//!
//! alice (group adjusters, region CA) may read members only in CA, with
//! last_name masked and birth_date hidden; auditor reads everything raw (the
//! positive control); mallory is granted nothing.

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::CommandGetTables;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use tonic::transport::Channel;

mod fixtures;
mod jwt;
mod store;
use fixtures::*;

#[tokio::test]
async fn row_filters_and_masks_hold_against_every_sql_shape_over_pgwire() {
    let (mesh, _dir) = policy_mesh().await;
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let alice = mesh
        .connect_as("alice", "alice-pw", "members")
        .await
        .unwrap();

    let ca: i64 = scalar(&auditor, "SELECT count(*) FROM members WHERE state = 'CA'")
        .await
        .parse()
        .unwrap();
    let total: i64 = scalar(&auditor, "SELECT count(*) FROM members")
        .await
        .parse()
        .unwrap();
    assert!(ca > 0 && ca < total);
    let real_name = scalar(
        &auditor,
        "SELECT last_name FROM members WHERE state = 'CA' LIMIT 1",
    )
    .await;
    assert_ne!(real_name, "***");

    let probe_real_name = format!("SELECT count(*) FROM members WHERE last_name = '{real_name}'");
    let attacks: &[(&str, String)] = &[
        ("SELECT count(*) FROM members", ca.to_string()),
        ("WITH m AS (SELECT * FROM members) SELECT count(*) FROM m", ca.to_string()),
        ("SELECT count(*) FROM (SELECT state FROM members) s WHERE state <> 'CA'", "0".into()),
        ("SELECT count(*) FROM (SELECT state FROM members UNION ALL SELECT state FROM members) u WHERE state <> 'CA'", "0".into()),
        ("SELECT count(*) FROM members a JOIN members b ON a.member_id = b.member_id", ca.to_string()),
        ("SELECT count(DISTINCT m.state) FROM claims.public.claims c JOIN members m ON m.member_id = c.member_id", "1".into()),
        ("SELECT max(n) FROM (SELECT count(*) OVER () AS n FROM members) w", ca.to_string()),
        ("SELECT count(*) FROM (SELECT state FROM members GROUP BY state) g", "1".into()),
        ("SELECT count(*) FROM members WHERE member_id IN (SELECT member_id FROM members WHERE state = 'NY')", "0".into()),
        (probe_real_name.as_str(), "0".into()),
        ("SELECT count(*) FROM members WHERE last_name = '***'", ca.to_string()),
        ("SELECT count(*) FROM members WHERE last_name LIKE '%a%' OR upper(last_name) <> '***'", "0".into()),
        ("SELECT min(last_name) || max(last_name) FROM members", "******".into()),
        ("SELECT count(DISTINCT concat(CAST(last_name AS VARCHAR), upper(last_name), coalesce(last_name, 'x'))) FROM members", "1".into()),
        ("SELECT count(birth_date) FROM members", "0".into()),
        ("SELECT count(*) FROM members WHERE birth_date IS NOT NULL", "0".into()),
    ];
    let mut report = Vec::new();
    for (sql, expected) in attacks {
        let got = scalar(&alice, sql).await;
        report.push(format!("{got:>6} | {sql}"));
        assert_eq!(&got, expected, "{sql}");
    }
    // A prepared statement with a parameter sees the same rows.
    let stmt = alice
        .prepare("SELECT count(*) FROM members WHERE state = $1")
        .await
        .unwrap();
    for (state, expected) in [("CA", ca), ("NY", 0)] {
        let n: i64 = alice.query_one(&stmt, &[&state]).await.unwrap().get(0);
        assert_eq!(n, expected, "prepared, state = {state}");
    }
    // Masked columns are listed; the positive control sees raw values.
    let columns = rows(
        &alice,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'members'",
    )
    .await;
    assert!(columns.iter().any(|c| c[0].as_deref() == Some("last_name")));
    assert_eq!(
        scalar(
            &auditor,
            "SELECT count(*) FROM members WHERE last_name = '***'"
        )
        .await,
        "0"
    );
    println!("pgwire attack table (alice):\n{}", report.join("\n"));
}

#[tokio::test]
async fn a_user_without_grants_is_denied_every_way() {
    let (mesh, _dir) = policy_mesh().await;
    let mallory = mesh
        .connect_as("mallory", "mallory-pw", "members")
        .await
        .unwrap();
    for sql in [
        "SELECT * FROM members",
        "SELECT count(*) FROM claims.public.claims",
        "WITH x AS (SELECT 1 FROM providers.public.providers) SELECT * FROM x",
    ] {
        // A denied table reads as absent: the user cannot tell the two apart.
        let err = mallory.simple_query(sql).await.unwrap_err();
        assert_eq!(
            err.code().map(|c| c.code()),
            Some("42P01"),
            "{sql}: {err:?}"
        );
        let message = err.as_db_error().unwrap().message().to_owned();
        assert!(message.ends_with("not found"), "{message}");
    }
    // Listings show nothing denied.
    let listed = rows(
        &mallory,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .await;
    assert!(listed.is_empty(), "{listed:?}");
    let listed = rows(
        &mallory,
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
    )
    .await;
    assert!(listed.is_empty(), "{listed:?}");

    // Flight SQL: the same decisions.
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.handshake("mallory", "mallory-pw").await.unwrap();
    let info = flight
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await
        .unwrap();
    let mut n = 0;
    for endpoint in info.endpoint {
        let batches: Vec<RecordBatch> = flight
            .do_get(endpoint.ticket.unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        n += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    assert_eq!(n, 0, "GetTables lists nothing denied");
    let err = flight
        .execute("SELECT * FROM members.public.members".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("[42P01]"), "{err}");
}

#[tokio::test]
async fn flight_sql_sees_the_same_filtered_and_masked_rows() {
    let (mesh, _dir) = policy_mesh().await;
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let ca: i64 = scalar(&auditor, "SELECT count(*) FROM members WHERE state = 'CA'")
        .await
        .parse()
        .unwrap();
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.handshake("alice", "alice-pw").await.unwrap();
    for (sql, expected) in [
        ("SELECT count(*) AS n FROM members.public.members", ca),
        ("SELECT count(*) AS n FROM members.public.members WHERE state <> 'CA'", 0),
        ("SELECT count(*) AS n FROM members.public.members WHERE last_name <> '***'", 0),
        (
            "WITH m AS (SELECT * FROM members.public.members) SELECT count(*) AS n FROM m a JOIN m b ON a.member_id = b.member_id",
            ca,
        ),
    ] {
        let info = flight.execute(sql.into(), None).await.unwrap();
        let batches: Vec<RecordBatch> = flight
            .do_get(info.endpoint[0].ticket.clone().unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let got = batches[0].column(0).as_primitive::<Int64Type>().value(0);
        println!("flight {got:>6} | {sql}");
        assert_eq!(got, expected, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_applies_atomically_under_concurrent_queries() {
    let (mesh, dir) = policy_mesh().await;
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let count = |state: &'static str| {
        let auditor = &auditor;
        async move {
            scalar(
                auditor,
                &format!("SELECT count(*) FROM members WHERE state = '{state}'"),
            )
            .await
            .parse::<i64>()
            .unwrap()
        }
    };
    let (ca, ny) = (count("CA").await, count("NY").await);
    assert_ne!(ca, ny);

    // Queries run without pause while the policy moves alice from CA to NY.
    // A self-join whose two sides used different versions would count
    // CA ∩ NY = 0 rows, so every answer must be exactly ca or ny.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let alice = mesh
            .connect_as("alice", "alice-pw", "members")
            .await
            .unwrap();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n: i64 = scalar(
                    &alice,
                    "SELECT count(*) FROM members a JOIN members b ON a.member_id = b.member_id",
                )
                .await
                .parse()
                .unwrap();
                seen.push(n);
            }
            seen
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // An invalid policy is rejected; the old one stays in force.
    replace_policy(
        dir.path(),
        "[[grants]]\neffect = \"allow\"\nprincipals = [\"group:nobody\"]\ntables = [\"*\"]\n",
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    replace_policy(
        dir.path(),
        &POLICY.replace("region = \"CA\"", "region = \"NY\""),
    );
    let alice = mesh
        .connect_as("alice", "alice-pw", "members")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n: i64 = scalar(&alice, "SELECT count(*) FROM members")
            .await
            .parse()
            .unwrap();
        if n == ny {
            break;
        }
        assert_eq!(n, ca, "before the reload alice sees CA rows");
        assert!(
            std::time::Instant::now() < deadline,
            "the new policy was not applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = Vec::new();
    for w in workers {
        answers.extend(w.await.expect("no query failed"));
    }
    assert!(
        answers.contains(&ca) && answers.contains(&ny),
        "saw both versions: {answers:?}"
    );
    assert!(
        answers.iter().all(|n| *n == ca || *n == ny),
        "a query mixed versions: {answers:?}"
    );
    println!(
        "{} queries during the reload, all on one version",
        answers.len()
    );
}

#[tokio::test]
async fn statements_are_audited_and_admins_read_the_log() {
    let (mesh, dir) = audited_mesh().await;
    let audit = dir.path().join("audit.jsonl");
    let mallory = mesh
        .connect_as("mallory", "mallory-pw", "members")
        .await
        .unwrap();
    mallory
        .simple_query("SELECT ssn FROM members")
        .await
        .unwrap_err();
    let alice = mesh
        .connect_as("alice", "alice-pw", "members")
        .await
        .unwrap();
    let n = scalar(&alice, "SELECT count(*) FROM members").await;

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let denied = lines
        .iter()
        .find(|r| r["user"] == "mallory")
        .expect("the denied statement is audited");
    println!("audit record of a denied query: {denied}");
    assert_eq!(denied["decision"], "denied");
    assert_eq!(denied["protocol"], "pgwire");
    assert_eq!(denied["objects"][0], "members.public.members");
    // The user saw 42P01 (the table reads as absent); the record says why.
    assert!(denied["error"].as_str().unwrap().starts_with("[42P01]"));
    assert!(denied["rule"].as_str().unwrap().contains("deny by default"));
    let allowed = lines.iter().find(|r| r["user"] == "alice").unwrap();
    assert_eq!(allowed["decision"], "allowed");
    assert_eq!(allowed["rows"], 1);
    assert!(allowed["rule"].as_str().unwrap().contains("row_filters[0]"));
    assert!(allowed["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(n.parse::<i64>().unwrap() > 0);

    // Admins query the log; others do not see it.
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let denied_rows = scalar(
        &auditor,
        "SELECT count(*) FROM system.audit.queries WHERE decision = 'denied' AND \"user\" = 'mallory'",
    )
    .await;
    assert_eq!(denied_rows, "1");
    let err = alice
        .simple_query("SELECT * FROM system.audit.queries")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
}

#[tokio::test]
async fn admins_change_the_policy_with_grant_and_revoke() {
    let (mesh, dir) = audited_mesh().await;
    let (policy, audit) = (
        dir.path().join("policy.toml"),
        dir.path().join("audit.jsonl"),
    );
    let admin = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let mallory = mesh
        .connect_as("mallory", "mallory-pw", "members")
        .await
        .unwrap();
    let code = |e: tokio_postgres::Error| e.code().map(|c| c.code().to_owned()).unwrap_or_default();

    // A non-admin cannot grant, not even to themselves.
    let err = mallory
        .simple_query("GRANT SELECT ON providers.public.providers TO mallory")
        .await
        .unwrap_err();
    assert_eq!(code(err), "42501");
    let err = mallory
        .simple_query("CREATE ROLE sneaky")
        .await
        .unwrap_err();
    assert_eq!(code(err), "42501");
    let providers = "SELECT count(*) FROM providers.public.providers";
    assert_eq!(
        code(mallory.simple_query(providers).await.unwrap_err()),
        "42P01"
    );

    // The admin creates a role, grants it a table and grants it to mallory:
    // mallory's next statement, on the same connection, can read it.
    admin.simple_query("CREATE ROLE readers").await.unwrap();
    let err = admin.simple_query("CREATE ROLE readers").await.unwrap_err();
    assert_eq!(code(err), "42710");
    admin
        .simple_query("GRANT SELECT ON providers.public.providers TO readers")
        .await
        .unwrap();
    admin
        .simple_query("GRANT readers TO mallory")
        .await
        .unwrap();
    assert_eq!(scalar(&mallory, providers).await, "25");

    // A column grant: other columns read as NULL; masks still apply.
    admin
        .simple_query(
            "GRANT SELECT (member_id, state, last_name) ON members.public.members TO mallory",
        )
        .await
        .unwrap();
    let row = &rows(
        &mallory,
        "SELECT member_id, state, last_name, first_name FROM members.public.members ORDER BY member_id LIMIT 1",
    )
    .await[0];
    assert!(row[0].is_some() && row[1].is_some(), "{row:?}");
    assert_eq!(row[2].as_deref(), Some("***"));
    assert_eq!(row[3], None, "first_name is not granted: {row:?}");

    // Revoking the role takes the table away again.
    admin
        .simple_query("REVOKE readers FROM mallory")
        .await
        .unwrap();
    assert_eq!(
        code(mallory.simple_query(providers).await.unwrap_err()),
        "42P01"
    );
    // A role that rules still name cannot be dropped until they are revoked.
    let err = admin.simple_query("DROP ROLE readers").await.unwrap_err();
    assert_eq!(code(err), "2BP01");
    admin
        .simple_query("REVOKE SELECT ON providers.public.providers FROM readers")
        .await
        .unwrap();
    admin.simple_query("DROP ROLE readers").await.unwrap();
    let err = admin
        .simple_query("GRANT SELECT ON nope.public.t TO mallory")
        .await
        .unwrap_err();
    assert_eq!(code(err), "22023", "a grant on no table is rejected");

    // Every change was persisted as a new version of the policy file, each
    // version kept beside it, and the file is a valid policy.
    let text = std::fs::read_to_string(&policy).unwrap();
    let saved = meshgate_planner::policy::Policy::from_toml(&text).unwrap();
    assert_eq!(saved.document().version, 7, "{text}");
    assert!(!saved.document().groups.contains_key("readers"));
    let history = std::fs::read_dir(dir.path().join("policy.toml.history"))
        .unwrap()
        .count();
    assert_eq!(history, 7);

    // ... and audited, allowed or refused.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused = lines
        .iter()
        .find(|r| r["user"] == "mallory" && r["sql"].as_str().unwrap().starts_with("GRANT"))
        .unwrap();
    assert_eq!(refused["decision"], "denied");
    assert!(lines.iter().any(|r| r["user"] == "auditor"
        && r["sql"] == "DROP ROLE readers"
        && r["decision"] == "allowed"));
}
