//! How meshgate reaches a PostgreSQL source: over TCP, or over the
//! server's Unix-domain socket when `host` is a socket directory (a
//! co-located database, as libpq takes it).

use meshgate_tests::{simple_rows, PgDatabase, TestMesh};

#[tokio::test]
async fn a_socket_directory_as_host_reaches_postgres_without_tcp() {
    let db = PgDatabase::create("mg_socket").await;
    db.client
        .batch_execute(
            "CREATE TABLE readings (id int PRIMARY KEY, site text NOT NULL, value float8);
             INSERT INTO readings SELECT g, 'site' || (g % 3), g * 1.5
             FROM generate_series(1, 30) g;",
        )
        .await
        .unwrap();
    let dirs: String = db
        .client
        .query_one("SHOW unix_socket_directories", &[])
        .await
        .unwrap()
        .get(0);
    let dir = dirs.split(',').next().unwrap_or("").trim().to_owned();
    assert!(
        dir.starts_with('/'),
        "the server listens on no socket: {dirs:?}"
    );
    let catalog = db
        .catalog_toml("pg", 5432, "")
        .replace("host = \"127.0.0.1\"", &format!("host = \"{dir}\""));
    let mesh = TestMesh::start_with(|c| c.push_str(&catalog)).await;
    let client = mesh.connect("pg").await;

    // A prepared lookup (sent whole to the source) ...
    let by_id = client
        .prepare("SELECT site, value FROM pg.public.readings WHERE id = $1")
        .await
        .unwrap();
    let row = client.query_one(&by_id, &[&7i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "site1");
    assert_eq!(row.get::<_, f64>(1), 10.5);
    // ... and a query DataFusion plans (a join with a local value list).
    let sites = simple_rows(
        &client
            .simple_query(
                "SELECT r.site, count(*), w.weight FROM pg.public.readings r \
                 JOIN (VALUES ('site0', 2), ('site2', 5)) AS w(site, weight) ON w.site = r.site \
                 GROUP BY r.site, w.weight ORDER BY r.site",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        sites,
        [["site0", "10", "2"], ["site2", "10", "5"]].map(|r| r.map(|v| Some(v.to_owned())))
    );

    // Every connection meshgate holds to this database came over the
    // socket (no client address), none over TCP.
    let peers: Vec<Option<String>> = db
        .client
        .query(
            "SELECT client_addr::text FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'meshgate'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!peers.is_empty(), "meshgate holds no connection");
    assert!(peers.iter().all(Option::is_none), "{peers:?}");
}
