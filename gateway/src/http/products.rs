//! The HTTP discovery API of data products: `GET /v1/products` (search by
//! text, domain, owner, tag), `GET /v1/products/{name}` (the descriptor as
//! the caller may see it, with freshness and a sample query); their
//! OpenAPI description is generated from these handlers and types (see
//! `openapi`).
//!
//! The caller signs in as on every data endpoint ([`SignedIn`]); what they
//! discover is the planner's decision, the same as `system.data_products`
//! in a SQL session of theirs: a product appears when they may read one of
//! its tables, with only those tables. A product they may not see answers
//! 404 exactly as a product that does not exist. Every call is audited.

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use meshgate_planner::policy::TableName;
use meshgate_planner::{AuditRecord, Product, QueryError, QuerySession, SessionOptions};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::json_error::JsonError;
use super::sign_in::SignedIn;
use super::HttpState;

/// The protocol discovery calls are audited under.
const PROTOCOL: &str = "http";

/// A data product as a list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductSummary {
    pub name: String,
    pub domain: String,
    pub owner: String,
    pub contact: Option<String>,
    pub description: Option<String>,
    /// `proposed`, `active`, `deprecated` or `retired`.
    pub status: String,
    pub tags: Vec<String>,
    /// The oldest the data may be (`24h`).
    pub freshness_slo: Option<String>,
    pub availability_slo: Option<String>,
    pub catalog: String,
    /// The product's tables the caller may read, `catalog.schema.table`.
    pub tables: Vec<String>,
}

/// `GET /v1/products`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub products: Vec<ProductSummary>,
}

/// A promised column.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    pub table: String,
    pub name: String,
    /// The SQL type promised.
    pub data_type: Option<String>,
    pub nullable: bool,
    pub unique: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
}

/// How fresh one table of the product is, measured for this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreshnessView {
    pub table: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    /// `None` without an SLO or a measurable age.
    pub within_slo: Option<bool>,
    pub measured_by: String,
    pub error: Option<String>,
}

/// A quality rule the product declares.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityRuleView {
    pub name: String,
    pub description: Option<String>,
    pub query: String,
    pub must_be: i64,
}

/// `GET /v1/products/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    #[serde(flatten)]
    pub summary: ProductSummary,
    pub columns: Vec<ColumnView>,
    pub freshness: Vec<FreshnessView>,
    pub quality: Vec<QualityRuleView>,
    /// A query to start from.
    pub sample_query: String,
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// Search terms of `GET /v1/products` (all optional; all must match).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Text in the name, domain, owner, description or tags (any case).
    pub q: Option<String>,
    pub domain: Option<String>,
    pub owner: Option<String>,
    pub tag: Option<String>,
}

impl Search {
    fn parse(query: Option<&str>) -> Self {
        let mut search = Self::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = Some(value.into_owned()).filter(|v| !v.is_empty());
            match key.as_ref() {
                "q" => search.q = value,
                "domain" => search.domain = value,
                "owner" => search.owner = value,
                "tag" => search.tag = value,
                _ => {}
            }
        }
        search
    }

    fn matches(&self, p: &ProductSummary) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        let text = self.q.as_deref().map(str::to_lowercase);
        eq(&self.domain, &p.domain)
            && eq(&self.owner, &p.owner)
            && self
                .tag
                .as_deref()
                .is_none_or(|t| p.tags.iter().any(|have| have.eq_ignore_ascii_case(t)))
            && text.is_none_or(|q| {
                [
                    Some(&p.name),
                    Some(&p.domain),
                    Some(&p.owner),
                    p.description.as_ref(),
                ]
                .into_iter()
                .flatten()
                .chain(&p.tags)
                .any(|s| s.to_lowercase().contains(&q))
            })
    }
}

fn summary(product: &Product, tables: &[TableName]) -> ProductSummary {
    let d = &product.descriptor;
    ProductSummary {
        name: d.name.clone(),
        domain: product.domain().to_owned(),
        owner: d.owner.team.clone(),
        contact: d.owner.contact.clone(),
        description: d.description.clone(),
        status: d.status.as_str().to_owned(),
        tags: d.tags.clone(),
        freshness_slo: d.slo.freshness.clone(),
        availability_slo: d.slo.availability.clone(),
        catalog: product.catalog.clone(),
        tables: tables.iter().map(ToString::to_string).collect(),
    }
}

/// A discovery call: the caller's session and the call's audit record.
struct Discovery {
    session: QuerySession,
    record: AuditRecord,
    started: Instant,
}

impl Discovery {
    fn start(state: &HttpState, caller: &SignedIn, what: String) -> Result<Self, JsonError> {
        let options = SessionOptions {
            protocol: PROTOCOL.into(),
            client: caller.client.map(|a| a.to_string()),
            ..SessionOptions::default()
        };
        let session = state
            .service
            .open_session(caller.identity.clone(), options)?;
        let mut record = AuditRecord::access(
            caller.identity.user.clone(),
            caller.client.map(|a| a.to_string()),
            PROTOCOL,
            what,
        );
        record.impersonator = caller.identity.impersonator.clone();
        Ok(Self {
            session,
            record,
            started: Instant::now(),
        })
    }

    fn finish<T>(
        self,
        state: &HttpState,
        rows: u64,
        result: Result<T, QueryError>,
    ) -> Result<Json<T>, JsonError> {
        if let Some(log) = state.service.audit_log() {
            let record = self
                .record
                .with_rows(rows)
                .with_duration(self.started)
                .with_outcome(result.as_ref().err());
            log.write(&record);
        }
        result.map(Json).map_err(JsonError::from)
    }
}

/// The data products the caller may discover.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "data products",
    params(Search),
    responses(
        (status = 200, description = "The products the caller may read", body = ProductList),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<HttpState>,
    caller: SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Json<ProductList>, JsonError> {
    let what = format!("GET /v1/products?{}", query.as_deref().unwrap_or(""));
    let call = Discovery::start(&state, &caller, what)?;
    let search = Search::parse(query.as_deref());
    let products: Vec<ProductSummary> = call
        .session
        .data_products()
        .iter()
        .map(|(product, tables)| summary(product, tables))
        .filter(|p| search.matches(p))
        .collect();
    let rows = products.len() as u64;
    call.finish(&state, rows, Ok(ProductList { products }))
}

/// One data product: its promise, columns, freshness and quality rules.
#[utoipa::path(
    get,
    path = "/v1/products/{name}",
    tag = "data products",
    params(("name" = String, Path, description = "The product's name")),
    responses(
        (status = 200, description = "The product as the caller may see it", body = ProductDetail),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such product, or not one the caller may read", body = ErrorBody),
    ),
    security(("basic" = []), ("bearer" = []))
)]
pub(super) async fn detail(
    State(state): State<HttpState>,
    caller: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<ProductDetail>, JsonError> {
    let call = Discovery::start(&state, &caller, format!("GET /v1/products/{name}"))?;
    let found = call
        .session
        .data_products()
        .into_iter()
        .find(|(product, _)| product.name() == name);
    let Some((product, tables)) = found else {
        let missing =
            QueryError::UndefinedObject(format!("data product \"{name}\" does not exist"));
        return call.finish(&state, 0, Err(missing));
    };
    let freshness = call.session.freshness_of(&tables).await;
    let columns = product
        .tables()
        .filter(|(t, _)| tables.contains(t))
        .flat_map(|(t, entry)| {
            entry.columns.iter().map(move |c| ColumnView {
                table: t.to_string(),
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                nullable: c.nullable,
                unique: c.unique,
                description: c.description.clone(),
                tags: c.tags.clone(),
            })
        })
        .collect();
    let detail = ProductDetail {
        sample_query: format!("SELECT * FROM {} LIMIT 10", tables[0]),
        summary: summary(&product, &tables),
        columns,
        freshness: freshness
            .iter()
            .map(|m| FreshnessView {
                table: m.table.to_string(),
                last_modified: m.last_modified,
                age_seconds: m.age().map(|a| a.as_secs_f64()),
                within_slo: m.within_slo(),
                measured_by: m.measured_by.clone(),
                error: m.error.clone(),
            })
            .collect(),
        quality: product
            .descriptor
            .quality
            .iter()
            .map(|q| QualityRuleView {
                name: q.name.clone(),
                description: q.description.clone(),
                query: q.query.clone(),
                must_be: q.must_be,
            })
            .collect(),
    };
    call.finish(&state, 1, Ok(detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_matches_text_domain_owner_and_tag() {
        let p = ProductSummary {
            name: "members".into(),
            domain: "membership".into(),
            owner: "membership".into(),
            contact: None,
            description: Some("Every insured member".into()),
            status: "active".into(),
            tags: vec!["gold".into()],
            freshness_slo: None,
            availability_slo: None,
            catalog: "members".into(),
            tables: vec![],
        };
        assert!(Search::parse(Some("q=INSURED")).matches(&p));
        assert!(Search::parse(Some("tag=gold&domain=membership")).matches(&p));
        assert!(!Search::parse(Some("tag=pii")).matches(&p));
        assert!(!Search::parse(Some("owner=claims")).matches(&p));
        assert!(Search::parse(None).matches(&p));
    }
}
