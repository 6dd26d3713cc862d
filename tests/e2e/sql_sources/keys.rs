//! Keys the sources declare reach Flight SQL's key commands: primary keys,
//! foreign keys both ways and cross references, from PostgreSQL and
//! MariaDB; a key of or to a table the policy hides is not listed.

use arrow_flight::sql::{
    CommandGetCrossReference, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
};
use arrow_flight::FlightInfo;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;
use futures::TryStreamExt;
use meshgate_tests::{pg_port, MariaDatabase, PgDatabase};

use crate::attacks::{attack_mesh_with, flight, simple_rows};

type Client = arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>;

/// The analyst reads orders and customers, not secrets; admin everything.
const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst"]
tables = ["shop.public.orders", "shop.public.customers"]

[[grants]]
effect = "allow"
principals = ["user:admin"]
tables = ["*"]
"#;

async fn fetch(client: &mut Client, info: FlightInfo) -> Vec<RecordBatch> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Column `i` of every row, as text.
fn column(batches: &[RecordBatch], i: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(i).as_string::<i32>();
            (0..b.num_rows()).map(move |r| c.value(r).to_owned())
        })
        .collect()
}

fn exported(table: &str) -> CommandGetExportedKeys {
    CommandGetExportedKeys {
        catalog: Some("shop".into()),
        db_schema: Some("public".into()),
        table: table.into(),
    }
}

fn primary(table: &str) -> CommandGetPrimaryKeys {
    CommandGetPrimaryKeys {
        catalog: Some("shop".into()),
        db_schema: Some("public".into()),
        table: table.into(),
    }
}

#[tokio::test]
async fn postgres_keys_reach_flight_sql_as_the_policy_allows() {
    let db = PgDatabase::create("mg_keys").await;
    db.client
        .batch_execute(
            "CREATE TABLE customers (region INT, id INT, name TEXT, PRIMARY KEY (region, id));
             CREATE TABLE orders (id INT PRIMARY KEY, region INT, customer_id INT,
               CONSTRAINT orders_customer FOREIGN KEY (region, customer_id)
               REFERENCES customers (region, id) ON DELETE CASCADE);
             CREATE TABLE secret (id INT PRIMARY KEY, region INT, customer_id INT,
               CONSTRAINT secret_customer FOREIGN KEY (region, customer_id)
               REFERENCES customers (region, id));
             COMMENT ON TABLE orders IS 'Every order placed.';
             COMMENT ON COLUMN orders.customer_id IS 'Who placed it.';",
        )
        .await
        .unwrap();
    let mesh = attack_mesh_with(POLICY, |config| {
        config.push_str(&db.catalog_toml("shop", pg_port(), ""));
    })
    .await;
    let mut analyst = flight(&mesh, "analyst").await;

    let info = analyst
        .get_primary_keys(primary("customers"))
        .await
        .unwrap();
    let keys = fetch(&mut analyst, info).await;
    assert_eq!(column(&keys, 3), ["region", "id"]);
    let sequence = keys[0].column(5).as_primitive::<Int32Type>();
    assert_eq!((sequence.value(0), sequence.value(1)), (1, 2));

    // orders' own foreign key, column by column in key order.
    let info = analyst
        .get_imported_keys(CommandGetImportedKeys {
            catalog: Some("shop".into()),
            db_schema: Some("public".into()),
            table: "orders".into(),
        })
        .await
        .unwrap();
    let imported = fetch(&mut analyst, info).await;
    assert_eq!(column(&imported, 2), ["customers", "customers"]);
    assert_eq!(column(&imported, 3), ["region", "id"]);
    assert_eq!(column(&imported, 7), ["region", "customer_id"]);
    assert_eq!(column(&imported, 9), ["orders_customer", "orders_customer"]);
    assert_eq!(
        imported[0]
            .column(12)
            .as_primitive::<datafusion::arrow::datatypes::UInt8Type>()
            .value(0),
        0,
        "ON DELETE CASCADE"
    );

    // Who references customers: orders, not the hidden secret table.
    let info = analyst
        .get_exported_keys(exported("customers"))
        .await
        .unwrap();
    let referencing = fetch(&mut analyst, info).await;
    assert_eq!(column(&referencing, 6), ["orders", "orders"]);
    let info = analyst
        .get_cross_reference(CommandGetCrossReference {
            pk_catalog: Some("shop".into()),
            pk_db_schema: Some("public".into()),
            pk_table: "customers".into(),
            fk_catalog: Some("shop".into()),
            fk_db_schema: Some("public".into()),
            fk_table: "orders".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        fetch(&mut analyst, info)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        2
    );
    // The hidden table's keys are as absent as the table.
    let info = analyst.get_primary_keys(primary("secret")).await.unwrap();
    assert!(fetch(&mut analyst, info)
        .await
        .iter()
        .all(|b| b.num_rows() == 0));
    // The same keys reach information_schema over pgwire, policy-filtered.
    let pg = mesh.pg("analyst").await;
    let constraints = simple_rows(
        &pg,
        "SELECT table_name, constraint_name, constraint_type \
         FROM shop.information_schema.table_constraints ORDER BY 1, 2",
    )
    .await
    .unwrap();
    assert_eq!(
        constraints,
        [
            ["customers", "customers_pkey", "PRIMARY KEY"],
            ["orders", "orders_customer", "FOREIGN KEY"],
            ["orders", "orders_pkey", "PRIMARY KEY"],
        ]
        .map(|r| r.map(|c| Some(c.to_owned())))
    );
    let usage = simple_rows(
        &pg,
        "SELECT k.column_name, c.column_name AS referenced, r.delete_rule \
         FROM shop.information_schema.key_column_usage k \
         JOIN shop.information_schema.referential_constraints r USING (constraint_name) \
         JOIN shop.information_schema.constraint_column_usage c USING (constraint_name) \
         WHERE k.constraint_name = 'orders_customer' AND c.column_name = \
           CASE k.ordinal_position WHEN 1 THEN 'region' ELSE 'id' END \
         ORDER BY k.ordinal_position",
    )
    .await
    .unwrap();
    assert_eq!(
        usage,
        [
            ["region", "region", "CASCADE"],
            ["customer_id", "id", "CASCADE"]
        ]
        .map(|r| r.map(|c| Some(c.to_owned())))
    );
    // And pg_constraint (of the database connected to), with key lists of
    // pg_attribute's column numbers and the referenced table's OID.
    let shop = mesh
        .mesh
        .connect_as("analyst", &crate::attacks::password("analyst"), "shop")
        .await
        .unwrap();
    let pg_keys = simple_rows(
        &shop,
        "SELECT con.conname, con.contype, t.relname, f.relname, \
           array_to_string(con.conkey, ','), array_to_string(con.confkey, ','), \
           con.confdeltype \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class t ON t.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
         LEFT JOIN pg_catalog.pg_class f ON f.oid = con.confrelid \
         WHERE n.nspname = 'public' ORDER BY 1",
    )
    .await
    .unwrap();
    let row = |r: [Option<&str>; 7]| r.map(|c| c.map(str::to_owned));
    assert_eq!(
        pg_keys,
        [
            row([
                Some("customers_pkey"),
                Some("p"),
                Some("customers"),
                None,
                Some("1,2"),
                None,
                Some(" ")
            ]),
            row([
                Some("orders_customer"),
                Some("f"),
                Some("orders"),
                Some("customers"),
                Some("2,3"),
                Some("1,2"),
                Some("c")
            ]),
            row([
                Some("orders_pkey"),
                Some("p"),
                Some("orders"),
                None,
                Some("1"),
                None,
                Some(" ")
            ]),
        ]
    );
    // psql's \d prints them with pg_get_constraintdef.
    let defs = simple_rows(
        &shop,
        "SELECT conname, pg_catalog.pg_get_constraintdef(oid, true) \
         FROM pg_catalog.pg_constraint WHERE conname IN ('orders_customer', 'orders_pkey') \
         ORDER BY 1",
    )
    .await
    .unwrap();
    assert_eq!(
        defs,
        [
            [
                "orders_customer",
                "FOREIGN KEY (region, customer_id) REFERENCES customers(region, id) ON DELETE CASCADE"
            ],
            ["orders_pkey", "PRIMARY KEY (id)"],
        ]
        .map(|r| r.map(|c| Some(c.to_owned())))
    );
    // The source's comments reach pg_description (read in the background
    // at start: a new session sees them once loaded).
    let mut described = Vec::new();
    for _ in 0..50 {
        let session = mesh
            .mesh
            .connect_as("analyst", &crate::attacks::password("analyst"), "shop")
            .await
            .unwrap();
        described = simple_rows(
            &session,
            "SELECT obj_description('public.orders'::regclass), \
             col_description('public.orders'::regclass, 3)",
        )
        .await
        .unwrap();
        if described[0][0].is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        described,
        [[
            Some("Every order placed.".to_owned()),
            Some("Who placed it.".to_owned())
        ]]
    );
    // An admin sees every reference.
    let mut admin = flight(&mesh, "admin").await;
    let info = admin
        .get_exported_keys(exported("customers"))
        .await
        .unwrap();
    let mut tables = column(&fetch(&mut admin, info).await, 6);
    tables.dedup();
    assert_eq!(tables, ["orders", "secret"]);
    mesh.assert_serving().await;
}

#[tokio::test]
async fn mariadb_keys_reach_flight_sql() {
    let db = MariaDatabase::create("mg_keys");
    db.exec(
        "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT) ENGINE=InnoDB;
         CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT,
           CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
           ON UPDATE CASCADE) ENGINE=InnoDB;",
    );
    let mesh = attack_mesh_with(POLICY, |config| {
        config.push_str(&db.catalog_toml("market", ""));
    })
    .await;
    let mut admin = flight(&mesh, "admin").await;
    let info = admin
        .get_imported_keys(CommandGetImportedKeys {
            catalog: Some("market".into()),
            db_schema: Some(db.name.clone()),
            table: "orders".into(),
        })
        .await
        .unwrap();
    let imported = fetch(&mut admin, info).await;
    assert_eq!(column(&imported, 2), ["customers"]);
    assert_eq!(column(&imported, 7), ["customer_id"]);
    let info = admin
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: Some("market".into()),
            db_schema: Some(db.name.clone()),
            table: "customers".into(),
        })
        .await
        .unwrap();
    assert_eq!(column(&fetch(&mut admin, info).await, 3), ["id"]);
}
