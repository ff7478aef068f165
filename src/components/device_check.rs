//! The device check before a call: a mirrored camera preview, a live microphone level, pickers
//! for camera, microphone (and speaker where the browser lets a page choose), a plain message
//! for each way it can fail, and the choice to go on with audio only or with neither. The
//! choice is remembered for the call page. Nothing is asked for until the person presses the
//! button: never on load.

use std::{cell::RefCell, rc::Rc};

use gloo_timers::callback::Interval;
use leptos::{html::Video, prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;
use web_sys::{AnalyserNode, AudioContext, MediaStream};

use crate::call::media::{self, Device, DeviceChoice, MediaError};
use crate::i18n::t;

/// Where the check stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not started: shows what is chosen and the button.
    Idle,
    Asking,
    /// Devices open: preview and level.
    Live,
    Failed(String),
}

/// The check's state: what the page shows, and the devices it holds while open.
#[derive(Clone, Copy)]
pub struct DeviceCheck {
    pub phase: RwSignal<Phase>,
    pub choice: RwSignal<DeviceChoice>,
    pub cameras: RwSignal<Vec<Device>>,
    pub microphones: RwSignal<Vec<Device>>,
    pub speakers: RwSignal<Vec<Device>>,
    /// The microphone's level, 0 to 1.
    pub level: RwSignal<f64>,
    pub preview: NodeRef<Video>,
    held: StoredValue<Rc<RefCell<Held>>, LocalStorage>,
}

#[derive(Default)]
struct Held {
    stream: Option<MediaStream>,
    audio: Option<AudioContext>,
    meter: Option<Interval>,
    /// Bumped by every start and release: a request for devices that comes back after a newer
    /// start, or after "Continue without", finds it changed and stops what it got (the
    /// browser's prompt may stay open for as long as the person likes).
    attempt: u64,
}

impl Held {
    fn release(&mut self) {
        self.attempt += 1;
        self.meter = None;
        if let Some(a) = self.audio.take() {
            let _ = a.close();
        }
        if let Some(s) = self.stream.take() {
            media::stop(&s);
        }
    }
}

impl DeviceCheck {
    pub fn new() -> Self {
        let check = Self {
            phase: RwSignal::new(Phase::Idle),
            choice: RwSignal::new(DeviceChoice::load()),
            cameras: RwSignal::new(Vec::new()),
            microphones: RwSignal::new(Vec::new()),
            speakers: RwSignal::new(Vec::new()),
            level: RwSignal::new(0.0),
            preview: NodeRef::new(),
            held: StoredValue::new_local(Rc::new(RefCell::new(Held::default()))),
        };
        on_cleanup(move || check.release());
        check
    }

    /// Lets go of the camera and microphone (the preview ends; the choice stays).
    pub fn release(&self) {
        if let Some(held) = self.held.try_get_value() {
            held.borrow_mut().release();
        }
        self.level.try_set(0.0);
    }

    /// Changes the choice, remembers it, and opens the devices again if the check is live.
    pub fn choose(&self, change: impl FnOnce(&mut DeviceChoice)) {
        self.choice.update(change);
        self.choice.with_untracked(DeviceChoice::save);
        if matches!(
            self.phase.get_untracked(),
            Phase::Live | Phase::Failed(_) | Phase::Asking
        ) {
            self.start();
        }
    }

    /// Shows why the devices could not be had.
    pub fn fail(&self, e: &MediaError) {
        self.release();
        self.phase.set(Phase::Failed(e.message()));
    }

    /// Asks for the chosen devices and shows them.
    pub fn start(&self) {
        let check = *self;
        check.release();
        let choice = check.choice.get_untracked();
        if !choice.audio && !choice.video {
            check.phase.set(Phase::Idle);
            return;
        }
        check.phase.set(Phase::Asking);
        let Some(attempt) = check.held.try_with_value(|h| h.borrow().attempt) else {
            return;
        };
        // Still this start's turn: the check is there and nothing newer began.
        let current = move || {
            check
                .held
                .try_get_value()
                .filter(|h| h.borrow().attempt == attempt)
        };
        spawn_local(async move {
            let opened = media::open(&choice).await;
            let Some(held) = current() else {
                if let Ok(Some(s)) = &opened {
                    media::stop(s);
                }
                return;
            };
            let stream = match opened {
                Ok(Some(s)) => s,
                Ok(None) => return,
                Err(e) => {
                    check.fail(&e);
                    return;
                }
            };
            let (cameras, microphones, speakers) = media::devices().await;
            if current().is_none() {
                media::stop(&stream);
                return;
            }
            check.cameras.try_set(cameras);
            check.microphones.try_set(microphones);
            check.speakers.try_set(if media::can_choose_speaker() {
                speakers
            } else {
                Vec::new()
            });
            if let Some(v) = check.preview.get_untracked() {
                let v: &web_sys::HtmlMediaElement = v.as_ref();
                v.set_src_object(Some(&stream));
                if let Ok(p) = v.play() {
                    spawn_local(async move {
                        let _ = wasm_bindgen_futures::JsFuture::from(p).await;
                    });
                }
            }
            let mut h = held.borrow_mut();
            if choice.audio
                && let Some((audio, meter)) = level_meter(&stream, check.level)
            {
                h.audio = Some(audio);
                h.meter = Some(meter);
            }
            h.stream = Some(stream);
            check.phase.try_set(Phase::Live);
        });
    }
}

impl Default for DeviceCheck {
    fn default() -> Self {
        Self::new()
    }
}

/// The microphone's loudness (RMS of the waveform) ten times a second.
fn level_meter(stream: &MediaStream, level: RwSignal<f64>) -> Option<(AudioContext, Interval)> {
    let audio = AudioContext::new().ok()?;
    let source = audio.create_media_stream_source(stream).ok()?;
    let analyser: AnalyserNode = audio.create_analyser().ok()?;
    analyser.set_fft_size(512);
    source.connect_with_audio_node(&analyser).ok()?;
    // A context made without a click may start suspended; the check's button is the click.
    let _ = audio.resume();
    let mut samples = vec![0u8; 512];
    let meter = Interval::new(100, move || {
        analyser.get_byte_time_domain_data(&mut samples);
        let sum: f64 = samples
            .iter()
            .map(|&b| {
                let x = (f64::from(b) - 128.0) / 128.0;
                x * x
            })
            .sum();
        let rms = (sum / samples.len() as f64).sqrt();
        // Speech sits around 0.05–0.3 RMS: scale so a normal voice fills most of the bar.
        level.try_set((rms * 3.0).min(1.0));
    });
    Some((audio, meter))
}

/// What the chosen devices amount to, in words.
pub fn choice_text(c: &DeviceChoice) -> &'static str {
    match (c.audio, c.video) {
        (true, true) => t("device.both_on"),
        (true, false) => t("device.audio_only"),
        (false, true) => t("device.camera_only"),
        (false, false) => t("device.neither"),
    }
}

/// A `<select>` of devices; `pick` applies the chosen id to the check.
fn picker(
    check: DeviceCheck,
    label: &'static str,
    class: &'static str,
    devices: RwSignal<Vec<Device>>,
    selected: fn(&DeviceChoice) -> Option<String>,
    pick: fn(&mut DeviceChoice, String),
) -> impl IntoView {
    let on_change = move |ev: web_sys::Event| {
        let value = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
            .map(|s| s.value())
            .unwrap_or_default();
        check.choose(|c| pick(c, value));
    };
    move || {
        (!devices.with(Vec::is_empty)).then(|| {
            let chosen = check.choice.with(selected);
            view! {
                <label class=format!("picker {class}")>
                    <span>{move || t(label)}</span>
                    <select on:change=on_change>
                        {devices
                            .get()
                            .into_iter()
                            .map(|d| {
                                let is = chosen.as_deref() == Some(d.id.as_str());
                                view! { <option value=d.id.clone() selected=is>{d.label}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
            }
        })
    }
}

/// The device check panel.
#[component]
pub fn DeviceCheckPanel(
    /// The check's state (the page may read the choice).
    check: DeviceCheck,
) -> impl IntoView {
    let live = move || check.phase.get() == Phase::Live;
    let asking = move || check.phase.get() == Phase::Asking;
    let failed = move || match check.phase.get() {
        Phase::Failed(m) => Some(m),
        _ => None,
    };
    let use_both = move |_| {
        check.choice.update(|c| {
            c.audio = true;
            c.video = true;
        });
        check.choice.with_untracked(DeviceChoice::save);
        check.start();
    };
    let audio_only = move |_| {
        check.choose(|c| {
            c.audio = true;
            c.video = false;
        });
        if !matches!(check.phase.get_untracked(), Phase::Live | Phase::Asking) {
            check.start();
        }
    };
    let neither = move |_| {
        check.release();
        check.choice.update(|c| {
            c.audio = false;
            c.video = false;
        });
        check.choice.with_untracked(DeviceChoice::save);
        check.phase.set(Phase::Idle);
    };
    view! {
        <section class="device-check" aria-labelledby="device-check-title">
            <h2 id="device-check-title">{move || t("device.title")}</h2>
            <p class="device-choice">{move || check.choice.with(choice_text)}</p>
            <div class="preview" class:hidden=move || !live() || !check.choice.with(|c| c.video)>
                <video
                    class="self"
                    node_ref=check.preview
                    autoplay=true
                    playsinline=true
                    muted=true
                    aria-label=move || t("device.your_camera")
                ></video>
            </div>
            <Show when=move || live() && check.choice.with(|c| c.audio)>
                <label class="level">
                    <span>{move || t("device.level")}</span>
                    <meter min="0" max="1" low="0.05" value=move || check.level.get()></meter>
                </label>
            </Show>
            {picker(check, "device.camera", "camera", check.cameras, |c| c.camera.clone(), |c, id| c.camera = Some(id))}
            {picker(check, "device.microphone", "microphone", check.microphones, |c| c.microphone.clone(), |c, id| c.microphone = Some(id))}
            {picker(check, "device.speaker", "speaker", check.speakers, |c| c.speaker.clone(), |c, id| c.speaker = Some(id))}
            {move || failed().map(|m| view! { <p class="notice device-error" role="alert">{m}</p> })}
            <div class="device-actions">
                <button
                    type="button"
                    class="secondary check-devices"
                    disabled=asking
                    on:click=use_both
                >
                    {move || if live() { t("device.check_again") } else { t("device.check") }}
                </button>
                <button type="button" class="secondary audio-only" on:click=audio_only>
                    {move || t("device.audio_only")}
                </button>
                <button type="button" class="secondary no-devices" on:click=neither>
                    {move || t("device.continue_without")}
                </button>
            </div>
        </section>
    }
}
