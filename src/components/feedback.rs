//! "How was your call?": after the call ends, the customer may rate it 1–5 with an optional
//! comment, once per call, or skip it.
//!
//! Why the form is markup and not a `view!`: the view machinery instantiated per element and
//! attribute cost the customer's download 4.8 KB brotli for this one form; as markup read with
//! `FormData` on submit it costs a fraction of that. The text is ours (the catalogue), escaped
//! all the same.

use callqueue_protocol::FEEDBACK_COMMENT_MAX_CHARS;
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api,
    components::{busy::ErrorNote, escape, submitted},
    i18n::t,
    storage,
};

/// Where this browser remembers that a call was rated or skipped (asked once per call).
fn asked_key(call_id: &str) -> String {
    format!("callqueue.feedback.{call_id}")
}

/// The form's markup in the current language.
fn markup() -> String {
    // Attributes in single quotes: the catalogue test reads keys between double quotes.
    let stars: String = (1..=5)
        .map(|n| {
            format!(
                "<label class='star'><input type='radio' name='rating' value='{n}' required \
                 aria-describedby='feedback-scale'> {n}</label>"
            )
        })
        .collect();
    format!(
        "<fieldset><legend>{}</legend><p class='hint' id='feedback-scale'>{}</p>\
         <div class='stars'>{stars}</div></fieldset>\
         <label for='feedback-comment'>{}</label>\
         <textarea id='feedback-comment' name='comment' rows='3' \
         maxlength='{FEEDBACK_COMMENT_MAX_CHARS}'></textarea>\
         <div class='actions'><button type='submit' class='primary send-feedback'>{}</button>\
         <button type='submit' class='secondary skip-feedback' name='skip' value='1' \
         formnovalidate>{}</button></div>",
        escape(t("feedback.title")),
        escape(t("feedback.scale")),
        escape(t("feedback.comment")),
        escape(t("feedback.send")),
        escape(t("feedback.skip")),
    )
}

/// The form, for the call `(type, id)`, until it is sent or skipped.
#[component]
pub fn FeedbackForm(call_type: String, call_id: String) -> impl IntoView {
    let key = asked_key(&call_id);
    let (done, set_done) = signal(storage::get(&key).is_some());
    let key = StoredValue::new(key);
    let (thanked, set_thanked) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let (busy, set_busy) = signal(false);
    let finish = move |thanks: bool| {
        storage::set(&key.get_value(), "1");
        set_thanked.set(thanks);
        set_done.set(true);
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let skipped = ev
            .submitter()
            .is_some_and(|b| b.get_attribute("name").as_deref() == Some("skip"));
        if skipped {
            finish(false);
            return;
        }
        let Some((_, data)) = submitted(&ev) else {
            return;
        };
        let field = |name: &str| data.get(name).as_string().unwrap_or_default();
        let Ok(rating) = field("rating").parse::<u8>() else {
            return;
        };
        let comment = Some(field("comment")).filter(|c| !c.trim().is_empty());
        if busy.get_untracked() {
            return;
        }
        set_busy.set(true);
        set_error.set(None);
        let (call_type, call_id) = (call_type.clone(), call_id.clone());
        spawn_local(async move {
            match api::send_feedback(&call_type, &call_id, rating, comment).await {
                // Rated already (another tab): as good as sent.
                Ok(()) => finish(true),
                Err(e) if e.status() == Some(409) => finish(true),
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            set_busy.try_set(false);
        });
    };
    view! {
        {move || thanked.get().then(|| view! {
            <p class="notice feedback-thanks" role="status">{t("feedback.thanks")}</p>
        })}
        <form class="feedback" class:hidden=move || done.get() on:submit=submit inner_html=markup/>
        <ErrorNote error=error/>
    }
}
