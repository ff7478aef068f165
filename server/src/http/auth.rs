//! Who is asking, from the HttpOnly session cookies (EventSource cannot send headers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use axum_extra::extract::{CookieJar, cookie::Cookie};
use callqueue_protocol::Role;

use crate::{
    http::error::{ApiError, ApiResult},
    state::AppState,
    store::{Agent, Store},
};

pub const CUSTOMER_COOKIE: &str = "cq_customer";
pub const AGENT_COOKIE: &str = "cq_agent";

/// A session cookie: HttpOnly, SameSite=Lax, for the whole site, for `max_age_secs`; `Secure`
/// when the request came over TLS.
pub fn session_cookie(
    name: &'static str,
    token: &str,
    max_age_secs: i64,
    secure: bool,
) -> Cookie<'static> {
    let secure = if secure { "; Secure" } else { "" };
    // Parsed from its header form: the builder's max-age wants the `time` crate's types.
    Cookie::parse(format!(
        "{name}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .expect("a well-formed cookie")
    .into_owned()
}

/// A cookie that removes `name` from the browser.
pub fn removal_cookie(name: &'static str, secure: bool) -> Cookie<'static> {
    session_cookie(name, "", 0, secure)
}

/// Where a request comes from: the client's address (the peer, or what a trusted proxy says)
/// and whether it came over TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub https: bool,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Every connection's requests carry the peer (see `edge`); a router driven without a
        // socket has none.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self {
            ip: state.limits.client(peer, &parts.headers),
            https: state.limits.is_https(peer, &parts.headers),
        })
    }
}

/// Everyone the request's cookies say it is: a customer, a specialist, or both (one browser
/// may hold both sessions).
#[derive(Debug, Clone, Default)]
pub struct Callers {
    pub customer: Option<String>,
    /// The customer's cookie token, to send the cookie again with a new lifetime.
    pub customer_token: Option<String>,
    pub agent: Option<Agent>,
    pub agent_token: Option<String>,
}

impl FromRequestParts<AppState> for Callers {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        Self::from_headers(&parts.headers, &state.store).await
    }
}

impl Callers {
    /// Whoever the `Cookie` headers name.
    pub async fn from_headers(headers: &HeaderMap, store: &Store) -> ApiResult<Self> {
        let jar = CookieJar::from_headers(headers);
        let mut callers = Callers::default();
        if let Some(c) = jar.get(CUSTOMER_COOKIE) {
            callers.customer = store.customer_by_token(c.value()).await?;
            if callers.customer.is_some() {
                callers.customer_token = Some(c.value().to_string());
            }
        }
        if let Some(c) = jar.get(AGENT_COOKIE) {
            callers.agent = store.agent_by_session(c.value()).await?;
            callers.agent_token = Some(c.value().to_string());
        }
        Ok(callers)
    }

    /// The signed-in specialist, or 401; 403 for an account whose role may not serve a queue.
    pub fn require_agent(&self) -> ApiResult<&Agent> {
        let agent = self
            .agent
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("sign in as a specialist first".into()))?;
        if agent.role != Role::Specialist {
            return Err(ApiError::Forbidden(
                "only specialists may serve a queue".into(),
            ));
        }
        Ok(agent)
    }

    /// Whether these callers may see a reservation of `customer` in `group`.
    pub fn may_see_reservation(&self, customer: &str, group: &str) -> bool {
        self.customer.as_deref() == Some(customer)
            || self
                .agent
                .as_ref()
                .is_some_and(|a| a.groups.iter().any(|g| g == group))
    }
}

/// Resolves when the specialist session with this token hash ends: signed out on this node (at
/// once), or signed out on another node or expired (seen at the next check, every heartbeat).
/// A channel or stream the session opened selects on it and closes.
pub async fn session_ended(store: Store, session_hash: String) {
    use tokio::sync::broadcast::error::RecvError;
    let mut ended = store.ended_sessions();
    let mut check = tokio::time::interval(store.config().heartbeat);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let look = tokio::select! {
            e = ended.recv() => match e {
                Ok(hash) if hash == session_hash => return,
                Ok(_) => false,
                Err(RecvError::Lagged(_)) => true,
                // The store is going away with the server.
                Err(RecvError::Closed) => std::future::pending().await,
            },
            _ = check.tick() => true,
        };
        // A database that cannot answer now ends nobody's session.
        if look && matches!(store.session_alive(&session_hash).await, Ok(false)) {
            return;
        }
    }
}

/// Refuses a WebSocket handshake from another site's page (403): a browser always sends
/// `Origin`, and a page of another site must not open a socket with our cookies (WebSockets are
/// not bound by CORS). No `Origin` (not a browser) is allowed; one whose host and port differ
/// from `Host` is not.
pub fn websocket_origin(headers: &HeaderMap) -> ApiResult<()> {
    if same_origin(headers) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "a WebSocket from another site's page".into(),
        ))
    }
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin") else {
        return true;
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = match (origin.host_str(), origin.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => return false,
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}
