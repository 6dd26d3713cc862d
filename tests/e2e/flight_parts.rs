//! A result in parts: a query over several Parquet files comes back over
//! Flight SQL with an endpoint per part, each fetched on its own
//! connection at the same time; together they hold exactly the rows of
//! the single-stream answer, with the row filter and the mask applied in
//! every part as over pgwire. pyarrow fetches the same parts in parallel
//! threads (`tests/python/test_flight_parts.py`).

use std::path::Path;

use arrow_flight::sql::CommandGetTables;
use arrow_flight::{FlightInfo, Ticket};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::attacks::{attack_mesh_with, flight, password, simple_rows, AttackMesh};

const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["parts.public.*"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["parts.public.events"]
filter = "region <> 'north'"

[[masks]]
principals = ["*"]
except = ["user:admin"]
tables = ["parts.public.events"]
column = "ssn"
mask = "'***'"
"#;

/// Rows in each of the three files.
const ROWS_PER_FILE: i64 = 2_000;

/// Three Parquet files of `events` (ids 0..6000) under `dir/events/`.
async fn write_events(dir: &Path) {
    let ctx = SessionContext::new();
    std::fs::create_dir_all(dir.join("events")).unwrap();
    for file in 0..3 {
        let sql = format!(
            "COPY (SELECT value + {offset} AS id, \
                CASE value % 3 WHEN 0 THEN 'north' WHEN 1 THEN 'south' ELSE 'west' END AS region, \
                CAST(value AS DOUBLE) * 1.5 AS amount, \
                concat('ssn-', CAST(value + {offset} AS VARCHAR)) AS ssn \
             FROM range({ROWS_PER_FILE})) TO '{}' STORED AS PARQUET",
            dir.join(format!("events/part-{file}.parquet")).display(),
            offset = file * ROWS_PER_FILE,
        );
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
}

/// A gateway serving those files as `parts.public.events`, split in three.
async fn parts_mesh() -> (AttackMesh, tempfile::TempDir) {
    parts_mesh_with("").await
}

/// Like [`parts_mesh`], with `extra` added to the configuration.
async fn parts_mesh_with(extra: &str) -> (AttackMesh, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    write_events(data.path()).await;
    let root = data.path().display().to_string();
    let mesh = attack_mesh_with(POLICY, |config| {
        config.push_str(extra);
        config.push_str(&format!(
            "\n[execution]\ntarget_partitions = 3\n\n[catalogs.parts]\nconnector = \"files\"\n\
             root = \"{root}\"\n[catalogs.parts.tables.events]\npath = \"events/\"\n\
             format = \"parquet\"\n"
        ));
    })
    .await;
    (mesh, data)
}

/// Every batch the DoGet of `ticket` streams.
async fn fetch_ticket(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    ticket: Ticket,
) -> Vec<RecordBatch> {
    let stream = client.do_get(ticket).await.expect("do_get");
    stream.try_collect().await.expect("stream")
}

/// Every endpoint of `info`, each fetched by its own client at once.
async fn fetch_parallel(mesh: &AttackMesh, user: &str, info: &FlightInfo) -> Vec<Vec<RecordBatch>> {
    let fetches = info.endpoint.iter().map(|endpoint| {
        let ticket: Ticket = endpoint.ticket.clone().expect("ticket");
        async move {
            let mut client = flight(mesh, user).await;
            fetch_ticket(&mut client, ticket).await
        }
    });
    futures::future::join_all(fetches).await
}

/// `(id, region, ssn)` of every row, sorted by id.
fn rows(parts: &[Vec<RecordBatch>]) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    for batch in parts.iter().flatten() {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let text = |column: usize, row: usize| {
            array_value_to_string(batch.column(column), row).expect("a value as text")
        };
        for i in 0..batch.num_rows() {
            out.push((ids.value(i), text(1, i), text(2, i)));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_comes_in_parts_fetched_in_parallel() {
    let (mesh, _data) = parts_mesh().await;
    let mut admin = flight(&mesh, "admin").await;

    // Unfiltered: three endpoints, and the exact row count from the footers.
    let info = admin
        .execute("SELECT * FROM parts.public.events".into(), None)
        .await
        .unwrap();
    assert_eq!(info.endpoint.len(), 3, "one endpoint per file group");
    assert!(!info.ordered);
    assert_eq!(info.total_records, 3 * ROWS_PER_FILE);
    let sql = "SELECT id, region, ssn FROM parts.public.events";
    let info = admin.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 3);
    let parts = fetch_parallel(&mesh, "admin", &info).await;
    let sizes: Vec<usize> = parts
        .iter()
        .map(|p| p.iter().map(RecordBatch::num_rows).sum())
        .collect();
    assert!(
        sizes.iter().all(|n| *n > 0),
        "every part holds rows: {sizes:?}"
    );
    let together = rows(&parts);
    assert_eq!(
        together.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..3 * ROWS_PER_FILE).collect::<Vec<_>>(),
        "each row exactly once"
    );

    // GetTables announces the columns as DoGet sends them (strings as
    // plain strings, not the views DataFusion reads Parquet into).
    let listing = admin
        .get_tables(CommandGetTables {
            catalog: Some("parts".into()),
            db_schema_filter_pattern: None,
            table_name_filter_pattern: Some("events".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let listed = fetch_parallel(&mesh, "admin", &listing).await;
    let ipc = listed[0][0]
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>()
        .value(0)
        .to_vec();
    let announced = try_schema_from_ipc_buffer(&ipc).unwrap();
    let sent = parts[0][0].schema();
    assert_eq!(
        announced.field_with_name("region").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        sent.field_with_name("region").unwrap().data_type(),
        &DataType::Utf8
    );

    // The single-stream answer (a sorted result is never split) is the same.
    let info = admin
        .execute(format!("{sql} ORDER BY id"), None)
        .await
        .unwrap();
    assert_eq!(info.endpoint.len(), 1);
    let single = fetch_parallel(&mesh, "admin", &info).await;
    assert_eq!(rows(&single), together);

    // An aggregate's partitions depend on each other: one endpoint.
    let info = admin
        .execute(
            "SELECT region, count(*) FROM parts.public.events GROUP BY region".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.endpoint.len(), 1);
    assert_eq!(info.total_records, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_part_applies_the_policy_and_belongs_to_its_user() {
    let (mesh, _data) = parts_mesh().await;
    let mut analyst = flight(&mesh, "analyst").await;
    let sql = "SELECT id, region, ssn FROM parts.public.events";
    let info = analyst.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 3, "the filter and mask keep the split");
    // Filtered: the count is no longer known exactly.
    assert_eq!(info.total_records, -1);
    let over_flight = rows(&fetch_parallel(&mesh, "analyst", &info).await);
    // `region` is 'north' for every third row of each file.
    let north_per_file = (ROWS_PER_FILE + 2) / 3;
    assert_eq!(
        over_flight.len() as i64,
        3 * (ROWS_PER_FILE - north_per_file)
    );
    assert!(over_flight
        .iter()
        .all(|(_, region, ssn)| region != "north" && ssn == "***"));

    // Exactly what pgwire answers the same user.
    let pg = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "parts")
        .await
        .unwrap();
    let over_pg: Vec<(i64, String, String)> = simple_rows(&pg, &format!("{sql} ORDER BY id"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r[0].as_deref().unwrap().parse().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(over_flight, over_pg);

    // A part's ticket is the analyst's alone: the intruder's DoGet learns
    // nothing, and the server goes on serving the analyst.
    let mut intruder = flight(&mesh, "intruder").await;
    let ticket = info.endpoint[1].ticket.clone().unwrap();
    let err = match intruder.do_get(ticket.clone()).await {
        Ok(stream) => stream
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("issued to another user"), "{err}");
    let again = analyst.do_get(ticket).await.unwrap();
    let batches: Vec<RecordBatch> = again.try_collect().await.unwrap();
    assert!(batches.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
    mesh.assert_serving().await;
}

/// Replicas sharing signing keys serve each other's parts; a replica that
/// sees other files refuses a part rather than return rows of another split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_run_on_any_replica_that_splits_the_same_way() {
    use crate::replicas::{client_with_token, spawn_replica, KEYS};
    let (a, data) = parts_mesh_with(KEYS).await;
    let config = a.mesh.config_path.clone();
    let b = tokio::task::spawn_blocking(move || spawn_replica(&config))
        .await
        .unwrap();
    let mut on_a = flight(&a, "analyst").await;
    let token = on_a.token().cloned().unwrap();
    let mut on_b = client_with_token(b.flight_sql, &token).await;
    let sql = "SELECT id, region, ssn FROM parts.public.events";
    let info = on_a.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 3);
    let mut parts = Vec::new();
    for (i, endpoint) in info.endpoint.iter().enumerate() {
        let on = if i == 1 { &mut on_a } else { &mut on_b };
        let stream = on.do_get(endpoint.ticket.clone().unwrap()).await.unwrap();
        parts.push(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    let whole = fetch_parallel(&a, "analyst", &info).await;
    assert_eq!(rows(&parts), rows(&whole), "parts from two replicas");
    assert!(rows(&parts)
        .iter()
        .all(|(_, region, ssn)| region != "north" && ssn == "***"));

    // A fourth file appears; a replica started now splits the scan another
    // way, and refuses the parts planned before it.
    std::fs::copy(
        data.path().join("events/part-0.parquet"),
        data.path().join("events/part-3.parquet"),
    )
    .unwrap();
    drop(b);
    let config = a.mesh.config_path.clone();
    let c = tokio::task::spawn_blocking(move || spawn_replica(&config))
        .await
        .unwrap();
    let mut on_c = client_with_token(c.flight_sql, &token).await;
    let refused = match on_c.do_get(info.endpoint[0].ticket.clone().unwrap()).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
        Err(e) => Err(e),
    }
    .expect_err("a part of another split");
    assert!(
        refused
            .to_string()
            .contains("changed since its parts were planned"),
        "{refused}"
    );
    // Asked again, the result comes whole from C, four files of it.
    let info = on_c.execute(sql.into(), None).await.unwrap();
    let mut all = Vec::new();
    for endpoint in &info.endpoint {
        let stream = on_c.do_get(endpoint.ticket.clone().unwrap()).await.unwrap();
        all.push(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    assert_eq!(rows(&all).len(), rows(&whole).len() * 4 / 3);
}

/// pyarrow's Flight client fetches the endpoints from parallel threads, and
/// ADBC (which fetches them concurrently itself) gets the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_fetches_the_parts_in_parallel() {
    let (mesh, _data) = parts_mesh().await;
    let uri = format!("grpc://{}", mesh.mesh.flight_sql_addr());
    tokio::task::spawn_blocking(move || {
        crate::python_clients::pytest(
            "test_flight_parts.py",
            &[
                ("MESHGATE_FLIGHT_URI", uri),
                ("MESHGATE_PARTS_ROWS", (3 * ROWS_PER_FILE).to_string()),
            ],
        )
    })
    .await
    .unwrap();
}

/// A whole result runs the plan its FlightInfo was counted with, once: a
/// ticket redeemed twice and a prepared statement executed twice answer
/// alike every time (an operator such as a repartition cannot run twice,
/// so each later run plans again), and a policy reload between the two
/// calls is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_result_runs_its_counted_plan_once_and_plans_again_after() {
    // One file: a single scan partition, repartitioned for the filter. No
    // result cache, so that every run runs a plan.
    let (mesh, _data) = parts_mesh_with(
        "\n[result_cache]\nmax_bytes = \"0\"\n\n[catalogs.parts.tables.one]\n\
         path = \"events/part-0.parquet\"\nformat = \"parquet\"\n",
    )
    .await;
    let mut analyst = flight(&mesh, "analyst").await;
    let sql = "SELECT id, region, ssn FROM parts.public.one WHERE id % 7 = 0";
    let expected = (ROWS_PER_FILE as usize).div_ceil(7);
    let count = |batches: &[RecordBatch]| batches.iter().map(RecordBatch::num_rows).sum::<usize>();

    // The plan holds an operator that cannot run twice.
    let explain = crate::attacks::flight_query(&mut analyst, &format!("EXPLAIN {sql}"))
        .await
        .unwrap();
    let explain = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string();
    assert!(explain.contains("RepartitionExec"), "{explain}");

    let info = analyst.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 1, "one file comes whole");
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    for run in 0..2 {
        let batches = fetch_ticket(&mut analyst, ticket.clone()).await;
        assert_eq!(count(&batches), expected, "ticket run {run}");
    }

    let mut statement = analyst.prepare(sql.into(), None).await.unwrap();
    for run in 0..3 {
        let info = statement.execute().await.unwrap();
        assert_eq!(info.endpoint.len(), 1);
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches = fetch_ticket(&mut analyst, ticket).await;
        assert_eq!(count(&batches), expected, "prepared run {run}");
        assert!(rows(&[batches]).iter().all(|(id, _, _)| id % 7 == 0));
    }

    // Counted (GetFlightInfo) under one policy, run (DoGet) after a reload
    // that gives the analyst a row filter on this table: the kept plans
    // are not run, the runs follow the new policy.
    let ticket = analyst.execute(sql.into(), None).await.unwrap().endpoint[0]
        .ticket
        .clone()
        .unwrap();
    let prepared_ticket = statement.execute().await.unwrap().endpoint[0]
        .ticket
        .clone()
        .unwrap();
    let filtered = POLICY.to_owned()
        + "\n[[row_filters]]\nprincipals = [\"user:analyst\"]\n\
           tables = [\"parts.public.one\"]\nfilter = \"id < 100\"\n";
    let new = mesh.policy_path().with_extension("new");
    std::fs::write(&new, filtered).unwrap();
    std::fs::rename(&new, mesh.policy_path()).unwrap();
    let watcher = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "parts")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while simple_rows(
        &watcher,
        "SELECT count(*) FROM parts.public.one WHERE id >= 100",
    )
    .await
    .unwrap()
        != [[Some("0".to_owned())]]
    {
        assert!(std::time::Instant::now() < deadline, "reload never seen");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    for ticket in [ticket, prepared_ticket] {
        let seen = rows(&[fetch_ticket(&mut analyst, ticket).await]);
        let ids: Vec<i64> = seen.iter().map(|(id, _, _)| *id).collect();
        assert_eq!(ids, (0..100).step_by(7).collect::<Vec<i64>>());
    }
    mesh.assert_serving().await;
}
