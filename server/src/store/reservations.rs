//! The queue: creates through one group-committing writer, reads, leaving, accepting.

use super::*;

impl Store {
    // ---- reservations ----

    /// The customer's active reservation, or a new one at the back of the queue.
    /// The flag says whether it was created now.
    ///
    /// Creates go through one writer task that commits whatever is waiting in one transaction
    /// (group commit): a create costs a few SQLite round trips however many arrive together.
    pub async fn create_reservation(
        &self,
        group: &str,
        customer_id: &str,
        new_customer: Option<&NewCustomer>,
        check_in: CheckIn,
    ) -> StoreResult<(Reservation, bool)> {
        if !self.has_group(group) {
            return Err(StoreError::not_found(&format!("the group {group:?}")));
        }
        let (reply, answer) = oneshot::channel();
        let job = CreateJob {
            group: group.to_string(),
            customer_id: customer_id.to_string(),
            new_customer: new_customer.cloned(),
            check_in,
            reply,
        };
        let gone = || StoreError::Unavailable("the writer task has stopped".into());
        self.inner.creates.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The writer task behind [`Store::create_reservation`].
    pub(super) async fn run_creates(
        inner: std::sync::Weak<Inner>,
        mut jobs: mpsc::Receiver<CreateJob>,
    ) {
        let mut batch = Vec::with_capacity(CREATE_BATCH);
        while jobs.recv_many(&mut batch, CREATE_BATCH).await > 0 {
            let Some(inner) = inner.upgrade() else { return };
            Self { inner }
                .create_batch(std::mem::take(&mut batch))
                .await;
        }
    }

    pub(super) async fn create_batch(&self, jobs: Vec<CreateJob>) {
        let _w = self.inner.write.lock().await;
        let mut groups: Vec<&str> = jobs.iter().map(|j| j.group.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut tx = match self.begin_groups(&groups).await {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "creating reservations failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        let now = Utc::now();
        // Decide each job: an active reservation answers at once; a customer asking twice in
        // one batch gets the one reservation made for them.
        let mut planned: Vec<(CreateJob, String, i64, u64)> = Vec::new();
        let mut repeats: Vec<(CreateJob, usize)> = Vec::new();
        {
            let live = self.live();
            let mut next: HashMap<String, (i64, u64)> = HashMap::new();
            let mut in_batch: HashMap<String, usize> = HashMap::new();
            for job in jobs {
                if let Some(view) = live
                    .by_customer
                    .get(&job.customer_id)
                    .and_then(|sid| live.view(sid, now))
                {
                    let _ = job.reply.send(Ok((view, false)));
                    continue;
                }
                if let Some(&first) = in_batch.get(&job.customer_id) {
                    repeats.push((job, first));
                    continue;
                }
                let Some(g) = live.groups.get(&job.group) else {
                    let _ = job.reply.send(Err(StoreError::not_found("the group")));
                    continue;
                };
                let (seq, version) = next
                    .entry(job.group.clone())
                    .or_insert((g.next_seq, g.version));
                let planned_seq = *seq;
                *seq += 1;
                *version += 1;
                in_batch.insert(job.customer_id.clone(), planned.len());
                planned.push((job, tokens::random_token(), planned_seq, *version));
            }
        }
        if planned.is_empty() {
            return;
        }
        let written = match self.insert_batch(&mut tx, &planned, now).await {
            Ok(()) => tx.commit().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "creating reservations failed");
            // Every job of the batch gets the same answer, sorted as the error itself is.
            let unavailable = error::db_unavailable(&e);
            let message = e.to_string();
            let answer = || {
                Err(if unavailable {
                    StoreError::Unavailable(message.clone())
                } else {
                    StoreError::Internal(format!("creating reservations: {message}"))
                })
            };
            for (job, ..) in planned {
                let _ = job.reply.send(answer());
            }
            for (job, _) in repeats {
                let _ = job.reply.send(answer());
            }
            return;
        }

        let mut views = Vec::with_capacity(planned.len());
        let mut waiting = Vec::with_capacity(planned.len());
        {
            let mut live = self.live_mut();
            for (job, sid, seq, version) in &planned {
                let group = job.group.as_str();
                live.reservations.insert(
                    sid.clone(),
                    ActiveReservation::queued(
                        sid,
                        group,
                        &job.customer_id,
                        *seq,
                        &job.check_in,
                        now,
                    ),
                );
                live.by_customer
                    .insert(job.customer_id.clone(), sid.clone());
                let Some(g) = live.groups.get_mut(group) else {
                    continue;
                };
                g.next_seq = seq + 1;
                g.queue.insert(*seq, sid.clone());
                let queue_length = g.queue.len() as u32;
                // A new arrival joins at the back: nobody else's position or estimate moves.
                let (busy, mean) = live.estimator_inputs(group);
                let estimate =
                    estimator::estimate_position(now, queue_length as usize, &busy, mean);
                if let Some(r) = live.reservations.get_mut(sid) {
                    r.view.queue_position = Some(queue_length);
                    r.first_estimate = estimate.map(|e| e.at);
                    set_estimate(&mut r.view, estimate);
                }
                let view = live.view(sid, now).expect("just inserted");
                live.publish(
                    group,
                    *version,
                    Some(QueueEvent::Added {
                        reservation: view.clone(),
                        server_time: now,
                    }),
                );
                waiting.push((
                    Audience::Group(group.to_string()),
                    UserEvent::CustomerWaiting {
                        group_name: group.to_string(),
                        reservation_sid: sid.clone(),
                        queue_length,
                        customer_name: job.check_in.name.clone(),
                        reason: job.check_in.reason.clone(),
                    },
                ));
                views.push(view);
            }
        }
        for (audience, event) in waiting {
            self.user_event(audience, event);
        }
        for (job, first) in repeats {
            let _ = job.reply.send(Ok((views[first].clone(), false)));
        }
        for ((job, ..), view) in planned.into_iter().zip(views) {
            let _ = job.reply.send(Ok((view, true)));
        }
    }

    /// The database side of a batch of creates: one transaction, one statement per table.
    pub(super) async fn insert_batch(
        &self,
        tx: &mut Tx,
        planned: &[(CreateJob, String, i64, u64)],
        now: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        let customers: Vec<&NewCustomer> = planned
            .iter()
            .filter_map(|(job, ..)| job.new_customer.as_ref())
            .collect();
        // Written by hand rather than with sqlx's QueryBuilder: under the Any driver it writes
        // `?` placeholders, which PostgreSQL does not take.
        if !customers.is_empty() {
            let sql = format!(
                "INSERT INTO customers (id, token_hash, created_at, expires_at) VALUES {}",
                values_list(customers.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for c in &customers {
                q = q
                    .bind(&c.id)
                    .bind(&c.token_hash)
                    .bind(ts(now))
                    .bind(ts(now + CUSTOMER_SESSION));
            }
            q.execute(&mut **tx).await?;
        }
        let sql = format!(
            "INSERT INTO reservations (sid, group_name, customer_id, status, seq, created_at, \
             updated_at, gv, customer_name, reason) VALUES {}",
            values_list(planned.len(), 10)
        );
        let mut q = sqlx::query(&sql);
        for (job, sid, seq, version) in planned {
            q = q
                .bind(sid)
                .bind(&job.group)
                .bind(&job.customer_id)
                .bind(ReservationStatus::Queued.as_str())
                .bind(*seq)
                .bind(ts(now))
                .bind(ts(now))
                .bind(*version as i64)
                .bind(job.check_in.name.clone())
                .bind(job.check_in.reason.clone());
        }
        q.execute(&mut **tx).await?;
        let mut last: HashMap<&str, u64> = HashMap::new();
        for (job, _, _, version) in planned {
            last.insert(&job.group, *version);
        }
        for (&group, &version) in &last {
            bump_group(tx, group, version).await?;
        }
        let changes: Vec<(&str, u64)> = last.into_iter().collect();
        self.announce(tx, &changes).await
    }

    /// The reservation if it says something other than the copy whose
    /// [`Reservation::state_digest`] is `last` (its clock aside), or that it is gone. Cheap when
    /// nothing changed: a reservation stream asks on every change of its group.
    pub async fn reservation_change(
        &self,
        sid: &str,
        last: Option<u64>,
    ) -> StoreResult<ReservationChange> {
        {
            let live = self.live();
            if let Some(r) = live.reservations.get(sid) {
                // As `view` makes the copy: with the group's notice while queued.
                if last == Some(r.view.state_digest_with(live.notice_for(&r.view))) {
                    return Ok(ReservationChange::Same);
                }
                return Ok(live
                    .view(sid, Utc::now())
                    .map_or(ReservationChange::Gone, |r| {
                        ReservationChange::Changed(Box::new(r))
                    }));
            }
        }
        // A finished reservation is only in the database. Boxed: the query's state would
        // otherwise sit inside every idle stream's task.
        Ok(
            match Box::pin(self.stored_reservation(sid, Utc::now())).await? {
                Some((r, _)) if last == Some(r.state_digest()) => ReservationChange::Same,
                Some((r, _)) => ReservationChange::Changed(Box::new(r)),
                None => ReservationChange::Gone,
            },
        )
    }

    /// A reservation as it is now, with the customer it belongs to.
    pub async fn reservation(&self, sid: &str) -> StoreResult<Option<(Reservation, String)>> {
        let now = Utc::now();
        {
            let live = self.live();
            if let (Some(view), Some(r)) = (live.view(sid, now), live.reservations.get(sid)) {
                return Ok(Some((view, r.customer_id.clone())));
            }
        }
        self.stored_reservation(sid, now).await
    }

    /// A reservation as the database has it (the only copy once it has finished), with its
    /// customer.
    pub(super) async fn stored_reservation(
        &self,
        sid: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Reservation, String)>> {
        let row = sqlx::query("SELECT * FROM reservations WHERE sid = $1")
            .bind(sid)
            .fetch_optional(&self.inner.db)
            .await?;
        match row {
            Some(row) => {
                let view = reservation_from_row(&row, now)?;
                let customer: String = row.try_get("customer_id")?;
                Ok(Some((view, customer)))
            }
            None => Ok(None),
        }
    }

    /// Watches a group's version: it changes whenever anything in the group does.
    pub fn watch_group(&self, group: &str) -> Option<watch::Receiver<u64>> {
        self.live()
            .groups
            .get(group)
            .map(|g| g.version_tx.subscribe())
    }

    /// The queue's deltas, and a snapshot of it taken after subscribing (so nothing falls between).
    pub fn subscribe_queue(&self, group: &str) -> Option<QueueSubscription> {
        let live = self.live();
        let g = live.groups.get(group)?;
        let events = g.events_tx.subscribe();
        let now = Utc::now();
        let reservations = g
            .queue
            .values()
            .filter_map(|sid| live.view(sid, now))
            .collect();
        Some(QueueSubscription {
            events,
            version: g.version,
            reservations,
        })
    }

    /// How many are waiting in a group (`None`: no such group). Reads one number.
    pub fn queue_length(&self, group: &str) -> Option<u32> {
        self.live().groups.get(group).map(|g| g.queue.len() as u32)
    }

    /// The queued reservations of a group, in order.
    pub fn queue(&self, group: &str) -> Option<Vec<Reservation>> {
        self.subscribe_queue(group).map(|s| s.reservations)
    }

    /// Moves a reservation to a final status: cancel, expire. Ends its call if it had one.
    /// Returns the reservation as it is afterwards; a reservation that is already final stays as
    /// it is (statuses never move backwards).
    pub async fn finish_reservation(
        &self,
        sid: &str,
        status: ReservationStatus,
    ) -> StoreResult<Reservation> {
        self.finish_reservation_if(sid, status, false).await
    }

    /// [`Self::finish_reservation`]; with `only_if_due`, only when its deadline has passed, as
    /// checked again under the lock (another node may have matched or expired it meanwhile):
    /// `Conflict` otherwise.
    pub(super) async fn finish_reservation_if(
        &self,
        sid: &str,
        status: ReservationStatus,
        only_if_due: bool,
    ) -> StoreResult<Reservation> {
        debug_assert!(status.is_final());
        let _w = self.inner.write.lock().await;
        let known = self
            .live()
            .reservations
            .get(sid)
            .map(|r| r.view.group_name.clone());
        let group = match known {
            Some(group) => group,
            None => match self.stored_reservation(sid, Utc::now()).await? {
                None => return Err(StoreError::not_found("the reservation")),
                // Final, or matched with its call over: stays as it is. Only another node can
                // have made one this node has not heard of yet.
                Some((r, _)) if r.reservation_status.is_final() || !self.clustered() => {
                    return Ok(r);
                }
                Some((r, _)) => r.group_name,
            },
        };
        let mut tx = self.begin_groups(&[&group]).await?;
        let now = Utc::now();
        let Some(active) = self.live().reservations.get(sid).cloned() else {
            drop(tx);
            return self
                .reservation(sid)
                .await?
                .map(|(r, _)| r)
                .ok_or_else(|| StoreError::not_found("the reservation"));
        };
        let closing = || {
            active.view.reservation_status == ReservationStatus::Queued
                && self.queue_closing(&active.view.group_name, now)
        };
        if only_if_due && !self.deadline_passed(&self.live(), &active, now) && !closing() {
            return Err(StoreError::Conflict(
                "the reservation is no longer due to expire".into(),
            ));
        }
        let group = active.view.group_name.clone();
        let version = self.next_version(&group);
        let call = active
            .view
            .call_id
            .as_ref()
            .and_then(|id| self.live().calls.get(id).cloned());
        sqlx::query("UPDATE reservations SET status = $1, updated_at = $2, gv = $3 WHERE sid = $4")
            .bind(status.as_str())
            .bind(ts(now))
            .bind(version as i64)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        let reason = if status == ReservationStatus::Expired {
            CallEndReason::NotJoined
        } else {
            CallEndReason::Canceled
        };
        if let Some(call) = &call {
            end_call_row(&mut tx, call, reason, now, version).await?;
        }
        bump_group(&mut tx, &group, version).await?;
        self.announce(&mut tx, &[(&group, version)]).await?;
        tx.commit().await?;

        if active.view.reservation_status == ReservationStatus::Queued {
            let why = if status == ReservationStatus::Expired {
                "expired"
            } else {
                "left"
            };
            metrics::counter!(crate::metrics::ABANDONED, "group" => group.clone(), "reason" => why)
                .increment(1);
        }
        let mut live = self.live_mut();
        live.reservations.remove(sid);
        live.by_customer.remove(&active.customer_id);
        if let Some(g) = live.groups.get_mut(&group) {
            g.queue.remove(&active.seq);
        }
        if let Some(call) = &call {
            self.apply_call_end(&mut live, call, reason, now);
        }
        live.recompute(&group, now);
        let view = out_of_queue(
            Reservation {
                reservation_status: status,
                updated_at: now,
                ..active.view
            },
            now,
        );
        live.publish(
            &group,
            version,
            Some(QueueEvent::Removed {
                reservation: view.clone(),
                server_time: now,
            }),
        );
        Ok(view)
    }

    /// How many of a group's customers were matched since `since`, and the median of their
    /// waits (joining → matched) in seconds.
    pub async fn served_since(
        &self,
        group: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<(u32, Option<f64>)> {
        let rows = sqlx::query(
            "SELECT created_at, matched_at FROM reservations \
             WHERE group_name = $1 AND matched_at IS NOT NULL AND matched_at >= $2",
        )
        .bind(group)
        // Stored times are RFC 3339 in UTC, which order as text; the exact check follows.
        .bind(ts(since - Duration::seconds(1)))
        .fetch_all(&self.inner.db)
        .await?;
        let mut waits = Vec::with_capacity(rows.len());
        for row in &rows {
            let (joined, matched) = (row.time("created_at")?, row.time("matched_at")?);
            if matched >= since {
                waits.push((matched - joined).num_milliseconds() as f64 / 1000.0);
            }
        }
        waits.sort_by(f64::total_cmp);
        let median = match waits.len() {
            0 => None,
            n if n % 2 == 1 => Some(waits[n / 2]),
            n => Some((waits[n / 2 - 1] + waits[n / 2]) / 2.0),
        };
        Ok((waits.len() as u32, median))
    }

    /// "I need a moment": a matched customer's join window grows by `--join-extension`, once.
    /// `Conflict` when it is not matched, already joined, already extended or already past.
    pub async fn extend_join(&self, sid: &str) -> StoreResult<Reservation> {
        let group = self
            .live()
            .reservations
            .get(sid)
            .map(|r| r.view.group_name.clone())
            .ok_or_else(|| {
                StoreError::Conflict("the reservation is not waiting for you to join".into())
            })?;
        let _w = self.inner.write.lock().await;
        let mut tx = self.begin_groups(&[&group]).await?;
        let now = Utc::now();
        let deadline = {
            let live = self.live();
            let r = live
                .reservations
                .get(sid)
                .filter(|r| r.view.reservation_status == ReservationStatus::Matched)
                .ok_or_else(|| {
                    StoreError::Conflict("the reservation is not waiting for you to join".into())
                })?;
            if r.view.join_extended {
                return Err(StoreError::Conflict(
                    "more time to join can be asked for once".into(),
                ));
            }
            if self.deadline_passed(&live, r, now) {
                return Err(StoreError::Conflict("the time to join has run out".into()));
            }
            if live.customer_joined(r) {
                return Err(StoreError::Conflict("you have already joined".into()));
            }
            self.join_deadline(r).unwrap_or(now)
                + Duration::from_std(self.config().join_extension).unwrap_or(Duration::zero())
        };
        let version = self.next_version(&group);
        sqlx::query(
            "UPDATE reservations SET join_deadline = $1, join_extended = 1, updated_at = $2, \
             gv = $3 WHERE sid = $4",
        )
        .bind(ts(deadline))
        .bind(ts(now))
        .bind(version as i64)
        .bind(sid)
        .execute(&mut *tx)
        .await?;
        self.commit_group(tx, &group, version).await?;
        metrics::counter!(crate::metrics::EXTENSIONS, "group" => group.clone(), "kind" => "join")
            .increment(1);
        let mut live = self.live_mut();
        if let Some(r) = live.reservations.get_mut(sid) {
            r.view.join_deadline = Some(deadline);
            r.view.join_extended = true;
            r.view.updated_at = now;
        }
        live.publish(&group, version, None);
        live.view(sid, now)
            .ok_or_else(|| StoreError::not_found("the reservation"))
    }

    /// A specialist takes the next customer of a group (or the one named): the reservation is
    /// matched and a call created with both as members.
    pub async fn accept(
        &self,
        agent: &Agent,
        group: &str,
        wanted: Option<&str>,
    ) -> StoreResult<(Reservation, CallRow)> {
        if !agent.groups.iter().any(|g| g == group) || !self.has_group(group) {
            return Err(StoreError::not_found(&format!("the group {group:?}")));
        }
        let _w = self.inner.write.lock().await;
        let mut tx = self.begin_groups(&[group]).await?;
        let now = Utc::now();
        let (active, specialist_name) = {
            let live = self.live();
            let me = live.agents.get(&agent.user_id);
            let name = me.and_then(|a| a.display_name.clone());
            if !me.is_some_and(|a| a.available) {
                return Err(StoreError::Conflict(
                    "mark yourself available before accepting customers".into(),
                ));
            }
            if let Some(call) = me.and_then(|a| a.active_call.clone()) {
                return Err(StoreError::Conflict(format!(
                    "you are still in call {call}; leave it first"
                )));
            }
            let g = &live.groups[group];
            let sid = match wanted {
                Some(sid) => {
                    let r = live.reservations.get(sid).filter(|r| {
                        r.view.group_name == group
                            && r.view.reservation_status == ReservationStatus::Queued
                    });
                    r.map(|r| r.view.reservation_sid.clone()).ok_or_else(|| {
                        StoreError::NotFound(
                            "that customer is no longer waiting in this group".into(),
                        )
                    })?
                }
                None => g
                    .queue
                    .values()
                    .next()
                    .cloned()
                    .ok_or_else(|| StoreError::Conflict("nobody is waiting".into()))?,
            };
            (live.reservations[&sid].clone(), name)
        };
        let sid = active.view.reservation_sid.clone();
        let version = self.next_version(group);
        let join_deadline = now + self.group_join_window(group);
        let call = CallRow {
            id: tokens::random_token(),
            call_type: CALL_TYPE_APPOINTMENT.to_string(),
            group_name: group.to_string(),
            reservation_sid: sid.clone(),
            specialist_id: agent.user_id.clone(),
            customer_id: active.customer_id.clone(),
            max_duration_seconds: self.call_seconds(group),
            created_at: now,
            started_at: None,
            timer_ends_at: None,
            ended_at: None,
            ended_reason: None,
            specialist_joined_at: None,
            customer_joined_at: None,
            specialist_present: false,
            customer_present: false,
            version: 1,
        };
        sqlx::query(
            "UPDATE reservations SET status = $1, updated_at = $2, matched_at = $3, call_id = $4, \
             call_type = $5, gv = $6, join_deadline = $8, specialist_name = $9 WHERE sid = $7",
        )
        .bind(ReservationStatus::Matched.as_str())
        .bind(ts(now))
        .bind(ts(now))
        .bind(&call.id)
        .bind(&call.call_type)
        .bind(version as i64)
        .bind(&sid)
        .bind(ts(join_deadline))
        .bind(&specialist_name)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO calls (id, call_type, group_name, reservation_sid, specialist_id, customer_id, \
             max_duration_seconds, created_at, version, gv) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&call.id)
        .bind(&call.call_type)
        .bind(group)
        .bind(&sid)
        .bind(&call.specialist_id)
        .bind(&call.customer_id)
        .bind(call.max_duration_seconds as i64)
        .bind(ts(now))
        .bind(call.version as i64)
        .bind(version as i64)
        .execute(&mut *tx)
        .await?;
        bump_group(&mut tx, group, version).await?;
        self.announce(&mut tx, &[(group, version)]).await?;
        tx.commit().await?;

        let mut live = self.live_mut();
        if let Some(g) = live.groups.get_mut(group) {
            g.queue.remove(&active.seq);
        }
        let r = live
            .reservations
            .get_mut(&sid)
            .expect("held under the write lock");
        r.matched_at = Some(now);
        let waited = crate::metrics::seconds(r.view.created_at, now);
        metrics::histogram!(crate::metrics::WAIT_TO_MATCH, "group" => group.to_string())
            .record(waited);
        if let Some(estimate) = r.first_estimate {
            metrics::histogram!(crate::metrics::ESTIMATE_ERROR, "group" => group.to_string())
                .record(crate::metrics::seconds(estimate, now));
        }
        r.view.reservation_status = ReservationStatus::Matched;
        r.view.queue_position = None;
        set_estimate(&mut r.view, None);
        r.view.updated_at = now;
        r.view.call_id = Some(call.id.clone());
        r.view.call_type = Some(call.call_type.clone());
        r.view.join_deadline = Some(join_deadline);
        r.view.specialist_name = specialist_name;
        if let Some(a) = live.agents.get_mut(&agent.user_id) {
            a.active_call = Some(call.id.clone());
        }
        live.call_tx.insert(
            call.id.clone(),
            watch::channel(CallNote {
                version: call.version,
                event: CallEventType::Updated,
            })
            .0,
        );
        live.calls.insert(call.id.clone(), call.clone());
        live.recompute(group, now);
        let view = live.view(&sid, now).expect("still active");
        live.publish(
            group,
            version,
            Some(QueueEvent::Removed {
                reservation: view.clone(),
                server_time: now,
            }),
        );
        Ok((view, call))
    }
}
