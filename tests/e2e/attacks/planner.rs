//! Attacks on the statement path: writes through a read-only gateway (F1,
//! F2), statements that exhaust a stack (F3), identity values that become
//! SQL (F4), errors that print hidden rows (F5), plans that outlive a
//! REVOKE (F7), and telling denied tables from absent ones (F14).

use super::*;

/// A statement that must fail with `state` over pgwire, leaving `client`
/// usable.
async fn refused(client: &Client, sql: &str, state: &str) {
    assert_eq!(sqlstate(client, sql).await, state, "{sql}");
    let rows = simple_rows(client, "SELECT 1").await.expect("still usable");
    assert_eq!(rows.len(), 1);
}

/// A Flight SQL statement that must fail; returns the status message.
async fn flight_refused(mesh: &AttackMesh, user: &str, sql: &str) -> String {
    let mut client = flight(mesh, user).await;
    match flight_query(&mut client, sql).await {
        Ok(batches) => panic!("`{sql}` over Flight SQL returned {batches:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn f1_no_statement_writes_a_file_not_even_inside_explain_analyze() {
    let mesh = attack_mesh().await;
    let policy_before = std::fs::read_to_string(mesh.policy_path()).unwrap();
    let target = mesh.dir.path().join("written.csv");
    let forged = "admins = [\"user:intruder\"]";
    let attacks = [
        format!(
            "EXPLAIN ANALYZE COPY (SELECT '{forged}' AS x) TO '{}' STORED AS CSV",
            mesh.policy_path().display()
        ),
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!("COPY (SELECT 1) TO '{}'", target.display()),
        format!(
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '{}' STORED AS PARQUET",
            target.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE w STORED AS CSV LOCATION '{}'",
            target.display()
        ),
    ];
    let intruder = mesh.pg("intruder").await;
    for sql in &attacks {
        let state = sqlstate(&intruder, sql).await;
        assert!(state == "25006" || state == "0A000", "{sql}: {state}");
        let message = flight_refused(&mesh, "intruder", sql).await;
        assert!(
            message.contains("[25006]") || message.contains("[0A000]"),
            "{message}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(mesh.policy_path()).unwrap(),
        policy_before
    );
    assert!(!target.exists(), "a file was written");
    // Still no access, still serving.
    assert_eq!(
        sqlstate(&intruder, "SELECT * FROM members.public.members").await,
        "42P01"
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f2_writes_hidden_in_prepare_execute_or_explain_are_refused() {
    let mesh = attack_mesh().await;
    let csv = mesh.mesh.data_dir().join("members/members.csv");
    let before = std::fs::read(&csv).unwrap();
    let analyst = mesh.pg("analyst").await;
    let insert = "INSERT INTO members.public.members VALUES \
                  (9999, 'Eve', 'Evil', 'CA', 'gold', DATE '2000-01-01')";
    for sql in [
        format!("PREPARE w AS {insert}"),
        format!("EXPLAIN ANALYZE {insert}"),
        format!("EXPLAIN {insert}"),
        insert.to_owned(),
        "PREPARE d AS DELETE FROM members.public.members".to_owned(),
        "EXPLAIN ANALYZE CREATE TABLE members.public.t AS SELECT 1".to_owned(),
    ] {
        refused(&analyst, &sql, "25006").await;
        let message = flight_refused(&mesh, "analyst", &sql).await;
        assert!(message.contains("[25006]"), "{sql}: {message}");
    }
    // EXECUTE of a statement that was never prepared writes nothing either.
    assert_ne!(sqlstate(&analyst, "EXECUTE w").await, "00000");
    assert_eq!(std::fs::read(&csv).unwrap(), before, "the CSV file changed");
    // Read-only statements inside PREPARE and EXPLAIN ANALYZE still work.
    simple_rows(
        &analyst,
        "PREPARE q AS SELECT count(*) FROM members.public.members",
    )
    .await
    .unwrap();
    let rows = simple_rows(&analyst, "EXECUTE q").await.unwrap();
    assert_eq!(rows.len(), 1);
    simple_rows(
        &analyst,
        "EXPLAIN ANALYZE SELECT count(*) FROM members.public.members",
    )
    .await
    .unwrap();
    mesh.assert_serving().await;
}

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

#[tokio::test]
async fn f3_statements_that_would_exhaust_the_stack_get_54001() {
    let mesh = attack_mesh().await;
    let analyst = mesh.pg("analyst").await;
    let deep = [
        format!("SELECT {}", chain("1", "+", 2_000)),
        chain("SELECT 1", " UNION ALL ", 2_500),
        format!("SELECT {}", chain("1", "+", 50_000)),
        format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000)),
        format!("SELECT 1 WHERE {}", chain("NOT", " ", 5_000) + " true"),
    ];
    for sql in &deep {
        let state = sqlstate(&analyst, sql).await;
        // Deeply parenthesised text is refused by the parser's own limit.
        assert!(
            state == "54001" || state == "42601",
            "{}: {state}",
            &sql[..40]
        );
        let message = flight_refused(&mesh, "analyst", sql).await;
        assert!(
            message.contains("[54001]") || message.contains("[42601]"),
            "{message}"
        );
    }
    // 20,000- and 1,000-term AND chains are refused (from their tokens
    // alone, or from their depth) ...
    let chain_of = |n: i32| {
        let terms: Vec<String> = (1..=n).map(|i| format!("member_id <> {i}0000")).collect();
        format!(
            "SELECT count(*) FROM members.public.members WHERE {}",
            terms.join(" AND ")
        )
    };
    assert_eq!(sqlstate(&analyst, &chain_of(20_000)).await, "54001");
    assert_eq!(sqlstate(&analyst, &chain_of(1_000)).await, "54001");
    // ... while chains of the length BI tools write, and long IN lists, run.
    let visible = simple_rows(&analyst, "SELECT count(*) FROM members.public.members")
        .await
        .unwrap();
    let rows = simple_rows(&analyst, &chain_of(200))
        .await
        .expect("a 200-term AND chain");
    assert_eq!(rows, visible);
    let list: Vec<String> = (1..=20_000).map(|i| format!("{i}0000")).collect();
    let rows = simple_rows(
        &analyst,
        &format!(
            "SELECT count(*) FROM members.public.members WHERE member_id NOT IN ({})",
            list.join(", ")
        ),
    )
    .await
    .expect("a 20,000-value IN list");
    assert_eq!(rows, visible);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f4_identity_values_are_values_never_sql() {
    // Attribute values an identity provider (or a policy file) supplies
    // are bound into row filters as literal values.
    for attack in ["' OR true --", "\\' OR true --", "x' OR 'a'='a"] {
        let policy = format!(
            "{ATTACK_POLICY}\n[users.intruder.attributes]\nregion = {attack:?}\n\n\
             [[grants]]\neffect = \"allow\"\nprincipals = [\"user:intruder\"]\n\
             tables = [\"members.public.members\"]\n\n\
             [[row_filters]]\nprincipals = [\"user:intruder\"]\n\
             tables = [\"members.public.members\"]\n\
             filter = \"state = current_user_attribute('region')\"\n"
        );
        let mesh = attack_mesh_with(&policy, |_| {}).await;
        let intruder = mesh.pg("intruder").await;
        let rows = simple_rows(&intruder, "SELECT count(*) FROM members.public.members")
            .await
            .unwrap();
        assert_eq!(rows, vec![vec![Some("0".to_owned())]], "{attack}");
        let mut client = flight(&mesh, "intruder").await;
        let batches = flight_query(&mut client, "SELECT * FROM members.public.members")
            .await
            .unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        mesh.assert_serving().await;
    }
}

#[tokio::test]
async fn f5_errors_never_print_rows_the_row_filter_hides() {
    let mesh = attack_mesh().await;
    let admin = mesh.pg("admin").await;
    let hidden: Vec<String> = simple_rows(
        &admin,
        "SELECT first_name FROM members.public.members WHERE state = 'NY'",
    )
    .await
    .unwrap()
    .into_iter()
    .filter_map(|r| r[0].clone())
    .collect();
    assert!(!hidden.is_empty(), "the demo has members in NY");
    let analyst = mesh.pg("analyst").await;
    let visible = simple_rows(&analyst, "SELECT count(*) FROM members.public.members")
        .await
        .unwrap();
    // Each probe errors on a NY row if evaluated before the row filter.
    let probes = [
        "SELECT count(*) FROM members.public.members \
         WHERE CAST(CASE WHEN state = 'NY' THEN 'X' || first_name ELSE '1' END AS INT) = 1",
        "SELECT count(*) FROM members.public.members m \
         WHERE 1 / CASE WHEN m.state = 'NY' THEN 0 ELSE 1 END = 1",
        "SELECT count(*) FROM (SELECT * FROM members.public.members) s \
         WHERE CAST(CASE WHEN state = 'NY' THEN first_name ELSE '7' END AS BIGINT) > 0",
        "SELECT count(*) FROM members.public.members m JOIN claims.public.claims c \
         ON c.member_id = m.member_id \
         AND CAST(CASE WHEN m.state = 'NY' THEN m.first_name ELSE '1' END AS INT) = 1 \
         GROUP BY ()",
    ];
    for sql in probes {
        match simple_rows(&analyst, sql).await {
            Ok(rows) => {
                if !sql.contains("JOIN") {
                    assert_eq!(rows, visible, "{sql}");
                }
            }
            Err(e) => {
                let text = e.to_string() + &format!("{e:?}");
                for name in &hidden {
                    assert!(!text.contains(name.as_str()), "{sql} leaked {name}: {text}");
                }
            }
        }
        let mut client = flight(&mesh, "analyst").await;
        if let Err(e) = flight_query(&mut client, sql).await {
            let text = e.to_string();
            for name in &hidden {
                assert!(!text.contains(name.as_str()), "{sql} leaked {name}: {text}");
            }
        }
    }
    // Comparisons with constants still reach the scan below the barrier.
    let plan = simple_rows(
        &analyst,
        "EXPLAIN SELECT * FROM members.public.members WHERE member_id = 5",
    )
    .await
    .unwrap();
    let text = format!("{plan:?}");
    assert!(text.contains("PolicyBarrierExec"), "{text}");
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f5_row_filters_on_a_postgresql_source_hold_against_failing_predicates() {
    let db = meshgate_tests::PgDatabase::create("mg_barrier").await;
    db.client
        .batch_execute(
            "CREATE TABLE people (id int, name text, state text);
             INSERT INTO people VALUES (1, 'Visible', 'CA'), (2, 'Secretname', 'NY');",
        )
        .await
        .unwrap();
    let port = 5432;
    let policy = format!(
        "{ATTACK_POLICY}\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:analyst\"]\n\
         tables = [\"pg.public.people\"]\n\n[[row_filters]]\nprincipals = [\"user:analyst\"]\n\
         tables = [\"pg.public.people\"]\nfilter = \"state <> 'NY'\"\n"
    );
    let mesh = attack_mesh_with(&policy, |config| {
        config.push_str(&db.catalog_toml("pg", port, ""));
    })
    .await;
    let analyst = mesh.pg("analyst").await;
    let sql = "SELECT count(*) FROM pg.public.people \
               WHERE CAST(CASE WHEN state = 'NY' THEN name ELSE '1' END AS INT) = 1";
    match simple_rows(&analyst, sql).await {
        Ok(rows) => assert_eq!(rows, vec![vec![Some("1".to_owned())]]),
        Err(e) => {
            let text = format!("{e:?}");
            assert!(!text.contains("Secretname"), "leaked: {text}");
        }
    }
    let rows = simple_rows(&analyst, "SELECT name FROM pg.public.people WHERE id >= 1")
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Some("Visible".to_owned())]]);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f7_a_revoke_reaches_statements_prepared_before_it() {
    let policy = format!(
        "{ATTACK_POLICY}\n[[grants]]\neffect = \"allow\"\nprincipals = [\"user:intruder\"]\n\
         tables = [\"providers.public.providers\"]\n"
    );
    let mesh = attack_mesh_with(&policy, |_| {}).await;
    let intruder = mesh.pg("intruder").await;
    let count = "SELECT count(*) FROM providers.public.providers";
    let extended = intruder.prepare(count).await.unwrap();
    simple_rows(&intruder, &format!("PREPARE p AS {count}"))
        .await
        .unwrap();
    assert_eq!(intruder.query(&extended, &[]).await.unwrap().len(), 1);
    assert_eq!(simple_rows(&intruder, "EXECUTE p").await.unwrap().len(), 1);
    let mut flight_client = flight(&mesh, "intruder").await;
    let mut flight_prepared = flight_client.prepare(count.to_owned(), None).await.unwrap();
    // A simple-protocol text whose shape's plan the session keeps.
    let literal = |n: i32| format!("{count} WHERE provider_id > {n}");
    for n in [0, 1] {
        assert_eq!(simple_rows(&intruder, &literal(n)).await.unwrap().len(), 1);
    }
    // The audit keeps the text as sent, values and all.
    assert!(mesh.audit_text().contains("provider_id > 1"));

    let admin = mesh.pg("admin").await;
    simple_rows(
        &admin,
        "REVOKE SELECT ON providers.public.providers FROM intruder",
    )
    .await
    .expect("admin revokes");

    let err = intruder.query(&extended, &[]).await.unwrap_err();
    let state = err.code().map(|c| c.code().to_owned());
    assert_eq!(state.as_deref(), Some("42P01"), "{err}");
    assert_eq!(sqlstate(&intruder, "EXECUTE p").await, "42P01");
    assert_eq!(sqlstate(&intruder, &literal(2)).await, "42P01");
    let flight_result = async {
        let info = flight_prepared.execute().await?;
        let mut rows = 0;
        for endpoint in info.endpoint {
            use futures::TryStreamExt;
            let stream = flight_client.do_get(endpoint.ticket.unwrap()).await?;
            rows += stream
                .try_collect::<Vec<_>>()
                .await?
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>();
        }
        Ok::<_, arrow_flight::error::FlightError>(rows)
    }
    .await;
    assert!(
        flight_result.is_err(),
        "Flight prepared statement still ran"
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn f14_denied_and_absent_tables_fail_the_same_way() {
    let mesh = attack_mesh().await;
    let intruder = mesh.pg("intruder").await;
    let denied = intruder
        .simple_query("SELECT * FROM members.public.members")
        .await
        .unwrap_err();
    let absent = intruder
        .simple_query("SELECT * FROM members.public.membersx")
        .await
        .unwrap_err();
    let (denied, absent) = (denied.as_db_error().unwrap(), absent.as_db_error().unwrap());
    assert_eq!(denied.code(), absent.code());
    assert_eq!(denied.code().code(), "42P01");
    assert_eq!(
        denied.message().replace("membersx", "members"),
        absent.message().replace("membersx", "members")
    );
    let message = flight_refused(&mesh, "intruder", "SELECT * FROM members.public.members").await;
    assert!(message.contains("[42P01]"), "{message}");
    // The audit log still tells the admin it was a denial.
    let audit = mesh.audit_text();
    assert!(
        audit.lines().any(|l| l.contains("\"intruder\"")
            && l.contains("members.public.members\"")
            && l.contains("\"denied\"")),
        "{audit}"
    );
    mesh.assert_serving().await;
}

#[tokio::test]
async fn the_policy_watcher_never_puts_an_older_version_back() {
    let mesh = attack_mesh().await;
    let old_text = std::fs::read_to_string(mesh.policy_path()).unwrap();
    let admin = mesh.pg("admin").await;
    // An admin grants intruder a table: version 2, written to the file.
    simple_rows(
        &admin,
        "GRANT SELECT ON providers.public.providers TO intruder",
    )
    .await
    .unwrap();
    let new_text = std::fs::read_to_string(mesh.policy_path()).unwrap();
    assert!(new_text.contains("version = 2"), "{new_text}");
    let intruder = mesh.pg("intruder").await;
    let count = "SELECT count(*) FROM providers.public.providers";
    simple_rows(&intruder, count).await.expect("granted");
    // The version-1 text comes back (a stale copy, a slow watcher): it must
    // not take the grant's version out of force, nor any later one.
    std::fs::write(mesh.policy_path(), &old_text).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    simple_rows(&intruder, count)
        .await
        .expect("still granted: version 1 was not applied");
    // A newer edit of the file still applies.
    let newer = old_text.replace("version = 1", "version = 3");
    std::fs::write(mesh.policy_path(), newer).unwrap();
    let mut applied = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if simple_rows(&intruder, count).await.is_err() {
            applied = true;
            break;
        }
    }
    assert!(applied, "version 3 from the file was never applied");
    mesh.assert_serving().await;
}
