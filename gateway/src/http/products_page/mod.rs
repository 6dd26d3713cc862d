//! The data products page, `GET /products`: for consumers and owners to
//! browse and search the products they may read, read a product's promise,
//! freshness and columns, and copy a connection string for psql, ADBC and
//! polars.
//!
//! Like the admin page it is one static asset set with no data in it: its
//! script signs in with the credentials the other front ends take (kept in
//! memory only) and reads everything from the discovery API
//! ([`super::products`]), so the page shows exactly what the API and
//! `system.data_products` show the same user.

use axum::Router;

use super::assets::static_page;
use super::HttpState;

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// The page and its assets.
pub fn routes() -> Router<HttpState> {
    static_page("/products", PAGE_HTML, PAGE_JS, PAGE_CSS)
}
