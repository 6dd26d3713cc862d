//! The static pages' assets (embedded at build time) and the headers every
//! answer of a page and its API carries.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::HttpState;

/// A page at `base` (its HTML) with its script and style sheet at
/// `base/page.js` and `base/page.css`, under [`security_headers`].
pub(super) fn static_page(
    base: &str,
    html: &'static str,
    js: &'static str,
    css: &'static str,
) -> Router<HttpState> {
    Router::new()
        .route(base, get(move || asset("text/html; charset=utf-8", html)))
        .route(
            &format!("{base}/page.js"),
            get(move || asset("text/javascript; charset=utf-8", js)),
        )
        .route(
            &format!("{base}/page.css"),
            get(move || asset("text/css; charset=utf-8", css)),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// A static asset of a page.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Headers on every answer of a page and its API, errors included: scripts
/// and styles only from this origin, no framing, nothing cached.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
