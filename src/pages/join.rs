//! `/join/r/:sid`: the call, with its session timer, alerts and (for specialists) extend.

use std::rc::Rc;

use callqueue_protocol::{
    CALL_TYPE_APPOINTMENT, Call, CallEvent, CallResponse, Capability, ReservationStatus, Role,
};
use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_navigate;

use crate::{
    api,
    call::{
        CallMedia, CallView, Presence,
        media::{self, Device, DeviceChoice, DeviceKind},
        other_side,
    },
    components::{
        alerts::{EndingSoonAlert, TimeUpAlert},
        busy::{BusyButton, ErrorNote},
        chat::ChatPanel,
        connection::ConnectionIndicator,
        extend_button::ExtendButton,
        feedback::FeedbackForm,
        session_timer::SessionTimer,
    },
    i18n::t,
    live::{LiveHandle, LiveOptions, PollFuture, Transport, use_live},
    logic::{
        clock::{ClockOffset, ms_to_next_second, remaining_ms},
        status::route_for,
    },
    pages::{replace, route_sid, use_document_title},
    ticker::{now_ms, use_ticker},
};

/// What the join page knows about its call.
#[derive(Clone, Copy)]
pub struct CallState {
    pub call: RwSignal<Option<Call>>,
    pub capabilities: RwSignal<Vec<Capability>>,
    pub role: RwSignal<Option<Role>>,
    pub offset: RwSignal<ClockOffset>,
    /// The customer's check-in (name, reason): the server sends it to the specialist only.
    pub check_in: RwSignal<(Option<String>, Option<String>)>,
}

impl CallState {
    pub fn new() -> Self {
        Self {
            call: RwSignal::new(None),
            capabilities: RwSignal::new(Vec::new()),
            role: RwSignal::new(None),
            offset: RwSignal::new(ClockOffset::default()),
            check_in: RwSignal::new((None, None)),
        }
    }

    fn take_response(&self, r: CallResponse) -> bool {
        self.capabilities.set(r.own_capabilities);
        self.role.set(Some(r.own_role));
        if r.customer_name.is_some() || r.reason.is_some() {
            self.check_in.set((r.customer_name, r.reason));
        }
        self.take_call(r.call, r.server_time)
    }

    /// Takes a newer copy of the call; answers whether what is shown changed. An ended call
    /// never comes back to life.
    pub fn take_call(&self, call: Call, server_time: chrono::DateTime<chrono::Utc>) -> bool {
        // A request that finishes after the page has gone finds its signals disposed.
        let Some(current) = self.call.try_get_untracked() else {
            return false;
        };
        self.offset
            .set(ClockOffset::measure(server_time, now_ms() as i64));
        if current
            .as_ref()
            .is_some_and(|c| c.session.ended_at.is_some() && call.session.ended_at.is_none())
        {
            return false;
        }
        let changed = current.as_ref() != Some(&call);
        if changed {
            self.call.set(Some(call));
        }
        changed
    }

    /// Takes one call stream event's data, as the page does: a malformed one is logged and
    /// changes nothing.
    pub fn take_event(&self, data: &str) -> bool {
        match serde_json::from_str::<CallEvent>(data) {
            Ok(event) => self.take_call(event.call, event.server_time),
            Err(e) => {
                leptos::logging::warn!("ignored a malformed call event: {e}");
                false
            }
        }
    }

    /// Milliseconds left by the server's clock, `None` before the session starts.
    pub fn remaining_ms(&self, local_now_ms: f64) -> Option<i64> {
        let call = self.call.get();
        let offset = self.offset.get();
        let call = call?;
        if call.session.ended_at.is_some() {
            return Some(0);
        }
        call.session
            .timer_ends_at
            .map(|t| remaining_ms(t, offset.server_now_ms(local_now_ms as i64)))
    }
}

impl Default for CallState {
    fn default() -> Self {
        Self::new()
    }
}

/// The two videos (theirs large, ours small and mirrored), what the stage says over them, the
/// connection's quality, and the microphone and camera switches.
#[component]
fn VideoStage(
    view: CallView,
    role: RwSignal<Option<Role>>,
    ended: Signal<bool>,
    media: StoredValue<Option<CallMedia>, LocalStorage>,
) -> impl IntoView {
    let other = move || other_side(role.get());
    let status = move || {
        if ended.get() {
            None
        } else {
            view.status(other())
        }
    };
    let peer_muted = move || {
        !ended.get() && view.presence.get() == Presence::Here && !view.peer_media.get().audio
    };
    let toggle_mic = move |_| {
        let on = !view.mic.get_untracked();
        media.with_value(|m| {
            if let Some(m) = m {
                m.set_mic(on);
            }
        });
    };
    let toggle_camera = move |_| {
        let on = !view.camera.get_untracked();
        media.with_value(|m| {
            if let Some(m) = m {
                m.set_camera(on);
            }
        });
    };
    view! {
        <div class="video-stage">
            <video
                class="remote"
                node_ref=view.remote_video
                autoplay=true
                playsinline=true
                aria-label=move || if other() == Role::Specialist { t("video.specialist_video") } else { t("video.customer_video") }
            ></video>
            {move || status().map(|s| view! { <p class="stage-status" role="status">{s}</p> })}
            <Show when=move || view.needs_tap.get() && !ended.get()>
                <button
                    type="button"
                    class="tap-to-play"
                    on:click=move |_| media.with_value(|m| {
                        if let Some(m) = m {
                            m.play_remote();
                        }
                    })
                >
                    {move || t("video.tap_to_play")}
                </button>
            </Show>
            <Show when=peer_muted>
                <span class="badge peer-muted">{move || if other() == Role::Specialist { t("video.specialist_muted") } else { t("video.customer_muted") }}</span>
            </Show>
            {move || view.quality.get().filter(|_| !ended.get()).map(|q| view! {
                <span class=format!("badge quality {}", q.class())>{move || t(q.label())}</span>
            })}
            <video
                class="self"
                node_ref=view.local_video
                autoplay=true
                playsinline=true
                muted=true
                aria-label=move || t("video.yours")
            ></video>
        </div>
        <Show when=move || !ended.get() && !view.replaced.get()>
            <div class="media-controls">
                <button
                    type="button"
                    class="secondary toggle mic"
                    aria-pressed=move || (!view.mic.get()).to_string()
                    on:click=toggle_mic
                >
                    {move || if view.mic.get() { t("video.mute") } else { t("video.unmute") }}
                </button>
                <button
                    type="button"
                    class="secondary toggle camera"
                    aria-pressed=move || (!view.camera.get()).to_string()
                    disabled=move || view.switching.get()
                    on:click=toggle_camera
                >
                    {move || if view.camera.get() { t("video.camera_off") } else { t("video.camera_on") }}
                </button>
            </div>
        </Show>
        <Show when=move || !ended.get() && !view.replaced.get()>
            <CallDevices media=media/>
        </Show>
        {move || view.media_error.get().map(|e| view! { <p class="notice media-error">{e}</p> })}
    }
}

/// During the call: which camera, microphone and speaker to use, behind a disclosure so the
/// stage stays clear. The lists are read each time it opens (a device plugged in meanwhile
/// shows up; their names need the permission the call already has).
#[component]
fn CallDevices(media: StoredValue<Option<CallMedia>, LocalStorage>) -> impl IntoView {
    let lists = RwSignal::new(None::<(Vec<Device>, Vec<Device>, Vec<Device>)>);
    let chosen = RwSignal::new(DeviceChoice::default());
    let toggled = move |ev: leptos::ev::Event| {
        let open = ev
            .target()
            .and_then(|t| js_sys::Reflect::get(&t, &"open".into()).ok())
            .and_then(|o| o.as_bool())
            .unwrap_or(false);
        if !open {
            return;
        }
        media.with_value(|m| {
            if let Some(m) = m {
                chosen.set(m.choice());
            }
        });
        spawn_local(async move {
            let (cameras, microphones, speakers) = media::devices().await;
            let speakers = if media::can_choose_speaker() {
                speakers
            } else {
                Vec::new()
            };
            lists.try_set(Some((cameras, microphones, speakers)));
        });
    };
    let pick = move |kind: DeviceKind, id: String| {
        media.with_value(|m| {
            if let Some(m) = m {
                m.use_device(kind, id);
                chosen.set(m.choice());
            }
        });
    };
    let select = move |kind: DeviceKind, devices: Vec<Device>, current: Option<String>| {
        let (label, class) = match kind {
            DeviceKind::Camera => ("device.camera", "camera"),
            DeviceKind::Microphone => ("device.microphone", "microphone"),
            DeviceKind::Speaker => ("device.speaker", "speaker"),
        };
        (!devices.is_empty()).then(|| {
            view! {
                <label class=format!("picker {class}")>
                    <span>{move || t(label)}</span>
                    <select on:change=move |ev| pick(kind, event_target_value(&ev))>
                        {devices
                            .into_iter()
                            .map(|d| {
                                let is = current.as_deref() == Some(d.id.as_str());
                                view! { <option value=d.id.clone() selected=is>{d.label}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
            }
        })
    };
    view! {
        <details class="call-devices" on:toggle=toggled>
            <summary>{move || t("device.title")}</summary>
            {move || {
                let c = chosen.get();
                lists.get().map(|(cameras, microphones, speakers)| view! {
                    {select(DeviceKind::Camera, cameras, c.camera.clone())}
                    {select(DeviceKind::Microphone, microphones, c.microphone.clone())}
                    {select(DeviceKind::Speaker, speakers, c.speaker.clone())}
                })
            }}
        </details>
    }
}

/// The call page.
#[component]
pub fn Join() -> impl IntoView {
    let sid = route_sid();
    let navigate = use_navigate();
    let state = CallState::new();
    let (error, set_error) = signal(None::<String>);
    let (extending, set_extending) = signal(false);
    let (leaving, set_leaving) = signal(false);
    // The call, once the first read found it: (type, id).
    let found = RwSignal::new(None::<(String, String)>);
    let view = CallView::new();
    let media = StoredValue::new_local(None::<CallMedia>);
    on_cleanup(move || {
        media.try_update_value(|m| m.take());
    });

    {
        let sid = sid.clone();
        let navigate = navigate.clone();
        spawn_local(async move {
            let reservation = match api::reservation(api::GROUP, &sid).await {
                Ok(r) => r,
                Err(e) if e.status() == Some(404) || e.status() == Some(400) => {
                    set_error.try_set(Some(t("join.missing").to_string()));
                    return;
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    return;
                }
            };
            let call_id = match (reservation.reservation_status, reservation.call_id) {
                (ReservationStatus::Matched, Some(id)) => id,
                (status, _) => {
                    navigate(&route_for(status, &sid), replace());
                    return;
                }
            };
            let call_type = reservation
                .call_type
                .unwrap_or_else(|| CALL_TYPE_APPOINTMENT.to_string());
            // The session length the specialist chose in the console for this customer (only
            // their browser has one), used once.
            let length_key = crate::storage::session_length_key(&sid);
            let length = crate::storage::get_session(&length_key).and_then(|s| s.parse().ok());
            // Joining an ended call is refused; then show it as it ended.
            let response = match api::join_call(&call_type, &call_id, length).await {
                Ok(r) => Ok(r),
                Err(e) if e.status() == Some(409) => api::call(&call_type, &call_id).await,
                // The chosen length would already be over (the customer started long ago).
                Err(e) if e.status() == Some(422) && length.is_some() => {
                    api::join_call(&call_type, &call_id, None).await
                }
                Err(e) => Err(e),
            };
            match response {
                Ok(r) => {
                    if length.is_some() {
                        crate::storage::remove_session(&length_key);
                    }
                    state.take_response(r);
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    return;
                }
            }
            // The video: only for a call still going on.
            let going = state
                .call
                .with_untracked(|c| c.as_ref().is_some_and(|c| c.session.ended_at.is_none()));
            if going {
                let started = CallMedia::start(api::signal_url(&call_type, &call_id), view);
                media.try_update_value(move |m| *m = Some(started));
            } else {
                // Over before the page opened: what was said, from the transcript.
                if let Some(lines) = api::transcript(&call_type, &call_id).await {
                    view.chat.try_set(lines);
                    view.me.try_set(state.role.get_untracked());
                }
            }
            found.try_set(Some((call_type, call_id)));
        });
    }

    let poll = Rc::new(move || {
        let found = found.get_untracked();
        Box::pin(async move {
            let (call_type, call_id) = found.ok_or(())?;
            let r = api::call(&call_type, &call_id).await.map_err(|_| ())?;
            Ok(state.take_response(r))
        }) as PollFuture
    });
    let connection = use_live(
        Signal::derive(move || {
            found.with(|f| {
                f.as_ref()
                    .map(|(call_type, call_id)| api::call_events_url(call_type, call_id))
            })
        }),
        LiveOptions {
            transport: Transport::EventSource {
                events: &["call.updated", "call.session_started", "call.ended"],
            },
            on_message: Rc::new(move |_: &LiveHandle, _: &str, data: &str| {
                state.take_event(data);
            }),
            poll: Some(poll),
            ..Default::default()
        },
    )
    .state;

    // One tick source, on the second boundary of the time left.
    let tick = use_ticker(move |now| {
        state
            .call
            .with_untracked(|c| c.as_ref().and_then(|c| c.session.timer_ends_at))
            .map_or(1_000, |t| {
                let server_now = state.offset.get_untracked().server_now_ms(now as i64);
                ms_to_next_second(remaining_ms(t, server_now))
            })
    });
    let remaining = Signal::derive(move || {
        tick.track();
        state.remaining_ms(now_ms())
    });
    let ended_reason = Signal::derive(move || {
        state
            .call
            .with(|c| c.as_ref().and_then(|c| c.session.ended_reason))
    });
    let ended = move || {
        state
            .call
            .with(|c| c.as_ref().is_some_and(|c| c.session.ended_at.is_some()))
    };
    // When the call ends, for whatever reason, every track stops and the connection closes,
    // and the start page no longer offers the way back to it.
    Effect::new(move |_| {
        if ended() {
            crate::storage::remove(crate::storage::RESERVATION);
            media.try_update_value(|m| {
                if let Some(m) = m.take() {
                    m.stop();
                }
            });
        }
    });
    // The other member's messages not seen yet: counted in the tab's title too.
    let unread = RwSignal::new(0u32);
    use_document_title(move || {
        let title = if ended() {
            t("join.tab_ended")
        } else {
            t("join.tab_in_call")
        };
        Some(match unread.get() {
            0 => title.to_string(),
            n => format!("({n}) {title}"),
        })
    });
    let send_chat = Callback::new(move |text: String| {
        media.with_value(|m| {
            if let Some(m) = m {
                m.send_chat(text);
            }
        });
    });

    let extend = Callback::new(move |by: u32| {
        let Some(call) = state.call.get_untracked() else {
            return;
        };
        set_extending.set(true);
        set_error.set(None);
        spawn_local(async move {
            let target = call.settings.limits.max_duration_seconds + by;
            match api::set_max_duration(&call.call_type, &call.id, target).await {
                Ok(r) => {
                    state.take_response(r);
                }
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                }
            }
            set_extending.try_set(false);
        });
    });

    let leave_to = crate::use_leave_to();
    let leave = move |()| {
        if leaving.get_untracked() {
            return;
        }
        let specialist = state.role.get_untracked() == Some(Role::Specialist);
        let Some(call) = state.call.get_untracked() else {
            leave_to(specialist);
            return;
        };
        set_leaving.set(true);
        media.try_update_value(|m| {
            if let Some(m) = m.take() {
                m.stop();
            }
        });
        let leave_to = leave_to.clone();
        spawn_local(async move {
            // Leaving an ended call is refused (409); either way the customer is done here.
            match api::leave_call(&call.call_type, &call.id).await {
                Ok(_) => leave_to(specialist),
                Err(e) if e.status() == Some(409) => leave_to(specialist),
                Err(e) => {
                    set_error.try_set(Some(e.to_string()));
                    set_leaving.try_set(false);
                }
            }
        });
    };

    view! {
        <section class="card join">
            <h1 class="eyebrow">
                {move || {
                    if ended() {
                        t("join.ended")
                    } else if state.role.get() == Some(Role::Specialist) {
                        t("join.with_customer")
                    } else {
                        t("join.with_specialist")
                    }
                }}
            </h1>
            // The specialist sees who they are talking to and why they came.
            {move || {
                let (name, reason) = state.check_in.get();
                (name.is_some() || reason.is_some()).then(|| view! {
                    <div class="check-in-card">
                        <p class="who">{name.unwrap_or_else(|| t("console.a_customer").to_string())}</p>
                        {reason.map(|r| view! { <p class="reason">{r}</p> })}
                    </div>
                })
            }}
            <VideoStage view=view role=state.role ended=Signal::derive(ended) media=media/>
            <ChatPanel view=view send=send_chat unread=unread ended=Signal::derive(ended)/>
            <SessionTimer remaining_ms=remaining/>
            <EndingSoonAlert remaining_ms=remaining/>
            <TimeUpAlert remaining_ms=remaining ended_reason=ended_reason role=state.role/>
            // The customer is asked how it went, once the call has ended.
            {move || (ended() && state.role.get() == Some(Role::Patient))
                .then(|| found.get())
                .flatten()
                .map(|(call_type, call_id)| view! { <FeedbackForm call_type=call_type call_id=call_id/> })}
            <div class="actions">
                <Show when=move || !ended()>
                    <ExtendButton
                        capabilities=state.capabilities
                        on_extend=extend
                        busy=extending
                    />
                </Show>
                <BusyButton
                    class="secondary leave"
                    label=Signal::derive(move || if ended() { "join.done" } else { "join.leave" })
                    working="join.leaving"
                    busy=leaving
                    on_press=Callback::new(leave)
                />
            </div>
            <ErrorNote error=error/>
            <ConnectionIndicator state=connection/>
        </section>
    }
}
