//! `/admin`: the admin page, for accounts with the role `admin` — specialists (add, disable,
//! enable, a new secret; who is signed in and available), groups (settings and opening hours)
//! and the audit log. Part of the console's bundle; its words are a catalogue of its own
//! (`console/locales/admin.*.txt`), so the customer's download carries none of this.

use std::sync::OnceLock;

use callqueue_protocol::{
    AgentSession,
    admin::{
        AccountRole, AdminGroup, AdminSpecialist, AtClosing, AuditEntry, GroupSettings,
        IssuedSecret, NewGroup, NewSpecialist, OpeningSpan,
    },
};
use chrono::NaiveDate;
use gloo_net::http::Request;
use leptos::{prelude::*, task::spawn_local};

use callqueue::{
    api::{self, ApiError},
    components::busy::ErrorNote,
    i18n::{Lang, day_from_today, fill, lang, parse, time_of_day},
    pages::use_document_title,
    ticker::use_ticker,
};

use crate::console::{SignIn, use_agent_session};

/// A word of the admin page in the current language (tracked).
pub fn at(key: &str) -> &'static str {
    static EN: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
    static DE: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
    let catalogue = match lang() {
        Lang::En => EN.get_or_init(|| parse(include_str!("../locales/admin.en.txt"))),
        Lang::De => DE.get_or_init(|| parse(include_str!("../locales/admin.de.txt"))),
    };
    catalogue
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .map(|i| catalogue[i].1)
        .unwrap_or("")
}

/// How often the lists are read again (who is signed in and available changes by itself).
const REFRESH_MS: u32 = 10_000;

/// The admin page, the sign-in form, or a word for a signed-in specialist who is no admin.
#[component]
pub fn Admin() -> impl IntoView {
    let (session, checked) = use_agent_session();
    use_document_title(|| Some(at("tab").to_string()));
    let admin = move || session.with(|s| s.as_ref().map(|s| s.admin));
    view! {
        <section class="card admin">
            {move || match admin() {
                Some(true) => view! { <AdminPanel session=session/> }.into_any(),
                Some(false) => view! {
                    <h1>{move || at("title")}</h1>
                    <p class="notice" role="status">{move || at("not_admin")}</p>
                }
                .into_any(),
                None => view! { <Show when=move || checked.get()><SignIn session=session/></Show> }
                    .into_any(),
            }}
        </section>
    }
}

async fn get<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    api::send(Request::get(&api::url(path))).await
}

/// What the page shows, read again after every action and every ten seconds.
#[derive(Clone, Copy)]
struct Lists {
    specialists: RwSignal<Vec<AdminSpecialist>>,
    groups: RwSignal<Vec<AdminGroup>>,
    audit: RwSignal<Vec<AuditEntry>>,
    error: RwSignal<Option<String>>,
    /// A secret just made, shown once.
    issued: RwSignal<Option<IssuedSecret>>,
    /// The group whose settings were just saved (its editor is made anew with them).
    saved: RwSignal<Option<String>>,
}

impl Lists {
    fn reload(self, session: RwSignal<Option<AgentSession>>) {
        spawn_local(async move {
            let read = async {
                let specialists = get::<Vec<AdminSpecialist>>("/admin/specialists").await?;
                let groups = get::<Vec<AdminGroup>>("/admin/groups").await?;
                let audit = get::<Vec<AuditEntry>>("/admin/audit").await?;
                Ok::<_, ApiError>((specialists, groups, audit))
            };
            match read.await {
                Ok((specialists, groups, audit)) => {
                    self.specialists.try_set(specialists);
                    // Only when they changed: an editor being filled in keeps its fields.
                    if self.groups.try_with_untracked(|g| *g != groups) == Some(true) {
                        self.groups.try_set(groups);
                    }
                    self.audit.try_set(audit);
                }
                // Signed out (elsewhere, or this account was disabled): back to the sign-in.
                Err(e) if matches!(e.status(), Some(401 | 403)) => {
                    session.try_set(None);
                }
                Err(e) => {
                    self.error.try_set(Some(e.to_string()));
                }
            }
        });
    }

    /// Runs an action, then reads the lists again; its error is shown.
    fn act<T: 'static>(
        self,
        session: RwSignal<Option<AgentSession>>,
        action: impl std::future::Future<Output = Result<T, ApiError>> + 'static,
        done: impl FnOnce(T) + 'static,
    ) {
        self.error.set(None);
        spawn_local(async move {
            match action.await {
                Ok(value) => done(value),
                Err(e) => {
                    self.error.try_set(Some(e.to_string()));
                }
            }
            self.reload(session);
        });
    }
}

#[component]
fn AdminPanel(session: RwSignal<Option<AgentSession>>) -> impl IntoView {
    let lists = Lists {
        specialists: RwSignal::new(Vec::new()),
        groups: RwSignal::new(Vec::new()),
        audit: RwSignal::new(Vec::new()),
        error: RwSignal::new(None),
        issued: RwSignal::new(None),
        saved: RwSignal::new(None),
    };
    let tick = use_ticker(|_| REFRESH_MS);
    Effect::new(move |_| {
        tick.track();
        lists.reload(session);
    });
    let issued = move || {
        lists.issued.get().map(|i| {
            view! {
                <p class="notice issued" role="status">
                    {move || fill(at("secret_once"), &[("user", &i.user_id), ("secret", &i.secret)])}
                </p>
            }
        })
    };
    view! {
        <h1>{move || at("title")}</h1>
        <ErrorNote error=lists.error/>
        {issued}
        <Specialists lists=lists session=session/>
        <Groups lists=lists session=session/>
        <Audit lists=lists/>
    }
}

#[component]
fn Specialists(lists: Lists, session: RwSignal<Option<AgentSession>>) -> impl IntoView {
    let user = NodeRef::<leptos::html::Input>::new();
    let display = NodeRef::<leptos::html::Input>::new();
    let groups = NodeRef::<leptos::html::Input>::new();
    let role = NodeRef::<leptos::html::Select>::new();
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value =
            |n: NodeRef<leptos::html::Input>| n.get().map(|i| i.value()).unwrap_or_default();
        let new = NewSpecialist {
            user_id: value(user).trim().to_string(),
            display_name: Some(value(display).trim().to_string()).filter(|d| !d.is_empty()),
            groups: value(groups)
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect(),
            role: match role.get().map(|r| r.value()).as_deref() {
                Some("admin") => AccountRole::Admin,
                _ => AccountRole::Specialist,
            },
        };
        let action = async move {
            api::send_json::<_, IssuedSecret>(api::post(&api::url("/admin/specialists")), &new)
                .await
        };
        lists.act(session, action, move |issued| {
            lists.issued.set(Some(issued));
            for input in [user, display] {
                if let Some(i) = input.get() {
                    i.set_value("");
                }
            }
        });
    };
    let row = move |s: AdminSpecialist| {
        let id = s.user_id.clone();
        let status = if s.disabled {
            at("disabled").to_string()
        } else {
            let mut words = vec![if s.signed_in {
                at("signed_in")
            } else {
                at("signed_out")
            }];
            if s.available {
                words.push(at("available"));
            }
            words.join(", ")
        };
        let toggle = {
            let id = id.clone();
            let disabled = s.disabled;
            move |_| {
                let path = format!(
                    "/admin/specialists/{id}/{}",
                    if disabled { "enable" } else { "disable" }
                );
                let action =
                    async move { api::no_content(api::post(&api::url(&path)).send().await).await };
                lists.act(session, action, |_| {});
            }
        };
        let reset = move |_| {
            let path = format!("/admin/specialists/{id}/reset-secret");
            let action =
                async move { api::send::<IssuedSecret>(api::post(&api::url(&path))).await };
            lists.act(session, action, move |issued| {
                lists.issued.set(Some(issued))
            });
        };
        let role = match s.role {
            AccountRole::Admin => "role_admin",
            AccountRole::Specialist => "role_specialist",
        };
        view! {
            <tr class="specialist" data-user=s.user_id.clone()>
                <td>{s.user_id.clone()}</td>
                <td>{s.display_name.clone().unwrap_or_default()}</td>
                <td>{move || at(role)}</td>
                <td>{s.groups.join(", ")}</td>
                <td class="status">{status}</td>
                <td class="actions">
                    <button type="button" class="secondary toggle" on:click=toggle>
                        {move || at(if s.disabled { "enable" } else { "disable" })}
                    </button>
                    <button type="button" class="secondary reset" on:click=reset>{move || at("reset")}</button>
                </td>
            </tr>
        }
    };
    view! {
        <h2>{move || at("specialists")}</h2>
        <div class="table-scroll" role="region" aria-label=move || at("specialists") tabindex="0">
            <table class="specialists">
                <thead><tr>
                    <th scope="col">{move || at("user_id")}</th>
                    <th scope="col">{move || at("display_name")}</th>
                    <th scope="col">{move || at("role")}</th>
                    <th scope="col">{move || at("groups")}</th>
                    <th scope="col">{move || at("status")}</th>
                    <th scope="col"><span class="visually-hidden">{move || at("status")}</span></th>
                </tr></thead>
                <tbody>{move || lists.specialists.get().into_iter().map(row).collect_view()}</tbody>
            </table>
        </div>
        <form class="add-specialist" on:submit=add>
            <label>{move || at("user_id")} <input node_ref=user name="user_id" required autocomplete="off"/></label>
            <label>{move || at("display_name")} <input node_ref=display name="display_name" autocomplete="off"/></label>
            <label>{move || at("groups")} <input node_ref=groups name="groups" value="default" required/></label>
            <label>{move || at("role")}
                <select node_ref=role name="role">
                    <option value="specialist">{move || at("role_specialist")}</option>
                    <option value="admin">{move || at("role_admin")}</option>
                </select>
            </label>
            <button type="submit" class="primary">{move || at("add")}</button>
        </form>
    }
}

#[component]
fn Groups(lists: Lists, session: RwSignal<Option<AgentSession>>) -> impl IntoView {
    let name = NodeRef::<leptos::html::Input>::new();
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let new = NewGroup {
            name: name
                .get()
                .map(|n| n.value())
                .unwrap_or_default()
                .trim()
                .to_string(),
            settings: GroupSettings::default(),
        };
        let action = async move {
            api::send_json::<_, AdminGroup>(api::post(&api::url("/admin/groups")), &new).await
        };
        lists.act(session, action, move |_| {
            if let Some(n) = name.get() {
                n.set_value("");
            }
        });
    };
    view! {
        <h2>{move || at("groups_title")}</h2>
        <For
            each=move || lists.groups.get()
            key=|g| (g.name.clone(), format!("{:?}", g.settings))
            children=move |g| view! { <GroupEditor group=g lists=lists session=session/> }
        />
        <form class="add-group" on:submit=add>
            <label>{move || at("group_name")} <input node_ref=name name="group" required autocomplete="off"/></label>
            <button type="submit" class="secondary">{move || at("add_group")}</button>
        </form>
    }
}

/// When a closed group opens, as the reader writes it.
fn opens_text(opens_at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match opens_at {
        Some(t) => {
            let day = day_from_today(t).unwrap_or_default();
            fill(
                at("closed_now"),
                &[("when", format!("{day} {}", time_of_day(t)).trim())],
            )
        }
        None => at("closed_no_opening").to_string(),
    }
}

#[component]
fn GroupEditor(
    group: AdminGroup,
    lists: Lists,
    session: RwSignal<Option<AgentSession>>,
) -> impl IntoView {
    let s = group.settings.clone();
    let id = |field: &str| format!("group-{}-{field}", group.name);
    let display = NodeRef::<leptos::html::Input>::new();
    let minutes = NodeRef::<leptos::html::Input>::new();
    let window = NodeRef::<leptos::html::Input>::new();
    let require = NodeRef::<leptos::html::Input>::new();
    let zone = NodeRef::<leptos::html::Input>::new();
    let closed_dates = NodeRef::<leptos::html::Textarea>::new();
    let closing = NodeRef::<leptos::html::Select>::new();
    let days: Vec<(
        NodeRef<leptos::html::Input>,
        NodeRef<leptos::html::Input>,
        NodeRef<leptos::html::Input>,
    )> = (0..7)
        .map(|_| (NodeRef::new(), NodeRef::new(), NodeRef::new()))
        .collect();
    let name = group.name.clone();
    let this = group.name.clone();
    let saved = move || lists.saved.with(|s| s.as_deref() == Some(this.as_str()));
    let days_for_save = days.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = |n: NodeRef<leptos::html::Input>| n.get().map(|i| i.value()).unwrap_or_default();
        let checked = |n: NodeRef<leptos::html::Input>| n.get().is_some_and(|i| i.checked());
        let number = |n: NodeRef<leptos::html::Input>| text(n).trim().parse::<u32>().ok();
        let mut dates = Vec::new();
        for line in closed_dates
            .get()
            .map(|t| t.value())
            .unwrap_or_default()
            .lines()
        {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match NaiveDate::parse_from_str(line, "%Y-%m-%d") {
                Ok(d) => dates.push(d),
                Err(_) => {
                    lists
                        .error
                        .set(Some(format!("{}: {line:?}", at("closed_dates"))));
                    return;
                }
            }
        }
        let settings = GroupSettings {
            display_name: Some(text(display).trim().to_string()).filter(|d| !d.is_empty()),
            call_seconds: number(minutes).map(|m| m * 60),
            join_window_secs: number(window),
            require_name: Some(checked(require)),
            time_zone: Some(text(zone).trim().to_string())
                .filter(|z| !z.is_empty())
                .unwrap_or_else(|| "UTC".into()),
            hours: days_for_save
                .iter()
                .enumerate()
                .filter(|(_, (open, _, _))| checked(*open))
                .map(|(weekday, (_, opens, closes))| OpeningSpan {
                    weekday: weekday as u8,
                    opens: text(*opens),
                    closes: text(*closes),
                })
                .collect(),
            closed_dates: dates,
            at_closing: match closing.get().map(|c| c.value()).as_deref() {
                Some("close") => AtClosing::Close,
                _ => AtClosing::Serve,
            },
        };
        let path = format!("/admin/groups/{name}");
        let action = async move {
            api::send_json::<_, AdminGroup>(Request::put(&api::url(&path)), &settings).await
        };
        lists.saved.set(None);
        let group = name.clone();
        lists.act(session, action, move |_| lists.saved.set(Some(group)));
    };
    let span_of = |weekday: usize| {
        s.hours
            .iter()
            .find(|h| h.weekday as usize == weekday)
            .cloned()
    };
    let day_rows = days
        .into_iter()
        .enumerate()
        .map(|(d, (open, opens, closes))| {
            let span = span_of(d);
            let day_key: &'static str = ["day0", "day1", "day2", "day3", "day4", "day5", "day6"][d];
            view! {
                <tr>
                    <th scope="row">{move || at(day_key)}</th>
                    <td><label><input type="checkbox" node_ref=open checked=span.is_some() class="day-open"/>
                        <span class="visually-hidden">{move || at(day_key)}</span> {move || at("day_open")}</label></td>
                    <td><label><span class="visually-hidden">{move || at(day_key)}</span> <span class="visually-hidden">{move || at("opens")}</span>
                        <input type="time" node_ref=opens class="opens" value=span.as_ref().map_or("09:00".to_string(), |s| s.opens.clone())/></label></td>
                    <td><label><span class="visually-hidden">{move || at(day_key)}</span> <span class="visually-hidden">{move || at("closes")}</span>
                        <input type="time" node_ref=closes class="closes" value=span.as_ref().map_or("17:00".to_string(), |s| s.closes.clone())/></label></td>
                </tr>
            }
        })
        .collect_view();
    let state = if group.open {
        at("open_now").to_string()
    } else {
        opens_text(group.opens_at)
    };
    let dates_text: String = s.closed_dates.iter().map(|d| format!("{d}\n")).collect();
    view! {
        <form class="group" data-group=group.name.clone() on:submit=save>
            <h3>{group.name.clone()}</h3>
            <p class="group-state" role="status">{state}</p>
            <label for=id("display")>{move || at("display_name")}</label>
            <input id=id("display") node_ref=display class="display-name" value=s.display_name.clone().unwrap_or_default()/>
            <label for=id("minutes")>{move || at("call_minutes")}</label>
            <input id=id("minutes") node_ref=minutes type="number" min="1" class="call-minutes"
                placeholder=move || at("default") value=s.call_seconds.map(|c| (c / 60).to_string()).unwrap_or_default()/>
            <label for=id("window")>{move || at("join_window")}</label>
            <input id=id("window") node_ref=window type="number" min="15" class="join-window"
                placeholder=move || at("default") value=s.join_window_secs.map(|w| w.to_string()).unwrap_or_default()/>
            <label class="check"><input type="checkbox" node_ref=require class="require-name" checked=s.require_name.unwrap_or(false)/>
                {move || at("require_name")}</label>
            <label for=id("zone")>{move || at("time_zone")}</label>
            <input id=id("zone") node_ref=zone class="time-zone" value=s.time_zone.clone() autocomplete="off"/>
            <fieldset>
                <legend>{move || at("hours")}</legend>
                <table class="hours"><tbody>{day_rows}</tbody></table>
            </fieldset>
            <label for=id("dates")>{move || at("closed_dates")}</label>
            <textarea id=id("dates") node_ref=closed_dates class="closed-dates" rows="3">{dates_text}</textarea>
            <label for=id("closing")>{move || at("at_closing")}</label>
            <select id=id("closing") node_ref=closing class="at-closing">
                <option value="serve" selected=s.at_closing == AtClosing::Serve>{move || at("at_closing_serve")}</option>
                <option value="close" selected=s.at_closing == AtClosing::Close>{move || at("at_closing_close")}</option>
            </select>
            <button type="submit" class="primary save">{move || at("save")}</button>
            <Show when=saved><p class="saved" role="status">{move || at("saved")}</p></Show>
        </form>
    }
}

#[component]
fn Audit(lists: Lists) -> impl IntoView {
    let row = |e: AuditEntry| {
        view! {
            <tr>
                <td>{e.at.format("%Y-%m-%d %H:%M UTC").to_string()}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>{e.detail}</td>
            </tr>
        }
    };
    view! {
        <h2>{move || at("audit")}</h2>
        <div class="table-scroll" role="region" aria-label=move || at("audit") tabindex="0">
            <table class="audit">
                <thead><tr>
                    <th scope="col">{move || at("when")}</th>
                    <th scope="col">{move || at("who")}</th>
                    <th scope="col">{move || at("what")}</th>
                    <th scope="col">{move || at("target")}</th>
                    <th scope="col">{move || at("detail")}</th>
                </tr></thead>
                <tbody>{move || lists.audit.get().into_iter().map(row).collect_view()}</tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_catalogues_have_the_same_words() {
        let keys = |s: &'static str| -> Vec<&str> {
            callqueue::i18n::parse(s)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(include_str!("../locales/admin.en.txt")),
            keys(include_str!("../locales/admin.de.txt"))
        );
    }
}
