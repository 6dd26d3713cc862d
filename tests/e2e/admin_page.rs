//! The admin page (`/admin` on the HTTP listener): driven in a real
//! headless Chromium by `tests/node/admin_page.mjs` (playwright-core), with
//! the effects checked afterwards over pgwire; and its JSON API attacked
//! over plain HTTP — no credentials, a non-admin, malformed input — while
//! the server keeps serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::attacks::{attack_mesh_with, password, simple_rows, AttackMesh, ATTACK_POLICY};

pub(crate) const HTTP: &str = "\n[listeners.http]\naddress = \"127.0.0.1:0\"\n";

/// Text of the statement the page kills (it runs for hours otherwise).
const MARKER: &str = "admin_page_kill_me";

async fn admin_mesh() -> (AttackMesh, SocketAddr) {
    let mesh = attack_mesh_with(ATTACK_POLICY, |c| c.push_str(HTTP)).await;
    let addr = mesh.mesh.gateway.http_addr.expect("http listener");
    (mesh, addr)
}

/// Where test artifacts are kept: `$CARGO_TARGET_DIR/artifacts`, or
/// `target/artifacts` in the workspace.
pub(crate) fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_kills_changes_the_policy_and_searches_the_audit_log() {
    let node_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        node_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run .ci/run once (it runs npm ci in tests/node)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run .ci/run once (it installs Debian's chromium)"
    );
    let (mesh, addr) = admin_mesh().await;
    // Before: intruder may not read providers; analyst may (both audited).
    let intruder = mesh.pg("intruder").await;
    assert!(
        simple_rows(&intruder, "SELECT count(*) FROM providers.public.providers")
            .await
            .is_err()
    );
    let analyst = mesh.pg("analyst").await;
    simple_rows(&analyst, "SELECT count(*) FROM providers.public.providers")
        .await
        .expect("analyst reads providers");
    // A statement that runs until someone kills it.
    let long = tokio::spawn(async move {
        let sql = format!("SELECT count(*) AS {MARKER} FROM range(1, 100000000000000)");
        simple_rows(&analyst, &sql).await
    });

    let screenshot = artifacts_dir().join("admin-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("admin_page.mjs")
            .arg(&shot)
            .current_dir(&node_dir)
            .env("MESHGATE_ADMIN_URL", format!("http://{addr}"))
            .env("MESHGATE_ADMIN_USER", "admin")
            .env("MESHGATE_ADMIN_PASSWORD", password("admin"))
            .env("MESHGATE_OTHER_USER", "intruder")
            .env("MESHGATE_OTHER_PASSWORD", password("intruder"))
            .env("MESHGATE_GRANT_USER", "intruder")
            .env("MESHGATE_GRANT_TABLES", "providers.public.*")
            .env("MESHGATE_KILL_MARKER", MARKER)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the admin page script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for step in [
        "ok non-admin refused",
        "ok query killed",
        "ok policy change previewed",
        "ok policy change applied",
        "ok audit searched",
    ] {
        assert!(
            stdout.lines().any(|l| l == step),
            "{step} missing:\n{stdout}"
        );
    }
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|json| serde_json::from_str(json).expect("RESULT is JSON"))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}"));
    assert_eq!(result["signed_in_as"], "admin");
    assert_eq!(result["killed_state"], "cancelled");
    assert_eq!(
        result["version_after"].as_u64().unwrap(),
        result["version_before"].as_u64().unwrap() + 1
    );
    assert!(result["diff"]
        .as_str()
        .unwrap()
        .contains("+principals = [\"user:intruder\"]"));
    assert!(result["audit_denied"].as_u64().unwrap() >= 1, "{result}");
    assert!(
        result["audit_denied_protocols"]
            .as_array()
            .unwrap()
            .contains(&Value::from("admin_http")),
        "{result}"
    );

    // The killed statement ended with 57014 for its own client.
    let killed = tokio::time::timeout(Duration::from_secs(20), long)
        .await
        .expect("the killed statement returned")
        .unwrap();
    let code = killed.expect_err("the statement was killed");
    assert_eq!(code.code().map(|c| c.code()), Some("57014"), "{code:?}");
    // The policy change applies over pgwire at once, and is in the file.
    let intruder = mesh.pg("intruder").await;
    let rows = simple_rows(&intruder, "SELECT count(*) FROM providers.public.providers")
        .await
        .expect("intruder reads providers after the change");
    assert_eq!(rows.len(), 1);
    let file = std::fs::read_to_string(mesh.policy_path()).unwrap();
    assert!(file.contains("user:intruder"), "{file}");
    // The change was recorded as the admin's.
    assert!(mesh.audit_text().lines().any(|l| {
        let r: Value = serde_json::from_str(l).unwrap();
        r["user"] == "admin"
            && r["protocol"] == "admin_http"
            && r["decision"] == "allowed"
            && r["sql"]
                .as_str()
                .unwrap()
                .starts_with("admin page ApplyPolicy")
    }));
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    mesh.assert_serving().await;
}

/// One HTTP/1.1 request: status, headers (lower-case names) and body.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The JSON error of an answer; fails if the body is not `{"error": ...}`.
pub(crate) fn error_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_owned()
}

/// Every API route, with a well-formed request body.
const ROUTES: [(&str, &str, Option<&str>); 7] = [
    ("GET", "/admin/api/me", None),
    ("GET", "/admin/api/queries", None),
    (
        "POST",
        "/admin/api/queries/kill",
        Some(r#"{"id":"0123abcd"}"#),
    ),
    ("GET", "/admin/api/policy", None),
    (
        "POST",
        "/admin/api/policy/preview",
        Some(r#"{"toml":"version = 1"}"#),
    ),
    (
        "POST",
        "/admin/api/policy/apply",
        Some(r#"{"toml":"version = 1","version":1}"#),
    ),
    ("POST", "/admin/api/audit", Some("{}")),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_refuses_strangers_and_bad_input_and_keeps_serving() {
    let (mesh, addr) = admin_mesh().await;
    let admin = basic("admin", &password("admin"));
    let intruder = basic("intruder", &password("intruder"));

    // The page: strict headers, no data in it.
    let (status, headers, body) = request(addr, "GET", "/admin", None, None).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-security-policy")
        .is_some_and(|v| v.contains("default-src 'self'")));
    assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
    assert!(body.contains("/admin/page.js") && !body.contains("<script>"));
    assert!(!body.contains("row_filters") && !body.contains("analyst"));
    for asset in ["/admin/page.js", "/admin/page.css"] {
        assert_eq!(request(addr, "GET", asset, None, None).await.0, 200);
    }

    for (method, path, body) in ROUTES {
        // Not signed in, or a wrong password: 401.
        for auth in [
            None,
            Some(basic("admin", "wrong").as_str()),
            Some("Bearer nonsense"),
        ] {
            let (status, headers, text) = request(addr, method, path, auth, body).await;
            assert_eq!(status, 401, "{method} {path} {auth:?}: {text}");
            error_of(&text);
            assert_eq!(header(&headers, "cache-control"), Some("no-store"));
        }
        // Signed in, not an admin: 403, and nothing else.
        let (status, _, text) = request(addr, method, path, Some(&intruder), body).await;
        assert_eq!(status, 403, "{method} {path}: {text}");
        assert!(error_of(&text).contains("not a policy admin"), "{text}");
        assert!(
            !text.contains("grants") && !text.contains("version"),
            "{text}"
        );
    }
    assert!(simple_rows(&mesh.pg("admin").await, "SELECT 1")
        .await
        .is_ok());

    // An admin: every answer is JSON with no-store.
    let (status, headers, text) =
        request(addr, "GET", "/admin/api/policy", Some(&admin), None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let policy: Value = serde_json::from_str(&text).unwrap();
    let version = policy["version"].as_u64().unwrap();
    // Malformed bodies: 400.
    for (_, path, _) in ROUTES.iter().filter(|(m, _, _)| *m == "POST") {
        for bad in ["{", "[]", "not json", r#"{"unexpected":1}"#, ""] {
            let (status, _, text) = request(addr, "POST", path, Some(&admin), Some(bad)).await;
            assert_eq!(status, 400, "{path} {bad}: {text}");
            error_of(&text);
        }
    }
    // A kill of a malformed id never reaches SQL.
    for id in ["", "xyz", "1') ; DROP TABLE x; --", &"a".repeat(65)] {
        let body = serde_json::json!({ "id": id }).to_string();
        let (status, _, text) = request(
            addr,
            "POST",
            "/admin/api/queries/kill",
            Some(&admin),
            Some(&body),
        )
        .await;
        assert_eq!(status, 400, "{id}: {text}");
    }
    // A well-formed id that is not running is the planner's answer.
    let (status, _, text) = request(
        addr,
        "POST",
        "/admin/api/queries/kill",
        Some(&admin),
        Some(r#"{"id":"00000000deadbeef"}"#),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert!(error_of(&text).contains("not running"), "{text}");
    // Audit filters: bad values are refused, quotes are data.
    for bad in [r#"{"decision":"maybe"}"#, r#"{"from":"yesterday"}"#] {
        let (status, _, text) =
            request(addr, "POST", "/admin/api/audit", Some(&admin), Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, _, text) = request(
        addr,
        "POST",
        "/admin/api/audit",
        Some(&admin),
        Some(r#"{"user":"x' OR '1'='1","table":"%'); --"}"#),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found["rows"].as_array().unwrap().len(), 0, "{text}");
    // A proposal that does not parse is a problem, not a change.
    let (status, _, text) = request(
        addr,
        "POST",
        "/admin/api/policy/preview",
        Some(&admin),
        Some(r#"{"toml":"[[grants"}"#),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let preview: Value = serde_json::from_str(&text).unwrap();
    assert!(
        !preview["problems"].as_array().unwrap().is_empty(),
        "{text}"
    );
    // Applying against a version that is no longer in force: 409.
    let stale = serde_json::json!({ "toml": policy["toml"], "version": version + 7 }).to_string();
    let (status, _, text) = request(
        addr,
        "POST",
        "/admin/api/policy/apply",
        Some(&admin),
        Some(&stale),
    )
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(error_of(&text).contains("fetch it again"), "{text}");
    let invalid = serde_json::json!({ "toml": "[[grants", "version": version }).to_string();
    let (status, _, _) = request(
        addr,
        "POST",
        "/admin/api/policy/apply",
        Some(&admin),
        Some(&invalid),
    )
    .await;
    assert_eq!(status, 400);

    // The refusals are in the audit log: failed sign-ins and non-admin calls.
    let records: Vec<Value> = mesh
        .audit_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().any(|r| r["protocol"] == "http"
        && r["user"] == "admin"
        && r["decision"] == "denied"
        && r["sql"] == "sign-in (basic)"));
    assert!(records.iter().any(|r| r["protocol"] == "admin_http"
        && r["user"] == "intruder"
        && r["decision"] == "denied"));
    assert!(!mesh.audit_text().contains(&password("admin")));

    // Still serving, on every listener.
    let (status, _, _) = request(addr, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = request(addr, "GET", "/admin/api/me", Some(&admin), None).await;
    assert_eq!(status, 200);
    mesh.assert_serving().await;
}
