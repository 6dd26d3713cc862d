//! A mesh of gateways: one gateway federates a domain's own gateway through
//! `connector = "flightsql"`. The domain's policy applies to the account
//! the federating gateway signs in with, the federating gateway's policy
//! to its own users on top; queries are pushed to the domain gateway as
//! SQL and joined with local catalogs. With `identity = "forward"` the
//! domain gateway (then a `meshgate` process of its own) sees each end
//! user instead of the account.

use meshgate_tests::extra_user;

use crate::attacks::{
    attack_mesh, attack_mesh_with, password, simple_rows, sqlstate, ATTACK_POLICY,
};

/// The federating gateway's policy: its analyst reads the remote members
/// (even member ids only) and the local ones; its intruder nothing.
const MESH_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["domain.public.members", "members.public.members"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["domain.public.members"]
filter = "member_id % 2 = 0"
"#;

fn text(rows: &[Vec<Option<String>>]) -> String {
    rows.iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_gateway_federates_a_domain_gateway_under_both_policies() {
    // The domain gateway: its analyst does not see New York and sees
    // last names masked.
    let domain = attack_mesh().await;
    let block = format!(
        "[catalogs.domain]\nconnector = \"flightsql\"\nendpoint = \"http://{}\"\n\
         catalog = \"members\"\nuser = \"analyst\"\npassword = \"{}\"\nallow_http = true\n",
        domain.mesh.flight_sql_addr(),
        password("analyst")
    );
    let mesh = attack_mesh_with(MESH_POLICY, |c| c.push_str(&block)).await;
    let analyst = mesh.pg("analyst").await;

    let seen = simple_rows(
        &analyst,
        "SELECT member_id, state, last_name FROM domain.public.members ORDER BY member_id",
    )
    .await
    .unwrap();
    assert!(!seen.is_empty());
    for row in &seen {
        let id: i64 = row[0].as_deref().unwrap().parse().unwrap();
        assert_eq!(id % 2, 0, "the local filter holds: {row:?}");
        assert_ne!(row[1].as_deref(), Some("NY"), "the remote filter holds");
        assert_eq!(row[2].as_deref(), Some("***"), "the remote mask holds");
    }
    // The same rows as the domain's analyst reads there, less the local filter.
    let there = simple_rows(
        &domain.pg("analyst").await,
        "SELECT count(*) FROM members.public.members WHERE member_id % 2 = 0",
    )
    .await
    .unwrap();
    assert_eq!(there[0][0], Some(seen.len().to_string()));

    // Aggregates go to the domain gateway as SQL (EXPLAIN as the local
    // admin: a filtered user's plan is redacted).
    let query = "SELECT state, count(*) FROM domain.public.members GROUP BY state ORDER BY state";
    let explain = text(
        &simple_rows(&mesh.pg("admin").await, &format!("EXPLAIN {query}"))
            .await
            .unwrap(),
    );
    assert!(explain.contains("flightsql"), "{explain}");
    assert!(explain.contains("GROUP BY"), "{explain}");
    // The remote catalog's three-part name, as the domain gateway knows it.
    assert!(
        explain
            .replace('"', "")
            .contains("FROM members.public.members"),
        "{explain}"
    );
    let by_state = simple_rows(&analyst, query).await.unwrap();
    let total: i64 = by_state
        .iter()
        .map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, seen.len() as i64);

    // A join of the remote catalog with a local one.
    let joined = simple_rows(
        &analyst,
        "SELECT count(*) FROM domain.public.members r \
         JOIN members.public.members l ON l.member_id = r.member_id AND l.state = r.state",
    )
    .await
    .unwrap();
    assert_eq!(joined[0][0], Some(seen.len().to_string()));

    // The federating gateway's intruder reads nothing of it.
    let intruder = mesh.pg("intruder").await;
    let state = sqlstate(&intruder, "SELECT * FROM domain.public.members").await;
    assert!(state == "42P01" || state == "42501", "{state}");
    mesh.assert_serving().await;
    domain.assert_serving().await;
}

/// The key the federating gateway signs forwarded identities with, and
/// the domain gateway trusts (`[auth.jwt]`).
const FORWARD_SECRET: &str = "mesh-forwarding-secret-of-32-bytes-or-more";

/// The federating gateway's policy for forwarded identities: analyst,
/// intruder and admin all read the remote table, with nothing filtered here
/// (analyst and intruder are under one effective policy for it); the
/// analyst also reads the local members, even ids only.
const FORWARD_POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:intruder", "user:admin"]
tables = ["domain.public.members"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["members.public.members"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["members.public.members"]
filter = "member_id % 2 = 0"
"#;

/// A domain gateway in its own `meshgate` process: the demo mesh under
/// [`ATTACK_POLICY`] with an audit log and `extra` configuration, killed
/// when dropped.
struct DomainProcess {
    child: std::process::Child,
    dir: tempfile::TempDir,
    pgwire: std::net::SocketAddr,
    flight_sql: std::net::SocketAddr,
}

impl DomainProcess {
    async fn start(extra: &str) -> Self {
        let bin = tokio::task::spawn_blocking(crate::ops::meshgate_binary)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, ATTACK_POLICY).unwrap();
        let config = format!(
            "{}{}\n[policy]\nfile = \"{}\"\n[audit]\nfile = \"{}\"\n{extra}",
            extra_user("admin", &password("admin")),
            extra_user("intruder", &password("intruder")),
            policy.display(),
            dir.path().join("audit.jsonl").display()
        );
        let (mut child, _) = crate::ops::serve_demo_binary(&bin, dir.path(), &config, true).await;
        let lines = crate::ops::log_lines(child.stderr.take().unwrap());
        let (pgwire, _) = crate::ops::logged_address(&lines, "pgwire");
        let (flight_sql, _) = crate::ops::logged_address(&lines, "Flight SQL");
        Self {
            child,
            dir,
            pgwire,
            flight_sql,
        }
    }

    async fn pg(&self, user: &str) -> tokio_postgres::Client {
        let conn = format!(
            "host={} port={} user={user} password={} dbname=members",
            self.pgwire.ip(),
            self.pgwire.port(),
            password(user)
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Its audit records, parsed.
    fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for DomainProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn end_users_reach_the_domain_gateway_as_themselves() {
    // The domain gateway trusts tokens the federating gateway signs for it.
    let trust = format!(
        "\n[auth.jwt]\nalgorithm = \"HS256\"\nsecret = \"{FORWARD_SECRET}\"\n\
         issuer = \"mesh-hub\"\naudience = \"members-domain\"\n"
    );
    let domain = DomainProcess::start(&trust).await;
    // The service account (which lists tables) is the domain's analyst;
    // queries run as the end user. Results are kept, per user.
    let block = format!(
        "[catalogs.domain]\nconnector = \"flightsql\"\nendpoint = \"http://{}\"\n\
         catalog = \"members\"\nuser = \"analyst\"\npassword = \"{}\"\nallow_http = true\n\
         result_cache_ttl = \"60s\"\nidentity = \"forward\"\nforward_algorithm = \"HS256\"\n\
         forward_secret = \"{FORWARD_SECRET}\"\nforward_issuer = \"mesh-hub\"\n\
         forward_audience = \"members-domain\"\n",
        domain.flight_sql,
        password("analyst")
    );
    let mesh = attack_mesh_with(FORWARD_POLICY, |c| c.push_str(&block)).await;

    // The mesh's admin is the domain's admin there: New York, last names.
    let ny = "SELECT count(*) FROM domain.public.members WHERE state = 'NY'";
    let admin_ny = simple_rows(&mesh.pg("admin").await, ny).await.unwrap();
    let there = simple_rows(
        &domain.pg("admin").await,
        "SELECT count(*) FROM members.public.members WHERE state = 'NY'",
    )
    .await
    .unwrap();
    assert_eq!(admin_ny, there);
    assert_ne!(
        there[0][0].as_deref(),
        Some("0"),
        "the demo has New York members"
    );
    let names = simple_rows(
        &mesh.pg("admin").await,
        "SELECT DISTINCT last_name FROM domain.public.members",
    )
    .await
    .unwrap();
    assert!(names.len() > 1, "raw last names: {names:?}");

    // The analyst gets the domain's analyst rules: no New York, masked.
    let analyst = mesh.pg("analyst").await;
    let query = "SELECT member_id, state, last_name FROM domain.public.members ORDER BY member_id";
    let seen = simple_rows(&analyst, query).await.unwrap();
    assert!(!seen.is_empty());
    for row in &seen {
        assert_ne!(row[1].as_deref(), Some("NY"), "{row:?}");
        assert_eq!(row[2].as_deref(), Some("***"), "{row:?}");
    }
    // Joined with a local catalog: the domain's rules on its side, this
    // gateway's row filter on the local side.
    let joined = simple_rows(
        &analyst,
        "SELECT count(*) FROM domain.public.members r \
         JOIN members.public.members l ON l.member_id = r.member_id",
    )
    .await
    .unwrap();
    let even = seen
        .iter()
        .filter(|row| row[0].as_deref().unwrap().parse::<i64>().unwrap() % 2 == 0)
        .count();
    assert_eq!(joined[0][0], Some(even.to_string()));
    // Kept for the analyst (a second run), never served to the intruder,
    // whose local policy is the same but who may read nothing there.
    assert_eq!(simple_rows(&analyst, query).await.unwrap(), seen);
    let intruder = mesh.pg("intruder").await;
    let refused = simple_rows(&intruder, query).await;
    assert!(refused.is_err(), "the intruder read {:?}", refused.unwrap());
    assert!(simple_rows(&intruder, ny).await.is_err());

    // The domain audited each of them under their own name.
    let records = domain.audit_records();
    let by = |user: &str, decision: &str| -> bool {
        records.iter().any(|r| {
            r["user"] == user
                && r["decision"] == decision
                && r["objects"].to_string().contains("members.public.members")
        })
    };
    assert!(by("admin", "allowed"), "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| r["user"] == "intruder" && r["decision"] != "allowed"),
        "{records:?}"
    );
    assert!(!by("intruder", "allowed"), "{records:?}");
    mesh.assert_serving().await;
    let serving = simple_rows(&domain.pg("admin").await, "SELECT 1").await;
    assert_eq!(serving.unwrap(), [[Some("1".to_owned())]]);
}

#[test]
fn forwarding_identities_needs_a_key_and_an_audience() {
    let base = "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.domain]\nconnector = \"flightsql\"\nendpoint = \"http://127.0.0.1:1\"\n\
         catalog = \"members\"\nuser = \"svc\"\npassword = \"svc-password\"\nallow_http = true\n";
    let err = crate::attacks::config_error(&format!(
        "{base}identity = \"forward\"\nforward_algorithm = \"HS256\"\n\
         forward_secret = \"{FORWARD_SECRET}\"\n"
    ));
    assert!(err.contains("catalogs.domain.forward_audience"), "{err}");
    assert!(!err.contains(FORWARD_SECRET), "{err}");
    let err = crate::attacks::config_error(&format!(
        "{base}identity = \"forward\"\nforward_algorithm = \"HS256\"\n\
         forward_secret = \"too-short\"\nforward_audience = \"d\"\n"
    ));
    assert!(err.contains("catalogs.domain.forward_secret"), "{err}");
    // A signing key given without forwarding is a mistake, not ignored.
    let err =
        crate::attacks::config_error(&format!("{base}forward_secret = \"{FORWARD_SECRET}\"\n"));
    assert!(err.contains("catalogs.domain.forward_secret"), "{err}");
    assert!(err.contains("identity"), "{err}");
}

#[test]
fn a_flightsql_catalog_needs_a_service_account() {
    let err = crate::attacks::config_error(
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.domain]\nconnector = \"flightsql\"\nendpoint = \"http://127.0.0.1:1\"\n\
         catalog = \"members\"\nuser = \"svc\"\nallow_http = true\n",
    );
    assert!(err.contains("catalogs.domain.user"), "{err}");
    // Credentials never cross http:// unless the operator says so.
    let err = crate::attacks::config_error(
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.domain]\nconnector = \"flightsql\"\nendpoint = \"http://127.0.0.1:1\"\n\
         catalog = \"members\"\nuser = \"svc\"\npassword = \"secret-pw\"\n",
    );
    assert!(err.contains("catalogs.domain.endpoint"), "{err}");
    assert!(!err.contains("secret-pw"), "{err}");
}
