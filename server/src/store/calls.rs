//! Calls: joining, extending, leaving, ending.

use super::*;

impl Store {
    // ---- calls ----

    /// A call, from memory while open, else from the database.
    pub async fn call(&self, id: &str) -> StoreResult<Option<CallRow>> {
        if let Some(call) = self.live().calls.get(id) {
            return Ok(Some(call.clone()));
        }
        let row = sqlx::query("SELECT * FROM calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.inner.db)
            .await?;
        Ok(row.map(|r| CallRow::from_row(&r)).transpose()?)
    }

    /// Watches an open call; `None` once it has ended.
    pub fn watch_call(&self, id: &str) -> Option<watch::Receiver<CallNote>> {
        self.live().call_tx.get(id).map(|tx| tx.subscribe())
    }

    /// [`Self::watch_call`], first catching up with the other nodes when this one does not
    /// know the call: it may have been made on another a moment ago.
    pub async fn watch_call_fresh(
        &self,
        id: &str,
    ) -> StoreResult<Option<watch::Receiver<CallNote>>> {
        if let Some(rx) = self.watch_call(id) {
            return Ok(Some(rx));
        }
        if self.clustered() {
            self.reconcile().await?;
        }
        Ok(self.watch_call(id))
    }

    /// A call's members with their names: the specialist's display name, the customer's
    /// check-in name.
    pub(super) fn members(&self, call: &CallRow) -> Vec<Member> {
        let live = self.live();
        let specialist = live
            .agents
            .get(&call.specialist_id)
            .and_then(|a| a.display_name.clone());
        let customer = live.check_in(&call.reservation_sid).name;
        call.members(specialist, customer)
    }

    /// The response to any call request, as seen by `who`.
    pub fn call_response(&self, call: &CallRow, role: Role) -> CallResponse {
        // The check-in is for the specialist's eyes.
        let check_in = match role {
            Role::Specialist => self.live().check_in(&call.reservation_sid),
            Role::Patient => CheckIn::default(),
        };
        CallResponse {
            customer_name: check_in.name,
            reason: check_in.reason,
            call: call.to_call(),
            members: self.members(call),
            own_capabilities: self.config().capabilities(role),
            own_role: role,
            server_time: Utc::now(),
        }
    }

    /// Joins a call: the first join starts the session and its timer.
    pub async fn join_call(
        &self,
        id: &str,
        role: Role,
        max_duration_seconds: Option<u32>,
    ) -> StoreResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let (tx, mut call) = self.begin_call(id).await?;
        let now = Utc::now();
        let mut event = CallEventType::Updated;
        let customer_first_join = role == Role::Patient && call.customer_joined_at.is_none();
        if let Some(secs) = max_duration_seconds {
            call.max_duration_seconds = self.checked_duration(secs)?;
        }
        if call.started_at.is_none() {
            call.started_at = Some(now);
            event = CallEventType::SessionStarted;
        }
        call.timer_ends_at = call
            .started_at
            .map(|s| s + Duration::seconds(call.max_duration_seconds as i64));
        match role {
            Role::Specialist => {
                call.specialist_joined_at = Some(now);
                call.specialist_present = true;
            }
            Role::Patient => {
                call.customer_joined_at = Some(now);
                call.customer_present = true;
            }
        }
        if call.timer_ends_at.is_some_and(|t| t <= now) {
            return Err(StoreError::Unprocessable(
                "that duration would end the call before now".into(),
            ));
        }
        let call = self.commit_call_change(tx, call, event).await?;
        let group = call.group_name.clone();
        if customer_first_join {
            let joined_queue = self
                .live()
                .reservations
                .get(&call.reservation_sid)
                .map(|r| r.view.created_at);
            if let Some(t) = joined_queue {
                metrics::histogram!(crate::metrics::WAIT_TO_JOIN, "group" => group.clone())
                    .record(crate::metrics::seconds(t, now));
            }
        }
        if event == CallEventType::SessionStarted {
            metrics::counter!(crate::metrics::CALLS_STARTED, "group" => group).increment(1);
            let check_in = self.live().check_in(&call.reservation_sid);
            self.user_event(
                Audience::User(call.specialist_id.clone()),
                UserEvent::CallStarted {
                    call_id: call.id.clone(),
                    call_type: call.call_type.clone(),
                    reservation_sid: call.reservation_sid.clone(),
                    customer_name: check_in.name,
                    reason: check_in.reason,
                },
            );
        }
        Ok(call)
    }

    /// Changes the session length; moves `timer_ends_at` for everyone.
    pub async fn extend_call(&self, id: &str, max_duration_seconds: u32) -> StoreResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let (tx, mut call) = self.begin_call(id).await?;
        let now = Utc::now();
        let before = call.max_duration_seconds;
        call.max_duration_seconds = self.checked_duration(max_duration_seconds)?;
        call.timer_ends_at = call
            .started_at
            .map(|s| s + Duration::seconds(call.max_duration_seconds as i64));
        if call.timer_ends_at.is_some_and(|t| t <= now) {
            return Err(StoreError::Unprocessable(format!(
                "a session of {max_duration_seconds} s would already be over; choose a longer one"
            )));
        }
        let longer = call.max_duration_seconds > before;
        let group = call.group_name.clone();
        let call = self
            .commit_call_change(tx, call, CallEventType::Updated)
            .await?;
        if longer {
            metrics::counter!(crate::metrics::EXTENSIONS, "group" => group, "kind" => "session")
                .increment(1);
        }
        Ok(call)
    }

    /// A member leaves. A started call ends when the specialist leaves or nobody is left in it.
    /// Deciding and ending happen under one hold of the write lock (and, on PostgreSQL, of the
    /// group's row), so nothing (the sweeper, the other member, another node) changes the call
    /// in between. Leaving a call that has already ended answers it as it ended.
    pub async fn leave_call(&self, id: &str, role: Role) -> StoreResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let (tx, mut call) = match self.begin_call(id).await {
            Ok(open) => open,
            Err(StoreError::Conflict(_)) => {
                return self
                    .call(id)
                    .await?
                    .ok_or_else(|| StoreError::not_found("the call"));
            }
            Err(e) => return Err(e),
        };
        match role {
            Role::Specialist => call.specialist_present = false,
            Role::Patient => call.customer_present = false,
        }
        // The specialist leaving ends a started call (nobody is left to serve the customer),
        // and so does the last one present leaving. Before the session starts, either one
        // leaving ends the call, so the specialist is free for the next customer at once
        // rather than when the join window runs out.
        let started = call.started_at.is_some();
        let ends = !started
            || role == Role::Specialist
            || !(call.specialist_present || call.customer_present);
        if ends {
            let reason = match (started, role) {
                (false, Role::Patient) => CallEndReason::Canceled,
                _ => CallEndReason::left(role),
            };
            return self.end_call_locked(tx, &call, reason).await;
        }
        self.commit_call_change(tx, call, CallEventType::Updated)
            .await
    }

    /// Takes the lock of an open call's group (see `begin_groups`) and reads the call as it
    /// is now: `Conflict` if it has ended, `NotFound` if there is no such call.
    pub(super) async fn begin_call(&self, id: &str) -> StoreResult<(Tx, CallRow)> {
        let known = self.live().calls.get(id).map(|c| c.group_name.clone());
        let group = match known {
            Some(group) => group,
            None => match self.call(id).await? {
                None => return Err(StoreError::not_found("the call")),
                Some(c) if c.ended_at.is_some() => {
                    return Err(StoreError::Conflict("the call has ended".into()));
                }
                // Open, made on another node this one has not heard of yet.
                Some(c) => c.group_name,
            },
        };
        let tx = self.begin_groups(&[&group]).await?;
        let call = self.open_call(id).await?;
        Ok((tx, call))
    }

    /// Stores a changed open call (one version more, and its group's), and tells its watchers.
    pub(super) async fn commit_call_change(
        &self,
        mut tx: Tx,
        mut call: CallRow,
        event: CallEventType,
    ) -> StoreResult<CallRow> {
        call.version += 1;
        // Every change of a call moves its group's version: it is how the other nodes (and a
        // reconcile) know to read it again, and a session starting moves the specialist's
        // expected free time, so the estimates of everyone waiting.
        let group = call.group_name.clone();
        let version = self.next_version(&group);
        save_call_row(&mut tx, &call, version).await?;
        bump_group(&mut tx, &group, version).await?;
        self.announce(&mut tx, &[(&group, version)]).await?;
        tx.commit().await?;
        let now = Utc::now();
        let mut live = self.live_mut();
        live.calls.insert(call.id.clone(), call.clone());
        self.notify_call(&live, &call, event);
        if event == CallEventType::SessionStarted {
            live.recompute(&group, now);
        }
        live.publish(&group, version, None);
        Ok(call)
    }

    /// Ends an open call now (everyone left, cancelled).
    pub async fn end_call(&self, id: &str, reason: CallEndReason) -> StoreResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let (tx, call) = self.begin_call(id).await?;
        self.end_call_locked(tx, &call, reason).await
    }

    /// Ends a call whose timer has run out, if it still has when checked under the lock (it may
    /// have been extended, or ended, on another node): `Conflict` otherwise.
    pub async fn end_call_at_zero(&self, id: &str) -> StoreResult<CallRow> {
        let _w = self.inner.write.lock().await;
        let (tx, call) = self.begin_call(id).await?;
        if call.timer_ends_at.is_none_or(|t| t > Utc::now()) {
            return Err(StoreError::Conflict("the call's time is not up".into()));
        }
        self.end_call_locked(tx, &call, CallEndReason::TimeUp).await
    }

    /// [`Self::end_call`] for a caller that holds the write lock and the group's.
    pub(super) async fn end_call_locked(
        &self,
        mut tx: Tx,
        call: &CallRow,
        reason: CallEndReason,
    ) -> StoreResult<CallRow> {
        let now = Utc::now();
        let group = call.group_name.clone();
        let version = self.next_version(&group);
        end_call_row(&mut tx, call, reason, now, version).await?;
        bump_group(&mut tx, &group, version).await?;
        self.announce(&mut tx, &[(&group, version)]).await?;
        tx.commit().await?;
        let mut live = self.live_mut();
        let ended = self.apply_call_end(&mut live, call, reason, now);
        live.recompute(&group, now);
        live.publish(&group, version, None);
        Ok(ended)
    }

    pub(super) fn checked_duration(&self, secs: u32) -> StoreResult<u32> {
        let max = self.config().max_call_seconds;
        if secs == 0 || secs > max {
            return Err(StoreError::Unprocessable(format!(
                "max_duration_seconds must be between 1 and {max}"
            )));
        }
        Ok(secs)
    }

    pub(super) async fn open_call(&self, id: &str) -> StoreResult<CallRow> {
        if let Some(call) = self.live().calls.get(id) {
            return Ok(call.clone());
        }
        match self.call(id).await? {
            Some(_) => Err(StoreError::Conflict("the call has ended".into())),
            None => Err(StoreError::not_found("the call")),
        }
    }

    pub(super) fn notify_call(&self, live: &Live, call: &CallRow, event: CallEventType) {
        if let Some(tx) = live.call_tx.get(&call.id) {
            tx.send_replace(CallNote {
                version: call.version,
                event,
            });
        }
    }

    /// Memory's side of ending a call here (the database side is [`end_call_row`]).
    pub(super) fn apply_call_end(
        &self,
        live: &mut Live,
        call: &CallRow,
        reason: CallEndReason,
        now: DateTime<Utc>,
    ) -> CallRow {
        metrics::counter!(
            crate::metrics::CALLS_ENDED,
            "group" => call.group_name.clone(),
            "reason" => reason.as_str()
        )
        .increment(1);
        let mut ended = call.clone();
        ended.ended_at = Some(now);
        ended.ended_reason = Some(reason);
        ended.specialist_present = false;
        ended.customer_present = false;
        ended.version += 1;
        if let Some((audience, event)) = live.forget_call(&ended) {
            self.user_event(audience, event);
        }
        ended
    }
}

impl Store {
    // ---- feedback ----

    /// The customer's rating of their call, once, after it ended. 404 for anyone but the call's
    /// customer, 409 before the end or for a second rating.
    pub async fn submit_feedback(
        &self,
        call_id: &str,
        customer_id: &str,
        rating: u8,
        comment: Option<&str>,
    ) -> StoreResult<()> {
        let row = sqlx::query(
            "SELECT group_name, specialist_id, customer_id, ended_at FROM calls WHERE id = $1",
        )
        .bind(call_id)
        .fetch_optional(&self.inner.db)
        .await?
        .filter(|row| row.try_get::<String, _>("customer_id").ok().as_deref() == Some(customer_id))
        .ok_or_else(|| StoreError::not_found("the call"))?;
        if row.try_get::<Option<String>, _>("ended_at")?.is_none() {
            return Err(StoreError::Conflict("the call has not ended yet".into()));
        }
        let group: String = row.try_get("group_name")?;
        let inserted = sqlx::query(
            "INSERT INTO call_feedback (call_id, group_name, specialist_id, rating, comment, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call_id)
        .bind(&group)
        .bind(row.try_get::<String, _>("specialist_id")?)
        .bind(rating as i64)
        .bind(comment)
        .bind(ts(Utc::now()))
        .execute(&self.inner.db)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "this call has been rated already".into(),
            ));
        }
        metrics::histogram!(crate::metrics::CALL_RATING, "group" => group).record(rating as f64);
        Ok(())
    }

    /// A group's ratings since a moment: how many, and their mean.
    pub async fn ratings_since(
        &self,
        group: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(u32, Option<f64>)> {
        // Counted by the database; cast, as PostgreSQL's SUM of BIGINT is NUMERIC, which the
        // Any driver does not read.
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(rating), 0) AS BIGINT) AS total \
             FROM call_feedback WHERE group_name = $1 AND created_at >= $2",
        )
        .bind(group)
        .bind(ts(since))
        .fetch_one(&self.inner.db)
        .await?;
        let n = row.try_get::<i64, _>("n")?.max(0) as u32;
        let total: i64 = row.try_get("total")?;
        let mean = (n > 0).then(|| total as f64 / n as f64);
        Ok((n, mean))
    }

    /// A specialist's rated calls in a group since a moment, newest first (at most 50).
    pub async fn feedback_for(
        &self,
        specialist: &str,
        group: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<callqueue_protocol::Feedback>> {
        let rows = sqlx::query(
            "SELECT rating, comment, created_at FROM call_feedback WHERE specialist_id = $1 \
             AND group_name = $2 AND created_at >= $3 ORDER BY created_at DESC LIMIT 50",
        )
        .bind(specialist)
        .bind(group)
        .bind(ts(since))
        .fetch_all(&self.inner.db)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(callqueue_protocol::Feedback {
                    rating: row.try_get::<i64, _>("rating")?.clamp(1, 5) as u8,
                    comment: row.try_get("comment")?,
                    at: row.time("created_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Into::into)
    }
}
