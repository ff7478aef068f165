//! The plain-HTTP listener of a server that speaks HTTPS (`--http-addr`): it answers ACME's
//! HTTP-01 challenges and redirects every other request to the same address over HTTPS.

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::Challenges;

/// The listener's routes. `https_port` is the HTTPS listener's port (left out of the redirect
/// when it is 443).
pub fn router(challenges: Challenges, https_port: u16) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .with_state((challenges, https_port))
}

async fn challenge(
    State((challenges, _)): State<(Challenges, u16)>,
    Path(token): Path<String>,
) -> Response {
    match challenges.answer(&token) {
        Some(answer) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such challenge").into_response(),
    }
}

/// A permanent redirect that keeps the method (308) to the same host and path over HTTPS.
async fn redirect(
    State((_, https_port)): State<(Challenges, u16)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name)
    else {
        return (StatusCode::BAD_REQUEST, "a Host header is needed").into_response();
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// The host of a `Host` header without its port, if it is a plain name or address.
fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        // [v6]:port
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    plain.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_name("calls.test:8080"), Some("calls.test"));
        assert_eq!(host_name("calls.test"), Some("calls.test"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("evil.test/x"), None);
        assert_eq!(host_name(""), None);
    }
}
