//! Row filters and masks travel inside the SQL a PostgreSQL source is
//! sent: the source filters and masks, and EXPLAIN shows it to admins.

use meshgate_tests::{pg_port, simple_rows as rows, PgDatabase, TestMesh};

use super::fixtures::*;

#[tokio::test]
async fn policy_filters_and_masks_travel_with_the_pushed_sql() {
    let db = PgDatabase::create("mg_policy").await;
    shop_in_postgres(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    // analyst administers the policy (which lifts no filter or mask) so
    // that EXPLAIN shows the policy's part of the plan, as only to admins.
    std::fs::write(
        &policy,
        r#"
admins = ["user:analyst"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["pg.public.*", "members.public.*", "providers.public.*"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["pg.public.accounts"]
filter = "region = 'north'"

[[masks]]
principals = ["user:analyst"]
tables = ["pg.public.accounts"]
column = "member_id"
mask = "-1"
"#,
    )
    .unwrap();
    let block = db.catalog_toml("pg", pg_port(), "")
        + &format!("\n[policy]\nfile = \"{}\"\n", policy.display());
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("pg").await;

    let north = (1..=ACCOUNTS)
        .filter(|a| account_region(*a) == "north")
        .count();
    let count = |sql: &'static str| {
        let client = &client;
        async move { cell(&rows(&client.simple_query(sql).await.unwrap())[0][0]).to_owned() }
    };
    assert_eq!(
        count("SELECT count(*) FROM pg.public.accounts").await,
        north.to_string()
    );
    // Probing the masked column compares the masked value, at the source too.
    let member = account_member(4); // account 4 is in the north
    let probe = format!("SELECT count(*) FROM pg.public.accounts WHERE member_id = {member}");
    let got = rows(&client.simple_query(&probe).await.unwrap());
    assert_eq!(cell(&got[0][0]), "0");
    let remote = remote_statements(&client, &probe)
        .await
        .pop()
        .expect("pushed to PostgreSQL");
    assert!(
        remote.contains("'north'"),
        "the row filter is pushed: {remote}"
    );
    // The probe only applies to the masked value (here the constant -1, so
    // the predicate folds to false): the raw column is never compared with
    // the probe at the source.
    assert!(
        !remote.contains(&member.to_string()),
        "a raw predicate on the masked column reached the table scan: {remote}"
    );
    let masked = "SELECT count(*) FROM pg.public.accounts WHERE member_id = -1";
    let got = rows(&client.simple_query(masked).await.unwrap());
    assert_eq!(
        cell(&got[0][0]),
        north.to_string(),
        "every visible row reads -1"
    );
    let remote = remote_statements(&client, masked)
        .await
        .pop()
        .expect("pushed to PostgreSQL");
    assert!(remote.contains("'north'"), "{remote}");
    // A join through another table sees only the filtered, masked rows.
    let joined = rows(
        &client
            .simple_query(
                "SELECT count(*) FROM pg.public.orders o JOIN pg.public.accounts a ON a.account_id = o.account_id
                  WHERE a.member_id <> -1",
            )
            .await
            .unwrap(),
    );
    assert_eq!(cell(&joined[0][0]), "0");

    // The same across sources (accounts in PostgreSQL, providers in
    // Parquet): a WHERE that reaches PostgreSQL with the join's side keeps
    // the row filter, and probes the masked value, never the raw column.
    for (sql, expected) in [
        (
            format!(
                "SELECT count(*) FROM pg.public.accounts a \
                 JOIN providers.public.providers p ON p.provider_id = a.account_id \
                 WHERE a.member_id = {member}"
            ),
            "0".to_owned(),
        ),
        (
            "SELECT count(*) FROM pg.public.accounts a \
             JOIN providers.public.providers p ON p.provider_id = a.account_id \
             WHERE a.region <> 'north' OR a.account_id > 0"
                .to_owned(),
            (1..=25)
                .filter(|a| account_region(*a) == "north")
                .count()
                .to_string(),
        ),
    ] {
        let got = rows(&client.simple_query(&sql).await.unwrap());
        assert_eq!(cell(&got[0][0]), expected, "{sql}");
        let remotes = remote_statements(&client, &sql).await;
        assert!(
            !remotes.is_empty(),
            "accounts are read at PostgreSQL: {sql}"
        );
        for remote in remotes {
            assert!(remote.contains("'north'"), "{remote}");
            assert!(!remote.contains(&member.to_string()), "{remote}");
        }
    }
}
