//! Token rules (F16 and JWKS rotation): a token is accepted only when signed
//! with the configured algorithm by a current key of the issuer, for this
//! audience, and valid now. Refused tokens open no session over pgwire or
//! Flight SQL; keys rotate through a JWKS served by a real local HTTP server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// Whether `token` signs `user` in over pgwire and over Flight SQL (as a
/// bearer token); both must agree.
async fn signs_in(mesh: &AttackMesh, user: &str, token: &str) -> bool {
    let pg = mesh.mesh.connect_as(user, token, "members").await;
    if let Err(err) = &pg {
        assert_eq!(code(err), "28P01", "{err}");
    }
    let mut flight = flight_anonymous(mesh).await;
    flight.set_token(token.to_owned());
    let over_flight = match flight.execute("SELECT 1 AS one".into(), None).await {
        Ok(_) => true,
        Err(e) => {
            assert!(unauthenticated(&e), "{e}");
            false
        }
    };
    assert_eq!(
        pg.is_ok(),
        over_flight,
        "pgwire and Flight SQL disagree on {user}"
    );
    over_flight
}

/// A signed-in token user without grants still reads nothing.
async fn learns_nothing(mesh: &AttackMesh, user: &str, token: &str) {
    let client = mesh.mesh.connect_as(user, token, "members").await.unwrap();
    let state = sqlstate(&client, "SELECT * FROM members.public.members").await;
    assert!(state == "42501" || state == "42P01", "{state}");
}

#[tokio::test]
async fn f16_tokens_for_another_audience_or_not_yet_valid_are_refused() {
    let iss = "https://idp.example";
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        config.push_str(&jwt_config(&format!(
            "issuer = \"{iss}\"\naudience = \"meshgate\""
        )))
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let exp = in_ten_minutes();
    let good = hs256(json!({"sub": "carol", "aud": "meshgate", "iss": iss, "exp": exp}));
    assert!(signs_in(&mesh, "carol", &good).await);
    learns_nothing(&mesh, "carol", &good).await;

    let none = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        let claims = json!({"sub": "carol", "aud": "meshgate", "iss": iss, "exp": exp});
        format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(claims.to_string())
        )
    };
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"sub": "carol", "aud": "meshgate", "iss": iss, "exp": exp}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    for (why, token) in [
        (
            "another audience",
            hs256(json!({"sub": "carol", "aud": "other-app", "iss": iss, "exp": exp})),
        ),
        (
            "not valid for a day",
            hs256(
                json!({"sub": "carol", "aud": "meshgate", "iss": iss, "exp": exp + 86400, "nbf": now + 86400}),
            ),
        ),
        (
            "no audience",
            hs256(json!({"sub": "carol", "iss": iss, "exp": exp})),
        ),
        (
            "another issuer",
            hs256(
                json!({"sub": "carol", "aud": "meshgate", "iss": "https://evil.example", "exp": exp}),
            ),
        ),
        (
            "no issuer",
            hs256(json!({"sub": "carol", "aud": "meshgate", "exp": exp})),
        ),
        (
            "expired",
            hs256(json!({"sub": "carol", "aud": "meshgate", "iss": iss, "exp": now - 3600})),
        ),
        (
            "no expiry",
            hs256(json!({"sub": "carol", "aud": "meshgate", "iss": iss})),
        ),
        ("alg none", none),
        ("another algorithm", hs512),
    ] {
        assert!(!signs_in(&mesh, "carol", &token).await, "{why}");
    }
    mesh.assert_serving().await;

    // Without a configured audience a token naming one was issued for some
    // other service: refused. A token naming none is accepted.
    let open = attack_mesh_with(ATTACK_POLICY, |config| config.push_str(&jwt_config(""))).await;
    let foreign = hs256(json!({"sub": "carol", "aud": "other-app", "exp": exp}));
    assert!(!signs_in(&open, "carol", &foreign).await);
    let plain = hs256(json!({"sub": "carol", "exp": exp}));
    assert!(signs_in(&open, "carol", &plain).await);
    open.assert_serving().await;
}

/// A tiny HTTP server that serves one JWKS document and counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(body));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            url,
            body,
            hits,
            task,
        }
    }

    fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh P-256 signing key and its public JWK under `kid`.
fn es256_key(kid: &str) -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (key, serde_json::to_value(jwk).unwrap())
}

fn es256(key: &EncodingKey, kid: &str, user: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &json!({"sub": user, "exp": in_ten_minutes()}), key).unwrap()
}

fn jwks(keys: &[&Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn jwks_config(url: &str, min_refetch_secs: u64) -> String {
    format!(
        "\n[auth.jwt]\nalgorithm = \"ES256\"\njwks_url = \"{url}\"\njwks_min_refetch_secs = {min_refetch_secs}\n"
    )
}

#[tokio::test]
async fn jwks_keys_rotate_and_only_current_keys_verify() {
    let (key_a, jwk_a) = es256_key("a");
    let (key_b, jwk_b) = es256_key("b");
    let server = JwksServer::start(jwks(&[&jwk_a])).await;
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        config.push_str(&jwks_config(&server.url, 0))
    })
    .await;
    assert_eq!(server.hits(), 1, "the key set is fetched at start-up");

    let token_a = es256(&key_a, "a", "carol");
    let token_b = es256(&key_b, "b", "carol");
    assert!(signs_in(&mesh, "carol", &token_a).await);
    assert!(
        !signs_in(&mesh, "carol", &token_b).await,
        "b is not published yet"
    );

    // The issuer rotates: b in, a out. A token naming b makes meshgate fetch
    // the set again; a is gone with it.
    server.serve(jwks(&[&jwk_b]));
    assert!(signs_in(&mesh, "carol", &token_b).await);
    assert!(
        !signs_in(&mesh, "carol", &token_a).await,
        "a was rotated out"
    );
    learns_nothing(&mesh, "carol", &token_b).await;

    // Algorithm confusion: HS256 "signed" with the public key, and alg none.
    let public = serde_json::to_vec(&jwk_b).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("b".into());
    let confused = jsonwebtoken::encode(
        &header,
        &json!({"sub": "carol", "exp": in_ten_minutes()}),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert!(
        !signs_in(&mesh, "carol", &confused).await,
        "HS256 with a public key"
    );
    let none = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine;
        format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","kid":"b"}"#),
            B64.encode(json!({"sub": "carol", "exp": in_ten_minutes()}).to_string())
        )
    };
    assert!(!signs_in(&mesh, "carol", &none).await, "alg none");
    mesh.assert_serving().await;
}

#[tokio::test]
async fn unknown_key_ids_do_not_make_meshgate_hammer_the_issuer() {
    let (key_a, jwk_a) = es256_key("a");
    let server = JwksServer::start(jwks(&[&jwk_a])).await;
    let mesh = attack_mesh_with(ATTACK_POLICY, |config| {
        config.push_str(&jwks_config(&server.url, 3600))
    })
    .await;
    assert_eq!(server.hits(), 1);
    // Tokens with made-up key ids: refused, and at most one refetch per
    // hour — none here, the start-up fetch was just now.
    for kid in ["x1", "x2", "x3", "x4", "x5"] {
        let (forger, _) = es256_key(kid);
        assert!(!signs_in(&mesh, "carol", &es256(&forger, kid, "carol")).await);
    }
    assert_eq!(server.hits(), 1, "rate limited");
    assert!(signs_in(&mesh, "carol", &es256(&key_a, "a", "carol")).await);
    mesh.assert_serving().await;
}
