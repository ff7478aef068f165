//! Talking beside the video: the call's chat, the group's notice to everyone waiting, a line
//! to one waiting customer, and the purge of old calls' conversations.

use callqueue_protocol::signal::ChatMessage;

use super::*;

/// Most chat messages kept for one call (a conversation of an hour is a few hundred).
pub const CHAT_MESSAGES_PER_CALL: i64 = 2000;

fn chat_from_row(row: &sqlx::any::AnyRow) -> StoreResult<ChatMessage> {
    let role: String = row.try_get("role")?;
    Ok(ChatMessage {
        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
        id: row.try_get("client_id")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Internal(format!("a chat message's role {role:?}")))?,
        name: row.try_get("name")?,
        text: row.try_get("body")?,
        at: row.time("created_at")?,
    })
}

impl Store {
    // ---- chat ----

    /// Stores a chat message from `role` in `call` (its text already checked), once: the same
    /// `id` again answers the message as first stored. Numbered after the call's last message;
    /// two members sending at the same moment (on two nodes) take turns.
    pub async fn add_chat(
        &self,
        call: &CallRow,
        role: Role,
        id: &str,
        text: &str,
    ) -> StoreResult<ChatMessage> {
        let name = self
            .members(call)
            .into_iter()
            .find(|m| m.role == role)
            .and_then(|m| m.display_name);
        // Bounded: each round either stores the message, finds it stored, or lost its number
        // to a message stored meanwhile (which cannot happen more often than there are senders).
        for _ in 0..8 {
            if let Some(row) =
                sqlx::query("SELECT * FROM chat_messages WHERE call_id = $1 AND client_id = $2")
                    .bind(&call.id)
                    .bind(id)
                    .fetch_optional(&self.inner.db)
                    .await?
            {
                return chat_from_row(&row);
            }
            let last: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE call_id = $1",
            )
            .bind(&call.id)
            .fetch_one(&self.inner.db)
            .await?;
            if last >= CHAT_MESSAGES_PER_CALL {
                return Err(StoreError::Conflict(
                    "this call's chat is full; talk on the call".into(),
                ));
            }
            let message = ChatMessage {
                seq: (last + 1) as u64,
                id: id.to_string(),
                role,
                name: name.clone(),
                text: text.to_string(),
                at: Utc::now(),
            };
            let stored = sqlx::query(
                "INSERT INTO chat_messages (call_id, seq, client_id, role, name, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&call.id)
            .bind(message.seq as i64)
            .bind(id)
            .bind(role.as_str())
            .bind(message.name.clone())
            .bind(text)
            .bind(ts(message.at))
            .execute(&self.inner.db)
            .await?;
            if stored.rows_affected() == 1 {
                metrics::counter!(crate::metrics::CHAT_MESSAGES, "group" => call.group_name.clone(), "role" => role.as_str())
                    .increment(1);
                return Ok(message);
            }
        }
        Err(StoreError::Unavailable(
            "the chat is busy; send again".into(),
        ))
    }

    /// A call's chat messages after the one numbered `after` (0: all of them), in order.
    pub async fn chat_after(&self, call_id: &str, after: u64) -> StoreResult<Vec<ChatMessage>> {
        sqlx::query(
            "SELECT * FROM chat_messages WHERE call_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(call_id)
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(CHAT_MESSAGES_PER_CALL)
        .fetch_all(&self.inner.db)
        .await?
        .iter()
        .map(chat_from_row)
        .collect()
    }

    // ---- a word to those waiting ----

    /// The group's notice to everyone waiting, if any.
    pub fn group_notice(&self, group: &str) -> Option<Option<String>> {
        self.live().groups.get(group).map(|g| g.notice.clone())
    }

    /// Posts (`Some`) or clears (`None`) the group's notice: every hold page of the group
    /// shows it from its next copy of the reservation, on every node.
    pub async fn set_group_notice(&self, group: &str, notice: Option<&str>) -> StoreResult<()> {
        if !self.has_group(group) {
            return Err(StoreError::not_found("the group"));
        }
        let _w = self.inner.write.lock().await;
        let mut tx = self.begin_groups(&[group]).await?;
        let version = self.next_version(group);
        sqlx::query("UPDATE groups SET notice = $1 WHERE name = $2")
            .bind(notice)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        self.commit_group(tx, group, version).await?;
        let mut live = self.live_mut();
        if let Some(g) = live.groups.get_mut(group) {
            g.notice = notice.map(str::to_string);
        }
        live.publish(group, version, None);
        Ok(())
    }

    /// One line (`Some`) to one customer waiting in `group`'s queue, replacing the last one,
    /// or none (`None`). Conflict when they are no longer waiting.
    pub async fn set_customer_line(
        &self,
        group: &str,
        sid: &str,
        line: Option<&str>,
    ) -> StoreResult<Reservation> {
        let _w = self.inner.write.lock().await;
        let mut tx = self.begin_groups(&[group]).await?;
        let now = Utc::now();
        {
            let live = self.live();
            let r = live
                .reservations
                .get(sid)
                .filter(|r| r.view.group_name == group)
                .ok_or_else(|| StoreError::not_found("the reservation"))?;
            if r.view.reservation_status != ReservationStatus::Queued {
                return Err(StoreError::Conflict(
                    "the customer is no longer waiting".into(),
                ));
            }
        }
        let version = self.next_version(group);
        sqlx::query(
            "UPDATE reservations SET message = $1, updated_at = $2, gv = $3 WHERE sid = $4",
        )
        .bind(line)
        .bind(ts(now))
        .bind(version as i64)
        .bind(sid)
        .execute(&mut *tx)
        .await?;
        self.commit_group(tx, group, version).await?;
        let mut live = self.live_mut();
        if let Some(r) = live.reservations.get_mut(sid) {
            r.view.message = line.map(str::to_string);
            r.view.updated_at = now;
        }
        live.publish(group, version, None);
        live.view(sid, now)
            .ok_or_else(|| StoreError::not_found("the reservation"))
    }

    // ---- retention ----

    /// Deletes what is kept of calls that ended before `before`: their chat, their feedback,
    /// the calls themselves, and the reservations (with the check-in's name and reason) that
    /// finished before then. Answers how many rows went.
    pub async fn purge_calls(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let old = "SELECT id FROM calls WHERE ended_at IS NOT NULL AND ended_at < $1";
        let mut purged = 0;
        for sql in [
            format!("DELETE FROM chat_messages WHERE call_id IN ({old})"),
            format!("DELETE FROM call_feedback WHERE call_id IN ({old})"),
            "DELETE FROM reservations WHERE updated_at < $1 \
             AND status <> 'GROUP_RESERVATION_STATUS_QUEUED' \
             AND (call_id IS NULL OR call_id NOT IN (SELECT id FROM calls WHERE ended_at IS NULL))"
                .to_string(),
            "DELETE FROM calls WHERE ended_at IS NOT NULL AND ended_at < $1".to_string(),
        ] {
            purged += sqlx::query(&sql)
                .bind(ts(before))
                .execute(&self.inner.db)
                .await?
                .rows_affected();
        }
        Ok(purged)
    }
}
