//! The statement pipeline and the session commands, run against a real
//! catalog (a CSV file through the files connector).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::ParamValues;
use datafusion::physical_plan::common::collect;
use datafusion::scalar::ScalarValue;
use meshgate_connectors::ConnectorRegistry;

use super::{QueryOutput, QuerySession, TransactionState};
use crate::{CatalogRegistry, CatalogSpec, Identity, QueryError, QueryService, RuntimeLimits};
use crate::{Prepared, SessionOptions};

async fn service(dir: &std::path::Path) -> QueryService {
    std::fs::write(dir.join("members.csv"), "id,state\n1,CA\n2,NY\n3,CA\n").unwrap();
    let options: toml::Table = toml::from_str(
        "[tables.members]\npath = \"members.csv\"\nformat = \"csv\"\nheader = true\n",
    )
    .unwrap();
    let spec = CatalogSpec {
        name: "mesh".into(),
        connector: "files".into(),
        description: None,
        options,
        products: Vec::new(),
        products_file: None,
    };
    let registry = CatalogRegistry::build(
        &[spec],
        &ConnectorRegistry::builtin(),
        dir.to_path_buf(),
        &RuntimeLimits::default(),
    )
    .await
    .unwrap();
    QueryService::new(Arc::new(registry), None)
}

fn open(service: &QueryService, postgres: bool) -> QuerySession {
    let options = SessionOptions {
        postgres_catalog: postgres,
        protocol: if postgres { "pgwire" } else { "flight_sql" }.into(),
        ..Default::default()
    };
    service
        .open_session(Identity::new("alice"), options)
        .unwrap()
}

/// Every value of the first column, as text.
async fn column(output: QueryOutput) -> Vec<String> {
    let QueryOutput::Rows(stream) = output else {
        panic!("expected rows");
    };
    let mut out = Vec::new();
    for batch in collect(stream).await.unwrap() {
        let column = batch.column(0);
        for i in 0..column.len() {
            let value = datafusion::arrow::util::display::array_value_to_string(column, i);
            out.push(value.unwrap());
        }
    }
    out
}

fn tag(output: &QueryOutput) -> &str {
    match output {
        QueryOutput::Command { tag } => tag,
        _ => panic!("expected a command tag"),
    }
}

#[tokio::test]
async fn a_script_runs_its_statements_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut session = open(&service, true);
    let mut script = session
        .script(
            "SET application_name = 'probe'; SHOW application_name; SELECT count(*) FROM members",
        )
        .unwrap();
    let mut outputs = Vec::new();
    while let Some(next) = session
        .next_statement(&mut script, TransactionState::Idle)
        .await
    {
        outputs.push(next.unwrap().1.output);
    }
    assert!(script.is_empty());
    assert_eq!(outputs.len(), 3);
    assert_eq!(tag(&outputs[0]), "SET");
    let mut outputs = outputs.into_iter().skip(1);
    assert_eq!(column(outputs.next().unwrap()).await, ["probe"]);
    assert_eq!(column(outputs.next().unwrap()).await, ["3"]);
}

#[tokio::test]
async fn a_failed_block_refuses_statements_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut session = open(&service, true);
    let begin = session.prepare("BEGIN").await.unwrap();
    let result = session
        .execute_statement(&begin, None, TransactionState::Idle)
        .await
        .unwrap();
    assert_eq!(result.transaction, TransactionState::InBlock);
    assert!(result.notices.is_empty());

    let again = session
        .execute_statement(&begin, None, TransactionState::InBlock)
        .await
        .unwrap();
    assert_eq!(again.notices[0].sqlstate, "25001");

    let err = session
        .prepare("SELECT nope FROM members")
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "42703");
    let state = TransactionState::InBlock.failed();

    let select = session.prepare("SELECT 1").await.unwrap();
    let refused = session
        .execute_statement(&select, None, state)
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, QueryError::TransactionAborted));

    let commit = session.prepare("COMMIT").await.unwrap();
    let ended = session
        .execute_statement(&commit, None, state)
        .await
        .unwrap();
    assert_eq!(tag(&ended.output), "ROLLBACK");
    assert_eq!(ended.transaction, TransactionState::Idle);

    let outside = session
        .execute_statement(&commit, None, TransactionState::Idle)
        .await
        .unwrap();
    assert_eq!(tag(&outside.output), "COMMIT");
    assert_eq!(outside.notices[0].sqlstate, "25P01");
}

#[tokio::test]
async fn a_prepared_statement_is_planned_once_and_run_with_each_value() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut session = open(&service, false);
    let prepared = session
        .prepare("SELECT state FROM members WHERE id = $1")
        .await
        .unwrap();
    assert!(matches!(prepared, Prepared::Query { .. }));
    for (id, state) in [(1, "CA"), (2, "NY"), (3, "CA")] {
        let params = ParamValues::List(vec![ScalarValue::Int64(Some(id)).into()]);
        let output = session.execute(&prepared, Some(params)).await.unwrap();
        assert_eq!(column(output).await, [state]);
    }
    let err = session.prepare("SELECT 1; SELECT 2").await.unwrap_err();
    assert_eq!(err.sqlstate(), "42601");
}

#[tokio::test]
async fn cursors_fetch_the_rest_of_a_result_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut session = open(&service, true);
    let outputs = session
        .run("DECLARE c CURSOR FOR SELECT id FROM members ORDER BY id")
        .await
        .unwrap();
    assert_eq!(tag(&outputs[0]), "DECLARE CURSOR");
    let mut first = session.run("FETCH 2 FROM c").await.unwrap();
    assert_eq!(column(first.remove(0)).await, ["1", "2"]);
    let mut rest = session.run("FETCH ALL FROM c").await.unwrap();
    assert_eq!(column(rest.remove(0)).await, ["3"]);
    session.run("CLOSE c").await.unwrap();
    let err = session.run("FETCH 1 FROM c").await.err().unwrap();
    assert!(matches!(err, QueryError::UndefinedCursor(_)));
}

#[tokio::test]
async fn writes_are_refused_whatever_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    for postgres in [true, false] {
        let mut session = open(&service, postgres);
        for sql in [
            "INSERT INTO members VALUES (4, 'TX')",
            "CREATE TABLE t (x int)",
            "EXPLAIN ANALYZE INSERT INTO members VALUES (4, 'TX')",
        ] {
            let err = session.run(sql).await.err().unwrap();
            assert_eq!(err.sqlstate(), "25006", "{sql}: {err}");
        }
    }
}

#[tokio::test]
async fn only_postgres_sessions_get_pg_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path()).await;
    let mut pg = open(&service, true);
    let mut outputs = pg
        .run("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'members'")
        .await
        .unwrap();
    assert_eq!(column(outputs.remove(0)).await, ["1"]);
    let mut flight = open(&service, false);
    assert!(flight
        .run("SELECT count(*) FROM pg_catalog.pg_class")
        .await
        .is_err());
    // DataFusion's own information_schema answers Flight SQL sessions.
    let mut outputs = flight
        .run("SELECT count(*) FROM information_schema.tables WHERE table_name = 'members'")
        .await
        .unwrap();
    let QueryOutput::Rows(stream) = outputs.remove(0) else {
        panic!("expected rows");
    };
    let batches = collect(stream).await.unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 1);
}
