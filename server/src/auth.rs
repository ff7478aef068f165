//! Who is asking, from the HttpOnly session cookies (EventSource cannot send headers).

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use axum_extra::extract::{CookieJar, cookie::Cookie};

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
    store::{Agent, Store},
};

pub const CUSTOMER_COOKIE: &str = "cq_customer";
pub const AGENT_COOKIE: &str = "cq_agent";

/// A session cookie: HttpOnly, SameSite=Lax, for the whole site, for `max_age_secs`.
pub fn session_cookie(name: &'static str, token: &str, max_age_secs: i64) -> Cookie<'static> {
    // Parsed from its header form: the builder's max-age wants the `time` crate's types.
    Cookie::parse(format!(
        "{name}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}"
    ))
    .expect("a well-formed cookie")
    .into_owned()
}

/// A cookie that removes `name` from the browser.
pub fn removal_cookie(name: &'static str) -> Cookie<'static> {
    session_cookie(name, "", 0)
}

/// Everyone the request's cookies say it is: a customer, a specialist, or both (one browser
/// may hold both sessions).
#[derive(Debug, Clone, Default)]
pub struct Callers {
    pub customer: Option<String>,
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
        }
        if let Some(c) = jar.get(AGENT_COOKIE) {
            callers.agent = store.agent_by_session(c.value()).await?;
            callers.agent_token = Some(c.value().to_string());
        }
        Ok(callers)
    }

    /// The signed-in specialist, or 401.
    pub fn require_agent(&self) -> ApiResult<&Agent> {
        self.agent
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("sign in as a specialist first".into()))
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
