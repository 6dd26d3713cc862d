//! The operations surface: the HTTP listener (`/healthz`, `/readyz`,
//! `/metrics`, `/v1/info`), JSON logs from the binary, and the image's
//! configuration (docker/meshgate.toml) served for real.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use meshgate_gateway::demo::{write_demo, DemoOptions};
use meshgate_gateway::{Config, Gateway};
use meshgate_tests::{pg_port, simple_rows, MariaDatabase, PgDatabase, TcpProxy, TestMesh};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

const HTTP: &str = "\n[listeners.http]\naddress = \"127.0.0.1:0\"\nprobe_interval_secs = 1\n";

/// A port nobody listens on (bound, then released).
pub(crate) fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.1 GET: the status code and the body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).await;
    (status, serde_json::from_str(&body).expect("JSON body"))
}

/// One sample of the metrics text.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of `text`, parsed by the Prometheus project's OpenMetrics
/// parser (`prometheus_client` for Python), which refuses anything that is
/// not valid exposition text.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/parse_metrics.py");
    let mut child = Command::new(crate::python_clients::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the metrics parser");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "/metrics is not valid OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The sum of the samples named `name` whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn metrics(addr: SocketAddr) -> Vec<Sample> {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// Poll `/readyz` until `done` holds for its body (or fail after 20 s).
async fn wait_readyz(addr: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(addr, "/readyz").await;
        assert_eq!(
            status, 200,
            "one source down leaves the gateway ready: {body}"
        );
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status_of<'a>(readyz: &'a Value, catalog: &str) -> &'a str {
    readyz["catalogs"][catalog]["status"].as_str().unwrap_or("")
}

#[tokio::test]
async fn healthz_and_info_answer_without_secrets() {
    let mesh = TestMesh::start_with(|c| c.push_str(HTTP)).await;
    let addr = mesh.gateway.http_addr.expect("http listener");
    let (status, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, info) = get_json(addr, "/v1/info").await;
    assert_eq!(status, 200);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["uptime_secs"].is_u64(), "{info}");
    let names: Vec<&str> = info["catalogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["claims", "members", "providers"]);
    assert_eq!(info["catalogs"][0]["connector"], "delta");
    let (status, _) = get(addr, "/v1/nothing").await;
    assert_eq!(status, 404);
    // No password hash, user or path in any of the open endpoints.
    for path in ["/healthz", "/readyz", "/metrics", "/v1/info"] {
        let (_, body) = get(addr, path).await;
        for secret in ["pbkdf2", "analyst", mesh.data_dir().to_str().unwrap()] {
            assert!(!body.contains(secret), "{path} shows {secret}: {body}");
        }
    }
    mesh.gateway.shutdown().await;
}

#[tokio::test]
async fn metrics_count_queries_over_pgwire_and_flight_sql() {
    let mesh = TestMesh::start_with(|c| c.push_str(HTTP)).await;
    let addr = mesh.gateway.http_addr.expect("http listener");
    let before = metrics(addr).await;
    let allowed = [("protocol", "pgwire"), ("outcome", "allowed")];
    let failed = [("protocol", "pgwire"), ("outcome", "error")];

    let client = mesh.connect("members").await;
    let rows = client
        .simple_query("SELECT member_id FROM members.public.members LIMIT 7")
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows).len(), 7);
    client
        .simple_query("SELECT no_such_column_xyz FROM members.public.members")
        .await
        .unwrap_err();

    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.handshake("analyst", "meshgate").await.unwrap();
    let info = flight
        .execute(
            "SELECT provider_id FROM providers.public.providers".into(),
            None,
        )
        .await
        .unwrap();
    for endpoint in info.endpoint {
        let stream = flight.do_get(endpoint.ticket.unwrap()).await.unwrap();
        stream.try_collect::<Vec<_>>().await.unwrap();
    }

    let after = metrics(addr).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    assert!(moved("meshgate_queries_total", &allowed) >= 1.0);
    assert!(moved("meshgate_queries_total", &failed) >= 1.0);
    assert!(moved("meshgate_queries_total", &[("protocol", "flight_sql")]) >= 1.0);
    assert!(moved("meshgate_rows_returned_total", &[("protocol", "pgwire")]) >= 7.0);
    assert!(
        moved(
            "meshgate_rows_returned_total",
            &[("protocol", "flight_sql")]
        ) >= 25.0
    );
    assert!(
        moved(
            "meshgate_query_duration_seconds_count",
            &[("protocol", "pgwire")]
        ) >= 2.0
    );
    assert!(moved("meshgate_result_bytes_total", &[]) > 0.0);
    for gauge in ["meshgate_memory_reserved_bytes", "meshgate_spill_bytes"] {
        assert!(after.iter().any(|s| s.name == gauge), "{gauge} missing");
    }
    // Nothing is running now: both protocols that ran read 0.
    assert_eq!(
        total(&after, "meshgate_queries_active", &[("protocol", "pgwire")]),
        0.0
    );
    let (_, text) = get(addr, "/metrics").await;
    assert!(!text.contains("no_such_column_xyz"), "no SQL in metrics");
    mesh.gateway.shutdown().await;
}

#[tokio::test]
async fn readyz_names_a_source_that_is_down_and_sees_it_recover() {
    let db = PgDatabase::create("ops_ready").await;
    db.client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let mut proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], pg_port()))).await;
    let (flaky, dead) = (
        db.catalog_toml("flaky", proxy.port, ""),
        db.catalog_toml("gone", dead_port(), ""),
    );
    let mesh = TestMesh::start_with(|c| {
        c.push_str(HTTP);
        c.push_str(&flaky);
        c.push_str(&dead);
    })
    .await;
    let addr = mesh.gateway.http_addr.expect("http listener");
    let body = wait_readyz(addr, "both sources probed", |b| {
        status_of(b, "gone") == "down" && status_of(b, "flaky") == "up"
    })
    .await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(status_of(&body, "members"), "up");
    let error = body["catalogs"]["gone"]["error"].as_str().unwrap();
    assert!(
        error.contains("gone"),
        "the error names the catalog: {error}"
    );
    let samples = metrics(addr).await;
    assert_eq!(
        total(&samples, "meshgate_source_up", &[("catalog", "gone")]),
        0.0
    );
    assert!(
        total(
            &samples,
            "meshgate_source_probe_failures_total",
            &[("catalog", "gone")]
        ) >= 1.0
    );

    // The source stops: reported down by name; it restarts: up again,
    // and queryable, without restarting the gateway.
    proxy.stop();
    wait_readyz(addr, "stopped source reported", |b| {
        status_of(b, "flaky") == "down"
    })
    .await;
    proxy.resume().await;
    wait_readyz(addr, "restarted source recovers", |b| {
        status_of(b, "flaky") == "up"
    })
    .await;
    let client = mesh.connect("members").await;
    let rows = client
        .simple_query("SELECT id FROM flaky.public.t")
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows), [[Some("1".to_owned())]]);
    mesh.gateway.shutdown().await;
}

/// The `meshgate` binary beside this test binary (`cargo build --workspace
/// --all-targets` builds it; built here if it is missing).
pub(crate) fn meshgate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("meshgate");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--workspace", "--bin", "meshgate"])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "cannot build meshgate");
    }
    assert!(bin.exists(), "{} is built", bin.display());
    bin
}

/// The `meshgate` binary `bin` serving the demo mesh written into `dir`
/// (pgwire, and Flight SQL if `flight_sql`, on ephemeral ports) with
/// `extra` appended to its configuration, logging JSON to its piped
/// stderr; and the config path.
pub(crate) async fn serve_demo_binary(
    bin: &Path,
    dir: &Path,
    extra: &str,
    flight_sql: bool,
) -> (std::process::Child, PathBuf) {
    let config = write_demo(&DemoOptions {
        data_dir: dir.to_path_buf(),
        pgwire_address: "127.0.0.1:0".into(),
        flight_sql_address: flight_sql.then(|| "127.0.0.1:0".into()),
        http_address: None,
        with_policy: false,
    })
    .await
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();
    let child = Command::new(bin)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, config)
}

/// The lines a child process writes to `stderr`, as they come.
pub(crate) fn log_lines(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    lines_rx
}

/// Read JSON log lines until the listener whose message starts with
/// `listener` says where it listens: its address and the lines read.
pub(crate) fn logged_address(
    lines: &std::sync::mpsc::Receiver<String>,
    listener: &str,
) -> (SocketAddr, Vec<Value>) {
    let mut read = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {listener} listener logged: {read:#?}"));
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        let addr = value["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(listener))
            .then(|| {
                value["addr"]
                    .as_str()
                    .map(|a| a.parse::<SocketAddr>().unwrap())
            })
            .flatten();
        read.push(value);
        if let Some(addr) = addr {
            return (addr, read);
        }
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let bin = tokio::task::spawn_blocking(meshgate_binary).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = serve_demo_binary(&bin, dir.path(), HTTP, false).await;
    let lines_rx = log_lines(child.stderr.take().unwrap());
    let (http, lines) = logged_address(&lines_rx, "HTTP");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    // The image's health check, against this gateway.
    let check = |url: String| {
        let bin = bin.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(["healthcheck", "--url", &url])
                .output()
                .unwrap()
        })
    };
    let ok = check(format!("http://{http}/readyz")).await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let down = check(format!("http://127.0.0.1:{}/readyz", dead_port()))
        .await
        .unwrap();
    assert!(!down.status.success());
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever else was logged before the end is JSON too.
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(2)) {
        if !line.is_empty() {
            serde_json::from_str::<Value>(&line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        }
    }
}

#[tokio::test]
async fn docker_config_serves_the_demo_and_both_sources() {
    let sales = PgDatabase::create("ops_sales").await;
    sales
        .client
        .batch_execute("CREATE TABLE orders (order_id int); INSERT INTO orders VALUES (1), (2)")
        .await
        .unwrap();
    let crm = MariaDatabase::create("ops_crm");
    crm.exec("CREATE TABLE contacts (contact_id INT); INSERT INTO contacts VALUES (1)");
    let dir = tempfile::tempdir().unwrap();
    write_demo(&DemoOptions {
        data_dir: dir.path().to_path_buf(),
        pgwire_address: "127.0.0.1:0".into(),
        flight_sql_address: None,
        http_address: None,
        with_policy: false,
    })
    .await
    .unwrap();
    // What the image's environment gives, here pointing at the local servers.
    let env: BTreeMap<&str, String> = [
        ("MESHGATE_PGWIRE_ADDRESS", "127.0.0.1:0".to_owned()),
        ("MESHGATE_FLIGHT_SQL_ADDRESS", "127.0.0.1:0".to_owned()),
        ("MESHGATE_HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
        ("SALES_PG_HOST", "127.0.0.1".to_owned()),
        ("SALES_PG_USER", "postgres".to_owned()),
        ("SALES_PG_PASSWORD", String::new()),
        ("SALES_PG_DATABASE", sales.name.clone()),
        ("CRM_MYSQL_HOST", "127.0.0.1".to_owned()),
        ("CRM_MYSQL_USER", "root".to_owned()),
        ("CRM_MYSQL_PASSWORD", String::new()),
        ("CRM_MYSQL_DATABASE", crm.name.clone()),
    ]
    .into_iter()
    .collect();
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/meshgate.toml");
    let mut text = std::fs::read_to_string(&docker).unwrap();
    for (var, value) in &env {
        assert!(text.contains(&format!("${{{var}}}")), "{var} is used");
        text = text.replace(&format!("${{{var}}}"), value);
    }
    text = text.replace("port = 5432", &format!("port = {}", pg_port()));
    let path = dir.path().join("meshgate.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).expect("docker/meshgate.toml is valid");
    let gateway = Gateway::build(config).await.unwrap().start().await.unwrap();
    let http = gateway.http_addr.expect("the image serves HTTP");
    let pg = gateway.pgwire_addr.unwrap();
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=analyst password=meshgate dbname=members",
            pg.ip(),
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    for (sql, expected) in [
        ("SELECT count(*) FROM members.public.members", "200"),
        ("SELECT count(*) FROM sales.public.orders", "2"),
        (
            &*format!("SELECT count(*) FROM crm.{}.contacts", crm.name),
            "1",
        ),
    ] {
        let rows = client.simple_query(sql).await.unwrap();
        assert_eq!(simple_rows(&rows), [[Some(expected.to_owned())]], "{sql}");
    }
    let body = wait_readyz(http, "every catalog up", |b| {
        ["members", "claims", "providers", "sales", "crm"]
            .iter()
            .all(|c| status_of(b, c) == "up")
    })
    .await;
    assert_eq!(body["status"], "ready");
    assert!(dir.path().join("audit/queries.jsonl").is_file());
    gateway.shutdown().await;
}

#[tokio::test]
async fn http_listener_survives_garbage_and_tells_nothing_of_queries() {
    let mesh = TestMesh::start_with(|c| c.push_str(HTTP)).await;
    let addr = mesh.gateway.http_addr.expect("http listener");
    // Not HTTP, a huge request line, a write to a read-only endpoint.
    for request in [
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            .to_vec(),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(&request).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    }
    // Another user's statement, its literal and its failure: none of it shows.
    let client = mesh.connect("members").await;
    client
        .simple_query("SELECT 'secret_literal_4711' FROM members.public.members WHERE no_col = 1")
        .await
        .unwrap_err();
    for path in ["/healthz", "/readyz", "/metrics", "/v1/info"] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        for leak in ["secret_literal_4711", "no_col", "analyst", "127.0.0.1"] {
            assert!(!body.contains(leak), "{path} shows {leak}: {body}");
        }
    }
    mesh.gateway.shutdown().await;
}
