//! The web pages every node serves at `/` (docs/web.md): built from node/web by
//! `build.rs` and embedded in the binary, so a node needs no files beside it and serves
//! exactly the pages of its own version. The pages verify every answer themselves
//! against a genesis file; this module only hands them out, with headers that keep them
//! from loading anything but their own code and this node's API.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One built asset: its path under `/web/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! built {
    ($name:literal, $ty:literal) => {
        Asset {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    built!("app.js", "text/javascript; charset=utf-8"),
    built!("style.css", "text/css; charset=utf-8"),
];

const INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/web/index.html"));

/// The browser's verifier as a Node.js program (the same modules the pages bundle):
/// tests hold it to the Rust verifier (tests/tests/web.rs).
pub const VERIFY_CLI: &str = include_str!(concat!(env!("OUT_DIR"), "/web/verify-cli.mjs"));

/// Only the pages' own script and styles, and this node's API: a page can neither run
/// nor send anything else, and cannot be framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route("/web/{name}", get(asset))
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => page(a.bytes, a.content_type),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file\n",
        )
            .into_response(),
    }
}

fn page(bytes: &'static [u8], content_type: &'static str) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Each binary carries its own pages: revalidate, so an upgraded node's pages show.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
