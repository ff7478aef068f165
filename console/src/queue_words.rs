//! A word to those waiting: the group's notice, which every hold page of the group shows live
//! ("We're running about 10 minutes late"), and one line to one waiting customer, chosen with
//! the Message button of their queue row (shown on their hold page only).

use callqueue::{
    api,
    components::{busy::ErrorNote, submitted},
    i18n::{t, tf},
};
use callqueue_protocol::{NOTICE_MAX_CHARS, NoticeRequest, QueueNotice, Reservation};
use gloo_net::http::Request;
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

async fn set_notice(group: &str, text: String) -> Result<QueueNotice, api::ApiError> {
    api::send_json(
        Request::put(&api::url(&format!("/groups/{group}/notice"))),
        &NoticeRequest { text },
    )
    .await
}

async fn send_line(group: &str, sid: &str, text: String) -> Result<Reservation, api::ApiError> {
    api::send_json(
        Request::post(&api::url(&format!(
            "/groups/{group}/reservations/{sid}/message"
        ))),
        &NoticeRequest { text },
    )
    .await
}

/// The text of a form's one text field, and the form (to clear it once sent).
fn field(
    ev: &leptos::ev::SubmitEvent,
    name: &str,
) -> Option<(String, leptos::web_sys::HtmlFormElement)> {
    ev.prevent_default();
    let (form, data) = submitted(ev)?;
    Some((data.get(name).as_string()?, form))
}

/// The panel, for the group shown; `to` is the waiting customer chosen for a line (their
/// reservation id and name), if any.
#[component]
pub fn QueueWords(
    group: RwSignal<String>,
    to: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    let notice = RwSignal::new(None::<String>);
    let (error, set_error) = signal(None::<String>);
    let done = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    Effect::new(move |_| {
        let group = group.get();
        spawn_local(async move {
            let path = api::url(&format!("/groups/{group}/notice"));
            if let Ok(n) = api::send::<QueueNotice>(Request::get(&path)).await {
                notice.try_set(n.notice);
            }
        });
    });
    // The line's box gets the focus when a customer is chosen.
    Effect::new(move |_| {
        if to.with(Option::is_some) {
            let focus = move || {
                if let Some(input) = document()
                    .get_element_by_id("line-text")
                    .and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok())
                {
                    let _ = input.focus();
                }
            };
            request_animation_frame(focus);
        }
    });
    let post = move |text: String, form: Option<leptos::web_sys::HtmlFormElement>| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        set_error.set(None);
        let group = group.get_untracked();
        spawn_local(async move {
            match set_notice(&group, text).await {
                Ok(n) => {
                    done.try_set(Some(
                        t(if n.notice.is_some() {
                            "console.notice_posted"
                        } else {
                            "console.notice_cleared"
                        })
                        .to_string(),
                    ));
                    notice.try_set(n.notice);
                    if let Some(form) = form {
                        form.reset();
                    }
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            busy.try_set(false);
        });
    };
    let on_notice = move |ev: leptos::ev::SubmitEvent| {
        if let Some((text, form)) = field(&ev, "notice")
            && !text.trim().is_empty()
        {
            post(text, Some(form));
        }
    };
    let on_line = move |ev: leptos::ev::SubmitEvent| {
        let Some((text, form)) = field(&ev, "line") else {
            return;
        };
        let Some((sid, name)) = to.get_untracked() else {
            return;
        };
        if text.trim().is_empty() || busy.get_untracked() {
            return;
        }
        busy.set(true);
        set_error.set(None);
        let group = group.get_untracked();
        spawn_local(async move {
            match send_line(&group, &sid, text).await {
                Ok(_) => {
                    done.try_set(Some(tf("console.line_sent", &[("who", &name)])));
                    to.try_set(None);
                    form.reset();
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            busy.try_set(false);
        });
    };
    view! {
        <section class="panel queue-words" aria-labelledby="words-title">
            <h2 id="words-title">{move || t("console.words")}</h2>
            <p class="current-notice">
                {move || match notice.get() {
                    Some(text) => tf("console.notice_now", &[("text", &text)]),
                    None => t("console.no_notice").to_string(),
                }}
            </p>
            <form class="notice-form" on:submit=on_notice>
                <label>
                    <span>{move || t("console.notice_label")}</span>
                    <input name="notice" type="text" maxlength=NOTICE_MAX_CHARS.to_string() autocomplete="off"/>
                </label>
                <div class="actions">
                    <button type="submit" class="primary post-notice" disabled=move || busy.get()>
                        {move || t("console.post_notice")}
                    </button>
                    <button type="button" class="secondary clear-notice"
                        disabled=move || busy.get() || notice.with(Option::is_none)
                        on:click=move |_| post(String::new(), None)>
                        {move || t("console.clear_notice")}
                    </button>
                </div>
            </form>
            {move || to.get().map(|(_, name)| view! {
                <form class="line-form" on:submit=on_line>
                    <label>
                        <span>{tf("console.line_to", &[("who", &name)])}</span>
                        <input id="line-text" name="line" type="text" maxlength=NOTICE_MAX_CHARS.to_string() autocomplete="off"/>
                    </label>
                    <div class="actions">
                        <button type="submit" class="primary send-line" disabled=move || busy.get()>
                            {move || t("console.send_line")}
                        </button>
                        <button type="button" class="secondary" on:click=move |_| to.set(None)>
                            {move || t("console.cancel_line")}
                        </button>
                    </div>
                </form>
            })}
            <p class="hint words-done" role="status">{move || done.get()}</p>
            <ErrorNote error=error/>
        </section>
    }
}
