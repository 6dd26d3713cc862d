//! Python clients (from PyPI, installed by `.ci/run` into a virtualenv) and
//! node-postgres (from npm, installed by `.ci/run` into `tests/node`) against a
//! live gateway. Their test output goes straight to the test log.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use meshgate_tests::TestMesh;

/// The Python with the client libraries: `$MESHGATE_PYTHON`, else the
/// virtualenv `.ci/run` creates.
pub(crate) fn python() -> PathBuf {
    let python = std::env::var_os("MESHGATE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/meshgate/venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} not found: run .ci/run once (it creates the virtualenv with the Python clients) or set MESHGATE_PYTHON",
        python.display()
    );
    python
}

pub(crate) fn pytest(file: &str, env: &[(&str, String)]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python");
    let mut cmd = Command::new(python());
    cmd.args(["-m", "pytest", "-v", "-p", "no:cacheprovider", file])
        .current_dir(&dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("run pytest");
    assert!(
        status.success(),
        "pytest {file} failed (see its output above)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_flight_sql() {
    let mesh = TestMesh::start().await;
    let uri = format!("grpc://{}", mesh.flight_sql_addr());
    tokio::task::spawn_blocking(move || pytest("test_adbc.py", &[("MESHGATE_FLIGHT_URI", uri)]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_drivers() {
    let mesh = TestMesh::start().await;
    let addr = mesh.pgwire_addr();
    let env = vec![
        ("MESHGATE_PG_HOST", addr.ip().to_string()),
        ("MESHGATE_PG_PORT", addr.port().to_string()),
    ];
    tokio::task::spawn_blocking(move || pytest("test_pg_clients.py", &env))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_http_with_pyarrow_and_polars() {
    let mesh = crate::attacks::attack_mesh_with(crate::attacks::ATTACK_POLICY, |config| {
        config.push_str(crate::admin_page::HTTP)
    })
    .await;
    let http = mesh.mesh.gateway.http_addr.expect("http listener");
    let pg = mesh.mesh.pgwire_addr();
    let env = vec![
        ("MESHGATE_HTTP_URL", format!("http://{http}")),
        ("MESHGATE_PG_HOST", pg.ip().to_string()),
        ("MESHGATE_PG_PORT", pg.port().to_string()),
    ];
    tokio::task::spawn_blocking(move || pytest("test_http_sql.py", &env))
        .await
        .unwrap();
    mesh.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres() {
    let mesh = TestMesh::start().await;
    let addr = mesh.pgwire_addr();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        dir.join("node_modules/pg").exists(),
        "node-postgres is not installed: run .ci/run once (it runs npm install in tests/node)"
    );
    let status = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "test_pg.mjs"])
            .current_dir(&dir)
            .env("MESHGATE_PG_HOST", addr.ip().to_string())
            .env("MESHGATE_PG_PORT", addr.port().to_string())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .expect("run node")
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "node-postgres tests failed (see their output above)"
    );
}
