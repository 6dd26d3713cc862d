//! The attack suite: each test plays a restricted user against a real
//! gateway over pgwire and/or Flight SQL and asserts two things — the user
//! learns nothing the policy hides, and the server keeps serving.
//!
//! Users of [`attack_mesh`] (password `<name>-pw`; `analyst` keeps the
//! demo's password, see [`password`]):
//! - `analyst`: reads `members.public.members` only where `state <> 'NY'`,
//!   with `last_name` masked as `'***'`; also reads `claims.public.*` and
//!   `providers.public.*`;
//! - `intruder`: granted nothing;
//! - `admin`: policy admin, reads everything raw.

use std::path::PathBuf;

use meshgate_gateway::admin::{AdminClient, AdminTarget};
use meshgate_tests::{extra_user, TestMesh};
use tokio_postgres::{Client, SimpleQueryMessage};

mod audit;
mod auth;
mod metadata;
mod planner;
mod requests;
mod resources;
mod wire_fuzz;
mod wire_protocol;

pub const ATTACK_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["members.public.members", "claims.public.*", "providers.public.*"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["members.public.members"]
filter = "state <> 'NY'"

[[masks]]
principals = ["*"]
except = ["user:admin"]
tables = ["members.public.members"]
column = "last_name"
mask = "'***'"
"#;

/// A gateway over the demo mesh with [`ATTACK_POLICY`] in a policy file and
/// an audit log, both in the returned directory.
pub struct AttackMesh {
    pub mesh: TestMesh,
    pub dir: tempfile::TempDir,
}

impl AttackMesh {
    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// The audit log's text so far.
    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(self.audit_path()).unwrap_or_default()
    }

    pub async fn pg(&self, user: &str) -> Client {
        self.mesh
            .connect_as(user, &password(user), "members")
            .await
            .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
    }

    /// The server still answers a trivial query on a new connection.
    pub async fn assert_serving(&self) {
        let client = self.pg("admin").await;
        let rows = simple_rows(&client, "SELECT 1").await.expect("SELECT 1");
        assert_eq!(rows, vec![vec![Some("1".to_owned())]]);
    }
}

/// The password of a suite user.
pub fn password(user: &str) -> String {
    if user == meshgate_gateway::demo::DEMO_USER {
        meshgate_gateway::demo::DEMO_PASSWORD.to_owned()
    } else {
        format!("{user}-pw")
    }
}

pub async fn attack_mesh() -> AttackMesh {
    attack_mesh_with(ATTACK_POLICY, |_| {}).await
}

/// Like [`attack_mesh`] with another policy text and a config edit.
pub async fn attack_mesh_with(policy: &str, edit: impl FnOnce(&mut String)) -> AttackMesh {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mesh = TestMesh::start_with(|config| {
        for user in ["intruder", "admin"] {
            config.push_str(&extra_user(user, &format!("{user}-pw")));
        }
        config.push_str(&format!(
            "\n[policy]\nfile = \"{}\"\n[audit]\nfile = \"{}\"\n",
            policy_path.display(),
            audit.display()
        ));
        edit(config);
    })
    .await;
    AttackMesh { mesh, dir }
}

/// Why the configuration `text`, written to a `meshgate.toml`, is refused.
pub fn config_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meshgate.toml");
    std::fs::write(&path, text).unwrap();
    meshgate_gateway::Config::load(&path)
        .unwrap_err()
        .to_string()
}

/// Rows of a simple query as text, or the error.
pub async fn simple_rows(
    client: &Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(client
        .simple_query(sql)
        .await?
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The SQLSTATE of a failed statement.
pub async fn sqlstate(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("`{sql}` succeeded; it must fail"),
        Err(e) => e
            .code()
            .map(|c| c.code().to_owned())
            .unwrap_or_else(|| panic!("`{sql}`: no SQLSTATE in {e:?}")),
    }
}

/// A Flight SQL client that has not signed in.
pub async fn flight_anonymous(
    mesh: &AttackMesh,
) -> arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel> {
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", mesh.mesh.flight_sql_addr()))
            .unwrap()
            .connect()
            .await
            .expect("connect to Flight SQL");
    arrow_flight::sql::client::FlightSqlServiceClient::new(channel)
}

/// A client of the admin APIs (policy, product descriptors) signed in as
/// a suite user.
pub async fn admin_client(mesh: &AttackMesh, user: &str) -> AdminClient {
    AdminClient::connect(&AdminTarget {
        server: format!("http://{}", mesh.mesh.flight_sql_addr()),
        user: Some(user.to_owned()),
        password: Some(password(user)),
        token: None,
        ca_cert: None,
    })
    .await
    .unwrap()
}

/// A Flight SQL client signed in as a suite user.
pub async fn flight(
    mesh: &AttackMesh,
    user: &str,
) -> arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel> {
    let mut client = flight_anonymous(mesh).await;
    client
        .handshake(user, &password(user))
        .await
        .unwrap_or_else(|e| panic!("Flight handshake as {user}: {e}"));
    client
}

/// Run `sql` over Flight SQL and collect every batch, or the failure.
pub async fn flight_query(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, arrow_flight::error::FlightError> {
    use futures::TryStreamExt;
    let info = client.execute(sql.to_owned(), None).await?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await?;
        batches.extend(stream.try_collect::<Vec<_>>().await?);
    }
    Ok(batches)
}
