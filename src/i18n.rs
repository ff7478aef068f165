//! Every sentence a person reads, in their language.
//!
//! One catalogue per language (`locales/<code>.txt`: `key = text` lines, `{name}` for a value,
//! `key.one` / `key.other` for the plural forms of a count), compiled into the app. Written by
//! hand rather than with a Fluent crate: `fluent-bundle` with its plural rules and language
//! identifiers adds tens of kilobytes of wasm for what two languages with one-or-many plurals
//! need here; the browser already formats numbers and times per locale (`Intl`, through
//! js-sys), so that costs nothing. A right-to-left language would need only a catalogue and
//! its `dir`: the styles use logical properties.
//!
//! The language follows the browser (`navigator.languages`) until the person picks one in the
//! switcher; the pick is remembered in local storage, and `<html lang>` follows it.

use std::sync::OnceLock;

use leptos::prelude::*;

/// The languages the app speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    /// The BCP 47 tag.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }

    /// The language's name in itself, as the switcher shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::De => "Deutsch",
        }
    }

    /// The language of a tag such as `de-AT`, if the app speaks it.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The first of the browser's preferred languages the app speaks, else English.
    pub fn preferred<'a>(tags: impl IntoIterator<Item = &'a str>) -> Self {
        tags.into_iter()
            .find_map(Self::from_tag)
            .unwrap_or(Self::En)
    }

    /// The plural form a count takes in this language (English and German both have "one"
    /// and "other").
    pub fn plural(self, n: i64) -> &'static str {
        match self {
            Self::En | Self::De => {
                if n == 1 {
                    "one"
                } else {
                    "other"
                }
            }
        }
    }

    fn source(self) -> &'static str {
        match self {
            Self::En => include_str!("../locales/en.txt"),
            Self::De => include_str!("../locales/de.txt"),
        }
    }

    /// The catalogue, read once: `(key, text)` sorted by key.
    pub fn catalogue(self) -> &'static [(&'static str, &'static str)] {
        static EN: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
        static DE: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
        let cell = match self {
            Self::En => &EN,
            Self::De => &DE,
        };
        cell.get_or_init(|| parse(self.source()))
    }

    /// The words another bundle added ([`add_words`]), read once they are there.
    fn added(self) -> &'static [(&'static str, &'static str)] {
        static EN: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
        static DE: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
        let (cell, i) = match self {
            Self::En => (&EN, 0),
            Self::De => (&DE, 1),
        };
        match MORE.get() {
            Some(sources) => cell.get_or_init(|| parse(sources[i])),
            None => &[],
        }
    }

    fn lookup(self, key: &str) -> Option<&'static str> {
        [self.catalogue(), self.added()].into_iter().find_map(|c| {
            c.binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| c[i].1)
        })
    }
}

/// Words only another bundle shows (the specialist's console), in English and German: kept
/// out of the customer's download, added to the catalogue by that bundle before its first word.
static MORE: OnceLock<[&'static str; 2]> = OnceLock::new();

/// Adds a bundle's own catalogues (`[English, German]`, the same `key = text` lines), once;
/// call before the first of those words is looked up.
pub fn add_words(sources: [&'static str; 2]) {
    let _ = MORE.set(sources);
}

/// `key = text` lines; blank lines and `#` comments are skipped.
pub fn parse(source: &str) -> Vec<(&str, &str)> {
    let mut entries: Vec<(&str, &str)> = source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

thread_local! {
    // Reference-counted rather than arena-allocated: it lives as long as the app, outside any
    // component's owner.
    static LANG: ArcRwSignal<Lang> = ArcRwSignal::new(Lang::En);
}

/// The language now (tracked: a view that reads it follows a change).
pub fn lang() -> Lang {
    LANG.with(|l| l.get())
}

/// Switches the language: the page, `<html lang>` and the remembered choice.
pub fn set_lang(lang: Lang) {
    LANG.with(|l| l.set(lang));
    #[cfg(target_arch = "wasm32")]
    {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("lang", lang.code());
        }
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item(STORAGE_KEY, lang.code());
        }
    }
}

/// Where the chosen language is remembered.
pub const STORAGE_KEY: &str = "callqueue.lang";

/// Starts in the remembered language, else the browser's.
pub fn init() {
    #[cfg(target_arch = "wasm32")]
    init_in_browser();
}

#[cfg(target_arch = "wasm32")]
fn init_in_browser() {
    let remembered = window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|code| Lang::from_tag(&code));
    let lang = remembered.unwrap_or_else(|| {
        let tags: Vec<String> = window()
            .navigator()
            .languages()
            .iter()
            .filter_map(|v| v.as_string())
            .collect();
        Lang::preferred(tags.iter().map(String::as_str))
    });
    LANG.with(|l| l.set(lang));
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("lang", lang.code());
    }
}

/// The text of `key` in the current language (English where a catalogue lacks it, the key
/// itself where both do).
pub fn t(key: &'static str) -> &'static str {
    let lang = lang();
    lang.lookup(key)
        .or_else(|| Lang::En.lookup(key))
        .unwrap_or(key)
}

/// [`t`] with `{name}` placeholders filled in.
pub fn tf(key: &'static str, args: &[(&str, &str)]) -> String {
    fill(t(key), args)
}

/// The plural form of `key` for `n` (`key.one` or `key.other`), with `{n}` written as the
/// language writes numbers and the other placeholders filled in.
pub fn tn(key: &'static str, n: i64, args: &[(&str, &str)]) -> String {
    let lang = lang();
    let full = format!("{key}.{}", lang.plural(n));
    let text = lang
        .lookup(&full)
        .or_else(|| Lang::En.lookup(&full))
        .unwrap_or(key);
    let n = number(n);
    let mut all = vec![("n", n.as_str())];
    all.extend_from_slice(args);
    fill(text, &all)
}

pub fn fill(text: &str, args: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// A whole number as the current language writes it (`10,000` / `10.000`).
pub fn number(n: i64) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Number::from(n as f64)
            .to_locale_string(lang().code())
            .into()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        n.to_string()
    }
}

/// A time of day as the current language writes it (`2:05 PM` / `14:05`), in the browser's
/// time zone.
pub fn time_of_day(t: chrono::DateTime<chrono::Utc>) -> String {
    time_of_day_ms(t.timestamp_millis() as f64)
}

/// [`time_of_day`] of an instant in ms since 1970.
pub fn time_of_day_ms(ms: f64) -> String {
    #[cfg(target_arch = "wasm32")]
    {
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"hour".into(), &"numeric".into());
        let _ = js_sys::Reflect::set(&options, &"minute".into(), &"2-digit".into());
        js_sys::Date::new(&ms.into())
            .to_locale_time_string_with_options(lang().code(), &options)
            .into()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .unwrap_or_default()
            .format("%H:%M")
            .to_string()
    }
}

/// The day an instant falls on as the reader names it, in the browser's time zone: `None` for
/// today, the weekday within the coming week (`Monday` / `Montag`), else the weekday and date
/// (`Monday, December 28`).
pub fn day_from_today(t: chrono::DateTime<chrono::Utc>) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let ms = t.timestamp_millis() as f64;
        let date = js_sys::Date::new(&ms.into());
        if date.to_date_string() == js_sys::Date::new_0().to_date_string() {
            return None;
        }
        let options = js_sys::Object::new();
        let set = |k: &str, v: &str| js_sys::Reflect::set(&options, &k.into(), &v.into());
        let _ = set("weekday", "long");
        if ms - js_sys::Date::now() >= 6.0 * 86_400_000.0 {
            let _ = set("day", "numeric");
            let _ = set("month", "long");
        }
        Some(date.to_locale_date_string(lang().code(), &options).into())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Some(t.format("%A").to_string())
    }
}

/// The language switcher: the languages by their own names; the choice is remembered.
#[component]
pub fn LanguageSwitcher() -> impl IntoView {
    let change = move |ev: leptos::ev::Event| {
        if let Some(l) = Lang::from_tag(&event_target_value(&ev)) {
            set_lang(l);
        }
    };
    view! {
        <label class="language">
            <span class="visually-hidden">{move || t("language.label")}</span>
            <select on:change=change>
                {Lang::ALL
                    .into_iter()
                    .map(|l| {
                        view! {
                            <option value=l.code() lang=l.code() selected=move || lang() == l>
                                {l.name()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every word of a language: the app's and the console's.
    fn words(lang: Lang) -> Vec<(&'static str, &'static str)> {
        let console = match lang {
            Lang::En => include_str!("../console/locales/console.en.txt"),
            Lang::De => include_str!("../console/locales/console.de.txt"),
        };
        let mut all = parse(lang.source());
        all.extend(parse(console));
        all
    }

    fn keys(lang: Lang) -> BTreeSet<&'static str> {
        words(lang).iter().map(|(k, _)| *k).collect()
    }

    /// Every `"…"` string literal in the app's sources.
    fn literals() -> BTreeSet<String> {
        fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let mut text = std::fs::read_to_string(&path).unwrap();
                    // Not these tests' own examples.
                    if path.ends_with("i18n.rs") {
                        text.truncate(text.find("#[cfg(test)]").unwrap_or(text.len()));
                    }
                    let mut parts = text.split('"');
                    parts.next();
                    // Every other piece is inside quotes (escaped quotes do not occur in keys).
                    while let Some(inside) = parts.next() {
                        out.insert(inside.to_string());
                        parts.next();
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        // The app's sources and the console's (its own bundle, the same catalogues).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        walk(&root.join("src"), &mut out);
        walk(&root.join("console/src"), &mut out);
        out
    }

    #[test]
    fn every_catalogue_has_every_key_and_no_other() {
        let en = keys(Lang::En);
        assert!(en.len() > 100, "{}", en.len());
        for lang in Lang::ALL {
            let these = keys(lang);
            let missing: Vec<_> = en.difference(&these).collect();
            let extra: Vec<_> = these.difference(&en).collect();
            assert!(missing.is_empty(), "{}: missing {missing:?}", lang.code());
            assert!(
                extra.is_empty(),
                "{}: not in English {extra:?}",
                lang.code()
            );
            // Each key once, and each text with the placeholders of the English one.
            assert_eq!(
                words(lang).len(),
                these.len(),
                "{}: a key twice",
                lang.code()
            );
            let english = words(Lang::En);
            for (key, text) in words(lang) {
                let english = english.iter().find(|(k, _)| *k == key).unwrap().1;
                let holes = |s: &str| {
                    s.split('{')
                        .skip(1)
                        .filter_map(|p| p.split_once('}').map(|(h, _)| h.to_string()))
                        .collect::<BTreeSet<_>>()
                };
                assert_eq!(holes(text), holes(english), "{}: {key}", lang.code());
                assert!(!text.is_empty(), "{}: {key} is empty", lang.code());
            }
        }
    }

    #[test]
    fn every_key_is_used_and_every_used_key_exists() {
        let used = literals();
        let en = keys(Lang::En);
        let base = |k: &str| {
            k.strip_suffix(".one")
                .or_else(|| k.strip_suffix(".other"))
                .unwrap_or(k)
                .to_string()
        };
        let unused: Vec<_> = en
            .iter()
            .filter(|k| !used.contains(**k) && !used.contains(&base(k)))
            .collect();
        assert!(unused.is_empty(), "keys no code uses: {unused:?}");
        // Literals shaped like keys (a known section, a dot, lowercase) must be in it.
        let sections: BTreeSet<String> = en
            .iter()
            .map(|k| k.split('.').next().unwrap().to_string())
            .collect();
        let bases: BTreeSet<String> = en.iter().map(|k| base(k)).collect();
        let unknown: Vec<_> = used
            .iter()
            .filter(|l| {
                l.split_once('.').is_some_and(|(s, rest)| {
                    sections.contains(s)
                        && !rest.is_empty()
                        && rest
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                })
            })
            .filter(|l| !bases.contains(*l))
            .collect();
        assert!(
            unknown.is_empty(),
            "keys missing from the catalogue: {unknown:?}"
        );
    }

    #[test]
    fn the_first_paint_says_what_the_app_says() {
        // index.html paints the home page's heading and lead in English; shell/shell.js puts
        // every other language's in. They must be the catalogue's, or the page changes its
        // words when the app takes over.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let index = std::fs::read_to_string(root.join("index.html")).unwrap();
        let shell = std::fs::read_to_string(root.join("shell/shell.js")).unwrap();
        for key in ["home.title", "home.lead"] {
            let english = Lang::En.lookup(key).unwrap();
            assert!(
                index.contains(&format!(">{english}</")),
                "index.html: {key}"
            );
            for lang in Lang::ALL.into_iter().filter(|l| *l != Lang::En) {
                let text = lang.lookup(key).unwrap();
                assert!(
                    shell.contains(&format!("\"{text}\"")),
                    "shell.js {}: {key}",
                    lang.code()
                );
                assert!(
                    shell.contains(&format!("{}: {{", lang.code())),
                    "shell.js: {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn the_browser_languages_choose_the_first_one_spoken() {
        assert_eq!(Lang::preferred(["fr-FR", "de-AT", "en"]), Lang::De);
        assert_eq!(Lang::preferred(["en-GB", "de"]), Lang::En);
        assert_eq!(Lang::preferred(["fr", "ja"]), Lang::En);
        assert_eq!(Lang::preferred([]), Lang::En);
        assert_eq!(Lang::from_tag("DE_ch"), Some(Lang::De));
    }

    #[test]
    fn texts_follow_the_language_with_plurals_and_values() {
        set_lang(Lang::En);
        assert_eq!(t("home.start"), "Start video chat");
        assert_eq!(tn("wait.minutes", 1, &[]), "About 1 minute");
        assert_eq!(tn("wait.range", 12, &[("low", "8")]), "About 8–12 minutes");
        set_lang(Lang::De);
        assert_eq!(t("home.start"), "Videochat starten");
        assert_eq!(tn("wait.minutes", 1, &[]), "Etwa 1 Minute");
        assert_eq!(tn("wait.minutes", 5, &[]), "Etwa 5 Minuten");
        assert_eq!(t("no.such.key"), "no.such.key");
        set_lang(Lang::En);
    }
}
