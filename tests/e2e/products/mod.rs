//! Data products: the demo's descriptors put tags on tables and columns,
//! the policy's tag rules act on them over every protocol, and consumers
//! discover exactly the products their grants let them read; freshness,
//! quality rules and read lineage over SQL. The HTTP API and the page are
//! in `http`, contracts and descriptor errors in `contracts`.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};

use crate::attacks::{attack_mesh_with, flight, flight_query, simple_rows, AttackMesh};
use meshgate_tests::extra_user;

mod contracts;
mod editing;
mod http;
mod openlineage;

/// `analyst` reads members and claims, not providers; `priya` (group
/// `privacy`) the same without the `pii` mask; `admin` everything;
/// `intruder` nothing.
pub(super) const PRODUCTS_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[groups]
privacy = ["priya"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "group:privacy"]
tables = ["members.public.*", "claims.public.*"]

[[grants]]
effect = "allow"
principals = ["user:admin"]
tables = ["*"]

[[masks]]
principals = ["*"]
except = ["group:privacy"]
column_tags = ["pii"]
mask = "NULL"
"#;

pub(super) async fn products_mesh() -> AttackMesh {
    attack_mesh_with(PRODUCTS_POLICY, |config| {
        config.push_str(&extra_user("priya", "priya-pw"));
        config.push_str(crate::admin_page::HTTP);
    })
    .await
}

pub(super) fn texts(batches: &[RecordBatch], column: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let array = datafusion::arrow::compute::cast(
            batch.column(column),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let array = array.as_string::<i32>();
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_owned())));
    }
    out
}

#[tokio::test]
async fn pii_tagged_columns_are_masked_on_every_protocol() {
    let mesh = products_mesh().await;
    let sql = "SELECT count(*) - count(last_name), count(*) - count(birth_date), \
               count(first_name), count(*) FROM members.public.members";
    let analyst = mesh.pg("analyst").await;
    let row = &simple_rows(&analyst, sql).await.unwrap()[0];
    let total = row[3].clone();
    assert_eq!(row[0], total, "every last_name reads as NULL: {row:?}");
    assert_eq!(row[1], total, "every birth_date reads as NULL: {row:?}");
    assert_eq!(row[2], total, "first_name is not tagged: {row:?}");
    let priya = mesh.pg("priya").await;
    let row = &simple_rows(&priya, sql).await.unwrap()[0];
    assert_eq!(row[0].as_deref(), Some("0"), "{row:?}");
    // The same mask over Flight SQL.
    let mut client = flight(&mesh, "analyst").await;
    let batches = flight_query(
        &mut client,
        "SELECT last_name, plan FROM members.public.members LIMIT 5",
    )
    .await
    .unwrap();
    assert!(texts(&batches, 0).iter().all(Option::is_none));
    assert!(texts(&batches, 1).iter().all(Option::is_some));
    // A predicate on the masked column sees the mask, not the value.
    let rows = simple_rows(
        &analyst,
        "SELECT count(*) FROM members.public.members WHERE last_name = 'Silva'",
    )
    .await
    .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("0"));
    mesh.assert_serving().await;
}

#[tokio::test]
async fn consumers_discover_exactly_the_products_their_grants_allow() {
    let mesh = products_mesh().await;
    let names = "SELECT name FROM system.data_products ORDER BY name";
    let listed = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter().map(|r| r[0].clone().unwrap()).collect()
    };
    let analyst = mesh.pg("analyst").await;
    assert_eq!(
        listed(simple_rows(&analyst, names).await.unwrap()),
        ["claims", "members"]
    );
    let admin = mesh.pg("admin").await;
    assert_eq!(
        listed(simple_rows(&admin, names).await.unwrap()),
        ["claims", "members", "providers"]
    );
    let intruder = mesh.pg("intruder").await;
    assert!(simple_rows(&intruder, names).await.unwrap().is_empty());
    assert!(
        simple_rows(&intruder, "SELECT * FROM system.data_product_columns")
            .await
            .unwrap()
            .is_empty()
    );
    // What a product promises, as its owner wrote it.
    let row = &simple_rows(
        &analyst,
        "SELECT domain, owner, contact, status, freshness_slo, array_to_string(tags, ','), \
         array_to_string(tables, ',') FROM system.data_products WHERE name = 'members'",
    )
    .await
    .unwrap()[0];
    assert_eq!(
        row,
        &[
            "membership",
            "membership",
            "membership-team@example.com",
            "active",
            "24h",
            "gold",
            "members.public.members"
        ]
        .map(|s| Some(s.to_owned()))
    );
    let tagged = simple_rows(
        &analyst,
        "SELECT column_name FROM system.data_product_columns \
         WHERE product = 'members' AND array_has(tags, 'pii') ORDER BY column_name",
    )
    .await
    .unwrap();
    assert_eq!(listed(tagged), ["birth_date", "last_name"]);
    // Flight SQL sessions discover the same.
    let mut client = flight(&mesh, "analyst").await;
    let batches = flight_query(&mut client, names).await.unwrap();
    assert_eq!(
        texts(&batches, 0),
        ["claims", "members"].map(|s| Some(s.to_owned()))
    );
    // ... and read descriptions in GetTables' schemas (Flight SQL remarks).
    let info = client
        .get_tables(arrow_flight::sql::CommandGetTables {
            catalog: Some("members".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("members".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<RecordBatch> =
        futures::TryStreamExt::try_collect(client.do_get(ticket).await.unwrap())
            .await
            .unwrap();
    let bytes = batches[0].column(4).as_binary::<i32>().value(0).to_vec();
    let schema =
        datafusion::arrow::datatypes::Schema::try_from(arrow_flight::IpcMessage(bytes.into()))
            .unwrap();
    let remark = schema.field_with_name("last_name").unwrap().metadata();
    assert_eq!(
        remark.get("ARROW:FLIGHT:SQL:REMARKS").map(String::as_str),
        Some("Family name.")
    );
    // Descriptions from the descriptors reach pg_catalog.
    let described = simple_rows(
        &analyst,
        "SELECT d.description FROM pg_catalog.pg_description d \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid \
         WHERE a.attname = 'last_name'",
    )
    .await
    .unwrap();
    assert_eq!(listed(described), ["Family name."]);
    // Quality rules run as the caller, on products the caller may discover.
    simple_rows(&analyst, "CALL system.check_product('members')")
        .await
        .unwrap();
    let results = simple_rows(
        &analyst,
        "SELECT product, rule, value, passed FROM system.quality_results",
    )
    .await
    .unwrap();
    assert_eq!(
        results,
        [["members", "known_plans", "0", "t"].map(|s| Some(s.to_owned()))]
    );
    assert_eq!(
        crate::attacks::sqlstate(&analyst, "CALL system.check_product('providers')").await,
        "42704"
    );
    assert!(
        simple_rows(&intruder, "SELECT * FROM system.quality_results")
            .await
            .unwrap()
            .is_empty()
    );
    mesh.assert_serving().await;
}

/// A tokio-postgres client as `user` whose server notices arrive on the
/// returned channel.
async fn with_notices(
    mesh: &AttackMesh,
    user: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use futures::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(
        &mesh
            .mesh
            .conn_str(user, &crate::attacks::password(user), "members"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = tx.send(notice.message().to_owned());
            }
        }
    });
    (client, rx)
}

#[tokio::test]
async fn reading_a_product_past_its_slo_warns_and_a_delta_commit_refreshes_it() {
    let mesh = products_mesh().await;
    let analyst = mesh.pg("analyst").await;
    let freshness = "SELECT product, within_slo, measured_by, age_seconds > 2 * 86400, \
                     CAST(last_modified AS VARCHAR) FROM system.freshness ORDER BY product";
    let rows = simple_rows(&analyst, freshness).await.unwrap();
    // Members' file is three days old (24h SLO); claims was just committed
    // (1h SLO); providers is not the analyst's to see.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1][..4],
        ["members", "f", "file modification time", "t"].map(|s| Some(s.to_owned()))
    );
    assert_eq!(
        rows[0][..4],
        ["claims", "t", "delta commit", "f"].map(|s| Some(s.to_owned()))
    );
    let before = rows[0][4].clone().unwrap();

    // The query runs, and its client is told: a NOTICE over pgwire...
    let (client, mut notices) = with_notices(&mesh, "analyst").await;
    let rows = simple_rows(&client, "SELECT count(*) FROM members.public.members")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("200"));
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), notices.recv())
        .await
        .expect("a freshness notice")
        .unwrap();
    assert!(
        notice.starts_with("data product `members` is past its freshness SLO of 24h"),
        "{notice}"
    );
    simple_rows(&client, "SELECT count(*) FROM claims.public.claims")
        .await
        .unwrap();
    assert!(notices.try_recv().is_err(), "claims is fresh");
    // ...and a response header over Flight SQL.
    let mut flight_client = flight(&mesh, "analyst").await;
    let info = flight_client
        .execute("SELECT count(*) FROM members.public.members".into(), None)
        .await
        .unwrap();
    let stream = flight_client
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let warning = stream
        .headers()
        .get("x-meshgate-warning")
        .expect("x-meshgate-warning header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("`members` is past its freshness SLO"),
        "{warning}"
    );

    // A new Delta commit moves the claims product's freshness.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    meshgate_connectors::append_delta_table(
        &mesh.mesh.data_dir().join("claims/claims"),
        vec![meshgate_gateway::demo::claims()],
    )
    .await
    .unwrap();
    let rows = simple_rows(&analyst, freshness).await.unwrap();
    let after = rows[0][4].clone().unwrap();
    assert!(after > before, "{before} -> {after}");
    let rows = simple_rows(&analyst, "SELECT count(*) FROM claims.public.claims")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("2000"));
    mesh.assert_serving().await;
}

#[tokio::test]
async fn the_audit_record_of_a_join_lists_both_products() {
    let mesh = products_mesh().await;
    let analyst = mesh.pg("analyst").await;
    simple_rows(
        &analyst,
        "SELECT m.state, count(*) FROM claims.public.claims c \
         JOIN members.public.members m ON m.member_id = c.member_id GROUP BY m.state",
    )
    .await
    .unwrap();
    let audit = mesh.audit_text();
    let record: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| {
            r["sql"]
                .as_str()
                .is_some_and(|s| s.contains("JOIN members"))
        })
        .unwrap_or_else(|| panic!("no audit record of the join: {audit}"));
    assert_eq!(record["products"], serde_json::json!(["claims", "members"]));
    assert_eq!(record["user"], "analyst");
    // ... and the columns it read (a masked table's too): no other.
    assert_eq!(
        record["columns"],
        serde_json::json!([
            "claims.public.claims.member_id",
            "members.public.members.member_id",
            "members.public.members.state"
        ])
    );
    // system.lineage: the analyst sees their own reads; an admin everyone's.
    let lineage =
        "SELECT product, \"user\", protocol, reads >= 1 FROM system.lineage ORDER BY product";
    let own = simple_rows(&analyst, lineage).await.unwrap();
    assert_eq!(
        own,
        [
            ["claims", "analyst", "pgwire", "t"].map(|s| Some(s.to_owned())),
            ["members", "analyst", "pgwire", "t"].map(|s| Some(s.to_owned())),
        ]
    );
    let intruder = mesh.pg("intruder").await;
    assert!(simple_rows(&intruder, lineage).await.unwrap().is_empty());
    let admin = mesh.pg("admin").await;
    let all = simple_rows(&admin, lineage).await.unwrap();
    assert!(
        all.iter().any(|r| r[1].as_deref() == Some("analyst")),
        "{all:?}"
    );
}

#[tokio::test]
async fn quality_rules_also_run_on_a_schedule_as_the_configured_user() {
    let mesh = attack_mesh_with(PRODUCTS_POLICY, |config| {
        config.push_str(&extra_user("priya", "priya-pw"));
        config.push_str("\n[products]\nquality_interval = \"300ms\"\nquality_user = \"priya\"\n");
    })
    .await;
    let analyst = mesh.pg("analyst").await;
    let sql =
        "SELECT product, rule, passed, checked_by FROM system.quality_results ORDER BY product";
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = simple_rows(&analyst, sql).await.unwrap();
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows,
        [
            ["claims", "positive_amounts", "t", "priya"].map(|s| Some(s.to_owned())),
            ["members", "known_plans", "t", "priya"].map(|s| Some(s.to_owned())),
        ]
    );
    // The scheduled runs are statements like any other: audited as theirs.
    let audit = mesh.audit_text();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"protocol\":\"scheduler\"")
                && l.contains("\"user\":\"priya\"")
                && l.contains("check_product")),
        "{audit}"
    );
}
