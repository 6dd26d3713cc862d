//! What a session discovers of the data products, for front ends that
//! answer discovery without SQL (the HTTP discovery API): the same
//! policy decision as `system.data_products` and `system.freshness`; and
//! `CALL system.check_product`, which runs a product's quality rules.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::TryStreamExt;
use meshgate_policy::TableName;

use super::QuerySession;
use crate::products::freshness::Measurement;
use crate::products::quality::QualityResult;
use crate::products::Product;
use crate::{QueryError, QueryResult};

impl QuerySession {
    /// The products this session may discover, each with the tables of it
    /// the session may read.
    pub fn data_products(&self) -> Vec<(Product, Vec<TableName>)> {
        let products = self.registry.products();
        let guard = self.guard.clone();
        products
            .visible(&|table| guard.as_ref().is_none_or(|g| g.access(table).allowed))
            .into_iter()
            .map(|seen| {
                let tables = seen.tables.into_iter().map(|(name, _)| name).collect();
                (seen.product.clone(), tables)
            })
            .collect()
    }

    /// How fresh `tables` are, measured now (tables of no product are left out).
    pub async fn freshness_of(&self, tables: &[TableName]) -> Vec<Arc<Measurement>> {
        self.registry
            .freshness()
            .measure_all(|table| tables.contains(table))
            .await
    }

    /// `CALL system.check_product('name')`: run each quality rule of a
    /// product the session may discover, as this session (its policy
    /// applies, and so do the concurrency limits), and keep the results for
    /// `system.quality_results`. A rule that fails to run is a result too.
    pub(super) async fn check_product(&self, name: &str) -> QueryResult<()> {
        let Some((product, _)) = self
            .data_products()
            .into_iter()
            .find(|(product, _)| product.name() == name)
        else {
            return Err(QueryError::UndefinedObject(format!(
                "data product \"{name}\" does not exist"
            )));
        };
        let results = self.registry.quality();
        for rule in &product.descriptor.quality {
            let outcome = self.rule_value(&rule.query).await;
            results.record(QualityResult {
                product: name.to_owned(),
                rule: rule.name.clone(),
                value: outcome.as_ref().ok().copied().flatten(),
                must_be: rule.must_be,
                checked_at: chrono::Utc::now(),
                checked_by: self.identity.user.clone(),
                error: outcome.err().map(|e| format!("[{}] {e}", e.sqlstate())),
            });
        }
        Ok(())
    }

    /// The number a quality rule's query returns (first column, first row).
    async fn rule_value(&self, sql: &str) -> QueryResult<Option<i64>> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .map_err(|e| QueryError::Syntax(e.to_string()))?;
        let [ast::Statement::Query(query)] = statements.as_slice() else {
            return Err(QueryError::InvalidParameter(
                "a quality rule's query is one SELECT".into(),
            ));
        };
        let batches: Vec<_> = self.start(query).await?.try_collect().await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let value =
            datafusion::arrow::compute::cast(batch.column(0), &DataType::Int64).map_err(|e| {
                QueryError::InvalidParameter(format!("a quality rule returns a number: {e}"))
            })?;
        let value = value.as_primitive::<Int64Type>();
        Ok(value.is_valid(0).then(|| value.value(0)))
    }
}
