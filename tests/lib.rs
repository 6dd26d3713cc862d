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
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = write_demo(&DemoOptions {
            data_dir: dir.path().to_path_buf(),
            pgwire_address: "127.0.0.1:0".into(),
            flight_sql_address: Some("127.0.0.1:0".into()),
        })
        .await
        .expect("write demo mesh");
        let mut text = std::fs::read_to_string(&config_path).unwrap();
        edit(&mut text);
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::load(&config_path).expect("demo config is valid");
        let gateway = Gateway::build(config)
            .await
            .expect("build gateway")
            .start()
            .await
            .expect("start gateway");
        Self {
            dir,
            config_path,
            gateway,
        }
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
