//! What every response says about how a browser may use it (Content-Security-Policy, framing,
//! sniffing, referrers, camera and microphone), which requests may change state (JSON only), and
//! which paths can name one of the app's files at all.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;

/// The headers every response carries, the CSP among them.
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// The headers for an app whose pages (the customer's `index.html`, the console's) are
    /// `pages`: their inline scripts are allowed by their hashes; nothing else inline runs. A
    /// server that speaks HTTPS itself (`https`) also tells browsers to use nothing else.
    pub fn new(pages: &[&str], https: bool) -> Self {
        let hashes: String = pages
            .iter()
            .flat_map(|page| inline_scripts(page))
            .map(|script| {
                let digest = Sha256::digest(script.as_bytes());
                format!(
                    " 'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            })
            .collect();
        let csp = format!(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
             style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
             connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        let value = |v: &str| HeaderValue::from_str(v).expect("a plain ASCII header value");
        Self {
            headers: vec![
                (header::CONTENT_SECURITY_POLICY, value(&csp)),
                (header::X_CONTENT_TYPE_OPTIONS, value("nosniff")),
                (header::X_FRAME_OPTIONS, value("DENY")),
                (header::REFERRER_POLICY, value("no-referrer")),
                (
                    HeaderName::from_static("permissions-policy"),
                    value(
                        "camera=(self), microphone=(self), speaker-selection=(self), \
                         display-capture=(), geolocation=(), payment=(), usb=()",
                    ),
                ),
                (
                    HeaderName::from_static("cross-origin-opener-policy"),
                    value("same-origin"),
                ),
            ]
            .into_iter()
            // A year: what hstspreload.org asks for; subdomains are not ours to speak for.
            .chain(https.then(|| (header::STRICT_TRANSPORT_SECURITY, value("max-age=31536000"))))
            .collect(),
        }
    }

    /// Adds the headers a response does not set itself.
    pub fn apply(&self, mut response: Response) -> Response {
        let h = response.headers_mut();
        for (name, value) in &self.headers {
            if !h.contains_key(name) {
                h.insert(name.clone(), value.clone());
            }
        }
        response
    }
}

/// The text of each inline `<script>` (one without `src`) of an HTML page: trunk puts the
/// loader of the wasm app inline. Scanned by hand rather than with an HTML parser: the page is
/// our own build output, and a script's text is all that is needed of it.
fn inline_scripts(html: &str) -> Vec<String> {
    let mut scripts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let tag = &after[..open_end];
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        if !tag.contains(" src=") {
            scripts.push(body[..close].to_string());
        }
        rest = &body[close..];
    }
    scripts
}

/// Only JSON may change state: a POST, PUT or PATCH must say `Content-Type: application/json`
/// (with a body or without), and a DELETE that carries a content type must say the same. An
/// HTML form can send none of those, so a cross-site form cannot act for a signed-in user.
pub async fn require_json(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""));
    let is_json = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    let needs_json = matches!(method, Method::POST | Method::PUT | Method::PATCH)
        || (method == Method::DELETE && content_type.is_some());
    if needs_json && !is_json {
        return ApiError::UnsupportedMediaType(
            "requests that change something must be sent with Content-Type: application/json"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The longest path that can name one of the app's files.
const MAX_FILE_PATH: usize = 512;

/// Whether a request path could name a file of the app (or a client-side route): short, every
/// percent-escape valid UTF-8, no NUL or other control byte, no `..`. Anything else is a 404
/// before it reaches the file system, whose errors for such names are not the client's to see.
pub fn plausible_file_path(path: &str) -> bool {
    if path.len() > MAX_FILE_PATH {
        return false;
    }
    let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return false;
    };
    !decoded.chars().any(char::is_control)
        && !decoded.split(['/', '\\']).any(|segment| segment == "..")
}

/// How long a browser may keep a file of the app. A file whose name carries the build's content
/// hash (`callqueue-0123456789abcdef_bg.wasm`) never changes: a year, without asking again. A
/// page (`index.html`, every client-side route) names the hashed files of its build, so it is
/// asked for again each time (`no-cache` still lets the browser revalidate it cheaply). A hashed
/// name that is not there (an old page asking for a replaced build), or any other missing file
/// (`/favicon.ico`), is a 404, not the app's page.
pub async fn cache_control(request: Request<Body>, next: Next) -> Response {
    let hashed = has_content_hash(request.uri().path());
    // A name with an extension is a file, never a client-side route (their ids have no dots):
    // one that is not there (`/favicon.ico`) is a 404, not the app's page.
    let file = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.') && !last.ends_with(".html"));
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        return response;
    }
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let value = match (hashed || file, is_page) {
        (true, true) => {
            return ApiError::NotFound("this file is not part of the app (any more)".into())
                .into_response();
        }
        (true, false) if hashed => "public, max-age=31536000, immutable",
        _ => "no-cache",
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

/// Whether the last segment of `path` names a file by its content, as trunk names the files
/// it builds: `<name>-<its hash in hex>` before the extension (and `_bg` for the wasm).
pub fn has_content_hash(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let Some((stem, _ext)) = file.rsplit_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(name, hash)| {
        // A 64-bit hash in hex without its leading zeros: 16 digits, sometimes fewer.
        !name.is_empty()
            && (10..=16).contains(&hash.len())
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Sends requests for paths that cannot be a file of the app to a 404.
pub async fn only_file_paths(request: Request<Body>, next: Next) -> Response {
    if !plausible_file_path(request.uri().path()) {
        return ApiError::NotFound("there is no such page or file".into()).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_found_and_others_skipped() {
        let html = r#"<head><script type="module">import init from '/a.js';init('/a.wasm');</script>
            <script src="/b.js"></script><script>x()</script></head>"#;
        assert_eq!(
            inline_scripts(html),
            vec!["import init from '/a.js';init('/a.wasm');", "x()"]
        );
        let headers = SecurityHeaders::new(&[html], false);
        let csp = headers.headers[0].1.to_str().unwrap();
        assert_eq!(csp.matches("'sha256-").count(), 2);
        assert!(csp.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn only_files_named_by_their_content_are_kept_for_a_year() {
        assert!(has_content_hash("/callqueue-8f3a09c1d2e4b5a6_bg.wasm"));
        assert!(has_content_hash(
            "/agent/callqueue-console-8f3a09c1d2e4b5a6.js"
        ));
        assert!(has_content_hash("/main-0123456789abcdef.css"));
        // trunk drops a hash's leading zeros.
        assert!(has_content_hash("/main-c4302d6cc197f75.css"));
        assert!(!has_content_hash("/main-c4302.css"));
        assert!(!has_content_hash("/"));
        assert!(!has_content_hash("/index.html"));
        assert!(!has_content_hash("/agent"));
        assert!(!has_content_hash("/hold/r/0123456789abcdef"));
        assert!(!has_content_hash("/-0123456789abcdef.js"));
        assert!(!has_content_hash("/app-0123456789abcdeg.js"));
    }

    #[test]
    fn file_paths_that_cannot_exist_are_refused() {
        assert!(plausible_file_path("/"));
        assert!(plausible_file_path("/hold/r/abc"));
        assert!(plausible_file_path("/callqueue-1a2b_bg.wasm"));
        assert!(plausible_file_path("/a%20b"));
        assert!(!plausible_file_path(&format!("/{}", "a".repeat(3000))));
        assert!(!plausible_file_path("/a%00b"));
        assert!(!plausible_file_path("/%ff%fe"));
        assert!(!plausible_file_path("/a/%2e%2e/b"));
        assert!(!plausible_file_path("/a%0a"));
    }
}
