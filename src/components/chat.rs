//! The chat beside the video: the conversation (a polite live region, so screen readers read
//! each new message), what we wrote that is still on its way, and the box to write in (Enter
//! sends, Shift+Enter starts a new line). Beside the video on a wide screen; on a phone a panel
//! opened from a button that counts the messages not seen yet. A message that arrives while the
//! page is hidden chimes (sound on) and puts the count in the tab's title.
//!
//! Why the messages are built with DOM calls and the form is markup: the text must only ever be
//! text (a node's text, never HTML), links need their own attributes, and the view machinery
//! per element cost the customer's download several times as much (see `feedback.rs`).

use callqueue_protocol::{
    Role,
    signal::{CHAT_MAX_CHARS, ChatMessage, is_chat_text},
};
use leptos::{
    html::{Ol, Ul},
    prelude::*,
};
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{Document, Element};

use crate::{
    call::CallView,
    components::turn::{chime, sound_on},
    i18n::{t, tf, time_of_day},
    logic::chat::{Piece, pieces},
};

/// At least this wide (CSS pixels), the chat is beside the video (as `main.css` lays it out).
const WIDE: i32 = 900;

fn element(doc: &Document, tag: &str, class: &str) -> Option<Element> {
    let e = doc.create_element(tag).ok()?;
    e.set_class_name(class);
    Some(e)
}

/// One message as a list item: who and when, then the text with its links.
fn item(doc: &Document, who: &str, at: Option<String>, text: &str, class: &str) -> Option<Element> {
    let li = element(doc, "li", class)?;
    let meta = element(doc, "span", "who")?;
    meta.set_text_content(Some(&match at {
        Some(at) => format!("{who} · {at}"),
        None => who.to_string(),
    }));
    let body = element(doc, "p", "text")?;
    for piece in pieces(text) {
        match piece {
            Piece::Text(s) => body.append_with_str_1(s).ok()?,
            Piece::Link(href) => {
                let a = element(doc, "a", "")?;
                a.set_attribute("href", href).ok()?;
                a.set_attribute("target", "_blank").ok()?;
                a.set_attribute("rel", "noopener noreferrer").ok()?;
                a.set_text_content(Some(href));
                body.append_child(&a).ok()?;
            }
        }
    }
    li.append_child(&meta).ok()?;
    li.append_child(&body).ok()?;
    Some(li)
}

fn sender(m: &ChatMessage, me: Option<Role>) -> String {
    if Some(m.role) == me {
        return t("chat.you").to_string();
    }
    m.name.clone().unwrap_or_else(|| {
        t(match m.role {
            Role::Specialist => "chat.specialist",
            Role::Patient => "chat.customer",
        })
        .to_string()
    })
}

/// Text for HTML element content in our own markup (the catalogue's words).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

fn form_markup() -> String {
    // Attributes in single quotes: the catalogue test reads keys between double quotes.
    format!(
        "<label for='chat-text' class='visually-hidden'>{}</label>\
         <textarea id='chat-text' name='text' rows='2' maxlength='{CHAT_MAX_CHARS}' \
         aria-describedby='chat-hint' placeholder='{}'></textarea>\
         <button type='submit' class='primary'>{}</button>\
         <p id='chat-hint' class='hint'>{}</p>",
        escape(t("chat.label")),
        escape(t("chat.placeholder")).replace('\'', "&#39;"),
        escape(t("chat.send")),
        escape(t("chat.hint")),
    )
}

/// The chat of the call shown in `view`; `send` takes a checked message, `unread` is kept at
/// the count of the other member's messages not seen yet (for the tab's title), and the box to
/// write in goes when `ended`.
#[component]
pub fn ChatPanel(
    view: CallView,
    send: Callback<String>,
    unread: RwSignal<u32>,
    ended: Signal<bool>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let seen = RwSignal::new(0u32);
    let log = NodeRef::<Ol>::new();
    let outbox = NodeRef::<Ul>::new();
    // Seen when the page is visible and the conversation is on screen (always on a wide
    // screen, on a phone while the panel is open).
    let look = move || {
        let wide = window()
            .inner_width()
            .ok()
            .and_then(|w| w.as_f64())
            .is_some_and(|w| w >= WIDE as f64);
        if !document().hidden() && (wide || open.get_untracked()) {
            seen.set(view.arrived.get_untracked());
        }
    };
    Effect::new(move |before: Option<u32>| {
        let arrived = view.arrived.get();
        if before.is_some_and(|b| arrived > b) && document().hidden() && sound_on() {
            chime();
        }
        look();
        arrived
    });
    Effect::new(move |_| unread.set(view.arrived.get().saturating_sub(seen.get())));
    let on_visible = Closure::<dyn Fn()>::new(look);
    let _ = document().add_event_listener_with_callback(
        "visibilitychange",
        on_visible.as_ref().unchecked_ref(),
    );
    let on_visible = StoredValue::new_local(on_visible);
    on_cleanup(move || {
        on_visible.with_value(|f| {
            let _ = document().remove_event_listener_with_callback(
                "visibilitychange",
                f.as_ref().unchecked_ref(),
            );
        });
    });

    // The conversation: new messages are appended (what a live region announces); a message
    // that arrived out of order rebuilds the list.
    Effect::new(move |shown: Option<(usize, u64)>| {
        let me = view.me.get();
        let Some(ol) = log.get() else {
            return (0, 0);
        };
        let doc = document();
        view.chat.with(|chat| {
            let (mut n, last) = shown.unwrap_or((0, 0));
            if n > chat.len() || (n > 0 && chat[n - 1].seq != last) {
                ol.set_text_content(None);
                n = 0;
            }
            for m in &chat[n..] {
                let class = if Some(m.role) == me { "mine" } else { "theirs" };
                if let Some(li) = item(&doc, &sender(m, me), Some(time_of_day(m.at)), &m.text, class) {
                    let _ = ol.append_child(&li);
                }
            }
            if chat.len() > n {
                // The list scrolls by itself (never the page under the video).
                ol.set_scroll_top(ol.scroll_height());
            }
            (chat.len(), chat.last().map_or(0, |m| m.seq))
        })
    });
    // Ours on the way, outside the live region (it is read once it arrives).
    Effect::new(move |_| {
        let Some(ul) = outbox.get() else {
            return;
        };
        ul.set_text_content(None);
        let doc = document();
        for (_, text) in view.unsent.get() {
            if let Some(li) = item(&doc, t("chat.sending"), None, &text, "mine unsent") {
                let _ = ul.append_child(&li);
            }
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
        else {
            return;
        };
        let text = web_sys::FormData::new_with_form(&form)
            .ok()
            .and_then(|d| d.get("text").as_string())
            .unwrap_or_default();
        let text = text.trim_end();
        if is_chat_text(text) {
            send.run(text.to_string());
            form.reset();
        }
    };
    let keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            if let Some(form) = ev
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
            {
                let _ = form.request_submit();
            }
        }
    };
    let toggle_label = move || match unread.get() {
        0 => t("chat.open").to_string(),
        n => tf("chat.open_unread", &[("n", &n.to_string())]),
    };

    view! {
        <section class="chat" class:open=move || open.get() aria-labelledby="chat-title">
            <button
                type="button"
                class="secondary chat-toggle"
                aria-expanded=move || open.get().to_string()
                aria-controls="chat-log"
                on:click=move |_| {
                    open.update(|o| *o = !*o);
                    look();
                }
            >
                {toggle_label}
            </button>
            <h2 id="chat-title" class="chat-title">{t("chat.title")}</h2>
            <ol id="chat-log" class="chat-log" aria-live="polite" node_ref=log/>
            <ul class="chat-log chat-unsent" node_ref=outbox/>
            <form
                class="chat-form"
                class:hidden=move || ended.get()
                on:submit=submit
                on:keydown=keydown
                inner_html=form_markup
            />
        </section>
    }
}
