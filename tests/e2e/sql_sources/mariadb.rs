//! MariaDB sources: types round-trip, and filters, aggregates and limits
//! reach MariaDB (checked in what it received).

use super::*;

#[tokio::test]
async fn mariadb_types_round_trip() {
    let db = MariaDatabase::create("mg_mtypes");
    db.exec(
        "CREATE TABLE everything (
           id int PRIMARY KEY, ti tinyint, si smallint, bi bigint, de decimal(12,3), fl float, db double,
           vc varchar(20), tx text, d date, dt datetime, tm time, bl blob, js json,
           en enum('sad','ok','happy'), bo boolean);
         INSERT INTO everything VALUES
           (1, -128, -32768, 9007199254740993, 123456789.125, 1.5, 2.25, 'varchar', 'héllo',
            '2024-02-29', '2024-02-29 13:45:10', '13:45:10', X'DEADBEEF', '{\"a\": 1}', 'happy', true),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let block = db.catalog_toml("shop", "");
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("shop").await;
    let sql = format!(
        "SELECT id, ti, si, bi, de, fl, db, vc, tx, d, dt, tm, bl, js, en, bo FROM shop.{}.everything ORDER BY id",
        db.name
    );
    let got = rows(&client.simple_query(&sql).await.unwrap());
    let first: Vec<&str> = got[0].iter().map(cell).collect();
    assert_eq!(
        first,
        [
            "1",
            "-128",
            "-32768",
            "9007199254740993",
            "123456789.125",
            "1.5",
            "2.25",
            "varchar",
            "héllo",
            "2024-02-29",
            "2024-02-29 13:45:10",
            "13:45:10",
            "\\xdeadbeef",
            "{\"a\": 1}",
            "happy",
            "1",
        ]
    );
    assert!(got[1][1..].iter().all(Option::is_none), "{:?}", got[1]);
}

#[tokio::test]
async fn mariadb_receives_filters_aggregates_and_limits() {
    let db = MariaDatabase::create("mg_mpush");
    products_in_mariadb(&db);
    let block = db.catalog_toml("shop", "");
    let mesh = TestMesh::start_with(|c| c.push_str(&block)).await;
    let client = mesh.connect("shop").await;
    let query = format!(
        "SELECT category, count(*) AS n FROM shop.{}.products
          WHERE name LIKE 'product %' AND product_id IN (1, 2, 3, 4, 5, 6) AND NOT category IS NULL
          GROUP BY category ORDER BY category",
        db.name
    );
    let remote = remote_statements(&client, &query)
        .await
        .pop()
        .expect("remote plan in EXPLAIN");
    assert!(
        remote.contains("GROUP BY") && remote.contains("LIKE"),
        "{remote}"
    );

    let general_log = mysql_general_log().await;
    let got = rows(&client.simple_query(&query).await.unwrap());
    let logged = meshgate_tests::mysql_exec(
        "",
        &format!(
            "SELECT argument FROM mysql.general_log WHERE argument LIKE '%GROUP BY%' AND argument LIKE '%{}%'",
            db.name
        ),
    );
    drop(general_log);
    assert_eq!(
        got,
        vec![
            vec![Some("garden".into()), Some("2".into())],
            vec![Some("kitchen".into()), Some("2".into())],
            vec![Some("tools".into()), Some("2".into())],
        ]
    );
    println!("MariaDB general log:\n{logged}");
    assert!(
        logged.contains("GROUP BY") && logged.contains("LIKE"),
        "{logged}"
    );
}
