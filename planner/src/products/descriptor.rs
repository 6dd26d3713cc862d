//! A data product's descriptor: what a domain team declares about a product
//! it serves through meshgate — who owns it, what it promises, how fresh it
//! must be — modelled on the Open Data Contract Standard v3 and the Open
//! Data Product Standard, in meshgate's snake_case keys.
//!
//! Descriptors are written in YAML (a descriptor file next to the catalog,
//! `products_file`) or inline in the configuration (`[[catalogs.NAME.products]]`);
//! both deserialise into [`ProductDescriptor`]. Serde refuses unknown keys
//! (a misspelt `tags` must not silently drop a tag the policy relies on);
//! [`ProductDescriptor::problems`] checks what serde cannot, naming each
//! problem's key (`products[0].tables[1].columns[2].type`).

use std::collections::BTreeSet;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{DataType as SqlType, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use serde::{Deserialize, Serialize};

use crate::limits::parse_duration;

/// A descriptor file: `products:` and the list of the catalog's products.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorFile {
    #[serde(default)]
    pub products: Vec<ProductDescriptor>,
}

impl DescriptorFile {
    /// The file as YAML text.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("descriptors serialise")
    }

    /// Parse a descriptor file's YAML text. The error names the key where
    /// parsing stopped (`products[0].owner.team`) and the problem.
    pub fn from_yaml(text: &str) -> Result<Self, Problem> {
        from_yaml(text)
    }
}

impl ProductDescriptor {
    /// Parse one product's descriptor from YAML, naming the key where
    /// parsing stopped (`owner.team`) and the problem.
    pub fn from_yaml(text: &str) -> Result<Self, Problem> {
        from_yaml(text)
    }

    /// The descriptor as YAML text.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("descriptors serialise")
    }
}

fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let deserializer = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let problem = e.into_inner().to_string();
        // The YAML error may lead with the path again: the key says it.
        let problem = match problem.split_once(": ") {
            Some((path, rest)) if !path.contains(' ') => rest.to_owned(),
            _ => problem,
        };
        Problem {
            key: if key == "." { String::new() } else { key },
            problem,
        }
    })
}

/// One data product.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductDescriptor {
    /// Unique across the gateway (`CALL system.check_product('<name>')`).
    pub name: String,
    /// The domain that owns it (default: the catalog's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub owner: Owner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub status: ProductStatus,
    /// Tags on every table of the product (matched by the policy's tag rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The tables the product serves, and what each promises.
    pub tables: Vec<ProductTable>,
    /// SQL assertions over the product's tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<QualityRule>,
    #[serde(default)]
    pub slo: Slo,
}

/// Who answers for a product.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub team: String,
    /// Where consumers ask (an e-mail address, a channel, a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// A product's lifecycle (ODPS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Proposed,
    #[default]
    Active,
    Deprecated,
    Retired,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Retired => "retired",
        }
    }
}

/// A table of a product: `schema.table` within the product's catalog.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductTable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// For a database source: the timestamp column whose maximum says how
    /// fresh the table is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_column: Option<String>,
    /// The columns promised (others may exist and are not part of the contract).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnContract>,
}

/// One promised column.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnContract {
    pub name: String,
    /// The SQL type promised (`bigint`, `varchar`, `decimal(10,2)`, ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// `false` promises no NULLs.
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags on this column (e.g. `pii`), matched by masks' `column_tags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A SQL assertion: `query` returns one number, which must equal `must_be`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityRule {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub query: String,
    #[serde(default)]
    pub must_be: i64,
}

/// Service levels promised.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// The oldest the data may be (`24h`, `90min`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<String>,
    /// Availability promised, as a percentage (`99.5%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
}

impl Slo {
    /// The freshness SLO as a duration (validated by [`ProductDescriptor::problems`]).
    pub fn freshness(&self) -> Option<Duration> {
        self.freshness
            .as_deref()
            .and_then(|f| parse_duration(f).ok())
    }
}

/// A problem in a descriptor: the key (relative to the product) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

impl ProductDescriptor {
    /// What serde cannot check: names, durations, types, duplicates. Keys
    /// are relative to the product (`tables[1].columns[0].type`).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut add = |key: String, problem: String| problems.push(Problem { key, problem });
        if !is_name(&self.name) {
            add(
                "name".into(),
                format!(
                    "`{}` is not a product name (letters, digits, `_` and `-`, starting with a letter)",
                    self.name
                ),
            );
        }
        if self.owner.team.trim().is_empty() {
            add("owner.team".into(), "is empty".into());
        }
        check_tags(&mut add, "tags", &self.tags);
        if self.tables.is_empty() {
            add(
                "tables".into(),
                "a product serves at least one table".into(),
            );
        }
        let mut tables = BTreeSet::new();
        for (i, table) in self.tables.iter().enumerate() {
            let key = format!("tables[{i}]");
            let parts: Vec<&str> = table.name.split('.').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                add(
                    format!("{key}.name"),
                    format!(
                        "`{}` is not `schema.table` (the table within the product's catalog)",
                        table.name
                    ),
                );
            } else if !tables.insert(table.name.to_ascii_lowercase()) {
                add(
                    format!("{key}.name"),
                    format!("`{}` is listed twice", table.name),
                );
            }
            check_tags(&mut add, &format!("{key}.tags"), &table.tags);
            let mut columns = BTreeSet::new();
            for (j, column) in table.columns.iter().enumerate() {
                let key = format!("{key}.columns[{j}]");
                if column.name.trim().is_empty() {
                    add(format!("{key}.name"), "is empty".into());
                } else if !columns.insert(column.name.clone()) {
                    add(
                        format!("{key}.name"),
                        format!("`{}` is listed twice", column.name),
                    );
                }
                if let Some(ty) = &column.data_type {
                    if let Err(e) = parse_sql_type(ty) {
                        add(format!("{key}.type"), e);
                    }
                }
                check_tags(&mut add, &format!("{key}.tags"), &column.tags);
            }
        }
        let mut rules = BTreeSet::new();
        for (i, rule) in self.quality.iter().enumerate() {
            if !is_name(&rule.name) {
                add(
                    format!("quality[{i}].name"),
                    format!("`{}` is not a rule name", rule.name),
                );
            } else if !rules.insert(rule.name.clone()) {
                add(
                    format!("quality[{i}].name"),
                    format!("`{}` is listed twice", rule.name),
                );
            }
            if let Err(e) = parse_query(&rule.query) {
                add(format!("quality[{i}].query"), e);
            }
        }
        if let Some(f) = &self.slo.freshness {
            match parse_duration(f) {
                Ok(d) if d.is_zero() => add("slo.freshness".into(), "must be above zero".into()),
                Ok(_) => {}
                Err(e) => add(
                    "slo.freshness".into(),
                    format!("`{f}` is not a duration such as `24h`, `90min` or `7d`: {e}"),
                ),
            }
        }
        if let Some(a) = &self.slo.availability {
            let ok = a
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .is_some_and(|n| (0.0..=100.0).contains(&n));
            if !ok {
                add(
                    "slo.availability".into(),
                    format!("`{a}` is not a percentage such as `99.5%`"),
                );
            }
        }
        problems
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_tags(add: &mut impl FnMut(String, String), key: &str, tags: &[String]) {
    for (i, tag) in tags.iter().enumerate() {
        if !is_name(tag) {
            add(
                format!("{key}[{i}]"),
                format!("`{tag}` is not a tag (letters, digits, `_` and `-`)"),
            );
        }
    }
}

/// A SQL type name as a column contract writes it.
pub(crate) fn parse_sql_type(text: &str) -> Result<SqlType, String> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| {
            let ty = p.parse_data_type()?;
            p.expect_token(&Token::EOF)?;
            Ok(ty)
        })
        .map_err(|e| format!("`{text}` is not a SQL type: {e}"))
}

fn parse_query(text: &str) -> Result<(), String> {
    let statements =
        Parser::parse_sql(&PostgreSqlDialect {}, text).map_err(|e| format!("not SQL: {e}"))?;
    match statements.as_slice() {
        [Statement::Query(_)] => Ok(()),
        _ => Err("must be one SELECT".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAIMS: &str = r#"
products:
  - name: claims
    domain: claims
    owner: { team: claims-team, contact: claims@example.com }
    description: Every claim filed, one row per claim.
    tags: [finance]
    tables:
      - name: lake.claims
        columns:
          - { name: claim_id, type: bigint, nullable: false, unique: true }
          - { name: member_ssn, type: varchar, tags: [pii] }
    quality:
      - { name: no_negative_amounts, query: "SELECT count(*) FROM claims.lake.claims WHERE amount < 0" }
    slo: { freshness: 24h, availability: "99.5%" }
"#;

    fn claims() -> ProductDescriptor {
        let file = DescriptorFile::from_yaml(CLAIMS).unwrap();
        file.products.into_iter().next().unwrap()
    }

    #[test]
    fn a_good_descriptor_has_no_problems() {
        let product = claims();
        assert_eq!(product.problems(), vec![]);
        assert_eq!(product.status, ProductStatus::Active);
        assert_eq!(
            product.slo.freshness(),
            Some(Duration::from_secs(24 * 3600))
        );
        assert!(!product.tables[0].columns[0].nullable);
        assert!(product.tables[0].columns[1].nullable);
    }

    #[test]
    fn problems_name_their_key() {
        let mut product = claims();
        product.tables[0].columns[1].data_type = Some("varchar(".into());
        product.tables[0].columns[1].tags = vec!["p ii".into()];
        product.slo.freshness = Some("soon".into());
        product.quality[0].query = "DELETE FROM x".into();
        product.tables.push(product.tables[0].clone());
        let keys: Vec<String> = product.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "tables[0].columns[1].type",
                "tables[0].columns[1].tags[0]",
                "tables[1].name",
                "tables[1].columns[1].type",
                "tables[1].columns[1].tags[0]",
                "quality[0].query",
                "slo.freshness",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let text = CLAIMS.replace("tags: [pii]", "tag: [pii]");
        let err = DescriptorFile::from_yaml(&text).unwrap_err();
        assert_eq!(err.key, "products[0].tables[0].columns[1].tag");
        assert!(err.problem.contains("unknown field `tag`"), "{err:?}");
        let err =
            DescriptorFile::from_yaml(&CLAIMS.replace("team: claims-team, ", "")).unwrap_err();
        assert_eq!(err.key, "products[0].owner");
        assert!(err.problem.contains("missing field `team`"), "{err:?}");
    }
}
