//! TPC-H data at scale factor 0.01 for end-to-end tests: customer,
//! orders, lineitem (in two files) and supplier as Parquet, served under a
//! policy with a row filter on lineitem and a mask on customer.c_phone for
//! `analyst` (`admin` sees everything).

use std::path::Path;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, OrderGenerator, SupplierGenerator,
};
use tpchgen_arrow::{CustomerArrow, LineItemArrow, OrderArrow, SupplierArrow};

use crate::attacks::{attack_mesh_with, simple_rows, AttackMesh};

pub(crate) const POLICY: &str = r#"
version = 1
admins = ["user:admin"]

[[grants]]
effect = "allow"
principals = ["user:analyst", "user:admin"]
tables = ["tpch.public.*", "claims.public.*"]

[[row_filters]]
principals = ["user:analyst"]
tables = ["tpch.public.lineitem"]
filter = "l_shipmode <> 'AIR'"

[[masks]]
principals = ["user:analyst"]
tables = ["tpch.public.customer"]
column = "c_phone"
mask = "'***'"
"#;

/// TPC-H customer, orders, lineitem and supplier at scale factor 0.01 as
/// Parquet, lineitem in two files, and the catalog serving them.
pub(crate) fn write_tpch(dir: &Path) -> String {
    let props = || {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(8_192))
            .build()
    };
    let write = |path: &Path, batches: Vec<datafusion::arrow::record_batch::RecordBatch>| {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props())).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
    };
    std::fs::create_dir_all(dir.join("lineitem")).unwrap();
    write(
        &dir.join("customer.parquet"),
        CustomerArrow::new(CustomerGenerator::new(0.01, 1, 1))
            .collect::<Result<_, _>>()
            .unwrap(),
    );
    write(
        &dir.join("orders.parquet"),
        OrderArrow::new(OrderGenerator::new(0.01, 1, 1))
            .collect::<Result<_, _>>()
            .unwrap(),
    );
    write(
        &dir.join("supplier.parquet"),
        SupplierArrow::new(SupplierGenerator::new(0.01, 1, 1))
            .collect::<Result<_, _>>()
            .unwrap(),
    );
    for part in 1..=2 {
        write(
            &dir.join(format!("lineitem/part-{part}.parquet")),
            LineItemArrow::new(LineItemGenerator::new(0.01, part, 2))
                .collect::<Result<_, _>>()
                .unwrap(),
        );
    }
    format!(
        "\n[catalogs.tpch]\nconnector = \"files\"\nroot = \"{}\"\n\
         [catalogs.tpch.tables.customer]\npath = \"customer.parquet\"\n\
         [catalogs.tpch.tables.orders]\npath = \"orders.parquet\"\n\
         [catalogs.tpch.tables.supplier]\npath = \"supplier.parquet\"\n\
         [catalogs.tpch.tables.lineitem]\npath = \"lineitem\"\nformat = \"parquet\"\n",
        dir.display()
    )
}

/// A gateway over the demo mesh and `catalog` under [`POLICY`], with
/// `execution` and no result cache (each query runs).
pub(crate) async fn mesh(catalog: &str, execution: &str) -> AttackMesh {
    let catalog = catalog.to_owned();
    let execution = format!("{execution}\n[result_cache]\nmax_bytes = \"0\"\n");
    attack_mesh_with(POLICY, move |config| {
        config.push_str(&catalog);
        config.push_str(&execution);
    })
    .await
}

pub(crate) async fn rows(mesh: &AttackMesh, user: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let client = mesh
        .mesh
        .connect_as(user, &crate::attacks::password(user), "tpch")
        .await
        .unwrap();
    simple_rows(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

pub(crate) async fn plan_text(mesh: &AttackMesh, user: &str, sql: &str) -> String {
    rows(mesh, user, sql)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}
