//! The chat beside the video: the conversation (a polite live region, so screen readers read
//! each new message), what we wrote that is still on its way, and the box to write in (Enter
//! sends, Shift+Enter starts a new line). Beside the video on a wide screen; on a phone a panel
//! opened from a button that counts the messages not seen yet. A message that arrives while the
//! page is hidden chimes (sound on) and puts the count in the tab's title.
//!
//! Why the panel is markup kept up to date by one effect, and messages are built with DOM
//! calls: the text must only ever be text (a node's text, never HTML), links need their own
//! attributes, and the view machinery per element and per reactive attribute cost the
//! customer's download several times as much (a first version as a `view!` was 6.3 KB brotli).

use callqueue_protocol::{
    Role,
    signal::{CHAT_MAX_CHARS, is_chat_text},
};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element};

use crate::{
    call::CallView,
    components::{
        escape, submitted,
        turn::{chime, sound_on},
    },
    i18n::{t, tf, time_of_day_ms},
    logic::chat::{ChatLine, Piece, pieces},
};

/// At least this wide (CSS pixels), the chat is beside the video (as `main.css` lays it out).
const WIDE: i32 = 900;

pub fn element(doc: &Document, tag: &str, class: &str) -> Option<Element> {
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

fn sender(m: &ChatLine, me: Option<Role>) -> String {
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

fn markup() -> String {
    // Attributes in single quotes: the catalogue test reads keys between double quotes.
    format!(
        "<button type='button' class='secondary chat-toggle' aria-expanded='false' \
         aria-controls='chat-log'></button>\
         <h2 id='chat-title' class='chat-title'>{}</h2>\
         <ol id='chat-log' class='chat-log' aria-live='polite'></ol>\
         <ul class='chat-log chat-unsent'></ul>\
         <form class='chat-form'>\
         <label for='chat-text' class='visually-hidden'>{}</label>\
         <textarea id='chat-text' name='text' rows='2' maxlength='{CHAT_MAX_CHARS}' \
         aria-describedby='chat-hint' placeholder='{}'></textarea>\
         <button type='submit' class='primary'>{}</button>\
         <p id='chat-hint' class='hint'>{}</p></form>",
        escape(t("chat.title")),
        escape(t("chat.label")),
        escape(t("chat.placeholder")),
        escape(t("chat.send")),
        escape(t("chat.hint")),
    )
}

/// What the panel has drawn, between runs of its effect.
#[derive(Clone, Copy, Default)]
struct Drawn {
    /// Messages in the list, and the number of the last.
    shown: usize,
    last: u64,
    /// `CallView::arrived` when the conversation was last on screen, and at the last run.
    seen: u32,
    heard: u32,
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
    // The panel by its id (a node reference of its own kind cost more).
    let root = || document().get_element_by_id("chat");
    Effect::new(move |before: Option<Drawn>| {
        let mut d = before.unwrap_or_default();
        let (me, open, hidden, arrived) = (
            view.me.get(),
            open.get(),
            view.hidden.get(),
            view.arrived.get(),
        );
        let Some(root) = root() else {
            return d;
        };
        // Seen when the page is visible and the conversation is on screen (always beside the
        // video, on a phone while the panel is open); news while hidden chimes.
        let wide = window()
            .inner_width()
            .ok()
            .and_then(|w| w.as_f64())
            .is_some_and(|w| w >= WIDE as f64);
        if arrived > d.heard && before.is_some() && hidden && sound_on() {
            chime();
        }
        d.heard = arrived;
        if !hidden && (wide || open) {
            d.seen = arrived;
        }
        let n = arrived.saturating_sub(d.seen);
        unread.set(n);
        // Shown once the call's socket is up, and after the end only if something was said.
        let ended = ended.get();
        let class = if me.is_none() || (ended && view.chat.with(Vec::is_empty)) {
            "chat hidden"
        } else {
            match (open, ended) {
                (true, true) => "chat open ended",
                (true, false) => "chat open",
                (false, true) => "chat ended",
                (false, false) => "chat",
            }
        };
        root.set_class_name(class);
        let find = |selector: &str| root.query_selector(selector).ok().flatten();
        if let Some(toggle) = find(".chat-toggle") {
            toggle.set_text_content(Some(&match n {
                0 => t("chat.open").to_string(),
                n => tf("chat.open_unread", &[("n", &n.to_string())]),
            }));
            let _ = toggle.set_attribute("aria-expanded", if open { "true" } else { "false" });
        }
        let doc = document();
        // The conversation: new messages are appended (what a live region announces); one
        // that arrived out of order, or markup drawn anew (another language), redraws it.
        if let Some(ol) = find("ol") {
            view.chat.with(|chat| {
                if d.shown > chat.len()
                    || ol.child_element_count() as usize != d.shown
                    || (d.shown > 0 && chat[d.shown - 1].seq != d.last)
                {
                    ol.set_text_content(None);
                    d.shown = 0;
                }
                for m in &chat[d.shown..] {
                    let class = if Some(m.role) == me { "mine" } else { "theirs" };
                    let at = Some(time_of_day_ms(m.at));
                    if let Some(li) = item(&doc, &sender(m, me), at, &m.text, class) {
                        let _ = ol.append_child(&li);
                    }
                }
                if chat.len() > d.shown {
                    // The list scrolls by itself (never the page under the video).
                    ol.set_scroll_top(ol.scroll_height());
                }
                d.shown = chat.len();
                d.last = chat.last().map_or(0, |m| m.seq);
            });
        }
        // Ours on the way, outside the live region (it is read once it arrives).
        if let Some(ul) = find("ul") {
            ul.set_text_content(None);
            for (_, text) in view.unsent.get() {
                if let Some(li) = item(&doc, t("chat.sending"), None, &text, "mine unsent") {
                    let _ = ul.append_child(&li);
                }
            }
        }
        d
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some((form, data)) = submitted(&ev) else {
            return;
        };
        let text = data.get("text").as_string().unwrap_or_default();
        let text = text.trim_end();
        if is_chat_text(text) {
            send.run(text.to_string());
            form.reset();
        }
    };
    // Enter sends (not while an input method is composing), Shift+Enter is a new line.
    let keydown = move |ev: leptos::ev::KeyboardEvent| {
        let in_text = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|e| e.tag_name() == "TEXTAREA");
        if in_text && ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            if let Some(form) = root().and_then(|r| {
                r.query_selector("form")
                    .ok()
                    .flatten()
                    .and_then(|f| f.dyn_into::<web_sys::HtmlFormElement>().ok())
            }) {
                let _ = form.request_submit();
            }
        }
    };
    let click = move |ev: leptos::ev::MouseEvent| {
        let on_toggle = ev
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|e| e.class_list().contains("chat-toggle"));
        if on_toggle {
            open.update(|o| *o = !*o);
        }
    };
    view! {
        <section
            id="chat"
            class="chat hidden"
            aria-labelledby="chat-title"
            on:click=click
            on:submit=submit
            on:keydown=keydown
            inner_html=markup
        />
    }
}
