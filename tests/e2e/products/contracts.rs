//! Descriptor errors that name their file and key, and a source that breaks
//! its product's contract.

#[tokio::test]
async fn descriptor_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let config = write(
        "meshgate.toml",
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.sales]\nconnector = \"files\"\nroot = \".\"\nproducts_file = \"sales.yaml\"\n",
    );
    let error = |yaml: &str| {
        write("sales.yaml", yaml);
        meshgate_gateway::Config::load(&config)
            .unwrap_err()
            .to_string()
    };
    let product = "products:\n  - name: orders\n    owner: { team: sales }\n    tables:\n      - name: public.orders\n";
    let err = error(&product.replace("owner: { team: sales }", "owner: { teem: sales }"));
    assert!(
        err.contains("sales.yaml: products[0].owner.teem: unknown field `teem`"),
        "{err}"
    );
    let err = error(&product.replace("public.orders", "orders"));
    assert!(
        err.contains("sales.yaml: products[0].tables[0].name: `orders` is not `schema.table`"),
        "{err}"
    );
    let err = error(&format!(
        "{product}        columns: [{{ name: total, type: \"decimal(10\" }}]\n"
    ));
    assert!(
        err.contains("sales.yaml: products[0].tables[0].columns[0].type:"),
        "{err}"
    );
    // Inline products are named by their key in the configuration.
    write(
        "meshgate.toml",
        "[listeners.pgwire]\naddress = \"127.0.0.1:0\"\n\
         [catalogs.sales]\nconnector = \"files\"\nroot = \".\"\n\
         [[catalogs.sales.products]]\nname = \"orders\"\nowner = { team = \"sales\" }\n\
         tables = [{ name = \"public.orders\" }]\nslo = { availability = \"always\" }\n",
    );
    let err = meshgate_gateway::Config::load(&config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("meshgate.toml: catalogs.sales.products[0].slo.availability:"),
        "{err}"
    );
}

#[tokio::test]
async fn a_source_that_breaks_its_contract_fails_that_product_only() {
    use meshgate_tests::{pg_port, PgDatabase, TestMesh};
    let db = PgDatabase::create("contract").await;
    db.client
        .batch_execute(
            "CREATE TABLE orders (order_id bigint PRIMARY KEY, total text); \
             INSERT INTO orders VALUES (1, '9.50'); \
             CREATE TABLE customers (id int); INSERT INTO customers VALUES (7); \
             CREATE TABLE refunds (id int, updated_at timestamptz); \
             INSERT INTO refunds VALUES (1, now() - interval '2 hours')",
        )
        .await
        .unwrap();
    // The sales domain declares its products inline; `total` was promised
    // as a decimal, and the source has since made it text.
    let products = r#"
[[catalogs.sales.products]]
name = "orders"
owner = { team = "sales" }
tables = [{ name = "public.orders", columns = [{ name = "order_id", type = "bigint" }, { name = "total", type = "decimal(10,2)" }] }]
[[catalogs.sales.products]]
name = "refunds"
owner = { team = "sales" }
slo = { freshness = "1h" }
tables = [{ name = "public.refunds", freshness_column = "updated_at" }]
quality = [{ name = "no_refunds", query = "SELECT count(*) FROM sales.public.refunds" }]
"#;
    let mesh = TestMesh::start_with(|config| {
        config.push_str(&db.catalog_toml("sales", pg_port(), ""));
        config.push_str(products);
    })
    .await;
    let client = mesh.connect("sales").await;
    let err = client
        .simple_query("SELECT * FROM sales.public.orders")
        .await
        .unwrap_err();
    let db_error = err.as_db_error().expect("a server error");
    assert_eq!(db_error.code().code(), "55000", "{db_error:?}");
    assert_eq!(
        db_error.message(),
        "data product `orders` breaks its contract: column `total` of sales.public.orders \
         is promised as decimal(10,2), the source serves Utf8"
    );
    // The rest of the catalog serves, and so does the connection.
    let rows = meshgate_tests::simple_rows(
        &client
            .simple_query("SELECT count(*) FROM sales.public.customers")
            .await
            .unwrap(),
    );
    assert_eq!(rows[0][0].as_deref(), Some("1"));
    // A database product's freshness is its declared column's maximum.
    let rows = meshgate_tests::simple_rows(
        &client
            .simple_query(
                "SELECT measured_by, within_slo, age_seconds BETWEEN 7000 AND 7400 \
                 FROM system.freshness WHERE product = 'refunds'",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        rows,
        [["max(updated_at)", "f", "t"].map(|s| Some(s.to_owned()))]
    );
    // Quality rules run on demand; a failed rule is a result, not an error.
    client
        .simple_query("CALL system.check_product('refunds')")
        .await
        .unwrap();
    let rows = meshgate_tests::simple_rows(
        &client
            .simple_query(
                "SELECT rule, value, must_be, passed, checked_by FROM system.quality_results \
                 WHERE product = 'refunds'",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        rows,
        [["no_refunds", "1", "0", "f", "analyst"].map(|s| Some(s.to_owned()))]
    );
    let err = client
        .simple_query("CALL system.check_product('nope')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42704");
}
