//! Helpers shared by the benchmark binaries: a `meshgate serve` child
//! process on a free port, and tokio-postgres connections.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meshgate_gateway::auth::PasswordHash;
use tokio_postgres::{Client, NoTls};

/// A `meshgate serve` child process, killed when dropped.
pub struct Meshgate {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Meshgate {
    /// Serve `catalogs` (TOML `[catalogs.*]` blocks) on a free port, as user
    /// `bench` (password `bench`), with `bench` as the default database.
    pub async fn start(bin: &Path, dir: &Path, catalogs: &str) -> Result<Self> {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let hash = PasswordHash::generate("bench").to_string();
        let config = dir.join("meshgate.toml");
        std::fs::write(
            &config,
            format!(
                r#"[listeners.pgwire]
address = "127.0.0.1:{port}"
[users.bench]
password = "{hash}"
{catalogs}
"#
            ),
        )?;
        let log = dir.join(format!("meshgate-{port}.log"));
        let out = File::create(&log)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut gw = Self { child, port, log };
        gw.wait_ready().await?;
        Ok(gw)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=bench password=bench dbname=bench",
            self.port
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "meshgate exited with {status}; its log:\n{}",
                    self.log_text()
                );
            }
            match tokio_postgres::connect(&self.conn_str(), NoTls).await {
                Ok((client, conn)) => {
                    drop(client);
                    let _ = conn.await;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "meshgate did not accept connections within 60 s ({e}); its log:\n{}",
                        self.log_text()
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn connect(&self) -> Result<Conn> {
        connect(&self.conn_str()).await
    }
}

impl Drop for Meshgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client and its connection task.
pub struct Conn {
    pub client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Close the connection cleanly (before its server goes away).
    pub async fn close(self) {
        drop(self.client);
        let _ = self.task.await;
    }
}

pub async fn connect(conn_str: &str) -> Result<Conn> {
    let (client, conn) = tokio_postgres::connect(conn_str, NoTls)
        .await
        .with_context(|| format!("connecting to {conn_str}"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok(Conn { client, task })
}
