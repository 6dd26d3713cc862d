//! Item 4, impersonation: a service account acts as an end user only where
//! the policy grants `impersonate` on that user or their group — over pgwire
//! (start-up option `meshgate.impersonate`) and Flight SQL (header
//! `x-meshgate-impersonate`) — and then sees exactly what that user sees,
//! with both identities in the audit log. Everything else is 42501.

use serde_json::Value;

use super::*;

/// The suite's policy, plus: `bi_server` may act as the analysts.
fn policy() -> String {
    format!(
        "{ATTACK_POLICY}\n[groups]\nanalysts = [\"analyst\"]\n\n\
         [[grants]]\neffect = \"allow\"\nprincipals = [\"user:bi_server\"]\n\
         privilege = \"impersonate\"\ntargets = [\"group:analysts\"]\n"
    )
}

async fn connect_as_with_options(
    mesh: &AttackMesh,
    user: &str,
    options: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let addr = mesh.mesh.pgwire_addr();
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(user)
        .password(password(user))
        .dbname("members")
        .options(options);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn records(mesh: &AttackMesh) -> Vec<Value> {
    mesh.audit_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn item4_a_service_account_acts_as_an_end_user_only_where_the_policy_allows() {
    let mesh = attack_mesh_with(&policy(), |config| {
        config.push_str(&extra_user("bi_server", &password("bi_server")))
    })
    .await;

    // As analyst: the row filter and the mask of analyst apply.
    let client = connect_as_with_options(&mesh, "bi_server", "-c meshgate.impersonate=analyst")
        .await
        .expect("bi_server may act as analyst");
    let rows = simple_rows(&client, "SELECT current_user").await.unwrap();
    assert_eq!(rows, vec![vec![Some("analyst".to_owned())]]);
    let ny = simple_rows(
        &client,
        "SELECT count(*) FROM members.public.members WHERE state = 'NY'",
    )
    .await
    .unwrap();
    assert_eq!(ny, vec![vec![Some("0".to_owned())]]);
    let names = simple_rows(
        &client,
        "SELECT DISTINCT last_name FROM members.public.members",
    )
    .await
    .unwrap();
    assert_eq!(names, vec![vec![Some("***".to_owned())]]);
    // On its own the service account reads nothing.
    let own = mesh.pg("bi_server").await;
    let state = sqlstate(&own, "SELECT * FROM members.public.members").await;
    assert!(state == "42501" || state == "42P01", "{state}");

    // Not a granted target, or not a granted actor: 42501, no session.
    for (actor, target) in [
        ("bi_server", "admin"),
        ("bi_server", "intruder"),
        ("intruder", "analyst"),
        ("analyst", "admin"),
    ] {
        let options = format!("-c meshgate.impersonate={target}");
        let err = connect_as_with_options(&mesh, actor, &options)
            .await
            .err()
            .unwrap_or_else(|| panic!("{actor} must not act as {target}"));
        assert_eq!(code(&err), "42501", "{actor} as {target}: {err}");
    }

    // Flight SQL: the header on each call, for a signed-in service account.
    let mut flight = flight(&mesh, "bi_server").await;
    flight.set_header("x-meshgate-impersonate", "analyst");
    let batches = flight_query(
        &mut flight,
        "SELECT DISTINCT last_name FROM members.public.members",
    )
    .await
    .expect("bi_server may act as analyst over Flight SQL");
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("***"), "{text}");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    flight.set_header("x-meshgate-impersonate", "admin");
    let err = flight_query(&mut flight, "SELECT 1").await.unwrap_err();
    assert!(
        err.to_string().contains("permission denied to impersonate"),
        "{err}"
    );
    let mut intruder = super::super::flight(&mesh, "intruder").await;
    intruder.set_header("x-meshgate-impersonate", "analyst");
    assert!(flight_query(&mut intruder, "SELECT 1").await.is_err());

    // The audit log names both identities.
    let log = records(&mesh);
    let acted = log
        .iter()
        .filter(|r| {
            r["user"] == "analyst"
                && r["impersonator"] == "bi_server"
                && r["sql"].as_str().unwrap_or_default().contains("last_name")
        })
        .map(|r| r["protocol"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert!(
        acted.contains(&"pgwire".to_owned()) && acted.contains(&"flight_sql".to_owned()),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|r| r["sql"] == "impersonate admin"
            && r["user"] == "bi_server"
            && r["decision"] == "denied"),
        "{log:#?}"
    );
    // Statements of users acting as themselves carry no impersonator.
    assert!(log
        .iter()
        .filter(|r| r["user"] == "admin")
        .all(|r| r.get("impersonator").is_none()));

    mesh.assert_serving().await;
}
