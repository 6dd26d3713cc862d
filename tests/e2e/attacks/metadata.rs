//! Attacks on metadata: what a restricted user learns from role, schema
//! and catalog listings (F14), from EXPLAIN (F12), from administrative
//! procedures, and whether a source password ever leaves the gateway.

use std::process::Command;

use datafusion::arrow::util::display::array_value_to_string;
use meshgate_tests::{pg_port, unique_name, PgDatabase};

use super::*;

/// [`ATTACK_POLICY`]'s users, with groups, and `providers` for admin only.
const LISTING_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[groups]
analysts = ["analyst"]
staff = ["analyst", "admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["members.public.members", "claims.public.*"]

[[grants]]
effect = "allow"
principals = ["user:admin"]
tables = ["providers.public.*"]
"#;

/// Every value of a query's rows, or the error's full text.
async fn pg_text(client: &Client, sql: &str) -> Result<Vec<String>, String> {
    match simple_rows(client, sql).await {
        Ok(rows) => Ok(rows.into_iter().flatten().flatten().collect()),
        Err(e) => Err(format!(
            "{e} {e:?} {}",
            e.as_db_error().map(|d| d.message()).unwrap_or_default()
        )),
    }
}

/// The first column of a query, in order.
async fn column(client: &Client, sql: &str) -> Vec<String> {
    simple_rows(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .map(|row| row[0].clone().unwrap_or_default())
        .collect()
}

fn batch_values(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for column in batch.columns() {
            for row in 0..batch.num_rows() {
                out.push(array_value_to_string(column, row).unwrap());
            }
        }
    }
    out
}

/// Every value of a Flight SQL query's rows, or the error.
async fn flight_text(mesh: &AttackMesh, user: &str, sql: &str) -> Result<Vec<String>, String> {
    let mut client = flight(mesh, user).await;
    flight_query(&mut client, sql)
        .await
        .map(|b| batch_values(&b))
        .map_err(|e| format!("{e} {e:?}"))
}

/// One text column of a Flight SQL metadata answer.
async fn flight_column(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    info: arrow_flight::FlightInfo,
    column: usize,
) -> Vec<String> {
    use datafusion::arrow::array::AsArray;
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        for batch in batches {
            let values = batch.column(column).as_string::<i32>();
            out.extend(values.iter().flatten().map(str::to_owned));
        }
    }
    out
}

/// The catalogs, and the schemas of `catalog`, Flight SQL lists for `user`.
async fn flight_listings(
    mesh: &AttackMesh,
    user: &str,
    catalog: &str,
) -> (Vec<String>, Vec<String>) {
    let mut client = flight(mesh, user).await;
    let info = client.get_catalogs().await.unwrap();
    let catalogs = flight_column(&mut client, info, 0).await;
    let info = client
        .get_db_schemas(arrow_flight::sql::CommandGetDbSchemas {
            catalog: Some(catalog.into()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = flight_column(&mut client, info, 1).await;
    (catalogs, schemas)
}

#[tokio::test]
async fn roles_show_a_user_only_themselves_and_their_groups() {
    let mesh = attack_mesh_with(LISTING_POLICY, |_| {}).await;
    let analyst = mesh.pg("analyst").await;
    let roles = "SELECT rolname FROM pg_catalog.pg_roles ORDER BY rolname";
    assert_eq!(
        column(&analyst, roles).await,
        ["analyst", "analysts", "staff"]
    );
    assert_eq!(
        column(&analyst, "SELECT usename FROM pg_user").await,
        ["analyst"]
    );
    assert_eq!(
        column(&analyst, "SELECT rolname FROM pg_authid ORDER BY 1").await,
        ["analyst", "analysts", "staff"]
    );
    assert_eq!(
        column(&analyst, "SELECT groname FROM pg_group ORDER BY 1").await,
        ["analysts", "staff"]
    );
    // Memberships join with pg_roles by OID, as clients read them.
    let member_of = "SELECT g.rolname FROM pg_auth_members m \
                     JOIN pg_roles g ON m.roleid = g.oid \
                     JOIN pg_roles u ON m.member = u.oid \
                     WHERE u.rolname = 'analyst' ORDER BY 1";
    assert_eq!(column(&analyst, member_of).await, ["analysts", "staff"]);

    let intruder = mesh.pg("intruder").await;
    assert_eq!(column(&intruder, roles).await, ["intruder"]);
    for sql in [
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('admin', 'analyst', 'staff')",
        "SELECT count(*) FROM pg_auth_members",
        "SELECT count(*) FROM pg_group",
        "SELECT count(*) FROM pg_user WHERE usename <> 'intruder'",
    ] {
        assert_eq!(column(&intruder, sql).await, ["0"], "{sql}");
    }

    let admin = mesh.pg("admin").await;
    let all = column(&admin, roles).await;
    for role in ["admin", "analyst", "analysts", "intruder", "staff"] {
        assert!(all.contains(&role.to_owned()), "{role} in {all:?}");
    }
    assert_eq!(
        column(
            &admin,
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'admin'"
        )
        .await,
        ["t"]
    );
    mesh.assert_serving().await;
}

/// psql's `\du` or `\dg` as `user`: (success, stdout, stderr).
fn psql_meta(mesh: &AttackMesh, user: &str, command: &str) -> (bool, String, String) {
    let addr = mesh.mesh.pgwire_addr();
    let output = Command::new("psql")
        .arg(format!(
            "host={} port={} user={user} dbname=members",
            addr.ip(),
            addr.port()
        ))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", command])
        .env("PGPASSWORD", password(user))
        .output()
        .expect("psql is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_du_and_dg_list_only_the_user_and_their_groups() {
    let mesh = attack_mesh_with(LISTING_POLICY, |_| {}).await;
    let mesh_ref = &mesh;
    tokio::task::block_in_place(|| {
        for command in ["\\du", "\\dg"] {
            let (ok, out, err) = psql_meta(mesh_ref, "analyst", command);
            assert!(ok, "{command}: {err}");
            let names: Vec<&str> = out
                .lines()
                .filter_map(|l| l.split('|').next())
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.starts_with('-') && *n != "Role name")
                .collect();
            assert!(names.contains(&"analyst"), "{command}: {out}");
            for hidden in ["admin", "intruder"] {
                assert!(!names.contains(&hidden), "{command} shows {hidden}: {out}");
            }
            // The groups are listed, and analyst is a member of both.
            assert!(out.contains("analysts") && out.contains("staff"), "{out}");
            let analyst_line = out
                .lines()
                .find(|l| l.trim_start().starts_with("analyst "))
                .unwrap_or_else(|| panic!("{out}"));
            assert!(analyst_line.contains("{analysts,staff}"), "{analyst_line}");
        }
        let (ok, out, err) = psql_meta(mesh_ref, "intruder", "\\du");
        assert!(ok, "{err}");
        assert!(out.contains("intruder"), "{out}");
        assert!(!out.contains("analyst") && !out.contains("admin"), "{out}");
    });
    mesh.assert_serving().await;
}

#[tokio::test]
async fn current_user_names_its_column_as_postgresql_does() {
    let mesh = attack_mesh().await;
    let analyst = mesh.pg("analyst").await;
    let sql = "SELECT current_user, session_user, current_role, current_user AS me";
    let statement = analyst.prepare(sql).await.unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        ["current_user", "session_user", "current_role", "me"]
    );
    let row = analyst.query_one(&statement, &[]).await.unwrap();
    for i in 0..4 {
        assert_eq!(row.get::<_, String>(i), "analyst");
    }
    // In a predicate the register is the session's user too.
    let rows = column(&analyst, "SELECT 1 WHERE current_role = 'analyst'").await;
    assert_eq!(rows, ["1"]);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn schemas_and_catalogs_are_listed_as_the_policy_allows() {
    let mesh = attack_mesh_with(LISTING_POLICY, |_| {}).await;
    let schemata = "SELECT catalog_name || '.' || schema_name \
                    FROM information_schema.schemata ORDER BY 1";
    let databases = "SELECT datname FROM pg_database ORDER BY 1";
    let namespaces = "SELECT nspname FROM pg_namespace ORDER BY 1";

    let analyst = mesh.pg("analyst").await;
    let seen = column(&analyst, schemata).await;
    assert!(seen.contains(&"members.public".to_owned()), "{seen:?}");
    assert!(seen.contains(&"claims.public".to_owned()), "{seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with("providers")), "{seen:?}");
    // `postgres`, PostgreSQL's default database, is always listed.
    assert_eq!(
        column(&analyst, databases).await,
        ["claims", "members", "postgres"]
    );
    let (catalogs, schemas) = flight_listings(&mesh, "analyst", "providers").await;
    assert_eq!(catalogs, ["claims", "members"]);
    assert!(schemas.is_empty(), "{schemas:?}");

    let intruder = mesh.pg("intruder").await;
    let seen = column(&intruder, schemata).await;
    assert!(!seen.iter().any(|s| s.ends_with(".public")), "{seen:?}");
    let names = column(&intruder, namespaces).await;
    assert!(!names.contains(&"public".to_owned()), "{names:?}");
    let dbs = column(&intruder, databases).await;
    assert!(
        !dbs.iter().any(|d| d == "claims" || d == "providers"),
        "{dbs:?}"
    );
    let (catalogs, schemas) = flight_listings(&mesh, "intruder", "members").await;
    assert!(catalogs.is_empty(), "{catalogs:?}");
    assert!(!schemas.contains(&"public".to_owned()), "{schemas:?}");
    // A hidden catalog reads exactly as one that does not exist.
    let hidden = pg_text(&analyst, "SELECT * FROM providers.public.providers").await;
    let absent = pg_text(&analyst, "SELECT * FROM nosuchcat.public.providers").await;
    assert_eq!(
        hidden
            .unwrap_err()
            .replace("providers.public.providers", "X")
            .replace("providers", "C"),
        absent
            .unwrap_err()
            .replace("nosuchcat.public.providers", "X")
            .replace("nosuchcat", "C")
    );

    let admin = mesh.pg("admin").await;
    assert_eq!(
        column(&admin, databases).await,
        ["claims", "members", "postgres", "providers", "system"]
    );
    let (catalogs, schemas) = flight_listings(&mesh, "admin", "providers").await;
    assert!(catalogs.contains(&"providers".to_owned()), "{catalogs:?}");
    assert!(schemas.contains(&"public".to_owned()), "{schemas:?}");
    mesh.assert_serving().await;
}

#[tokio::test]
async fn refresh_catalog_is_for_policy_admins_only() {
    let mesh = attack_mesh().await;
    let call = "CALL system.refresh_catalog('members')";
    for user in ["intruder", "analyst"] {
        let client = mesh.pg(user).await;
        assert_eq!(sqlstate(&client, call).await, "42501", "{user}");
        let err = flight_text(&mesh, user, call).await.unwrap_err();
        assert!(err.contains("[42501]"), "{user}: {err}");
    }
    let admin = mesh.pg("admin").await;
    simple_rows(&admin, call).await.expect("admins refresh");
    // Without a policy nothing is restricted, this procedure included.
    let open = TestMesh::start().await;
    let client = open.connect("members").await;
    client.simple_query(call).await.expect("no policy: anyone");
    mesh.assert_serving().await;
}

/// The policy of the EXPLAIN test: filters and a mask on a file table and
/// on a PostgreSQL table, plus an unrestricted PostgreSQL table.
const EXPLAIN_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["members.public.members", "claims.public.*", "sales.public.*"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["members.public.members"]
filter = "state <> 'NY'"

[[row_filters]]
principals = ["user:analyst"]
tables = ["sales.public.accounts"]
filter = "region <> 'hidden-region'"

[[masks]]
principals = ["*"]
tables = ["members.public.members"]
column = "last_name"
mask = "'***'"
"#;

async fn sales_database(prefix: &str) -> PgDatabase {
    let db = PgDatabase::create(prefix).await;
    db.client
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text, region text);
             INSERT INTO accounts VALUES (1, 'ann', 'north'), (2, 'bob', 'hidden-region');
             CREATE TABLE regions (name text);
             INSERT INTO regions VALUES ('north');",
        )
        .await
        .unwrap();
    db
}

const EXPLAINS: &[&str] = &[
    "EXPLAIN SELECT * FROM members.public.members WHERE member_id > 0",
    "EXPLAIN VERBOSE SELECT member_id, last_name FROM members.public.members",
    "EXPLAIN ANALYZE SELECT count(*) FROM members.public.members",
    "EXPLAIN SELECT * FROM claims.public.claims",
    "EXPLAIN SELECT owner FROM sales.public.accounts WHERE id > 0",
    "EXPLAIN VERBOSE SELECT * FROM sales.public.accounts",
    "EXPLAIN SELECT * FROM sales.public.regions",
    "EXPLAIN VERBOSE SELECT r.name FROM sales.public.regions r JOIN members.public.members m ON r.name = m.state",
    "EXPLAIN ANALYZE SELECT r.name FROM sales.public.regions r JOIN members.public.members m ON r.name = m.state",
];

#[tokio::test]
async fn explain_hides_connections_paths_and_policy_from_non_admins() {
    let db = sales_database("mg_explain").await;
    let block = db.catalog_toml("sales", pg_port(), "");
    let mesh = attack_mesh_with(EXPLAIN_POLICY, |c| c.push_str(&block)).await;
    // Object stores print paths without the leading `/`.
    let data_dir = mesh.mesh.data_dir().canonicalize().unwrap();
    let data_dir = data_dir
        .to_string_lossy()
        .trim_start_matches('/')
        .to_owned();
    let forbidden = [
        data_dir.as_str(),
        "file://",
        "127.0.0.1",
        "5432",
        db.name.as_str(),
        "user=postgres",
        "NY",
        "***",
        "hidden-region",
    ];
    let analyst = mesh.pg("analyst").await;
    let mut seen = String::new();
    for sql in EXPLAINS {
        let pg = pg_text(&analyst, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let fl = flight_text(&mesh, "analyst", sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        for text in [pg.join("\n"), fl.join("\n")] {
            for secret in forbidden {
                assert!(!text.contains(secret), "{sql} shows `{secret}`:\n{text}");
            }
            seen.push_str(&text);
        }
    }
    assert!(seen.contains("<policy>"), "{seen}");
    assert!(seen.contains("compute_context=<hidden>"), "{seen}");
    assert!(seen.contains("file_groups=<hidden>"), "{seen}");
    // The user's own query stays readable.
    assert!(seen.contains("member_id"), "{seen}");

    // Admins see everything, their own policy predicates included.
    let admin = mesh.pg("admin").await;
    let mut admin_seen = String::new();
    for sql in EXPLAINS {
        admin_seen.push_str(&pg_text(&admin, sql).await.unwrap().join("\n"));
    }
    for shown in [
        data_dir.as_str(),
        db.name.as_str(),
        "***",
        "PolicyBarrierExec",
    ] {
        assert!(
            admin_seen.contains(shown),
            "admin misses `{shown}`:\n{admin_seen}"
        );
    }
    assert!(!admin_seen.contains("<policy>"), "{admin_seen}");
    mesh.assert_serving().await;
}

/// Log lines of the gateways in this test process while [`CAPTURING`],
/// written through the gateway's redacting writer (installed once, before
/// the test's gateway starts; meshgate and source-driver crates at debug).
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Sink(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                if CAPTURING.load(std::sync::atomic::Ordering::Relaxed) {
                    self.0.lock().unwrap().extend_from_slice(b);
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let writer = meshgate_gateway::log_redaction::RedactingWriter::new(move || Sink(logs));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,meshgate_gateway=debug,meshgate_planner=debug,meshgate_connectors=debug,\
                 datafusion_table_providers=debug,datafusion_table_providers_postgres=debug,\
                 datafusion_federation=debug",
            ))
            .with_writer(writer)
            .try_init();
        logs
    })
}

static CAPTURING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Statements run as every user, over pgwire and Flight SQL.
const PROBES: &[&str] = &[
    "SELECT * FROM sales.public.accounts",
    "EXPLAIN SELECT * FROM sales.public.accounts",
    "EXPLAIN VERBOSE SELECT * FROM sales.public.accounts",
    "EXPLAIN ANALYZE SELECT owner FROM sales.public.accounts",
    "SELECT nope FROM sales.public.accounts",
    "SELECT * FROM broken.public.accounts",
    "EXPLAIN SELECT * FROM broken.public.accounts",
    "SHOW ALL",
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.columns",
    "SELECT * FROM information_schema.schemata",
    "SELECT * FROM pg_catalog.pg_roles",
    "SELECT * FROM pg_catalog.pg_user",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM pg_catalog.pg_database",
    "SELECT * FROM pg_catalog.pg_class",
    "CALL system.refresh_catalog('broken')",
    "CALL system.refresh_catalog('sales')",
    "SELECT * FROM system.audit.queries",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_password_never_leaves_the_gateway() {
    let logs = captured_logs();
    CAPTURING.store(true, std::sync::atomic::Ordering::Relaxed);
    let db = sales_database("mg_secret").await;
    let role = unique_name("mg_reader");
    let secret = format!("Pw-{}-Zq9", unique_name("recognisable"));
    // Through psql, so that no client in this process logs the password.
    let created = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db.name, "-qc"])
        .arg(format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{secret}'; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .output()
        .expect("psql is installed");
    assert!(created.status.success(), "{created:?}");
    let catalog = |name: &str, host: &str| {
        format!(
            "\n[catalogs.{name}]\nconnector = \"postgres\"\nhost = \"{host}\"\nport = {}\n\
             user = \"{role}\"\npassword = \"{secret}\"\ndatabase = \"{}\"\n\
             sslmode = \"disable\"\nconnect_timeout_secs = 2\n",
            pg_port(),
            db.name
        )
    };
    let blocks = catalog("sales", "127.0.0.1") + &catalog("broken", "no-such-host.invalid");
    let policy = EXPLAIN_POLICY.replace("\"sales.public.*\"", "\"sales.public.*\", \"broken.*\"");
    let mesh = attack_mesh_with(&policy, |c| c.push_str(&blocks)).await;

    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut answered = 0;
    for user in ["admin", "analyst", "intruder"] {
        let client = mesh.pg(user).await;
        for sql in PROBES {
            let pg = pg_text(&client, sql).await;
            answered += usize::from(pg.is_ok());
            let pg = pg.map(|v| v.join("\n")).unwrap_or_else(|e| e);
            let fl = flight_text(&mesh, user, sql).await;
            let fl = fl.map(|v| v.join("\n")).unwrap_or_else(|e| e);
            outputs.push((format!("{user} pgwire {sql}"), pg));
            outputs.push((format!("{user} flight {sql}"), fl));
        }
    }
    // The source was really used with the password, and the broken one
    // really failed (so both paths ran).
    let admin_rows = &outputs[0].1;
    assert!(admin_rows.contains("ann"), "{admin_rows}");
    let broken = outputs
        .iter()
        .find(|(what, _)| what == "admin pgwire SELECT * FROM broken.public.accounts")
        .unwrap();
    assert!(
        broken.1.contains("broken") || broken.1.contains("no-such-host"),
        "{broken:?}"
    );
    assert!(answered > PROBES.len(), "too few statements answered");

    let config = meshgate_gateway::Config::load(&mesh.mesh.config_path).unwrap();
    outputs.push(("Debug of the configuration".into(), format!("{config:?}")));
    outputs.push(("audit log".into(), mesh.audit_text()));
    CAPTURING.store(false, std::sync::atomic::Ordering::Relaxed);
    let log_text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(log_text.contains("catalog"), "the log was captured");
    outputs.push(("log".into(), log_text));
    for (what, text) in &outputs {
        assert!(
            !text.contains(&secret),
            "{what} shows the password:\n{text}"
        );
    }
    mesh.assert_serving().await;
    drop(mesh);
    let _ = db
        .client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
}
