//! The camera and microphone: asking for them, what a refusal means in words, the devices to
//! choose from, and the choice remembered between the device check and the call.

use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaDeviceInfo, MediaDeviceKind, MediaStream, MediaStreamConstraints};

use crate::i18n::{t, tf};

/// What the person chose in the device check (or the defaults: both on, the browser's
/// devices). Kept in local storage so the call page does not ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChoice {
    pub audio: bool,
    pub video: bool,
    #[serde(default)]
    pub microphone: Option<String>,
    #[serde(default)]
    pub camera: Option<String>,
    #[serde(default)]
    pub speaker: Option<String>,
}

impl Default for DeviceChoice {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            microphone: None,
            camera: None,
            speaker: None,
        }
    }
}

const STORAGE_KEY: &str = "callqueue.devices";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

impl DeviceChoice {
    /// The remembered choice, or the defaults.
    pub fn load() -> Self {
        storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default()
    }

    pub fn save(&self) {
        if let (Some(s), Ok(json)) = (storage(), serde_json::to_string(self)) {
            let _ = s.set_item(STORAGE_KEY, &json);
        }
    }
}

/// Why the camera or microphone could not be had, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    Denied,
    NoDevice,
    Busy,
    Unsupported,
    Other(String),
}

impl MediaError {
    pub fn from_js(e: &JsValue) -> Self {
        let name = e
            .dyn_ref::<web_sys::DomException>()
            .map(|d| d.name())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" | "SecurityError" => Self::Denied,
            "NotFoundError" | "OverconstrainedError" => Self::NoDevice,
            "NotReadableError" | "AbortError" => Self::Busy,
            _ => Self::Other(name),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Denied => t("media.denied").into(),
            Self::NoDevice => t("media.no_device").into(),
            Self::Busy => t("media.busy").into(),
            Self::Unsupported => t("media.unsupported").into(),
            Self::Other(name) => tf("media.failed", &[("name", name)]),
        }
    }
}

fn media_devices() -> Result<web_sys::MediaDevices, MediaError> {
    web_sys::window()
        .ok_or(MediaError::Unsupported)?
        .navigator()
        .media_devices()
        .map_err(|_| MediaError::Unsupported)
}

/// `exact` insists on the device (the person just picked it); otherwise it is a preference the
/// browser may pass over (a remembered device that is gone gives way to another).
fn constraint(on: bool, device: &Option<String>, exact: bool) -> JsValue {
    match (on, device) {
        (false, _) => JsValue::FALSE,
        (true, None) => JsValue::TRUE,
        (true, Some(id)) => {
            let c = web_sys::MediaTrackConstraints::new();
            let wanted = js_sys::Object::new();
            let how = if exact { "exact" } else { "ideal" };
            let _ = js_sys::Reflect::set(&wanted, &how.into(), &JsValue::from_str(id));
            c.set_device_id(&wanted);
            c.into()
        }
    }
}

/// Asks for the chosen devices, preferring the remembered ones. `None` when the choice is to
/// use neither.
pub async fn open(choice: &DeviceChoice) -> Result<Option<MediaStream>, MediaError> {
    open_with(choice, false).await
}

/// [`open`], insisting on the chosen devices when `exact` (a pick made just now: Chromium
/// otherwise keeps to a camera the page already has open).
pub async fn open_with(
    choice: &DeviceChoice,
    exact: bool,
) -> Result<Option<MediaStream>, MediaError> {
    if !choice.audio && !choice.video {
        return Ok(None);
    }
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&constraint(choice.audio, &choice.microphone, exact));
    constraints.set_video(&constraint(choice.video, &choice.camera, exact));
    let promise = media_devices()?
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| MediaError::from_js(&e))?;
    let stream = JsFuture::from(promise)
        .await
        .map_err(|e| MediaError::from_js(&e))?;
    Ok(Some(stream.unchecked_into()))
}

/// Asks for what was chosen; if that fails, for less (audio alone), so a broken camera does not
/// cost the call its sound. Answers the stream, the choice it matches, and the first refusal.
pub async fn open_best(
    choice: &DeviceChoice,
) -> (Option<MediaStream>, DeviceChoice, Option<MediaError>) {
    match open(choice).await {
        Ok(stream) => (stream, choice.clone(), None),
        Err(first) if choice.video && choice.audio && first != MediaError::Denied => {
            let audio_only = DeviceChoice {
                video: false,
                ..choice.clone()
            };
            match open(&audio_only).await {
                Ok(stream) => (stream, audio_only, Some(first)),
                Err(_) => (None, DeviceChoice::none(choice), Some(first)),
            }
        }
        Err(first) => (None, DeviceChoice::none(choice), Some(first)),
    }
}

impl DeviceChoice {
    fn none(from: &Self) -> Self {
        Self {
            audio: false,
            video: false,
            ..from.clone()
        }
    }
}

/// Stops every track of a stream: the camera's light goes off.
pub fn stop(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// A device to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub label: String,
}

/// The cameras, microphones and speakers the browser lets the page see (labels appear once
/// permission is given).
pub async fn devices() -> (Vec<Device>, Vec<Device>, Vec<Device>) {
    let mut cameras = Vec::new();
    let mut microphones = Vec::new();
    let mut speakers = Vec::new();
    let Ok(md) = media_devices() else {
        return (cameras, microphones, speakers);
    };
    let Ok(promise) = md.enumerate_devices() else {
        return (cameras, microphones, speakers);
    };
    let Ok(list) = JsFuture::from(promise).await else {
        return (cameras, microphones, speakers);
    };
    for (i, info) in js_sys::Array::from(&list).iter().enumerate() {
        let Ok(info) = info.dyn_into::<MediaDeviceInfo>() else {
            continue;
        };
        let label = info.label();
        let device = |fallback: &str| Device {
            id: info.device_id(),
            label: if label.is_empty() {
                format!("{fallback} {}", i + 1)
            } else {
                label.clone()
            },
        };
        match info.kind() {
            MediaDeviceKind::Videoinput => cameras.push(device(t("device.camera"))),
            MediaDeviceKind::Audioinput => microphones.push(device(t("device.microphone"))),
            MediaDeviceKind::Audiooutput => speakers.push(device(t("device.speaker"))),
            _ => {}
        }
    }
    (cameras, microphones, speakers)
}

/// Which kind of device a picker chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
}

/// Whether the browser lets a page choose its speaker (`HTMLMediaElement.setSinkId`).
pub fn can_choose_speaker() -> bool {
    let proto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("HTMLMediaElement"))
        .and_then(|c| js_sys::Reflect::get(&c, &"prototype".into()))
        .ok();
    proto.is_some_and(|p| js_sys::Reflect::has(&p, &"setSinkId".into()).unwrap_or(false))
}
