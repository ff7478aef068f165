//! The console's queue: keyed rows in a virtualised list, so that ten thousand waiting
//! customers cost the page the few dozen rows that are on screen, and a change to the queue
//! touches the rows it concerns (a new row, a removed row, positions moving) rather than
//! rebuilding the list. Rows have one fixed height so that where each one sits is arithmetic.

use std::collections::HashMap;

use callqueue_protocol::Reservation;
use leptos::prelude::*;

use crate::{
    i18n::{number, t, tf},
    logic::{handshake::who, queue_list::waited_text},
};

/// The height of one row, in CSS pixels (the stylesheet gives `.queue-row` the same).
pub const ROW_PX: f64 = 72.0;
/// Rows drawn above and below what is on screen, so a quick scroll does not show gaps.
const OVERSCAN: usize = 6;
/// The height of the visible part before the browser has measured it.
const DEFAULT_VIEW_PX: f64 = 480.0;

/// Which rows `[first, end)` to draw for a scroll position and a view height.
pub fn window(len: usize, scroll_top: f64, view_px: f64) -> (usize, usize) {
    let first = (scroll_top.max(0.0) / ROW_PX).floor() as usize;
    let shown = (view_px.max(ROW_PX) / ROW_PX).ceil() as usize;
    let start = first.saturating_sub(OVERSCAN).min(len);
    let end = (first + shown + OVERSCAN).min(len);
    (start, end)
}

/// The queue as a scrolling list of rows: position, name, reason, time waited, Accept.
#[component]
pub fn QueueView(
    /// The queue, in order.
    queue: RwSignal<Vec<Reservation>>,
    /// The server's time now, in ms (ticks): the waited times follow it.
    #[prop(into)]
    server_now_ms: Signal<i64>,
    /// Whether Accept can be pressed.
    #[prop(into)]
    can_accept: Signal<bool>,
    /// Accepts the customer with this reservation id.
    on_accept: Callback<String>,
    /// Chooses the customer (reservation id, name) for a line of their own.
    on_message: Callback<(String, String)>,
) -> impl IntoView {
    let scroll_top = RwSignal::new(0.0);
    let view_px = RwSignal::new(DEFAULT_VIEW_PX);
    let list = NodeRef::<leptos::html::Div>::new();
    // Where each reservation is in the queue: rows read their place from here, so a row that
    // moves up only changes its position, never its content.
    let index = Memo::new(move |_| {
        queue.with(|l| {
            l.iter()
                .enumerate()
                .map(|(i, r)| (r.reservation_sid.clone(), i))
                .collect::<HashMap<_, _>>()
        })
    });
    let visible = move || {
        let (top, height) = (scroll_top.get(), view_px.get());
        queue.with(|l| {
            let (start, end) = window(l.len(), top, height);
            l[start..end].to_vec()
        })
    };
    let on_scroll = move |_| {
        if let Some(el) = list.get() {
            scroll_top.set(el.scroll_top() as f64);
            view_px.set(el.client_height() as f64);
        }
    };
    Effect::new(move |_| {
        if let Some(el) = list.get() {
            let h = el.client_height() as f64;
            if h > 0.0 {
                view_px.set(h);
            }
        }
    });
    view! {
        // Its height is bounded here as well as in the stylesheet: the window of rows drawn is
        // worked out from it.
        <div class="queue-scroll" role="region" node_ref=list on:scroll=on_scroll tabindex="0"
            style:max-height="min(60vh, 36rem)" style:overflow-y="auto"
            aria-label=move || t("console.queue_label")>
            <ul class="queue-list" role="list"
                style:height=move || format!("{}px", queue.with(Vec::len) as f64 * ROW_PX)>
                <For
                    each=visible
                    key=|r| r.reservation_sid.clone()
                    children=move |r: Reservation| {
                        let sid = r.reservation_sid.clone();
                        let place = {
                            let sid = sid.clone();
                            Memo::new(move |_| index.with(|m| m.get(&sid).copied().unwrap_or(0)))
                        };
                        let customer_name = r.customer_name.clone();
                        let name = move || who(customer_name.as_deref());
                        // Follows the language, as the button's visible text does.
                        let label = {
                            let name = name.clone();
                            move || tf("console.accept_who", &[("who", &name())])
                        };
                        let created = r.created_at.timestamp_millis();
                        let data_sid = sid.clone();
                        let message_label = {
                            let name = name.clone();
                            move || tf("console.message_who", &[("who", &name())])
                        };
                        let message_to = {
                            let (sid, name) = (sid.clone(), name.clone());
                            move |_| on_message.run((sid.clone(), name()))
                        };
                        view! {
                            <li class="queue-row" data-sid=data_sid
                                style:top=move || format!("{}px", place.get() as f64 * ROW_PX)>
                                <span class="place">{move || number(place.get() as i64 + 1)}</span>
                                <span class="who">{name}</span>
                                <span class="waited">{move || tf("console.waiting_for", &[("time", &waited_text(server_now_ms.get() - created))])}</span>
                                {r.reason.clone().map(|reason| {
                                    let title = reason.clone();
                                    view! { <span class="reason" title=title>{reason}</span> }
                                })}
                                <button type="button" class="secondary message-one"
                                    aria-label=message_label
                                    on:click=message_to>
                                    {move || t("console.message")}
                                </button>
                                <button type="button" class="secondary accept-one"
                                    aria-label=label
                                    disabled=move || !can_accept.get()
                                    on:click=move |_| on_accept.run(sid.clone())>
                                    {move || t("console.accept")}
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rows_on_screen_and_a_few_more_are_drawn() {
        assert_eq!(window(0, 0.0, 480.0), (0, 0));
        assert_eq!(window(3, 0.0, 480.0), (0, 3));
        // 480 px show 7 rows (6.67 rounded up), plus 6 below.
        assert_eq!(window(10_000, 0.0, 480.0), (0, 13));
        // Scrolled to row 5,000: 6 above, 7 on screen, 6 below.
        assert_eq!(window(10_000, 5_000.0 * ROW_PX, 480.0), (4_994, 5_013));
        // Past the end (the list shrank under the scroll position): nothing out of range.
        assert_eq!(window(10, 5_000.0 * ROW_PX, 480.0), (10, 10));
        assert_eq!(window(10, -50.0, 0.0), (0, 7));
    }
}
