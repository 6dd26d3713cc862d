//! A mesh of gateways: one gateway federates a domain's own gateway through
//! `connector = "flightsql"`. The domain's policy applies to the account
//! the federating gateway signs in with, the federating gateway's policy
//! to its own users on top; queries are pushed to the domain gateway as
//! SQL and joined with local catalogs.

use crate::attacks::{attack_mesh, attack_mesh_with, password, simple_rows, sqlstate};

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
