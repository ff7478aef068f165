//! The stored rows and the SQL statements the other parts share.

use super::*;

/// A call as stored.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: String,
    pub call_type: String,
    pub group_name: String,
    pub reservation_sid: String,
    pub specialist_id: String,
    pub customer_id: String,
    pub max_duration_seconds: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub timer_ends_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_reason: Option<CallEndReason>,
    pub specialist_joined_at: Option<DateTime<Utc>>,
    pub customer_joined_at: Option<DateTime<Utc>>,
    pub specialist_present: bool,
    pub customer_present: bool,
    pub version: u64,
}

impl CallRow {
    pub(super) fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            call_type: row.try_get("call_type")?,
            group_name: row.try_get("group_name")?,
            reservation_sid: row.try_get("reservation_sid")?,
            specialist_id: row.try_get("specialist_id")?,
            customer_id: row.try_get("customer_id")?,
            max_duration_seconds: row.try_get::<i64, _>("max_duration_seconds")? as u32,
            created_at: row.time("created_at")?,
            started_at: row.time_opt("started_at")?,
            timer_ends_at: row.time_opt("timer_ends_at")?,
            ended_at: row.time_opt("ended_at")?,
            ended_reason: row
                .try_get::<Option<String>, _>("ended_reason")?
                .map(|r| {
                    CallEndReason::parse(&r).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown call end reason {r:?}").into())
                    })
                })
                .transpose()?,
            specialist_joined_at: row.time_opt("specialist_joined_at")?,
            customer_joined_at: row.time_opt("customer_joined_at")?,
            specialist_present: row.flag("specialist_present")?,
            customer_present: row.flag("customer_present")?,
            version: row.try_get::<i64, _>("version")? as u64,
        })
    }

    /// The wire view of the call.
    pub fn to_call(&self) -> Call {
        Call {
            id: self.id.clone(),
            call_type: self.call_type.clone(),
            reservation_sid: self.reservation_sid.clone(),
            created_at: self.created_at,
            settings: CallSettings {
                limits: Limits {
                    max_duration_seconds: self.max_duration_seconds,
                },
            },
            session: CallSession {
                started_at: self.started_at,
                timer_ends_at: self.timer_ends_at,
                ended_at: self.ended_at,
                ended_reason: self.ended_reason,
            },
        }
    }

    /// The two members, named by `specialist` and `customer` (display names, if any).
    pub fn members(&self, specialist: Option<String>, customer: Option<String>) -> Vec<Member> {
        // Derived from the call and the role only: stable on every node, and it says nothing
        // of who the member is.
        let id = |role: Role| {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("member:{}:{}", self.id, role.as_str()));
            hex::encode(&digest[..8])
        };
        vec![
            Member {
                id: id(Role::Specialist),
                role: Role::Specialist,
                display_name: specialist,
                joined_at: self.specialist_joined_at,
            },
            Member {
                id: id(Role::Patient),
                role: Role::Patient,
                display_name: customer,
                joined_at: self.customer_joined_at,
            },
        ]
    }

    /// The caller's role in this call, if they are a member.
    pub fn role_of(&self, who: &Caller) -> Option<Role> {
        match who {
            Caller::Customer(id) if *id == self.customer_id => Some(Role::Patient),
            Caller::Agent(agent) if agent.user_id == self.specialist_id => Some(Role::Specialist),
            _ => None,
        }
    }

    /// What a stream sends to describe the call as it is now.
    pub fn snapshot_event(&self) -> CallEventType {
        if self.ended_at.is_some() {
            CallEventType::Ended
        } else {
            CallEventType::Updated
        }
    }
}

pub(super) fn reservation_from_row(row: &AnyRow, now: DateTime<Utc>) -> sqlx::Result<Reservation> {
    let status: String = row.try_get("status")?;
    let status = ReservationStatus::parse(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?;
    Ok(Reservation {
        reservation_sid: row.try_get("sid")?,
        group_name: row.try_get("group_name")?,
        reservation_status: status,
        queue_position: None,
        estimated_wait_until: None,
        estimated_wait_earliest: None,
        estimated_wait_latest: None,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
        call_id: row.try_get("call_id")?,
        call_type: row.try_get("call_type")?,
        join_deadline: match status {
            ReservationStatus::Matched => row.time_opt("join_deadline")?,
            _ => None,
        },
        join_extended: row.flag("join_extended")?,
        customer_name: row.try_get("customer_name")?,
        reason: row.try_get("reason")?,
        specialist_name: row.try_get("specialist_name")?,
        notice: None,
        message: match status {
            ReservationStatus::Queued => row.try_get("message")?,
            _ => None,
        },
        server_time: now,
    })
}

/// A specialist's account; `None` (and a log line) when its stored role is not one we know:
/// an account we cannot place gets no capabilities rather than a guessed role.
pub(super) fn agent_from_row(row: &AnyRow) -> sqlx::Result<Option<Agent>> {
    let role: String = row.try_get("role")?;
    let groups: String = row.try_get("groups")?;
    let user_id: String = row.try_get("user_id")?;
    let admin = role == super::admin::ADMIN_ROLE;
    let Some(role) = (if admin {
        Some(Role::Specialist)
    } else {
        Role::parse(&role)
    }) else {
        tracing::warn!(%user_id, %role, "account has an unknown role; refused");
        return Ok(None);
    };
    Ok(Some(Agent {
        user_id,
        role,
        groups: split_groups(&groups),
        admin,
    }))
}

pub(super) async fn bump_group(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group: &str,
    version: u64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE groups SET version = $1 WHERE name = $2")
        .bind(version as i64)
        .bind(group)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stores an open call's changes; `gv` is the group version of the change.
pub(super) async fn save_call_row(
    conn: &mut sqlx::AnyConnection,
    call: &CallRow,
    gv: u64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET max_duration_seconds = $1, started_at = $2, timer_ends_at = $3, \
             specialist_joined_at = $4, customer_joined_at = $5, specialist_present = $6, \
             customer_present = $7, version = $8, gv = $9 WHERE id = $10",
    )
    .bind(call.max_duration_seconds as i64)
    .bind(ts_opt(call.started_at))
    .bind(ts_opt(call.timer_ends_at))
    .bind(ts_opt(call.specialist_joined_at))
    .bind(ts_opt(call.customer_joined_at))
    .bind(call.specialist_present as i64)
    .bind(call.customer_present as i64)
    .bind(call.version as i64)
    .bind(gv as i64)
    .bind(&call.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a call in the database; `gv` is the group version of the change.
pub(super) async fn end_call_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    call: &CallRow,
    reason: CallEndReason,
    now: DateTime<Utc>,
    gv: u64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE calls SET ended_at = $1, ended_reason = $2, specialist_present = 0, \
         customer_present = 0, version = $3, gv = $4 WHERE id = $5",
    )
    .bind(ts(now))
    .bind(reason.as_str())
    .bind(call.version as i64 + 1)
    .bind(gv as i64)
    .bind(&call.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `($1, $2), ($3, $4)`: the placeholders of a multi-row insert of `rows` rows of `columns`.
pub(super) fn values_list(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A time as stored: RFC 3339 UTC text, as sqlx's SQLite driver always wrote it (so older
/// files read the same, and text order is time order).
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

pub(super) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

fn parse_time(column: &str, text: &str) -> sqlx::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(format!("{column}: not a time: {text:?} ({e})").into()))
}

/// Reading the stored forms back: times from text, flags from integers.
pub(super) trait RowExt {
    fn time(&self, column: &str) -> sqlx::Result<DateTime<Utc>>;
    fn time_opt(&self, column: &str) -> sqlx::Result<Option<DateTime<Utc>>>;
    fn flag(&self, column: &str) -> sqlx::Result<bool>;
}

impl RowExt for AnyRow {
    fn time(&self, column: &str) -> sqlx::Result<DateTime<Utc>> {
        parse_time(column, &self.try_get::<String, _>(column)?)
    }

    fn time_opt(&self, column: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
        self.try_get::<Option<String>, _>(column)?
            .map(|t| parse_time(column, &t))
            .transpose()
    }

    fn flag(&self, column: &str) -> sqlx::Result<bool> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_value_once() {
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 1), "($1)");
    }

    #[test]
    fn times_are_stored_as_sqlx_wrote_them_and_sort_as_text() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T15:03:58.5+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ts(t), "2026-12-01T15:03:58.500+00:00");
        assert_eq!(parse_time("x", &ts(t)).unwrap(), t);
        let later = t + Duration::milliseconds(1);
        assert!(ts(later) > ts(t));
        assert!(parse_time("x", "yesterday").is_err());
    }
}
