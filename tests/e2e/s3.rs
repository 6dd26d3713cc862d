//! Files and Delta tables on S3, read from a real S3-compatible server:
//! `s3s-fs` (installed by `.ci/run`; `MESHGATE_S3S_FS` names the binary),
//! which serves a local folder as buckets. Parquet globs, CSV with hive
//! partitions (pruned, as EXPLAIN shows), NDJSON folders and a Delta table,
//! the same tables on local disk for comparison, and the errors a wrong
//! secret or a missing bucket give.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::parquet::arrow::ArrowWriter;
use meshgate_tests::{simple_rows, TestMesh};

const ACCESS_KEY: &str = "meshgate-test";
const SECRET_KEY: &str = "meshgate-test-secret";

/// An s3s-fs server over a temporary folder, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Start s3s-fs on an ephemeral port with one bucket, `lake`.
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("lake")).unwrap();
        let bin = std::env::var("MESHGATE_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} (scripts/test.sh installs it): {e}"));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(at) = line.find("server is running at http://") {
                    let url = line[at + "server is running at ".len()..].trim().to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("s3s-fs says where it listens");
        Self {
            child,
            endpoint,
            root,
        }
    }

    /// The local folder behind `bucket/key`.
    fn path(&self, key: &str) -> std::path::PathBuf {
        self.root.path().join(key)
    }

    /// `[catalogs.NAME.s3]` for this server with `secret`.
    fn s3_block(&self, catalog: &str, secret: &str) -> String {
        format!(
            "[catalogs.{catalog}.s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{secret}\"\nallow_http = true\n",
            self.endpoint
        )
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn write_text(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The same files under `dir` (a bucket folder, or a local catalog root).
async fn write_lake(dir: &Path) {
    for (part, ids) in [(0, [1i64, 2, 3]), (1, [4, 5, 6])] {
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
            (
                "kind",
                Arc::new(StringArray::from(vec!["a", "b", "a"])) as ArrayRef,
            ),
        ])
        .unwrap();
        write_parquet(&dir.join(format!("events/part-{part}.parquet")), &batch);
    }
    // Not matched by the glob.
    write_text(&dir.join("events/README.txt"), "not data");
    write_text(
        &dir.join("sales/region=north/q1.csv"),
        "item,amount\nbolt,10\nnut,5\n",
    );
    write_text(
        &dir.join("sales/region=south/q1.csv"),
        "item,amount\nbolt,7\n",
    );
    write_text(
        &dir.join("logs/day1.json"),
        "{\"level\":\"info\",\"n\":1}\n{\"level\":\"warn\",\"n\":2}\n",
    );
    write_text(
        &dir.join("logs/day2.json"),
        "{\"level\":\"info\",\"n\":3}\n",
    );
    meshgate_connectors::create_delta_table(
        &dir.join("claims"),
        vec![meshgate_gateway::demo::claims()],
        &["status"],
    )
    .await
    .unwrap();
}

/// The `lake` files catalog and `lakedelta` Delta catalog at `root`.
fn lake_catalogs(files: &str, delta: &str, root: &str) -> String {
    format!(
        "[catalogs.{files}]\nconnector = \"files\"\nroot = \"{root}\"\n\
         [catalogs.{files}.tables.events]\npath = \"events/*.parquet\"\n\
         [catalogs.{files}.tables.sales]\npath = \"sales/\"\nformat = \"csv\"\n\
         partition_columns = [\"region\"]\n\
         [catalogs.{files}.tables.logs]\npath = \"logs/\"\nformat = \"json\"\n\
         [catalogs.{delta}]\nconnector = \"delta\"\nroot = \"{root}\"\n\
         [catalogs.{delta}.tables.claims]\npath = \"claims\"\n"
    )
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(id) FROM {f}.public.events",
    "SELECT kind, count(*) FROM {f}.public.events GROUP BY kind ORDER BY kind",
    "SELECT region, item, amount FROM {f}.public.sales ORDER BY region, item",
    "SELECT sum(amount) FROM {f}.public.sales WHERE region = 'south'",
    "SELECT level, sum(n) FROM {f}.public.logs GROUP BY level ORDER BY level",
    "SELECT status, count(*) FROM {d}.public.claims GROUP BY status ORDER BY status",
];

#[tokio::test]
async fn files_and_delta_on_s3_read_like_local_ones() {
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    write_lake(&s3.path("lake")).await;
    let local = tempfile::tempdir().unwrap();
    write_lake(local.path()).await;
    let mut config = lake_catalogs("lake", "lakedelta", "s3://lake");
    config.push_str(&s3.s3_block("lake", SECRET_KEY));
    config.push_str(&s3.s3_block("lakedelta", SECRET_KEY));
    config.push_str(&lake_catalogs(
        "disk",
        "diskdelta",
        &local.path().display().to_string(),
    ));
    let mesh = TestMesh::start_with(|c| c.push_str(&config)).await;
    let client = mesh.connect("lake").await;
    for query in QUERIES {
        let on_s3 = query.replace("{f}", "lake").replace("{d}", "lakedelta");
        let on_disk = query.replace("{f}", "disk").replace("{d}", "diskdelta");
        let from_s3 = simple_rows(&client.simple_query(&on_s3).await.unwrap());
        let from_disk = simple_rows(&client.simple_query(&on_disk).await.unwrap());
        assert!(!from_s3.is_empty(), "{on_s3}");
        assert_eq!(from_s3, from_disk, "{on_s3}");
    }
    let events = simple_rows(
        &client
            .simple_query("SELECT count(*), sum(id) FROM lake.public.events")
            .await
            .unwrap(),
    );
    assert_eq!(events, [[Some("6".to_owned()), Some("21".to_owned())]]);
    // A filter on the partition column reads one folder only.
    let explain = simple_rows(
        &client
            .simple_query(
                "EXPLAIN SELECT sum(amount) FROM lake.public.sales WHERE region = 'south'",
            )
            .await
            .unwrap(),
    )
    .into_iter()
    .flatten()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n");
    assert!(explain.contains("region=south"), "{explain}");
    assert!(!explain.contains("region=north"), "{explain}");
}

/// Why a gateway with `catalogs` does not serve `table`: its start-up
/// error, or the error of a query naming the table.
async fn failure(catalogs: &str, table: &str) -> String {
    match TestMesh::try_start_with(|c| c.push_str(catalogs)).await {
        Err(e) => e,
        Ok(mesh) => {
            let client = mesh.connect("members").await;
            let err = client
                .simple_query(&format!("SELECT * FROM {table}"))
                .await
                .unwrap_err();
            let message = err
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_else(|| err.to_string());
            mesh.gateway.shutdown().await;
            message
        }
    }
}

#[tokio::test]
async fn a_wrong_secret_or_a_missing_bucket_names_the_catalog() {
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    write_lake(&s3.path("lake")).await;
    let table = |catalog: &str, root: &str| {
        format!(
            "[catalogs.{catalog}]\nconnector = \"files\"\nroot = \"{root}\"\n\
             [catalogs.{catalog}.tables.events]\npath = \"events/*.parquet\"\n"
        )
    };
    let wrong = format!(
        "{}{}",
        table("wrongsecret", "s3://lake"),
        s3.s3_block("wrongsecret", "not-the-secret")
    );
    let err = failure(&wrong, "wrongsecret.public.events").await;
    assert!(err.contains("wrongsecret"), "{err}");
    assert!(
        !err.contains("not-the-secret"),
        "the secret is never shown: {err}"
    );
    let missing = format!(
        "{}{}",
        table("nobucket", "s3://no-such-bucket"),
        s3.s3_block("nobucket", SECRET_KEY)
    );
    let err = failure(&missing, "nobucket.public.events").await;
    assert!(err.contains("nobucket"), "{err}");
    assert!(
        err.to_lowercase().contains("bucket")
            || err.contains("NoSuchBucket")
            || err.contains("404"),
        "{err}"
    );
}
