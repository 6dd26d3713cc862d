//! The data products' HTTP discovery API and page, as a consumer uses them.

use super::{products_mesh, AttackMesh};

/// `GET path` on the HTTP listener as `user`: the status and the JSON body.
async fn get_as(mesh: &AttackMesh, user: Option<&str>, path: &str) -> (u16, serde_json::Value) {
    use crate::admin_page::{basic, request};
    let addr = mesh.mesh.gateway.http_addr.expect("http listener");
    let auth = user.map(|u| basic(u, &crate::attacks::password(u)));
    let (status, _, body) = request(addr, "GET", path, auth.as_deref(), None).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
    (status, json)
}

fn product_names(list: &serde_json::Value) -> Vec<String> {
    list["products"]
        .as_array()
        .unwrap_or_else(|| panic!("no products: {list}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_http_discovery_api_shows_what_sql_shows_and_documents_itself() {
    let mesh = products_mesh().await;
    let (status, list) = get_as(&mesh, Some("analyst"), "/v1/products").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(product_names(&list), ["claims", "members"]);
    for (query, expected) in [
        ("?tag=gold", vec!["members"]),
        ("?q=CLAIM", vec!["claims"]),
        ("?owner=membership&tag=gold", vec!["members"]),
        ("?domain=provider-network", vec![]),
    ] {
        let (_, list) = get_as(&mesh, Some("analyst"), &format!("/v1/products{query}")).await;
        assert_eq!(product_names(&list), expected, "{query}");
    }
    let (status, members) = get_as(&mesh, Some("analyst"), "/v1/products/members").await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["owner"], "membership");
    assert_eq!(members["freshness"][0]["within_slo"], false);
    assert_eq!(
        members["freshness"][0]["measured_by"],
        "file modification time"
    );
    let last_name = members["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "last_name")
        .expect("last_name is promised");
    assert_eq!(last_name["tags"], serde_json::json!(["pii"]));
    assert!(members["sample_query"]
        .as_str()
        .unwrap()
        .contains("members.public.members"));
    // A product the caller may not read is as absent as one that does not exist.
    let (hidden, body) = get_as(&mesh, Some("analyst"), "/v1/products/providers").await;
    let (missing, other) = get_as(&mesh, Some("analyst"), "/v1/products/nope").await;
    assert_eq!((hidden, missing), (404, 404));
    assert_eq!(
        body["error"].as_str().unwrap().replace("providers", "X"),
        other["error"].as_str().unwrap().replace("nope", "X")
    );
    let (status, _) = get_as(&mesh, Some("admin"), "/v1/products/providers").await;
    assert_eq!(status, 200);
    let (_, list) = get_as(&mesh, Some("intruder"), "/v1/products").await;
    assert!(product_names(&list).is_empty());
    let (status, _) = get_as(&mesh, None, "/v1/products").await;
    assert_eq!(status, 401);
    // The OpenAPI document is generated from the handlers.
    let (status, doc) = get_as(&mesh, None, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/v1/products/{name}"]["get"].is_object(),
        "{doc}"
    );
    // Each call is audited with its caller.
    assert!(mesh
        .audit_text()
        .lines()
        .any(|l| l.contains("GET /v1/products/providers") && l.contains("\"user\":\"analyst\"")));
    mesh.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_products_page_lists_searches_and_shows_a_product_in_chromium() {
    let node_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        node_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run .ci/run once (it runs npm ci in tests/node)"
    );
    let mesh = products_mesh().await;
    let addr = mesh.mesh.gateway.http_addr.expect("http listener");
    let screenshot = crate::admin_page::artifacts_dir().join("products-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("products_page.mjs")
            .arg(&shot)
            .current_dir(&node_dir)
            .env("MESHGATE_URL", format!("http://{addr}"))
            .env("MESHGATE_USER", "analyst")
            .env("MESHGATE_PASSWORD", crate::attacks::password("analyst"))
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the products page script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let result: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}"));
    assert_eq!(result["listed"], serde_json::json!(["claims", "members"]));
    assert_eq!(result["gold"], serde_json::json!(["members"]));
    assert_eq!(result["product"], "members");
    assert_eq!(result["freshness"], serde_json::json!(["no: past its SLO"]));
    assert_eq!(
        result["pii_columns"],
        serde_json::json!(["last_name", "birth_date"])
    );
    assert_eq!(
        result["connections"],
        serde_json::json!(["psql", "ADBC (Python)", "polars"])
    );
    let psql = result["psql"].as_str().unwrap();
    assert!(
        psql.contains(&format!("port={}", mesh.mesh.pgwire_addr().port())),
        "{psql}"
    );
    assert!(psql.contains("user=analyst dbname=members"), "{psql}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000),
        "screenshot kept at {}",
        screenshot.display()
    );
    mesh.assert_serving().await;
}
