//! The policy tests' mesh: alice, auditor and mallory under one policy
//! file (and an audit log for the admin tests), and small query helpers.

use meshgate_tests::{extra_user, TestMesh};
use tokio_postgres::{Client, SimpleQueryMessage};

pub(super) const POLICY: &str = r#"
[groups]
adjusters = ["alice"]
[users.alice.attributes]
region = "CA"

[[grants]]
effect = "allow"
principals = ["group:adjusters", "user:auditor"]
tables = ["members.public.members", "claims.public.*", "providers.public.*"]

[[row_filters]]
principals = ["group:adjusters"]
tables = ["members.public.members"]
filter = "state = current_user_attribute('region')"

[[masks]]
principals = ["*"]
except = ["user:auditor"]
tables = ["members.public.members"]
column = "last_name"
mask = "'***'"

[[masks]]
principals = ["*"]
except = ["user:auditor"]
tables = ["members.public.members"]
column = "birth_date"
mask = "NULL"
"#;

pub(super) async fn policy_mesh() -> (TestMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let mesh = TestMesh::start_with(|config| {
        config.push_str(&extra_user("alice", "alice-pw"));
        config.push_str(&extra_user("auditor", "auditor-pw"));
        config.push_str(&extra_user("mallory", "mallory-pw"));
        config.push_str(&format!("\n[policy]\nfile = \"{}\"\n", path.display()));
    })
    .await;
    (mesh, dir)
}

pub(super) async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

pub(super) async fn scalar(client: &Client, sql: &str) -> String {
    rows(client, sql).await[0][0].clone().unwrap_or_default()
}

/// Rewrite the policy file atomically (write a temp file, rename).
pub(super) fn replace_policy(dir: &std::path::Path, text: &str) {
    let tmp = dir.join("policy.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("policy.toml")).unwrap();
}

/// The policy mesh with auditor as policy admin and an audit log, both in
/// the returned directory (`policy.toml`, `audit.jsonl`).
pub(super) async fn audited_mesh() -> (TestMesh, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("admins = [\"user:auditor\"]\n{POLICY}")).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mesh = TestMesh::start_with(|config| {
        config.push_str(&extra_user("alice", "alice-pw"));
        config.push_str(&extra_user("auditor", "auditor-pw"));
        config.push_str(&extra_user("mallory", "mallory-pw"));
        config.push_str(&format!(
            "\n[policy]\nfile = \"{}\"\n[audit]\nfile = \"{}\"\n",
            policy.display(),
            audit.display()
        ));
    })
    .await;
    (mesh, dir)
}

/// A token signed with the test issuer's RSA key.
pub(super) fn jwt(claims: serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../../fixtures/jwt_rs256_private.pem"
    ))
    .unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}
