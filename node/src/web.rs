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

/// The end-to-end driver (playwright-core and Debian's Chromium), beside the packages
/// `npm ci` installed under `OUT_DIR`: tests/tests/web_pages.rs runs it with Node.js.
pub const E2E_DRIVER: &str = concat!(env!("OUT_DIR"), "/web-src/e2e.mjs");

/// Time to a verified page in Chromium, for the benchmark (xinlian-bench).
pub const PAGE_TIME_DRIVER: &str = concat!(env!("OUT_DIR"), "/web-src/page-time.mjs");

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

/// A printable label for a batch (SVG, 60 × 80 mm): a QR code that opens the batch's
/// page at `page_url`, which names the chain id so the scanning phone checks that the
/// node it reaches serves that chain; the batch id, product and lot in words; the
/// chain id's first digits.
pub fn label_svg(page_url: &str, batch: &str, product: &str, lot: &str, chain: &str) -> String {
    // A page address is a few hundred bytes at most: far within a QR code's capacity.
    let code = qrcode::QrCode::with_error_correction_level(page_url.as_bytes(), qrcode::EcLevel::M)
        .expect("a page address fits a QR code");
    let n = code.width();
    let colors = code.to_colors();
    let mut modules = String::with_capacity(colors.len() * 8);
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            use std::fmt::Write as _;
            let _ = write!(modules, "M{} {}h1v1h-1z", i % n, i / n);
        }
    }
    // Four modules of quiet zone around the code, as the standard asks.
    let side = n + 8;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="60mm" height="80mm" viewBox="0 0 600 800">
<rect width="600" height="800" fill="#fff"/>
<text x="300" y="52" font-family="sans-serif" font-size="34" font-weight="700" text-anchor="middle" fill="#0b4f8a">信链 xinlian</text>
<svg x="60" y="70" width="480" height="480" viewBox="-4 -4 {side} {side}" shape-rendering="crispEdges"><rect x="-4" y="-4" width="{side}" height="{side}" fill="#fff"/><path d="{modules}" fill="#000"/></svg>
<text x="300" y="600" font-family="monospace" font-size="30" text-anchor="middle">{batch}</text>
<text x="300" y="645" font-family="sans-serif" font-size="24" text-anchor="middle">{product}</text>
<text x="300" y="680" font-family="sans-serif" font-size="24" text-anchor="middle">{lot}</text>
<text x="300" y="725" font-family="sans-serif" font-size="22" text-anchor="middle">扫码验证 · scan to verify</text>
<text x="300" y="762" font-family="monospace" font-size="18" text-anchor="middle" fill="#555">chain {chain_short}…</text>
</svg>
"##,
        batch = xml_text(batch),
        product = xml_text(product),
        lot = xml_text(lot),
        chain_short = &chain[..chain.len().min(16)],
    )
}

/// Text for an XML text node: the five characters XML gives meaning escaped, and any
/// character XML 1.0 does not allow (controls, U+FFFE, U+FFFF) replaced by U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c.to_string(),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => '\u{fffd}'.to_string(),
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&apos;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The batch page's address under `base`: the batch as one path segment, and the chain
/// id the page must find at that node.
pub fn batch_page_url(base: &str, batch: &str, chain: &str) -> String {
    let segment = percent_encoding::utf8_percent_encode(batch, percent_encoding::NON_ALPHANUMERIC);
    format!("{base}/#/batch/{segment}?chain={chain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_escapes_its_text_and_names_the_page() {
        let url = batch_page_url("https://x.example", "rice-1", "ab12");
        assert_eq!(url, "https://x.example/#/batch/rice%2D1?chain=ab12");
        let svg = label_svg(&url, "rice-1", "米 <b>&\u{ffff}\u{1}", "L1", "ab12");
        assert!(
            svg.contains("米 &lt;b&gt;&amp;\u{fffd}\u{fffd}") && !svg.contains("<b>"),
            "{svg}"
        );
        assert!(
            svg.contains("<path d=\"M"),
            "the QR code's modules are drawn"
        );
    }
}
