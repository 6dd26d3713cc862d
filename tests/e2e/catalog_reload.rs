//! Catalogs without a restart: an edit of the configuration file's
//! `[catalogs]` takes effect on the admin API's ReloadCatalogs or SIGHUP;
//! an invalid edit is refused and the catalogs in force keep serving;
//! sessions already open see the new set at their next statement, and
//! what the policy hides in a new catalog stays hidden.

use std::process::Command;
use std::time::Duration;

use crate::attacks::{admin_client, attack_mesh_with, password, simple_rows};

/// The analyst reads the members and the new catalog's `shown` table, not
/// its `hidden` one; the admin reads everything.
const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["members.*", "providers.*", "extra.public.shown"]

[[grants]]
effect = "allow"
principals = ["user:admin"]
tables = ["*"]
"#;

/// A files catalog `extra` over two CSV files in `dir`.
fn extra_catalog(dir: &std::path::Path, shown: &str) -> String {
    format!(
        "\n[catalogs.extra]\nconnector = \"files\"\nroot = \"{}\"\n\
         [catalogs.extra.tables.shown]\npath = \"{shown}\"\nformat = \"csv\"\nheader = true\n\
         [catalogs.extra.tables.hidden]\npath = \"hidden.csv\"\nformat = \"csv\"\nheader = true\n",
        dir.display()
    )
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

fn count(rows: &[Vec<Option<String>>]) -> &str {
    rows[0][0].as_deref().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_reload_through_the_admin_api_and_open_sessions_follow() {
    let mesh = attack_mesh_with(POLICY, |_| {}).await;
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("one.csv"), "id,name\n1,a\n2,b\n").unwrap();
    std::fs::write(data.path().join("two.csv"), "id,name\n1,a\n2,b\n3,c\n").unwrap();
    std::fs::write(data.path().join("hidden.csv"), "id,secret\n1,s3cr3t\n").unwrap();
    let config = mesh.mesh.config_path.clone();
    let original = std::fs::read_to_string(&config).unwrap();

    // Sessions opened before the reload.
    let analyst = mesh.pg("analyst").await;
    let admin_pg = mesh.pg("admin").await;
    let prepared = analyst
        .prepare("SELECT count(*) FROM members.public.members")
        .await
        .unwrap();
    let err = simple_rows(&analyst, "SELECT count(*) FROM extra.public.shown")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01", "{err}");
    // A session whose own database is about to go.
    let on_providers = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "providers")
        .await
        .unwrap();
    simple_rows(&on_providers, "SELECT 1").await.unwrap();

    // Only a policy admin may reload.
    let refused = admin_client(&mesh, "analyst")
        .await
        .reload_catalogs()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // Add a catalog, remove one.
    let without_providers =
        remove_catalog(&original, "providers") + &extra_catalog(data.path(), "one.csv");
    std::fs::write(&config, &without_providers).unwrap();
    let mut admin = admin_client(&mesh, "admin").await;
    let changes = admin.reload_catalogs().await.unwrap();
    assert_eq!(changes.added, ["extra"]);
    assert_eq!(changes.removed, ["providers"]);
    assert!(changes.changed.is_empty(), "{changes:?}");

    // The open session sees the new set at its next statement.
    let rows = simple_rows(&analyst, "SELECT count(*) FROM extra.public.shown")
        .await
        .unwrap();
    assert_eq!(count(&rows), "2");
    let err = simple_rows(&analyst, "SELECT count(*) FROM providers.public.providers")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01", "{err}");
    // The session on the removed database is told at its next statement,
    // as is a new connection to it; the others go on.
    let err = simple_rows(&on_providers, "SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "3D000", "{err}");
    let Err(err) = mesh
        .mesh
        .connect_as("analyst", &password("analyst"), "providers")
        .await
    else {
        panic!("a connection to a removed database");
    };
    assert_eq!(sqlstate(&err), "3D000", "{err}");
    // What the policy hides in the new catalog stays hidden, and unlisted.
    let err = simple_rows(&analyst, "SELECT * FROM extra.public.hidden")
        .await
        .unwrap_err();
    assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
    let tables = simple_rows(
        &analyst,
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'extra' AND table_schema = 'public' ORDER BY 1",
    )
    .await
    .unwrap();
    assert_eq!(tables, [[Some("shown".to_owned())]]);
    let rows = simple_rows(&admin_pg, "SELECT count(*) FROM extra.public.hidden")
        .await
        .unwrap();
    assert_eq!(count(&rows), "1");
    // A statement prepared before the reload still runs (planned again).
    let rows = analyst.query(&prepared, &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 200);

    // A changed catalog: its new files are read, by open sessions too.
    std::fs::write(
        &config,
        remove_catalog(&without_providers, "extra") + &extra_catalog(data.path(), "two.csv"),
    )
    .unwrap();
    let changes = admin.reload_catalogs().await.unwrap();
    assert_eq!(changes.changed, ["extra"], "{changes:?}");
    let rows = simple_rows(&analyst, "SELECT count(*) FROM extra.public.shown")
        .await
        .unwrap();
    assert_eq!(count(&rows), "3");

    // Invalid edits are refused, naming the file, the key and the problem;
    // the catalogs in force keep serving.
    let served = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        served.clone() + "\n[catalogs.broken]\nconnector = \"nope\"\n",
    )
    .unwrap();
    let err = admin.reload_catalogs().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("catalogs.broken.connector")
            && err.message().contains(&config.display().to_string()),
        "{err}"
    );
    // A catalog that validates but cannot be built (no Delta table there).
    std::fs::write(
        &config,
        served.clone()
            + &format!(
                "\n[catalogs.broken]\nconnector = \"delta\"\nroot = \"{}\"\n[catalogs.broken.tables.t]\npath = \"no_such_table\"\n",
                data.path().display()
            ),
    )
    .unwrap();
    let err = admin.reload_catalogs().await.unwrap_err();
    assert!(err.message().contains("broken"), "{err}");
    let rows = simple_rows(&analyst, "SELECT count(*) FROM extra.public.shown")
        .await
        .unwrap();
    assert_eq!(count(&rows), "3");
    let err = simple_rows(&analyst, "SELECT 1 FROM broken.public.t")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01", "{err}");

    // Every reload call is audited, refusals included.
    let audit = mesh.audit_text();
    assert!(
        audit.contains("admin ReloadCatalogs") && audit.contains("\"denied\""),
        "{audit}"
    );
    mesh.assert_serving().await;
}

/// `text` without the `[catalogs.NAME]` section and its sub-tables.
fn remove_catalog(text: &str, name: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    let header = format!("[catalogs.{name}]");
    let sub = format!("[catalogs.{name}.");
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line == header || line.starts_with(&sub);
        }
        if !skipping {
            out.push(line);
        }
    }
    out.join("\n") + "\n"
}

/// The `meshgate` binary reloads its catalogs on SIGHUP; an open session
/// sees the added catalog at its next statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_catalogs_of_a_running_binary() {
    let bin = tokio::task::spawn_blocking(crate::ops::meshgate_binary)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.csv"), "id,name\n1,a\n2,b\n").unwrap();
    std::fs::write(dir.path().join("hidden.csv"), "id,secret\n1,x\n").unwrap();
    let (mut child, config) = crate::ops::serve_demo_binary(&bin, dir.path(), "", false).await;
    let lines = crate::ops::log_lines(child.stderr.take().unwrap());
    let (addr, _) = crate::ops::logged_address(&lines, "pgwire");
    let conn = format!(
        "host={} port={} user={} password={} dbname=members",
        addr.ip(),
        addr.port(),
        meshgate_gateway::demo::DEMO_USER,
        meshgate_gateway::demo::DEMO_PASSWORD
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    assert!(
        simple_rows(&client, "SELECT count(*) FROM extra.public.shown")
            .await
            .is_err()
    );

    let text = std::fs::read_to_string(&config).unwrap() + &extra_catalog(dir.path(), "one.csv");
    std::fs::write(&config, text).unwrap();
    // The shell's own `kill` (no procps needed).
    let status = Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let mut seen = None;
    for _ in 0..100 {
        if let Ok(rows) = simple_rows(&client, "SELECT count(*) FROM extra.public.shown").await {
            seen = Some(rows);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = seen.expect("the new catalog is served after SIGHUP");
    assert_eq!(count(&rows), "2");
    // Still serving the old catalogs, on the same connection.
    let rows = simple_rows(&client, "SELECT count(*) FROM members.public.members")
        .await
        .unwrap();
    assert_eq!(count(&rows), "200");
    child.kill().unwrap();
    child.wait().unwrap();
}
