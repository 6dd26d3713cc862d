//! Statements that differ only in the literals their `WHERE` compares
//! columns with share one plan per session on every path that sends SQL
//! text (Flight SQL statements, pgwire Parse; the simple protocol is
//! covered in `direct`): the source is sent one parameterised statement,
//! each text answers with its own values under the policy in force when
//! it runs, and each is audited as its client sent it.

use futures::TryStreamExt;
use meshgate_tests::simple_rows;

use super::direct::{direct_mesh, ACCOUNTS, POLICY};
use super::fixtures::*;

fn lookup(id: i64) -> String {
    format!("SELECT id, owner FROM pg.public.accounts WHERE id = {id}")
}

/// A row the clerk reads: north (or south after the reload), owner masked.
fn owner(id: i64) -> Vec<Option<String>> {
    vec![Some(id.to_string()), Some("o***".to_owned())]
}

/// The source's last statement from meshgate is the lookup with `$1` in
/// place of its value: one statement per shape, prepared once.
/// A restricted user's statement also carries what its policy adds
/// (`also`: its row filter and mask).
async fn assert_parameterised(db: &meshgate_tests::PgDatabase, also: &[&str]) {
    let sent = meshgate_activity(db).await;
    assert!(
        sent.iter().any(|q| q.contains("accounts")
            && q.contains("= $1")
            && also.iter().all(|a| q.contains(a))),
        "the source ran no parameterised statement with {also:?}: {sent:?}"
    );
}

/// What the clerk's statements carry: the row filter and the mask.
const CLERK_POLICY: [&str; 2] = ["'north'", "'***'"];

/// Each lookup of `runs` (id, rows) ran once, audited with its own text
/// and row count; returns the audit log.
fn assert_runs_audited(dir: &tempfile::TempDir, runs: &[(i64, u64)]) -> String {
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    for &(id, rows) in runs {
        let records: Vec<serde_json::Value> = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["sql"] == lookup(id) && r["query_id"].is_string())
            .collect();
        assert_eq!(records.len(), 1, "id {id}: {audit}");
        assert_eq!(records[0]["rows"], rows, "id {id}");
    }
    audit
}

/// Show the clerk the south instead of the north, and wait until a new
/// statement sees it.
async fn clerk_sees_the_south(mesh: &meshgate_tests::TestMesh, dir: &tempfile::TempDir) {
    let tmp = dir.path().join("policy.toml.new");
    std::fs::write(&tmp, POLICY.replace("region = 'north'", "region = 'south'")).unwrap();
    std::fs::rename(&tmp, dir.path().join("policy.toml")).unwrap();
    let watcher = mesh.connect_as("clerk", "clerk-pw", "pg").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = simple_rows(
            &watcher
                .simple_query("SELECT count(*) FROM pg.public.accounts WHERE region = 'south'")
                .await
                .unwrap(),
        );
        if seen != [[Some("0".to_owned())]] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the policy reload was never seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Flight SQL statements that differ only in their literals share one plan
/// in their session (the source is sent one parameterised statement), and
/// each answers with its own values, under the policy in force when it
/// runs: a policy reload between GetFlightInfo and DoGet is seen.
#[tokio::test]
async fn flight_literal_lookups_share_a_plan_and_keep_the_policy() {
    let (mesh, db, dir) = direct_mesh().await;
    // Unrestricted: the source runs the lookups as one statement with a
    // parameter.
    let mut auditor = flight(&mesh, "auditor").await;
    for id in [5, 7] {
        let info = auditor.execute(lookup(id), None).await.unwrap();
        let expected = [[Some(id.to_string()), Some(format!("owner{id}"))]];
        assert_eq!(flight_fetch(&mut auditor, info).await, expected);
    }
    assert_parameterised(&db, &[]).await;

    let mut clerk = flight(&mesh, "clerk").await;
    // North rows only (ids divisible by 3), owners masked; a value out of
    // the column's range matches nothing.
    for (id, expected) in [
        (3, vec![owner(3)]),
        (6, vec![owner(6)]),
        (4, vec![]),
        (99_999_999_999, vec![]),
        (9, vec![owner(9)]),
    ] {
        let info = clerk.execute(lookup(id), None).await.unwrap();
        assert_eq!(flight_fetch(&mut clerk, info).await, expected, "id {id}");
    }
    assert_parameterised(&db, &CLERK_POLICY).await;
    // Prepared with its values in the text (as ADBC prepares every query
    // it executes): no parameters to bind, each text its own answer.
    for (id, expected) in [(21, vec![owner(21)]), (22, vec![]), (24, vec![owner(24)])] {
        let mut statement = clerk.prepare(lookup(id), None).await.unwrap();
        assert!(statement.parameter_schema().unwrap().fields().is_empty());
        let info = statement.execute().await.unwrap();
        assert_eq!(flight_fetch(&mut clerk, info).await, expected, "id {id}");
        statement.close().await.unwrap();
    }
    assert_parameterised(&db, &CLERK_POLICY).await;
    // A literal compared with a masked column meets the mask.
    let count =
        |owner: &str| format!("SELECT count(*) FROM pg.public.accounts WHERE owner = '{owner}'");
    for (text, n) in [
        (count("owner3"), 0),
        (count("o***"), ACCOUNTS / 3),
        (count("owner6"), 0),
    ] {
        let info = clerk.execute(text.clone(), None).await.unwrap();
        let rows = flight_fetch(&mut clerk, info).await;
        assert_eq!(rows, [[Some(n.to_string())]], "{text}");
    }
    // A literal of the wrong type is refused and the session goes on.
    let wrong = "SELECT id FROM pg.public.accounts WHERE id = 'x'";
    let refused = match clerk.execute(wrong.into(), None).await {
        Err(e) => e.to_string(),
        Ok(info) => {
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            match clerk.do_get(ticket).await {
                Err(e) => e.to_string(),
                Ok(stream) => match stream.try_collect::<Vec<_>>().await {
                    Err(e) => e.to_string(),
                    Ok(rows) => panic!("{wrong} answered {rows:?}"),
                },
            }
        }
    };
    assert!(refused.contains('x'), "{refused}");
    let info = clerk.execute(lookup(12), None).await.unwrap();
    assert_eq!(flight_fetch(&mut clerk, info).await, [owner(12)]);

    // Each run is audited with the text its client sent.
    assert_runs_audited(&dir, &[(3, 1), (6, 1), (4, 0), (9, 1), (12, 1)]);

    // Planned (GetFlightInfo) under one policy, run (DoGet) after a reload
    // that shows the clerk the south instead: the run follows the new one.
    let ticket = |info: arrow_flight::FlightInfo| info.endpoint[0].ticket.clone().unwrap();
    let north = ticket(clerk.execute(lookup(15), None).await.unwrap());
    let south = ticket(clerk.execute(lookup(16), None).await.unwrap());
    let unrestricted = ticket(auditor.execute(lookup(21), None).await.unwrap());
    clerk_sees_the_south(&mesh, &dir).await;
    let stream = auditor.do_get(unrestricted).await.unwrap();
    let rows = batch_rows(&stream.try_collect::<Vec<_>>().await.unwrap());
    assert_eq!(rows, [[Some("21".to_owned()), Some("owner21".to_owned())]]);
    let fetch = |ticket| {
        let mut clerk = clerk.clone();
        async move {
            let stream = clerk.do_get(ticket).await.unwrap();
            batch_rows(&stream.try_collect::<Vec<_>>().await.unwrap())
        }
    };
    assert!(fetch(north).await.is_empty());
    let south_owner = owner(16);
    assert_eq!(fetch(south).await, [south_owner]);
    // The next lookups of the shape are planned under the new policy.
    let info = clerk.execute(lookup(19), None).await.unwrap();
    assert_eq!(flight_fetch(&mut clerk, info).await, [owner(19)]);
    let info = clerk.execute(lookup(18), None).await.unwrap();
    assert!(flight_fetch(&mut clerk, info).await.is_empty());
}

/// pgwire Parse of texts with literals (tokio-postgres, as JDBC and Npgsql
/// send every statement): one plan per shape, no parameters for the
/// client to bind, each text's own values; a statement parsed under one
/// policy and run after a reload follows the new one.
#[tokio::test]
async fn parsed_literal_lookups_share_a_plan_and_keep_the_policy() {
    let (mesh, db, dir) = direct_mesh().await;
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "pg")
        .await
        .unwrap();
    for id in [5, 7] {
        let statement = auditor.prepare(&lookup(id)).await.unwrap();
        assert!(statement.params().is_empty(), "id {id}");
        let row = auditor.query_one(&statement, &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(1), format!("owner{id}"));
    }
    assert_parameterised(&db, &[]).await;

    let clerk = mesh.connect_as("clerk", "clerk-pw", "pg").await.unwrap();
    let text = |rows: &[tokio_postgres::Row]| -> Rows {
        rows.iter()
            .map(|r| {
                vec![
                    Some(r.get::<_, i32>(0).to_string()),
                    r.get::<_, Option<String>>(1),
                ]
            })
            .collect()
    };
    for (id, expected) in [
        (3, vec![owner(3)]),
        (4, vec![]),
        (99_999_999_999, vec![]),
        (6, vec![owner(6)]),
    ] {
        let statement = clerk.prepare(&lookup(id)).await.unwrap();
        assert!(statement.params().is_empty(), "id {id}");
        let rows = clerk.query(&statement, &[]).await.unwrap();
        assert_eq!(text(&rows), expected, "id {id}");
    }
    assert_parameterised(&db, &CLERK_POLICY).await;
    // A literal compared with a masked column meets the mask.
    for (owner, n) in [("owner3", 0), ("o***", i64::from(ACCOUNTS / 3))] {
        let sql = format!("SELECT count(*) FROM pg.public.accounts WHERE owner = '{owner}'");
        let row = clerk.query_one(&sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), n, "{sql}");
    }
    // A literal of the wrong type is refused with a SQLSTATE; the
    // connection goes on.
    let err = clerk
        .query("SELECT id FROM pg.public.accounts WHERE id = 'x'", &[])
        .await
        .unwrap_err();
    assert!(err.as_db_error().is_some(), "{err}");
    assert_eq!(
        text(&clerk.query(&lookup(9), &[]).await.unwrap()),
        [owner(9)]
    );

    // Parsed under one policy, run after a reload: the new one holds.
    let north = clerk.prepare(&lookup(15)).await.unwrap();
    let south = clerk.prepare(&lookup(16)).await.unwrap();
    let unrestricted = auditor.prepare(&lookup(21)).await.unwrap();
    clerk_sees_the_south(&mesh, &dir).await;
    let row = auditor.query_one(&unrestricted, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(1), "owner21");
    assert!(clerk.query(&north, &[]).await.unwrap().is_empty());
    assert_eq!(text(&clerk.query(&south, &[]).await.unwrap()), [owner(16)]);
    assert_eq!(
        text(&clerk.query(&lookup(19), &[]).await.unwrap()),
        [owner(19)]
    );

    // Each Parse and each run is audited with the text the client sent.
    let audit = assert_runs_audited(&dir, &[(3, 1), (4, 0), (6, 1), (16, 1)]);
    for id in [3, 4, 6, 16] {
        let parse = format!("Parse (prepare statement): {}", lookup(id));
        assert!(audit.contains(&parse), "{parse}");
    }
}
