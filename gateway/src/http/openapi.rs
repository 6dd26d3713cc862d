//! The OpenAPI 3 document of the HTTP listener's data endpoints, served
//! at `/openapi.json` and generated from the handlers and their types
//! (utoipa): SQL over HTTP ([`super::sql`]) and data product discovery
//! ([`super::products`]).

use axum::Json;
use utoipa::OpenApi;

use super::{products, sql};

/// The OpenAPI document of the HTTP listener's data endpoints.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "meshgate",
        description = "SQL over HTTP and discovery of the data products meshgate serves. Sign in with HTTP Basic (user and password, or a JWT as the password) or a Bearer token."
    ),
    paths(products::list, products::detail, sql::run),
    components(schemas(
        products::ProductList,
        products::ProductSummary,
        products::ProductDetail,
        products::ColumnView,
        products::FreshnessView,
        products::QualityRuleView,
        products::ErrorBody,
        sql::SqlRequest,
        sql::SqlError
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The sign-in schemes the document's `security` names.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json`.
pub(super) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_data_endpoint() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["paths"]["/v1/products"]["get"].is_object());
        assert!(doc["paths"]["/v1/products/{name}"]["get"].is_object());
        assert!(doc["paths"]["/v1/sql"]["post"].is_object());
        assert!(doc["components"]["schemas"]["ProductSummary"].is_object());
        assert!(doc["components"]["securitySchemes"]["basic"].is_object());
    }
}
