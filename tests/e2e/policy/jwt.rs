//! Identities from JWTs: the token's groups and attributes reach the policy
//! as a password user's would.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use meshgate_tests::{extra_user, TestMesh};
use tonic::transport::Channel;

use super::fixtures::*;

#[tokio::test]
async fn jwt_identities_carry_groups_and_attributes_into_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("admins = [\"user:auditor\"]\n{POLICY}")).unwrap();
    let public_key = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwt_rs256_public.pem");
    let mesh = TestMesh::start_with(|config| {
        config.push_str(&extra_user("auditor", "auditor-pw"));
        config.push_str(&format!(
            "\n[policy]\nfile = \"{}\"\n[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"{public_key}\"\n\
             issuer = \"https://idp.example\"\naudience = \"meshgate\"\nattribute_claims = [\"region\"]\n",
            path.display()
        ));
    })
    .await;
    let exp = chrono::Utc::now().timestamp() + 600;
    // carol is in no [users] table and no policy group: the token makes her
    // an adjuster in NY.
    let carol = jwt(serde_json::json!({
        "sub": "carol", "groups": ["adjusters"], "region": "NY",
        "iss": "https://idp.example", "aud": "meshgate", "exp": exp,
    }));
    let auditor = mesh
        .connect_as("auditor", "auditor-pw", "members")
        .await
        .unwrap();
    let ny = scalar(&auditor, "SELECT count(*) FROM members WHERE state = 'NY'").await;

    let client = mesh.connect_as("carol", &carol, "members").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM members").await, ny);
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*) FROM members WHERE state <> 'NY' OR last_name <> '***'"
        )
        .await,
        "0"
    );

    // The same token as a Flight SQL bearer token.
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.set_token(carol.clone());
    let info = flight
        .execute(
            "SELECT count(*) AS n FROM members.public.members".into(),
            None,
        )
        .await
        .unwrap();
    let batches: Vec<RecordBatch> = flight
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let n = batches[0].column(0).as_primitive::<Int64Type>().value(0);
    assert_eq!(n.to_string(), ny);

    // Refused: an expired token, a token for someone else, a wrong issuer,
    // a token not signed by the issuer's key.
    let expired = jwt(serde_json::json!({
        "sub": "carol", "groups": ["adjusters"], "iss": "https://idp.example", "aud": "meshgate",
        "exp": chrono::Utc::now().timestamp() - 3600,
    }));
    let foreign = jwt(serde_json::json!({
        "sub": "carol", "iss": "https://evil.example", "aud": "meshgate", "exp": exp,
    }));
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "carol", "iss": "https://idp.example", "aud": "meshgate", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(b"not the issuer's key at all, 32+ bytes"),
    )
    .unwrap();
    for (user, token) in [
        ("carol", &expired),
        ("dave", &carol),
        ("carol", &foreign),
        ("carol", &forged),
    ] {
        let err = mesh.connect_as(user, token, "members").await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{user}: {err}");
    }
    let channel = Channel::from_shared(format!("http://{}", mesh.flight_sql_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    flight.set_token(forged);
    let err = flight.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(
        err.to_string().contains("Unauthenticated") || err.to_string().contains("token"),
        "{err}"
    );
    // Configured users still sign in with their password (asked in cleartext
    // like a token: the demo allows cleartext), and an admin can grant to a
    // user known only from tokens.
    auditor
        .simple_query("GRANT SELECT ON providers.public.providers TO carol")
        .await
        .unwrap();
    let client = mesh.connect_as("carol", &carol, "members").await.unwrap();
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM providers.public.providers").await,
        "25"
    );
}
