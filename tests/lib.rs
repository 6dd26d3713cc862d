//! Shared helpers for meshgate's end-to-end tests (`e2e/`): start a real
//! gateway on an ephemeral port over freshly written demo data, and connect
//! real clients to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshgate_gateway::demo::{write_demo, DemoOptions, DEMO_PASSWORD, DEMO_USER};
use meshgate_gateway::{Config, Gateway, RunningGateway};
use tempfile::TempDir;

/// A running gateway over its own copy of the demo mesh.
pub struct TestMesh {
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub gateway: RunningGateway,
}

impl TestMesh {
    /// Write the demo mesh into a temporary directory and serve it on port 0.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestMesh::start`], letting the caller edit the config text first.
    pub async fn start_with(edit: impl FnOnce(&mut String)) -> Self {
        Self::try_start_with(edit)
            .await
            .unwrap_or_else(|e| panic!("start gateway: {e}"))
    }

    /// Like [`TestMesh::start_with`], with the reason a gateway does not start.
    pub async fn try_start_with(edit: impl FnOnce(&mut String)) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = write_demo(&DemoOptions {
            data_dir: dir.path().to_path_buf(),
            pgwire_address: "127.0.0.1:0".into(),
            flight_sql_address: Some("127.0.0.1:0".into()),
            http_address: None,
            with_policy: false,
        })
        .await
        .expect("write demo mesh");
        let mut text = std::fs::read_to_string(&config_path).unwrap();
        edit(&mut text);
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::load(&config_path).map_err(|e| e.to_string())?;
        let gateway = Gateway::build(config)
            .await
            .map_err(|e| e.to_string())?
            .start()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            dir,
            config_path,
            gateway,
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pgwire_addr(&self) -> SocketAddr {
        self.gateway.pgwire_addr.expect("pgwire listener")
    }

    pub fn flight_sql_addr(&self) -> SocketAddr {
        self.gateway.flight_sql_addr.expect("flight sql listener")
    }

    /// A libpq-style connection string for `user`/`password` and `dbname`.
    pub fn conn_str(&self, user: &str, password: &str, dbname: &str) -> String {
        let addr = self.pgwire_addr();
        format!(
            "host={} port={} user={user} password={password} dbname={dbname}",
            addr.ip(),
            addr.port()
        )
    }

    /// Connect with tokio-postgres as the demo user to `dbname`.
    pub async fn connect(&self, dbname: &str) -> tokio_postgres::Client {
        self.connect_as(DEMO_USER, DEMO_PASSWORD, dbname)
            .await
            .expect("connect to meshgate")
    }

    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        dbname: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(
            &self.conn_str(user, password, dbname),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// A config line block adding `user` with `password` (hashed here).
pub fn extra_user(user: &str, password: &str) -> String {
    format!(
        "\n[users.{user}]\npassword = \"{}\"\n",
        meshgate_gateway::auth::PasswordHash::generate(password)
    )
}

/// A fresh database on the local PostgreSQL server ([`pg_server`], trust
/// auth), dropped when this value is dropped.
pub struct PgDatabase {
    pub name: String,
    pub client: tokio_postgres::Client,
}

/// Where the local PostgreSQL server listens (`MESHGATE_TEST_PG`, default
/// `host=127.0.0.1 port=5432 user=postgres`).
pub fn pg_server() -> String {
    std::env::var("MESHGATE_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into())
}

/// The port of [`pg_server`], for catalogs and proxies that reach it.
pub fn pg_port() -> u16 {
    pg_server()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

async fn pg_connect(dbname: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("{} dbname={dbname}", pg_server()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("the local PostgreSQL server must be running (see .ci/run)");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl PgDatabase {
    pub async fn create(prefix: &str) -> Self {
        let name = unique_name(prefix);
        pg_connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let client = pg_connect(&name).await;
        Self { name, client }
    }

    /// A `[catalogs.NAME]` block reaching this database at `host:port`.
    pub fn catalog_toml(&self, catalog: &str, port: u16, extra: &str) -> String {
        format!(
            "\n[catalogs.{catalog}]\nconnector = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\ndatabase = \"{}\"\nsslmode = \"disable\"\nconnect_timeout_secs = 2\n{extra}\n",
            self.name
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort, off the test's runtime: connections may still be open.
        std::thread::spawn(move || {
            let _ = std::process::Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        });
    }
}

/// A fresh database on the local MariaDB/MySQL server (127.0.0.1:3306, root,
/// empty password), through the `mysql` command-line client.
pub struct MariaDatabase {
    pub name: String,
}

impl MariaDatabase {
    pub fn create(prefix: &str) -> Self {
        let name = unique_name(prefix);
        mysql_exec("", &format!("CREATE DATABASE {name}"));
        Self { name }
    }

    /// Run SQL in this database; panics with the client's message on failure.
    pub fn exec(&self, sql: &str) -> String {
        mysql_exec(&self.name, sql)
    }

    pub fn catalog_toml(&self, catalog: &str, extra: &str) -> String {
        format!(
            "\n[catalogs.{catalog}]\nconnector = \"mysql\"\nhost = \"127.0.0.1\"\nport = 3306\nuser = \"root\"\ndatabase = \"{}\"\nsslmode = \"disable\"\n{extra}\n",
            self.name
        )
    }
}

/// Run SQL with the `mysql` client as root; returns tab-separated rows.
pub fn mysql_exec(database: &str, sql: &str) -> String {
    let mut cmd = std::process::Command::new("mysql");
    cmd.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
    if !database.is_empty() {
        cmd.arg(database);
    }
    let out = cmd
        .arg("-e")
        .arg(sql)
        .output()
        .expect("the mysql client must be installed (see .ci/run)");
    assert!(
        out.status.success(),
        "mysql: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Drop for MariaDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mysql")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
            .output();
    }
}

/// A TCP proxy in front of a server, stopped and started again on the same
/// port: while stopped, connections are refused and open ones are cut, as
/// when the server itself goes down.
pub struct TcpProxy {
    pub port: u16,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let mut proxy = Self {
            port: 0,
            target,
            task: None,
        };
        proxy.resume().await;
        proxy
    }

    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn resume(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .expect("bind proxy port");
        let listener = socket.listen(64).unwrap();
        self.port = listener.local_addr().unwrap().port();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The data rows of a simple-query answer, as optional strings.
pub fn simple_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
