//! Deadlines: reservations that waited too long (or whose queue closed), matches not joined,
//! calls whose timer ran out, and expired sessions and tokens.

use super::*;

impl Store {
    // ---- deadlines ----

    /// Expires what waited too long and ends calls whose timer ran out. Called by the sweeper.
    pub async fn sweep(&self) -> StoreResult<()> {
        let now = Utc::now();
        // Groups that close their queue at closing time (`at_closing: close`) and are closed:
        // whoever still waits there leaves the queue (the hold page sends them to the page
        // that says when it opens again).
        let closing = self.closing_groups(now);
        let (expired, ended) = {
            let live = self.live();
            let expired: Vec<String> = live
                .reservations
                .values()
                .filter(|r| {
                    self.deadline_passed(&live, r, now)
                        || (r.view.reservation_status == ReservationStatus::Queued
                            && closing.contains(&r.view.group_name))
                })
                .map(|r| r.view.reservation_sid.clone())
                .collect();
            let ended: Vec<String> = live
                .calls
                .values()
                .filter(|c| c.timer_ends_at.is_some_and(|t| t <= now))
                .map(|c| c.id.clone())
                .collect();
            (expired, ended)
        };
        // Each transition stands alone: one that fails is logged and retried on the next sweep,
        // and the others still happen.
        let mut failed = 0usize;
        for sid in expired {
            match self
                .finish_reservation_if(&sid, ReservationStatus::Expired, true)
                .await
            {
                // Conflict: another node got there first, or it was matched meanwhile.
                Ok(_) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(%sid, error = %e, "expiring a reservation failed");
                    failed += 1;
                }
            }
        }
        for id in ended {
            match self.end_call_at_zero(&id).await {
                // Conflict: ended already (here or on another node), or extended meanwhile.
                Ok(_) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(call = %id, error = %e, "ending a call at zero failed");
                    failed += 1;
                }
            }
        }
        match failed {
            0 => Ok(()),
            n => Err(StoreError::Unavailable(format!(
                "{n} deadline transitions failed"
            ))),
        }
    }

    /// Whether a queued reservation has waited too long, or a matched one was not joined in
    /// time.
    /// Whether a group closes its queue at closing time and is closed now.
    pub(super) fn queue_closing(&self, group: &str, now: DateTime<Utc>) -> bool {
        crate::hours::closes_queue(&self.group_settings(group), now)
    }

    pub(super) fn deadline_passed(
        &self,
        live: &Live,
        r: &ActiveReservation,
        now: DateTime<Utc>,
    ) -> bool {
        let queue_timeout =
            Duration::from_std(self.config().queue_timeout).unwrap_or(Duration::MAX);
        match r.view.reservation_status {
            ReservationStatus::Queued => r.view.created_at + queue_timeout <= now,
            ReservationStatus::Matched => {
                !live.customer_joined(r) && self.join_deadline(r).is_some_and(|d| d <= now)
            }
            _ => false,
        }
    }

    /// When a matched customer must have joined (rows from before the deadline was stored:
    /// matched plus the join window).
    pub(super) fn join_deadline(&self, r: &ActiveReservation) -> Option<DateTime<Utc>> {
        r.view
            .join_deadline
            .or_else(|| r.matched_at.map(|m| m + self.join_window()))
    }

    /// Deletes what has expired: specialists' sessions, unspent stream tokens, customers'
    /// sessions. Answers how many rows went.
    pub async fn purge_expired(&self) -> StoreResult<u64> {
        let now = Utc::now();
        let mut purged = 0;
        for table in ["agent_sessions", "stream_tokens", "customers"] {
            purged += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                .bind(ts(now))
                .execute(&self.inner.db)
                .await?
                .rows_affected();
        }
        Ok(purged)
    }
}
