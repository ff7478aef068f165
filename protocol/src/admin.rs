//! The admin API (`/api/admin/...`, accounts with the role `admin`): specialists, groups with
//! their settings and opening hours, and the audit log of every admin action.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A weekly opening span in the group's time zone: `weekday` 0 is Monday, 6 Sunday; `opens`
/// and `closes` are `HH:MM` on that day (`closes` after `opens`; `24:00` is the day's end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpeningSpan {
    pub weekday: u8,
    pub opens: String,
    pub closes: String,
}

/// What happens to customers still waiting when a group closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AtClosing {
    /// Those already waiting are served to the end; nobody new may join.
    #[default]
    Serve,
    /// The queue closes: those waiting are told on their hold page and leave it.
    Close,
}

/// A group's settings. Unset numbers and flags follow the server's flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// What customers see the group as; its name when unset.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Session length of new calls, seconds (`--call-seconds` when unset).
    #[serde(default)]
    pub call_seconds: Option<u32>,
    /// Seconds a matched customer has to join (`--join-window` when unset).
    #[serde(default)]
    pub join_window_secs: Option<u32>,
    /// Whether customers must give a name (`--require-name` when unset).
    #[serde(default)]
    pub require_name: Option<bool>,
    /// The IANA time zone the hours are in, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// When the queue is open; none: always.
    #[serde(default)]
    pub hours: Vec<OpeningSpan>,
    /// Days the queue stays closed whatever the hours say (holidays), in the group's time zone.
    #[serde(default)]
    pub closed_dates: Vec<NaiveDate>,
    #[serde(default)]
    pub at_closing: AtClosing,
}

fn utc() -> String {
    "UTC".into()
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            display_name: None,
            call_seconds: None,
            join_window_secs: None,
            require_name: None,
            time_zone: utc(),
            hours: Vec::new(),
            closed_dates: Vec::new(),
            at_closing: AtClosing::Serve,
        }
    }
}

/// A group as the admin page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminGroup {
    pub name: String,
    pub settings: GroupSettings,
    /// Open now.
    pub open: bool,
    /// When it opens next, if closed and it will.
    pub opens_at: Option<DateTime<Utc>>,
}

/// `POST /api/admin/groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub settings: GroupSettings,
}

/// An account's role: `specialist` serves queues; `admin` also runs the admin page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Specialist,
    Admin,
}

/// A specialist (or admin) account as the admin page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminSpecialist {
    pub user_id: String,
    pub display_name: Option<String>,
    pub role: AccountRole,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// Has a current session (on any node).
    pub signed_in: bool,
    /// Marked available (on this node's view).
    pub available: bool,
}

/// `POST /api/admin/specialists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSpecialist {
    pub user_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    pub role: AccountRole,
}

/// A secret made by the server, shown once (a new account, a reset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedSecret {
    pub user_id: String,
    pub secret: String,
}

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The admin's sign-in id.
    pub actor: String,
    /// `specialist.add`, `specialist.disable`, `specialist.enable`, `specialist.reset_secret`,
    /// `group.add`, `group.update`.
    pub action: String,
    /// The account or group acted on.
    pub target: String,
    /// What changed, in words.
    pub detail: String,
}
