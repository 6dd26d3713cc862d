//! `meshgate product ...`: self-serve for domain teams. On a gateway built
//! here without serving it, `init` drafts a descriptor from an existing
//! table and `validate` checks every product (or one) against its source;
//! on a running gateway, through its admin API, `get` prints a product's
//! descriptor and `apply` replaces it (as the policy lets the caller).

use std::path::PathBuf;

use clap::Subcommand;
use meshgate_gateway::{Config, Gateway};
use meshgate_planner::policy::TableName;
use meshgate_planner::DescriptorFile;

use super::policy::{read, TargetArgs};
use super::CliError;

#[derive(Subcommand)]
pub(super) enum ProductCommand {
    /// Print a descriptor drafted from an existing table (YAML, for the
    /// catalog's products_file): its columns, types and nullability, status
    /// `proposed`; fill in the owner's contact, descriptions, tags and SLOs.
    Init {
        #[arg(short, long, default_value = "meshgate.toml")]
        config: PathBuf,
        /// The table, `catalog.schema.table`.
        table: String,
        /// The product's name (default: the table's).
        #[arg(long)]
        name: Option<String>,
        /// The owning team.
        #[arg(long)]
        owner: String,
    },
    /// Check every product's tables (or one product's) against their
    /// sources: each exists and keeps the columns it promises.
    Validate {
        #[arg(short, long, default_value = "meshgate.toml")]
        config: PathBuf,
        /// Only this product.
        #[arg(long)]
        product: Option<String>,
    },
    /// Print the descriptor of a product on a running gateway (YAML), with
    /// the version of the products as a comment.
    Get {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Replace a product's descriptor on a running gateway with FILE (one
    /// product, YAML), as the policy's `edit_product` grants allow.
    Apply {
        name: String,
        file: PathBuf,
        /// Refuse if the products changed since this version (see `get`).
        #[arg(long)]
        expected_version: Option<u64>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

pub(super) async fn run(action: ProductCommand) -> Result<(), CliError> {
    match action {
        ProductCommand::Get { name, target } => {
            let product = target.connect().await?.get_product(&name).await?;
            println!("# data products version {}", product.version);
            print!("{}", product.yaml);
            Ok(())
        }
        ProductCommand::Apply {
            name,
            file,
            expected_version,
            target,
        } => {
            let yaml = read(&file)?;
            let version = target
                .connect()
                .await?
                .apply_product(&name, yaml, expected_version.unwrap_or(0))
                .await?;
            println!("product `{name}` replaced: data products version {version}");
            Ok(())
        }
        ProductCommand::Init {
            config,
            table,
            name,
            owner,
        } => {
            let parts: Vec<&str> = table.split('.').collect();
            let [catalog, schema, name_of_table] = parts.as_slice() else {
                return Err(CliError::Usage(format!(
                    "`{table}` is not catalog.schema.table"
                )));
            };
            let gateway = Gateway::build(Config::load(&config)?).await?;
            let table = TableName::new(*catalog, *schema, *name_of_table);
            let product = gateway
                .service()
                .registry()
                .draft_product(&table, name.as_deref().unwrap_or(name_of_table), &owner)
                .await
                .map_err(CliError::Usage)?;
            print!(
                "{}",
                DescriptorFile {
                    products: vec![product]
                }
                .to_yaml()
            );
            Ok(())
        }
        ProductCommand::Validate { config, product } => {
            let gateway = Gateway::build(Config::load(&config)?).await?;
            let checks = gateway
                .service()
                .registry()
                .check_products(product.as_deref())
                .await;
            if checks.is_empty() {
                return Err(CliError::Usage(match product {
                    Some(name) => format!("no data product named `{name}` is declared"),
                    None => "no data product is declared".into(),
                }));
            }
            let mut count = 0;
            for check in &checks {
                match &check.problem {
                    None => println!("ok      {} {}", check.product, check.table),
                    Some(problem) => {
                        count += 1;
                        println!("BROKEN  {} {}: {problem}", check.product, check.table);
                    }
                }
            }
            if count > 0 {
                return Err(CliError::ProductProblems { count });
            }
            Ok(())
        }
    }
}
