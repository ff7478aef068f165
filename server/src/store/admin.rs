//! What the admin page changes: specialists' accounts, groups and their settings (opening hours
//! among them), each action written to the audit log in the same transaction.

use std::collections::HashMap;

use callqueue_protocol::{
    Role,
    admin::{AccountRole, AdminSpecialist, AuditEntry, GroupSettings, IssuedSecret, NewSpecialist},
};
use chrono::Utc;
use sqlx::Row;

use super::{
    Store, StoreError, StoreResult,
    rows::{RowExt, ts},
    split_groups,
};
use crate::tokens;

/// An account's role as stored: `admin` accounts are specialists who may also use the admin page.
pub(super) const ADMIN_ROLE: &str = "admin";

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ts(Utc::now()))
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    // ---- groups ----

    /// A group's settings (the defaults for one never configured).
    pub fn group_settings(&self, group: &str) -> GroupSettings {
        self.inner
            .settings
            .read()
            .ok()
            .and_then(|s| s.get(group).cloned())
            .unwrap_or_default()
    }

    /// Whether a group's queue is open at `now`, and when it opens next.
    pub fn opening(&self, group: &str, now: chrono::DateTime<Utc>) -> crate::hours::Opening {
        crate::hours::opening(&self.group_settings(group), now)
    }

    /// Whether names are required at a group's check-in.
    pub fn require_name(&self, group: &str) -> bool {
        self.group_settings(group)
            .require_name
            .unwrap_or(self.config().require_name)
    }

    /// Session length of a group's new calls.
    pub fn call_seconds(&self, group: &str) -> u32 {
        self.group_settings(group)
            .call_seconds
            .unwrap_or(self.config().call_seconds)
    }

    /// How long a group's matched customers have to join.
    pub(super) fn group_join_window(&self, group: &str) -> chrono::Duration {
        match self.group_settings(group).join_window_secs {
            Some(secs) => chrono::Duration::seconds(secs as i64),
            None => self.join_window(),
        }
    }

    /// Whether this customer has a reservation that is still going.
    pub fn customer_has_active(&self, customer_id: &str) -> bool {
        self.live().by_customer.contains_key(customer_id)
    }

    /// Every group's name, in order.
    pub fn group_names(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.live().groups.keys().cloned().collect();
        groups.sort();
        groups
    }

    /// Every group with its settings, by name.
    pub fn groups_with_settings(&self) -> Vec<(String, GroupSettings)> {
        self.group_names()
            .into_iter()
            .map(|g| {
                let s = self.group_settings(&g);
                (g, s)
            })
            .collect()
    }

    /// Groups whose queue closes at closing time and that are closed at `now` (the sweeper's
    /// question, four times a second: read in place, nothing copied but the names).
    pub(super) fn closing_groups(&self, now: chrono::DateTime<Utc>) -> Vec<String> {
        let Ok(settings) = self.inner.settings.read() else {
            return Vec::new();
        };
        settings
            .iter()
            .filter(|(_, s)| crate::hours::closes_queue(s, now))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Reads every group's settings again (other nodes' changes; called by the sweeper), and
    /// takes up groups another node added.
    pub async fn refresh_settings(&self) -> StoreResult<()> {
        let rows = sqlx::query("SELECT name, settings FROM groups")
            .fetch_all(&self.inner.db)
            .await?;
        let mut all = HashMap::new();
        let mut new_groups = Vec::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let json: Option<String> = row.try_get("settings")?;
            let settings = match json.as_deref().map(serde_json::from_str::<GroupSettings>) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::warn!(group = %name, error = %e, "unreadable group settings; using the defaults");
                    GroupSettings::default()
                }
                None => GroupSettings::default(),
            };
            if !self.has_group(&name) {
                new_groups.push(name.clone());
            }
            all.insert(name, settings);
        }
        if let Ok(mut settings) = self.inner.settings.write() {
            *settings = all;
        }
        if !new_groups.is_empty() {
            let mut conn = self.inner.db.acquire().await?;
            for group in new_groups {
                self.load_group(&mut conn, &group).await?;
                self.live_mut().recompute(&group, Utc::now());
            }
        }
        Ok(())
    }

    /// Adds a group (`None` settings: the defaults) or changes one's settings.
    pub async fn save_group(
        &self,
        actor: &str,
        group: &str,
        settings: &GroupSettings,
        create: bool,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(settings)
            .map_err(|e| StoreError::Internal(format!("group settings: {e}")))?;
        let mut tx = self.inner.db.begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        match (create, exists.is_some()) {
            (true, true) => {
                return Err(StoreError::Conflict(format!("the group {group:?} exists")));
            }
            (false, false) => return Err(StoreError::not_found(&format!("the group {group:?}"))),
            (true, false) => {
                sqlx::query("INSERT INTO groups (name, version, settings) VALUES ($1, 0, $2)")
                    .bind(group)
                    .bind(&json)
                    .execute(&mut *tx)
                    .await?;
            }
            (false, true) => {
                sqlx::query("UPDATE groups SET settings = $1 WHERE name = $2")
                    .bind(&json)
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let action = if create { "group.add" } else { "group.update" };
        audit(&mut tx, actor, action, group, &describe(settings)).await?;
        tx.commit().await?;
        self.refresh_settings().await
    }

    // ---- accounts ----

    /// Every account, with who is signed in now.
    pub async fn specialists(&self) -> StoreResult<Vec<AdminSpecialist>> {
        let signed_in: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT user_id FROM agent_sessions WHERE expires_at > $1")
                .bind(ts(Utc::now()))
                .fetch_all(&self.inner.db)
                .await?;
        let rows = sqlx::query(
            "SELECT user_id, role, groups, display_name, disabled FROM agents ORDER BY user_id",
        )
        .fetch_all(&self.inner.db)
        .await?;
        let live = self.live();
        rows.iter()
            .map(|row| {
                let user_id: String = row.try_get("user_id")?;
                let role: String = row.try_get("role")?;
                Ok(AdminSpecialist {
                    role: if role == ADMIN_ROLE {
                        AccountRole::Admin
                    } else {
                        AccountRole::Specialist
                    },
                    groups: split_groups(&row.try_get::<String, _>("groups")?),
                    display_name: row.try_get("display_name")?,
                    disabled: row.flag("disabled")?,
                    signed_in: signed_in.contains(&user_id),
                    available: live.agents.get(&user_id).is_some_and(|a| a.available),
                    user_id,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Into::into)
    }

    /// A new account with a generated secret, shown once.
    pub async fn add_specialist(
        &self,
        actor: &str,
        new: &NewSpecialist,
    ) -> StoreResult<IssuedSecret> {
        let secret = tokens::random_token();
        let hash = super::accounts::hash_secret(&secret).await?;
        let role = match new.role {
            AccountRole::Admin => ADMIN_ROLE,
            AccountRole::Specialist => Role::Specialist.as_str(),
        };
        let mut tx = self.inner.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO agents (user_id, role, groups, secret_hash, available, created_at, \
             display_name) VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(&new.user_id)
        .bind(role)
        .bind(new.groups.join(","))
        .bind(hash)
        .bind(ts(Utc::now()))
        .bind(&new.display_name)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "the sign-in id {:?} is taken",
                new.user_id
            )));
        }
        let detail = format!(
            "role {role}, groups {}, display name {}",
            new.groups.join(", "),
            new.display_name.as_deref().unwrap_or("(none)")
        );
        audit(&mut tx, actor, "specialist.add", &new.user_id, &detail).await?;
        tx.commit().await?;
        Ok(IssuedSecret {
            user_id: new.user_id.clone(),
            secret,
        })
    }

    /// Disables (signing them out everywhere at once: their sessions end, and their channels
    /// on this node close now, on other nodes within a heartbeat) or enables an account.
    pub async fn set_disabled(
        &self,
        actor: &str,
        user_id: &str,
        disabled: bool,
    ) -> StoreResult<()> {
        let mut tx = self.inner.db.begin().await?;
        let changed =
            sqlx::query("UPDATE agents SET disabled = $1, available = 0 WHERE user_id = $2")
                .bind(disabled as i64)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::not_found(&format!("the account {user_id:?}")));
        }
        let ended = if disabled {
            end_sessions(&mut tx, user_id).await?
        } else {
            Vec::new()
        };
        let action = if disabled {
            "specialist.disable"
        } else {
            "specialist.enable"
        };
        audit(&mut tx, actor, action, user_id, "").await?;
        tx.commit().await?;
        self.signed_out(user_id, ended);
        Ok(())
    }

    /// A new secret for an account, shown once; its sessions end.
    pub async fn reset_secret(&self, actor: &str, user_id: &str) -> StoreResult<IssuedSecret> {
        let secret = tokens::random_token();
        let hash = super::accounts::hash_secret(&secret).await?;
        let mut tx = self.inner.db.begin().await?;
        let changed =
            sqlx::query("UPDATE agents SET secret_hash = $1, available = 0 WHERE user_id = $2")
                .bind(hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::not_found(&format!("the account {user_id:?}")));
        }
        let ended = end_sessions(&mut tx, user_id).await?;
        audit(&mut tx, actor, "specialist.reset_secret", user_id, "").await?;
        tx.commit().await?;
        self.signed_out(user_id, ended);
        Ok(IssuedSecret {
            user_id: user_id.to_string(),
            secret,
        })
    }

    /// After an account's sessions ended: its channels on this node close, and it is no longer
    /// available for matching.
    fn signed_out(&self, user_id: &str, sessions: Vec<String>) {
        for hash in sessions {
            let _ = self.inner.ended_sessions.send(hash);
        }
        let mut live = self.live_mut();
        let groups = live.agents.get_mut(user_id).map(|a| {
            a.available = false;
            a.groups.clone()
        });
        let now = Utc::now();
        for group in groups.unwrap_or_default() {
            live.recompute(&group, now);
        }
    }

    /// The latest admin actions, newest first.
    pub async fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.inner.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.time("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Into::into)
    }
}

/// Deletes an account's sessions; their token hashes.
async fn end_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
) -> sqlx::Result<Vec<String>> {
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM agent_sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query("DELETE FROM agent_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(hashes)
}

/// Group settings in words, for the audit log.
fn describe(s: &GroupSettings) -> String {
    let mut parts = Vec::new();
    if let Some(name) = &s.display_name {
        parts.push(format!("shown as {name:?}"));
    }
    if let Some(secs) = s.call_seconds {
        parts.push(format!("calls {} min", secs / 60));
    }
    if let Some(secs) = s.join_window_secs {
        parts.push(format!("join window {secs} s"));
    }
    if let Some(required) = s.require_name {
        parts.push(format!(
            "name {}",
            if required { "required" } else { "optional" }
        ));
    }
    if s.hours.is_empty() {
        parts.push("always open".into());
    } else {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let hours: Vec<String> = s
            .hours
            .iter()
            .map(|h| {
                format!(
                    "{} {}–{}",
                    DAYS[(h.weekday as usize).min(6)],
                    h.opens,
                    h.closes
                )
            })
            .collect();
        parts.push(format!("open {} ({})", hours.join(", "), s.time_zone));
    }
    if !s.closed_dates.is_empty() {
        let dates: Vec<String> = s.closed_dates.iter().map(|d| d.to_string()).collect();
        parts.push(format!("closed on {}", dates.join(", ")));
    }
    parts.push(format!("at closing: {:?}", s.at_closing).to_lowercase());
    parts.join("; ")
}
