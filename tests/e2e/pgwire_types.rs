//! Every supported type, in text (simple query) and binary (extended query) format.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use meshgate_tests::TestMesh;
use rust_decimal::Decimal;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

const ALL_TYPES: &str = "SELECT \
    true AS b, \
    CAST(-2 AS SMALLINT) AS i2, \
    CAST(123456 AS INT) AS i4, \
    CAST(9000000000 AS BIGINT) AS i8, \
    CAST(1.5 AS REAL) AS f4, \
    CAST(-2.25 AS DOUBLE) AS f8, \
    CAST(12345.67 AS DECIMAL(10,2)) AS num, \
    'héllo' AS t, \
    CAST('v' AS VARCHAR) AS vc, \
    DATE '2025-01-31' AS d, \
    TIMESTAMP '2025-01-31 13:45:06.5' AS ts, \
    CAST(TIMESTAMP '2025-01-31 13:45:06' AS TIMESTAMP WITH TIME ZONE) AS tstz, \
    X'DEADBEEF' AS bin, \
    CAST(NULL AS INT) AS nothing";

#[tokio::test]
async fn binary_format_round_trips_every_type() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let stmt = client.prepare(ALL_TYPES).await.unwrap();
    let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::TEXT,
            Type::TEXT,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::BYTEA,
            Type::INT4,
        ]
    );
    // tokio-postgres asks for binary results on extended queries.
    let row = client.query_one(&stmt, &[]).await.unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), -2);
    assert_eq!(row.get::<_, i32>("i4"), 123456);
    assert_eq!(row.get::<_, i64>("i8"), 9_000_000_000);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), -2.25);
    assert_eq!(row.get::<_, Decimal>("num"), Decimal::new(1234567, 2));
    assert_eq!(row.get::<_, String>("t"), "héllo");
    assert_eq!(row.get::<_, String>("vc"), "v");
    assert_eq!(
        row.get::<_, NaiveDate>("d"),
        NaiveDate::from_ymd_opt(2025, 1, 31).unwrap()
    );
    assert_eq!(
        row.get::<_, NaiveDateTime>("ts"),
        NaiveDate::from_ymd_opt(2025, 1, 31)
            .unwrap()
            .and_hms_milli_opt(13, 45, 6, 500)
            .unwrap()
    );
    assert_eq!(
        row.get::<_, DateTime<Utc>>("tstz").to_rfc3339(),
        "2025-01-31T13:45:06+00:00"
    );
    assert_eq!(row.get::<_, Vec<u8>>("bin"), vec![0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(row.get::<_, Option<i32>>("nothing"), None);
}

#[tokio::test]
async fn text_format_renders_every_type_like_postgresql() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("members").await;
    let messages = client.simple_query(ALL_TYPES).await.unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("one row");
    let text: Vec<Option<&str>> = (0..row.len()).map(|i| row.get(i)).collect();
    assert_eq!(
        text,
        vec![
            Some("t"),
            Some("-2"),
            Some("123456"),
            Some("9000000000"),
            Some("1.5"),
            Some("-2.25"),
            Some("12345.67"),
            Some("héllo"),
            Some("v"),
            Some("2025-01-31"),
            Some("2025-01-31 13:45:06.5"),
            Some("2025-01-31 13:45:06+00"),
            Some("\\xdeadbeef"),
            None,
        ]
    );
}

#[tokio::test]
async fn table_columns_carry_their_types() {
    let mesh = TestMesh::start().await;
    let client = mesh.connect("claims").await;
    let stmt = client
        .prepare("SELECT claim_id, provider_id, service_date, amount, status FROM claims LIMIT 1")
        .await
        .unwrap();
    let types: Vec<&Type> = stmt.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types,
        vec![
            &Type::INT8,
            &Type::INT4,
            &Type::DATE,
            &Type::NUMERIC,
            &Type::TEXT
        ]
    );
}
