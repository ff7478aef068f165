//! Customers, specialists, their sessions and stream tokens, and the user events specialists hear.

use super::*;

use crate::secrets::{self, Verified};

/// An Argon2id hash of `secret`, made off the async threads (it takes tens of milliseconds).
pub(super) async fn hash_secret(secret: &str) -> Result<String, sqlx::Error> {
    let secret = secret.to_string();
    tokio::task::spawn_blocking(move || secrets::hash(&secret))
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("hashing a secret: {e}")))
}

impl Store {
    // ---- who is asking ----

    /// The customer behind a cookie token, if it is one we issued.
    pub async fn customer_by_token(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT id FROM customers WHERE token_hash = $1 AND expires_at > $2",
            )
            .bind(tokens::hash(token))
            .bind(ts(Utc::now()))
            .fetch_optional(&self.inner.db)
            .await?,
        )
    }

    /// Keeps a returning customer's session for another [`CUSTOMER_SESSION`] (their cookie is
    /// sent again with the same lifetime).
    pub async fn touch_customer(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE customers SET expires_at = $1 WHERE id = $2")
            .bind(ts(Utc::now() + CUSTOMER_SESSION))
            .bind(id)
            .execute(&self.inner.db)
            .await?;
        Ok(())
    }

    /// A new customer and the cookie token that identifies them; stored with their first
    /// reservation (one transaction), see [`Store::create_reservation`].
    pub fn new_customer() -> (NewCustomer, String) {
        let token = tokens::random_token();
        let customer = NewCustomer {
            id: tokens::random_token(),
            token_hash: tokens::hash(&token),
        };
        (customer, token)
    }

    /// The specialist behind a session cookie token, if the session is current.
    pub async fn agent_by_session(&self, token: &str) -> StoreResult<Option<Agent>> {
        let row = sqlx::query(
            "SELECT a.user_id, a.role, a.groups FROM agent_sessions s \
             JOIN agents a ON a.user_id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(tokens::hash(token))
        .bind(ts(Utc::now()))
        .fetch_optional(&self.inner.db)
        .await?;
        Ok(row.map(|row| agent_from_row(&row)).transpose()?.flatten())
    }

    // ---- specialists ----

    /// Creates or replaces a specialist's credentials (the `agent add` subcommand).
    pub async fn add_agent(
        db: &AnyPool,
        user_id: &str,
        role: Role,
        groups: &[String],
        secret: &str,
    ) -> sqlx::Result<()> {
        Self::add_agent_named(db, user_id, role, groups, secret, None).await
    }

    /// [`Store::add_agent`] with the name customers see (`None`: "the specialist").
    pub async fn add_agent_named(
        db: &AnyPool,
        user_id: &str,
        role: Role,
        groups: &[String],
        secret: &str,
        display_name: Option<&str>,
    ) -> sqlx::Result<()> {
        Self::add_account(db, user_id, role.as_str(), groups, secret, display_name).await
    }

    /// [`Store::add_agent_named`] with the stored role by name: `admin` accounts are
    /// specialists who may also use the admin page.
    pub async fn add_account(
        db: &AnyPool,
        user_id: &str,
        role: &str,
        groups: &[String],
        secret: &str,
        display_name: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO agents (user_id, role, groups, secret_hash, available, created_at, \
             display_name) VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (user_id) DO UPDATE \
             SET role = excluded.role, groups = excluded.groups, \
             secret_hash = excluded.secret_hash, display_name = excluded.display_name",
        )
        .bind(user_id)
        .bind(role)
        .bind(groups.join(","))
        .bind(hash_secret(secret).await?)
        .bind(ts(Utc::now()))
        .bind(display_name)
        .execute(db)
        .await?;
        Ok(())
    }

    /// Checks credentials and opens a session; returns the cookie token. A secret stored the old
    /// way (or with older parameters) is stored anew as today's Argon2id hash.
    pub async fn sign_in(&self, user_id: &str, secret: &str) -> StoreResult<(Agent, String)> {
        let row = sqlx::query(
            "SELECT user_id, role, groups, available, secret_hash, display_name, disabled FROM agents \
             WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.inner.db)
        .await?;
        let stored = row
            .as_ref()
            .map(|r| r.try_get::<String, _>("secret_hash"))
            .transpose()?;
        let verified = {
            let secret = secret.to_string();
            let stored = stored.clone();
            // An unknown user id is checked against a decoy, so it takes as long as a wrong
            // secret and says nothing about which user ids exist.
            tokio::task::spawn_blocking(move || {
                secrets::verify(
                    &secret,
                    stored.as_deref().unwrap_or_else(|| secrets::decoy()),
                )
            })
            .await
            .map_err(|e| StoreError::Internal(format!("checking a secret: {e}")))?
        };
        let row = match (row, verified) {
            (Some(row), Verified::Right) => row,
            (Some(row), Verified::RightButOld) => {
                let new = hash_secret(secret).await?;
                // Only if nobody changed the secret meanwhile.
                sqlx::query(
                    "UPDATE agents SET secret_hash = $1 WHERE user_id = $2 AND secret_hash = $3",
                )
                .bind(new)
                .bind(user_id)
                .bind(stored.unwrap_or_default())
                .execute(&self.inner.db)
                .await?;
                row
            }
            _ => {
                return Err(StoreError::Unauthorized(
                    "unknown user id or wrong secret".into(),
                ));
            }
        };
        if row.flag("disabled")? {
            return Err(StoreError::Forbidden(
                "this account is disabled; ask an administrator".into(),
            ));
        }
        let agent = agent_from_row(&row)?.ok_or_else(|| {
            StoreError::Forbidden(
                "this account's role is not one this server knows; ask an administrator".into(),
            )
        })?;
        let available = row.flag("available")?;
        let display_name: Option<String> = row.try_get("display_name")?;
        let token = tokens::random_token();
        sqlx::query(
            "INSERT INTO agent_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(tokens::hash(&token))
        .bind(user_id)
        .bind(ts(Utc::now() + AGENT_SESSION))
        .execute(&self.inner.db)
        .await?;
        // The agent may have been added while the server ran.
        let mut live = self.live_mut();
        let entry = live
            .agents
            .entry(agent.user_id.clone())
            .or_insert(AgentLive {
                display_name: None,
                groups: Vec::new(),
                available,
                active_call: None,
            });
        entry.groups = agent.groups.clone();
        entry.display_name = display_name;
        Ok((agent, token))
    }

    /// Ends a specialist session; the channels and streams it opened on this node close at
    /// once (on the other nodes at their next check, see [`Store::session_alive`]).
    pub async fn sign_out(&self, token: &str) -> StoreResult<()> {
        let hash = tokens::hash(token);
        sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1")
            .bind(&hash)
            .execute(&self.inner.db)
            .await?;
        let _ = self.inner.ended_sessions.send(hash);
        Ok(())
    }

    /// Whether the specialist session with this token hash is current (not signed out, not
    /// expired).
    pub async fn session_alive(&self, session_hash: &str) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM agent_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(session_hash)
        .bind(ts(Utc::now()))
        .fetch_optional(&self.inner.db)
        .await?;
        Ok(found.is_some())
    }

    /// Token hashes of sessions signed out on this node from now on.
    pub fn ended_sessions(&self) -> broadcast::Receiver<String> {
        self.inner.ended_sessions.subscribe()
    }

    /// Whether the specialist is available, and their open call with its reservation.
    /// What customers see a specialist as, if set.
    pub fn agent_display_name(&self, user_id: &str) -> Option<String> {
        self.live().agents.get(user_id)?.display_name.clone()
    }

    pub fn agent_status(&self, user_id: &str) -> (bool, Option<(String, String)>) {
        let live = self.live();
        let Some(agent) = live.agents.get(user_id) else {
            return (false, None);
        };
        let call = agent
            .active_call
            .as_ref()
            .and_then(|id| live.calls.get(id))
            .map(|c| (c.id.clone(), c.reservation_sid.clone()));
        (agent.available, call)
    }

    pub async fn set_available(&self, agent: &Agent, available: bool) -> StoreResult<()> {
        let _w = self.inner.write.lock().await;
        let groups: Vec<&str> = agent
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| self.has_group(g))
            .collect();
        let mut tx = self.begin_groups(&groups).await?;
        let versions: Vec<(String, u64)> = groups
            .iter()
            .map(|g| (g.to_string(), self.next_version(g)))
            .collect();
        sqlx::query("UPDATE agents SET available = $1 WHERE user_id = $2")
            .bind(available as i64)
            .bind(&agent.user_id)
            .execute(&mut *tx)
            .await?;
        for (g, v) in &versions {
            bump_group(&mut tx, g, *v).await?;
        }
        let changes: Vec<(&str, u64)> = versions.iter().map(|(g, v)| (g.as_str(), *v)).collect();
        self.announce(&mut tx, &changes).await?;
        tx.commit().await?;
        let now = Utc::now();
        let mut live = self.live_mut();
        if let Some(a) = live.agents.get_mut(&agent.user_id) {
            a.available = available;
        }
        for (g, v) in versions {
            live.recompute(&g, now);
            live.publish(&g, v, None);
        }
        Ok(())
    }

    /// How many specialists of the group are available now.
    pub fn available_specialists(&self, group: &str) -> u32 {
        self.live()
            .agents
            .values()
            .filter(|a| a.available && a.groups.iter().any(|g| g == group))
            .count() as u32
    }

    /// A short-lived token for the WebSocket handshake; only its hash is kept.
    /// A stream token for `agent`'s session with this cookie token.
    pub async fn stream_token(
        &self,
        agent: &Agent,
        session_token: &str,
    ) -> StoreResult<(String, DateTime<Utc>)> {
        let token = tokens::random_token();
        let expires = Utc::now() + STREAM_TOKEN;
        sqlx::query(
            "INSERT INTO stream_tokens (token_hash, user_id, expires_at, session_hash) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(tokens::hash(&token))
        .bind(&agent.user_id)
        .bind(ts(expires))
        .bind(tokens::hash(session_token))
        .execute(&self.inner.db)
        .await?;
        Ok((token, expires))
    }

    /// Spends a stream token: valid once, within its minute. The specialist, and the token hash
    /// of the session it was made for.
    pub async fn redeem_stream_token(&self, token: &str) -> StoreResult<Option<(Agent, String)>> {
        let row = sqlx::query(
            "DELETE FROM stream_tokens WHERE token_hash = $1 AND expires_at > $2 \
             RETURNING user_id, session_hash",
        )
        .bind(tokens::hash(token))
        .bind(ts(Utc::now()))
        .fetch_optional(&self.inner.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get("user_id")?;
        let session: Option<String> = row.try_get("session_hash")?;
        let Some(session) = session else {
            return Ok(None);
        };
        if !self.session_alive(&session).await? {
            return Ok(None);
        }
        let row = sqlx::query("SELECT user_id, role, groups FROM agents WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.inner.db)
            .await?;
        Ok(row
            .map(|row| agent_from_row(&row))
            .transpose()?
            .flatten()
            .map(|agent| (agent, session)))
    }

    pub fn subscribe_user_events(&self) -> broadcast::Receiver<(Audience, UserEvent)> {
        self.inner.user_events.subscribe()
    }

    /// Tells the specialists in `audience` on their channels, on this node and the others.
    pub fn user_event(&self, audience: Audience, event: UserEvent) {
        self.relay(&audience, &event);
        let _ = self.inner.user_events.send((audience, event));
    }
}
