//! `connector = "files"`: Parquet, CSV and NDJSON files on local disk or S3.
//!
//! A table is one file, a glob, or a folder (optionally with hive-style
//! `key=value` partition folders). Schemas are inferred from the data unless
//! declared with `columns`. Tables are DataFusion listing tables, so
//! projection, limit and (for Parquet) row-group and page pruning from
//! statistics happen at the scan; partition columns prune whole folders.
//!
//! ```toml
//! [catalogs.members]
//! connector = "files"
//! root = "data/members"            # or "s3://bucket/prefix"
//! [catalogs.members.tables.people]
//! path = "people.csv"              # file, glob or folder under root
//! format = "csv"                   # inferred from the extension when omitted
//! header = true
//! delimiter = ","
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use serde::Deserialize;

use crate::storage::{register_store, Location, StorageOptions, S3_SECRET_KEYS};
use crate::types::parse_sql_type;
use crate::{parse_options, Connector, ConnectorContext, ConnectorError, Description};

/// Reads Parquet, CSV and NDJSON through `object_store`.
pub struct FilesConnector;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesOptions {
    /// Base for relative table paths: a directory or an `s3://bucket/prefix` URL.
    root: Option<String>,
    s3: Option<StorageOptions>,
    #[serde(default)]
    tables: BTreeMap<String, FileTableOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTableOptions {
    path: String,
    format: Option<FileKind>,
    #[serde(default = "default_schema")]
    schema: String,
    /// CSV: the first line holds column names (default true).
    header: Option<bool>,
    /// CSV: one ASCII character (default `,`; `\t` for `.tsv`).
    delimiter: Option<String>,
    /// Only files with this extension are read from folders and globs.
    file_extension: Option<String>,
    /// Hive-style partition folders, outermost first: `["year", "month"]` or
    /// `[{ name = "year", type = "int" }]` (default type text).
    #[serde(default)]
    partition_columns: Vec<PartitionColumn>,
    /// Declared schema; inferred from the data when absent.
    columns: Option<Vec<ColumnDecl>>,
    /// Shown to users in catalog listings (`pg_description`).
    description: Option<String>,
    /// Column descriptions by column name, for tables whose columns are
    /// inferred (a declared column may carry its own `description`).
    #[serde(default)]
    column_descriptions: BTreeMap<String, String>,
}

fn default_schema() -> String {
    "public".to_owned()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum FileKind {
    Parquet,
    Csv,
    #[serde(alias = "ndjson", alias = "jsonl")]
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PartitionColumn {
    Name(String),
    Typed {
        name: String,
        #[serde(rename = "type")]
        ty: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnDecl {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default = "yes")]
    nullable: bool,
    /// Shown to users in catalog listings (`pg_description`).
    description: Option<String>,
}

fn yes() -> bool {
    true
}

/// A table's options checked and resolved into DataFusion terms.
struct TablePlan {
    #[cfg_attr(not(test), allow(dead_code))]
    kind: FileKind,
    format: Arc<dyn FileFormat>,
    extension: String,
    partitions: Vec<(String, DataType)>,
    schema: Option<Arc<Schema>>,
}

impl FileTableOptions {
    fn plan(&self, table: &str) -> Result<TablePlan, ConnectorError> {
        let key = |k: &str| format!("tables.{table}.{k}");
        let path_ext = file_extension_of(&self.path);
        let kind = match self.format {
            Some(kind) => kind,
            None => match path_ext.as_deref() {
                Some("parquet" | "pq") => FileKind::Parquet,
                Some("csv" | "tsv") => FileKind::Csv,
                Some("json" | "ndjson" | "jsonl") => FileKind::Json,
                _ => {
                    return Err(ConnectorError::option(
                        key("format"),
                        "cannot infer the format from the path; set format = \"parquet\", \"csv\" or \"json\"",
                    ))
                }
            },
        };
        if kind != FileKind::Csv && (self.header.is_some() || self.delimiter.is_some()) {
            return Err(ConnectorError::option(
                key(if self.header.is_some() {
                    "header"
                } else {
                    "delimiter"
                }),
                "only applies to CSV tables",
            ));
        }
        let format: Arc<dyn FileFormat> = match kind {
            FileKind::Parquet => Arc::new(ParquetFormat::default()),
            FileKind::Json => Arc::new(JsonFormat::default()),
            FileKind::Csv => {
                let delimiter = match self.delimiter.as_deref() {
                    None if path_ext.as_deref() == Some("tsv") => b'\t',
                    None => b',',
                    Some("\\t") | Some("\t") => b'\t',
                    Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
                    Some(d) => {
                        return Err(ConnectorError::option(
                            key("delimiter"),
                            format!("must be a single ASCII character, got {d:?}"),
                        ))
                    }
                };
                Arc::new(
                    CsvFormat::default()
                        .with_has_header(self.header.unwrap_or(true))
                        .with_delimiter(delimiter),
                )
            }
        };
        // A single named file is read whatever its extension; folders and globs
        // only pick up files of the table's format.
        let extension = match (&self.file_extension, &path_ext) {
            (Some(ext), _) => normalize_ext(ext),
            (None, Some(ext)) if !is_glob(&self.path) => format!(".{ext}"),
            (None, _) => match kind {
                FileKind::Parquet => ".parquet".to_owned(),
                FileKind::Csv => ".csv".to_owned(),
                FileKind::Json => ".json".to_owned(),
            },
        };
        let partitions = self
            .partition_columns
            .iter()
            .enumerate()
            .map(|(i, col)| match col {
                PartitionColumn::Name(name) => Ok((name.clone(), DataType::Utf8)),
                PartitionColumn::Typed { name, ty } => parse_sql_type(ty)
                    .map(|ty| (name.clone(), ty))
                    .map_err(|e| {
                        ConnectorError::option(format!("{}[{i}].type", key("partition_columns")), e)
                    }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schema = match &self.columns {
            None => None,
            Some(columns) if columns.is_empty() => {
                return Err(ConnectorError::option(key("columns"), "must not be empty"))
            }
            Some(columns) => {
                let fields = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        parse_sql_type(&c.ty)
                            .map(|ty| Field::new(&c.name, ty, c.nullable))
                            .map_err(|e| {
                                ConnectorError::option(format!("{}[{i}].type", key("columns")), e)
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Arc::new(Schema::new(fields)))
            }
        };
        Ok(TablePlan {
            kind,
            format,
            extension,
            partitions,
            schema,
        })
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn file_extension_of(path: &str) -> Option<String> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    if is_glob(last) && !last.starts_with("*.") {
        return None;
    }
    let (_, ext) = last.rsplit_once('.')?;
    (!ext.is_empty() && !ext.contains('*')).then(|| ext.to_ascii_lowercase())
}

fn normalize_ext(ext: &str) -> String {
    if ext.is_empty() || ext.starts_with('.') {
        ext.to_owned()
    } else {
        format!(".{ext}")
    }
}

#[async_trait]
impl Connector for FilesConnector {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn secret_keys(&self) -> &'static [&'static str] {
        S3_SECRET_KEYS
    }

    fn validate(&self, options: &toml::Table) -> Result<(), ConnectorError> {
        let opts: FilesOptions = parse_options(options)?;
        for (name, table) in &opts.tables {
            table.plan(name)?;
        }
        Ok(())
    }

    fn descriptions(&self, options: &toml::Table) -> Vec<Description> {
        let Ok(opts) = parse_options::<FilesOptions>(options) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, table) in &opts.tables {
            let describe = |column: Option<&str>, text: &Option<String>| {
                text.as_ref().map(|text| Description {
                    schema: table.schema.clone(),
                    table: name.clone(),
                    column: column.map(str::to_owned),
                    text: text.clone(),
                })
            };
            out.extend(describe(None, &table.description));
            for column in table.columns.iter().flatten() {
                out.extend(describe(Some(&column.name), &column.description));
            }
            for (column, text) in &table.column_descriptions {
                out.extend(describe(Some(column), &Some(text.clone())));
            }
        }
        out
    }

    async fn build_catalog(
        &self,
        ctx: &ConnectorContext,
        _name: &str,
        options: &toml::Table,
    ) -> Result<Arc<dyn CatalogProvider>, ConnectorError> {
        let opts: FilesOptions = parse_options(options)?;
        let catalog = MemoryCatalogProvider::new();
        let mut schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        for (name, table) in &opts.tables {
            let plan = table.plan(name)?;
            let location = Location::resolve(&ctx.base_dir, opts.root.as_deref(), &table.path)
                .map_err(|e| ConnectorError::table(name, e))?;
            register_store(&ctx.session, &location, opts.s3.as_ref())
                .map_err(|e| ConnectorError::table(name, e))?;
            let provider = listing_table(ctx, &location, plan)
                .await
                .map_err(|e| ConnectorError::table(name, e))?;
            let schema = schemas
                .entry(table.schema.clone())
                .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
            datafusion::catalog::SchemaProvider::register_table(
                schema.as_ref(),
                name.clone(),
                provider,
            )
            .map_err(|e| ConnectorError::table(name, e))?;
        }
        for (name, schema) in schemas {
            catalog
                .register_schema(&name, schema)
                .map_err(|e| ConnectorError::Storage(e.to_string()))?;
        }
        Ok(Arc::new(catalog))
    }
}

async fn listing_table(
    ctx: &ConnectorContext,
    location: &Location,
    plan: TablePlan,
) -> datafusion::error::Result<Arc<ListingTable>> {
    let mut path = location.as_listing_path();
    // A folder must end in `/` for the listing to treat it as a prefix.
    if let Location::Local(p) = location {
        if p.is_dir() && !path.ends_with('/') {
            path.push('/');
        }
    }
    let url = match location {
        Location::Local(_) => ListingTableUrl::parse(&path)?,
        Location::Remote(_) => remote_listing_url(&path)?,
    };
    let listing = ListingOptions::new(plan.format)
        .with_file_extension(plan.extension)
        .with_table_partition_cols(plan.partitions);
    let config = ListingTableConfig::new(url).with_listing_options(listing);
    let config = match plan.schema {
        Some(schema) => config.with_schema(schema),
        None => config.infer_schema(&ctx.session).await?,
    };
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The listing URL of an object-store path: a glob (`*`, `?`, `[`) from
/// the first segment that has one is matched below the folder before it
/// (DataFusion splits globs off local paths only); a last segment without
/// an extension is a folder.
fn remote_listing_url(path: &str) -> datafusion::error::Result<ListingTableUrl> {
    let parse = |s: &str| {
        url::Url::parse(s).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    };
    if let Some(first_glob) = path.find(['*', '?', '[']) {
        let folder_end = path[..first_glob].rfind('/').map_or(0, |i| i + 1);
        let (folder, glob) = path.split_at(folder_end);
        let pattern = glob::Pattern::new(glob)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        return ListingTableUrl::try_new(parse(folder)?, Some(pattern));
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if !path.ends_with('/') && !last.contains('.') {
        return ListingTableUrl::try_new(parse(&format!("{path}/"))?, None);
    }
    ListingTableUrl::try_new(parse(path)?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_globs_and_folders_list_below_their_folder() {
        use object_store::path::Path;
        let glob = remote_listing_url("s3://lake/events/*.parquet").unwrap();
        assert_eq!(glob.as_str(), "s3://lake/events/");
        assert!(glob.contains(&Path::from("events/part-0.parquet"), true));
        assert!(!glob.contains(&Path::from("events/README.txt"), true));
        let folder = remote_listing_url("s3://lake/sales").unwrap();
        assert_eq!(folder.as_str(), "s3://lake/sales/");
        let file = remote_listing_url("s3://lake/one.csv").unwrap();
        assert_eq!(file.as_str(), "s3://lake/one.csv");
    }

    fn table(toml_src: &str) -> Result<TablePlan, ConnectorError> {
        let opts: FileTableOptions = toml::from_str(toml_src).unwrap();
        opts.plan("t")
    }

    #[test]
    fn format_is_inferred_from_extension() {
        assert_eq!(table("path = 'a.parquet'").unwrap().kind, FileKind::Parquet);
        assert_eq!(table("path = 'x/*.csv'").unwrap().kind, FileKind::Csv);
        let err = table("path = 'folder/'").err().unwrap();
        assert!(err.to_string().starts_with("tables.t.format:"), "{err}");
    }

    #[test]
    fn csv_options_are_checked() {
        let err = table("path = 'a.csv'\ndelimiter = ';;'").err().unwrap();
        assert!(err.to_string().contains("tables.t.delimiter"), "{err}");
        let err = table("path = 'a.parquet'\nheader = true").err().unwrap();
        assert!(err.to_string().contains("only applies to CSV"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut opts = toml::Table::new();
        opts.insert("rooot".into(), toml::Value::String("x".into()));
        let err = FilesConnector.validate(&opts).unwrap_err();
        assert!(err.to_string().contains("unknown field `rooot`"), "{err}");
    }

    #[test]
    fn declared_columns_are_typed() {
        let plan = table(
            "path = 'a.csv'\ncolumns = [{ name = 'id', type = 'bigint' }, { name = 'amt', type = 'numeric(10,2)' }]",
        )
        .unwrap();
        let schema = plan.schema.unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(10, 2));
        let err = table("path = 'a.csv'\ncolumns = [{ name = 'id', type = 'blob' }]")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("tables.t.columns[0].type"),
            "{err}"
        );
    }
}
