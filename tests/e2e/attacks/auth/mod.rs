//! Authentication fails closed (issue 12, item 2; F8, F11, F13, F15, and
//! failed sign-ins audited). Each test plays someone who is not signed in —
//! an eavesdropper, a name-guesser, a client that writes its own start-up
//! parameters — over a raw start-up exchange (client libraries hide which
//! request the server sends), tokio-postgres and Flight SQL, and asserts
//! that they learn nothing and the server keeps serving. Token rules (F16,
//! JWKS rotation) are in [`tokens`], impersonation (item 4) in
//! [`impersonation`].

use serde_json::{json, Value};

use super::*;

mod impersonation;
mod kept_sessions;
mod raw;
mod tokens;

use raw::{field, RawConn, Reply};

/// The HS256 secret of the suite's identity provider.
pub const JWT_SECRET: &str = "the attack suite's shared JWT secret (32+ bytes)";

/// An `[auth.jwt]` block for [`JWT_SECRET`], with extra keys.
pub fn jwt_config(extra: &str) -> String {
    format!("\n[auth.jwt]\nalgorithm = \"HS256\"\nsecret = \"{JWT_SECRET}\"\n{extra}\n")
}

/// A token signed with [`JWT_SECRET`].
pub fn hs256(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Ten minutes from now, as a JWT time.
pub fn in_ten_minutes() -> i64 {
    chrono::Utc::now().timestamp() + 600
}

/// Turn the demo's `allow_cleartext = true` off.
pub fn forbid_cleartext(config: &mut String) {
    let before = config.clone();
    *config = config.replace("allow_cleartext = true", "allow_cleartext = false");
    assert_ne!(&before, config, "the demo config sets allow_cleartext");
}

/// A self-signed certificate for `localhost`.
pub struct Certs {
    _dir: tempfile::TempDir,
    pub pem: String,
    /// `[tls]` with these files.
    pub config: String,
}

pub fn self_signed(required: bool) -> Certs {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let pem = certified.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let config = format!(
        "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nrequired = {required}\n",
        cert.display(),
        key.display()
    );
    Certs {
        _dir: dir,
        pem,
        config,
    }
}

/// The SQLSTATE of a failed connection.
pub fn code(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| panic!("no SQLSTATE in {err:?}"))
}

/// The server's message of a failed connection.
pub fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| panic!("no server message in {err:?}"))
}

/// Whether a Flight SQL call failed with UNAUTHENTICATED.
pub fn unauthenticated(err: &arrow_flight::error::FlightError) -> bool {
    matches!(err, arrow_flight::error::FlightError::Tonic(status)
        if status.code() == tonic::Code::Unauthenticated)
}

/// A mesh that accepts JWTs, offers TLS without requiring it and allows no
/// cleartext credentials without TLS; with its certificates.
async fn jwt_mesh_with_optional_tls() -> (AttackMesh, Certs) {
    let certs = self_signed(false);
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        forbid_cleartext(config);
        config.push_str(&certs.config);
        config.push_str(&jwt_config(""));
    })
    .await;
    (mesh, certs)
}

#[tokio::test]
async fn f8_no_password_or_token_is_asked_for_in_cleartext_without_tls() {
    let (mesh, certs) = jwt_mesh_with_optional_tls().await;
    let addr = mesh.mesh.pgwire_addr();

    // Without TLS every name — known, mistyped, unknown, token-only — gets
    // SCRAM, which never sends the password (and cannot carry a token).
    for user in ["analyst", "Analyst", "no_such_user", "carol"] {
        let mut conn = RawConn::plain(addr).await;
        conn.startup(&[("user", user), ("database", "members")])
            .await;
        assert_eq!(
            conn.read().await,
            Reply::Sasl(vec!["SCRAM-SHA-256".into()]),
            "{user} over plaintext"
        );
    }
    // So a token cannot sign in without TLS: it would travel in clear.
    let carol = hs256(json!({"sub": "carol", "exp": in_ten_minutes()}));
    let err = mesh
        .mesh
        .connect_as("carol", &carol, "members")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "28P01", "{err}");

    // Over TLS every name is asked the same question, and a token works.
    for user in ["analyst", "no_such_user"] {
        let mut conn = RawConn::tls(addr, &certs.pem).await;
        conn.startup(&[("user", user)]).await;
        assert_eq!(conn.read().await, Reply::Cleartext, "{user} over TLS");
    }
    let mut conn = RawConn::tls(addr, &certs.pem).await;
    conn.startup(&[("user", "carol"), ("database", "members")])
        .await;
    assert_eq!(conn.read().await, Reply::Cleartext);
    conn.password(&carol).await;
    assert_eq!(conn.read_outcome().await, Reply::ReadyForQuery);

    mesh.assert_serving().await;
}

/// A SCRAM exchange up to the server-first message: (mechanisms, salt,
/// iterations), then a made-up proof and the server's verdict.
async fn scram_probe(addr: std::net::SocketAddr, user: &str) -> (Reply, String, String, Reply) {
    let mut conn = RawConn::plain(addr).await;
    conn.startup(&[("user", user), ("database", "members")])
        .await;
    let offered = conn.read().await;
    conn.scram_first().await;
    let Reply::SaslContinue(server_first) = conn.read().await else {
        panic!("{user}: no SCRAM server-first message");
    };
    let salt = field(&server_first, 's').expect("salt");
    let iterations = field(&server_first, 'i').expect("iterations");
    conn.scram_final(&server_first).await;
    let verdict = conn.read().await;
    (offered, salt, iterations, verdict)
}

#[tokio::test]
async fn f11_unknown_user_names_get_the_same_exchange_as_known_ones() {
    let mesh = attack_mesh().await;
    let addr = mesh.mesh.pgwire_addr();

    let mut salts = Vec::new();
    for user in ["analyst", "intruder", "no_such_user", "Analyst"] {
        let (offered, salt, iterations, verdict) = scram_probe(addr, user).await;
        assert_eq!(offered, Reply::Sasl(vec!["SCRAM-SHA-256".into()]), "{user}");
        assert_eq!(iterations, "4096", "{user}");
        assert_eq!(
            verdict,
            Reply::Error(
                "28P01".into(),
                format!("password authentication failed for user \"{user}\"")
            ),
            "{user}: fails at the end, like a wrong password"
        );
        // A salt is stable per name, real or not, so asking twice tells
        // nothing either.
        let (_, again, _, _) = scram_probe(addr, user).await;
        assert_eq!(salt, again, "{user}");
        salts.push(salt);
    }
    let lengths: Vec<usize> = salts.iter().map(String::len).collect();
    assert!(lengths.windows(2).all(|w| w[0] == w[1]), "{salts:?}");
    salts.sort();
    salts.dedup();
    assert_eq!(salts.len(), 4, "every name has its own salt");

    // A real client sees the same failure for a wrong password and an
    // unknown name, over pgwire and over Flight SQL.
    let wrong = mesh
        .mesh
        .connect_as("analyst", "wrong", "members")
        .await
        .unwrap_err();
    let unknown = mesh
        .mesh
        .connect_as("no_such_user", "wrong", "members")
        .await
        .unwrap_err();
    assert_eq!(
        (code(&wrong), code(&unknown)),
        ("28P01".into(), "28P01".into())
    );
    assert_eq!(
        message(&wrong).replace("analyst", "X"),
        message(&unknown).replace("no_such_user", "X")
    );
    let mut flight = flight_anonymous(&mesh).await;
    let wrong = flight.handshake("analyst", "wrong").await.unwrap_err();
    let unknown = flight.handshake("no_such_user", "wrong").await.unwrap_err();
    assert_eq!(
        wrong.to_string().replace("analyst", "X"),
        unknown.to_string().replace("no_such_user", "X")
    );
    // The client wraps the status in text: UNAUTHENTICATED's description.
    assert!(
        wrong
            .to_string()
            .contains("does not have valid authentication credentials"),
        "{wrong}"
    );

    mesh.assert_serving().await;
}

#[tokio::test]
async fn f13_nothing_about_catalogs_before_authentication() {
    let mesh = attack_mesh().await;
    let catalogs = ["members", "claims", "providers"];

    // A missing database is not even mentioned before the password.
    let mut conn = RawConn::plain(mesh.mesh.pgwire_addr()).await;
    conn.startup(&[("user", "intruder"), ("database", "no_such_db")])
        .await;
    assert_eq!(conn.read().await, Reply::Sasl(vec!["SCRAM-SHA-256".into()]));
    for (user, pw) in [("intruder", "wrong"), ("no_such_user", "wrong")] {
        let err = mesh
            .mesh
            .connect_as(user, pw, "no_such_db")
            .await
            .unwrap_err();
        assert_eq!(code(&err), "28P01", "{user}: {err}");
        assert!(catalogs.iter().all(|c| !message(&err).contains(c)), "{err}");
    }
    // Signed in, the user learns that the database does not exist, and no
    // catalog names.
    let err = mesh
        .mesh
        .connect_as("intruder", &password("intruder"), "no_such_db")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "3D000", "{err}");
    assert_eq!(message(&err), "database \"no_such_db\" does not exist");

    mesh.assert_serving().await;
}

#[tokio::test]
async fn f15_a_startup_parameter_cannot_choose_the_sign_in_mechanism() {
    let (mesh, _certs) = jwt_mesh_with_optional_tls().await;
    let addr = mesh.mesh.pgwire_addr();
    // The old switch, as a parameter and as an option, for a SCRAM user and
    // a token user: SCRAM every time.
    for (user, key, value) in [
        ("analyst", "meshgate.token_auth", "jwt"),
        ("carol", "meshgate.token_auth", "jwt"),
        ("analyst", "options", "-c meshgate.token_auth=jwt"),
    ] {
        let mut conn = RawConn::plain(addr).await;
        conn.startup(&[("user", user), ("database", "members"), (key, value)])
            .await;
        assert_eq!(
            conn.read().await,
            Reply::Sasl(vec!["SCRAM-SHA-256".into()]),
            "{user} with {key}={value}"
        );
    }
    // A client that sends a cleartext password anyway is refused: the
    // server is in a SCRAM exchange.
    let mut conn = RawConn::plain(addr).await;
    conn.startup(&[("user", "analyst"), ("meshgate.token_auth", "jwt")])
        .await;
    let _ = conn.read().await;
    const PROBE: &str = "analyst-cleartext-probe";
    conn.password(PROBE).await;
    match conn.read().await {
        Reply::Error(_, message) => assert!(!message.contains(PROBE), "{message}"),
        other => panic!("a cleartext password in a SCRAM exchange must fail: {other:?}"),
    }
    assert_eq!(conn.read().await, Reply::Closed);
    assert!(
        !mesh.audit_text().contains(PROBE),
        "the audit never holds a password"
    );

    mesh.assert_serving().await;
}

/// The failed sign-ins in the audit log.
fn sign_in_failures(mesh: &AttackMesh) -> Vec<Value> {
    mesh.audit_text()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|r| r["sql"].as_str().unwrap_or_default().starts_with("sign-in"))
        .collect()
}

#[tokio::test]
async fn failed_sign_ins_are_audited_without_the_secret() {
    let mesh = attack_mesh().await;
    const GUESS: &str = "Tr0ub4dor&3-guess";

    assert!(mesh
        .mesh
        .connect_as("analyst", GUESS, "members")
        .await
        .is_err());
    assert!(mesh
        .mesh
        .connect_as("no_such_user", GUESS, "members")
        .await
        .is_err());
    let mut flight = flight_anonymous(&mesh).await;
    assert!(flight.handshake("intruder", GUESS).await.is_err());
    let forged = format!("eyJmb3JnZWQ.{GUESS}");
    flight.set_token(forged.clone());
    assert!(flight.execute("SELECT 1".into(), None).await.is_err());
    // Signing in successfully is not a failure.
    mesh.assert_serving().await;

    let failures = sign_in_failures(&mesh);
    let find = |user: &str, protocol: &str| {
        failures
            .iter()
            .find(|r| r["user"] == user && r["protocol"] == protocol)
            .unwrap_or_else(|| panic!("no failed sign-in of {user} over {protocol}: {failures:#?}"))
    };
    for (user, protocol, error) in [
        ("analyst", "pgwire", "28P01"),
        ("no_such_user", "pgwire", "28P01"),
        ("intruder", "flight_sql", "password authentication failed"),
    ] {
        let record = find(user, protocol);
        assert_eq!(record["decision"], "denied", "{record}");
        assert!(
            record["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{record}"
        );
        assert!(
            record["error"].as_str().unwrap().contains(error),
            "{record}"
        );
    }
    assert!(
        failures
            .iter()
            .any(|r| r["protocol"] == "flight_sql" && r["sql"] == "sign-in (bearer token)"),
        "{failures:#?}"
    );
    assert!(
        failures.iter().all(|r| r["user"] != "admin"),
        "{failures:#?}"
    );
    // Never the password or the token.
    let audit = mesh.audit_text();
    assert!(
        !audit.contains(GUESS) && !audit.contains(&forged),
        "{audit}"
    );
}

#[tokio::test]
async fn a_failed_sign_in_leaves_nothing_to_talk_to() {
    let mesh = attack_mesh().await;
    // A wrong SCRAM proof, then queries on the same connection as if the
    // sign-in had worked: no row ever comes back.
    let mut conn = RawConn::plain(mesh.mesh.pgwire_addr()).await;
    conn.startup(&[("user", "admin"), ("database", "members")])
        .await;
    let _ = conn.read().await;
    conn.scram_first().await;
    let Reply::SaslContinue(server_first) = conn.read().await else {
        panic!("no SCRAM server-first message");
    };
    conn.scram_final(&server_first).await;
    // Sent before the verdict arrives, as an attacker pipelining would.
    conn.query("SELECT last_name FROM members.public.members")
        .await;
    conn.query("GRANT SELECT ON members.public.members TO intruder")
        .await;
    let mut replies = vec![];
    loop {
        let reply = conn.read().await;
        replies.push(reply.clone());
        if reply == Reply::Closed {
            break;
        }
    }
    assert!(
        matches!(&replies[0], Reply::Error(code, _) if code == "28P01"),
        "{replies:?}"
    );
    assert!(!replies.contains(&Reply::DataRow), "{replies:?}");
    assert!(
        !replies.iter().any(|r| matches!(r, Reply::Other(b'T'))),
        "no row description either: {replies:?}"
    );
    // Nor did anything run as admin: the grant never happened.
    let intruder = mesh.pg("intruder").await;
    let state = sqlstate(&intruder, "SELECT * FROM members.public.members").await;
    assert!(state == "42501" || state == "42P01", "{state}");
    assert!(
        !mesh.audit_text().contains("GRANT"),
        "{}",
        mesh.audit_text()
    );
    mesh.assert_serving().await;
}
