//! The words of every text and email, in the user's language, under the application's own
//! name (its policy `display_name`), with every code text fitting one SMS segment.
//!
//! # Where the words live
//!
//! One JSON file per language in `shared/src/messages/locales/` (`en.json`, `es.json`,
//! `fr.json`, `de.json`, `pt-BR.json`, `ja.json`): a flat object from a key
//! (`code_text`, `phone_added_subject`, `label_when`, ...) to a template. A template names
//! its values as placeholders: `{app}` (the display name), `{code}`, `{minutes}`. The files
//! are embedded with `include_str!` and parsed once, on first use. English is the reference:
//! a test checks that every language has exactly its keys and, key by key, its placeholders,
//! and that rendering leaves no `{...}` behind. A key missing at run time falls back to the
//! English words (and fails a debug assertion, so the tests catch it).
//!
//! # Adding a language
//!
//! 1. Copy `locales/en.json` to `locales/{tag}.json` and translate every value, keeping the
//!    placeholders.
//! 2. Add a [`Lang`] variant, its tag in [`Lang::tag`], its place in [`Lang::ALL`] and in
//!    `SOURCES` below, its language subtag in [`Lang::resolve`], and whether it is written in
//!    the Latin script ([`Lang::is_latin`]).
//! 3. Run `cargo test -p mfa-shared messages`: the key and placeholder check, and the segment
//!    budget of its code texts (shorten `code_text_short` if that fails).
//!
//! # SMS segments
//!
//! [`sms::segments`] counts a text: GSM-7 (160 septets in one part, 153 per part when
//! concatenated, an extension character such as `€` or `{` counting 2) when every character is
//! in the GSM 03.38 alphabet, otherwise UCS-2 (70 UTF-16 units in one part, 67 per part). A
//! code text in a Latin-script language goes through [`sms::to_gsm7`] (display name included)
//! and fits one GSM-7 segment; a code text in another script fits one UCS-2 segment without the
//! WebOTP line and two with it. [`code_text`] falls back to a shorter wording (without "never
//! share it") when the full one would not fit, which only a long name of extension characters
//! or a long WebOTP domain causes.
//!
//! # Emails
//!
//! Every email has a subject, a `text/plain` body and a `text/html` body, all in the voice's
//! language and naming the display name; every value interpolated into the HTML (the name, a
//! masked number, a label) is escaped. No message carries more than a masked number.

pub mod locale;
pub mod sms;

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use locale::{BadLocale, Lang, Locale};

use crate::ports::Email;
use crate::types::{Code, PhoneNumber, UnixTime};

/// Who speaks: the application's display name and the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Voice<'a> {
    /// The application's display name (the policy's `display_name`, 1-30 characters).
    pub app: &'a str,
    pub lang: Lang,
}

/// The data files, in the order of [`Lang::ALL`].
const SOURCES: [(Lang, &str); 6] = [
    (Lang::En, include_str!("locales/en.json")),
    (Lang::Es, include_str!("locales/es.json")),
    (Lang::Fr, include_str!("locales/fr.json")),
    (Lang::De, include_str!("locales/de.json")),
    (Lang::PtBr, include_str!("locales/pt-BR.json")),
    (Lang::Ja, include_str!("locales/ja.json")),
];

type Catalog = BTreeMap<String, String>;

fn catalogs() -> &'static [Catalog; 6] {
    static CATALOGS: OnceLock<[Catalog; 6]> = OnceLock::new();
    // A file that does not parse is empty here (every key then falls back to English); the
    // tests parse every file strictly.
    CATALOGS.get_or_init(|| SOURCES.map(|(_, json)| serde_json::from_str(json).unwrap_or_default()))
}

fn index(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Es => 1,
        Lang::Fr => 2,
        Lang::De => 3,
        Lang::PtBr => 4,
        Lang::Ja => 5,
    }
}

/// The template for `key` in `lang`, else in English.
fn phrase(lang: Lang, key: &str) -> &'static str {
    let all = catalogs();
    let found = all[index(lang)].get(key).or_else(|| all[0].get(key));
    debug_assert!(found.is_some(), "no message {key:?} in {}", lang.tag());
    found.map(String::as_str).unwrap_or("")
}

/// Replaces each `{name}` in `template` by its value, in one pass (a value that itself
/// contains `{code}` is left as it is). An unknown placeholder is kept (the tests refuse it).
fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after
            .find('}')
            .and_then(|close| Some((close, args.iter().find(|(k, _)| *k == &after[..close])?)));
        match value {
            Some((close, (_, v))) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The template for `key` in the voice's language with the display name filled in.
fn say(voice: &Voice, key: &str) -> String {
    fill(phrase(voice.lang, key), &[("app", voice.app)])
}

/// Whether a code text is within its segment budget: one GSM-7 segment for a Latin-script
/// language; for another script one UCS-2 segment, or two with the WebOTP line.
pub fn within_budget(lang: Lang, text: &str, with_webotp_line: bool) -> bool {
    let s = sms::segments(text);
    if lang.is_latin() {
        s.encoding == sms::Encoding::Gsm7 && s.parts == 1
    } else if with_webotp_line {
        s.parts <= 2
    } else {
        s.parts == 1
    }
}

/// The code text in the wording of `key` (`code_text` or `code_text_short`).
fn code_text_as(
    voice: &Voice,
    key: &str,
    code: &Code,
    ttl_secs: u64,
    webotp_domain: Option<&str>,
) -> String {
    let minutes = ttl_secs.div_ceil(60).to_string();
    let mut text = fill(
        phrase(voice.lang, key),
        &[
            ("code", code.expose()),
            ("app", voice.app),
            ("minutes", &minutes),
        ],
    );
    if let Some(domain) = webotp_domain {
        text.push_str(&format!("\n@{domain} #{}", code.expose()));
    }
    if voice.lang.is_latin() {
        text = sms::to_gsm7(&text);
    }
    text
}

/// The verification text: the code first (phone previews and tests read the first 6
/// characters), the display name, the lifetime in whole minutes and, in the full wording, never
/// to share it. With `webotp_domain` the last line is exactly `@{domain} #{code}` (WebOTP, the
/// origin-bound one-time code browsers autofill). In a Latin-script language the whole text is
/// GSM-7 ([`sms::to_gsm7`]). When the full wording is over [`within_budget`], the shorter one
/// (code, name, lifetime) is sent.
pub fn code_text(voice: &Voice, code: &Code, ttl_secs: u64, webotp_domain: Option<&str>) -> String {
    let full = code_text_as(voice, "code_text", code, ttl_secs, webotp_domain);
    if within_budget(voice.lang, &full, webotp_domain.is_some()) {
        full
    } else {
        code_text_as(voice, "code_text_short", code, ttl_secs, webotp_domain)
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The email confirming that a phone now protects the account (its first factor).
pub fn enrolled_email(voice: &Voice, to: &str, number: &PhoneNumber, at: UnixTime) -> Email {
    let masked = number.masked();
    let when = at.rfc3339();
    let intro = say(voice, "enrolled_intro");
    let phone = phrase(voice.lang, "label_phone");
    let when_label = phrase(voice.lang, "label_when");
    let next = phrase(voice.lang, "enrolled_next");
    let advice = phrase(voice.lang, "enrolled_advice");
    let sep = phrase(voice.lang, "label_separator");
    let text =
        format!("{intro}\n\n{phone}{sep}{masked}\n{when_label}{sep}{when}\n\n{next}\n\n{advice}");
    let html = format!(
        "<p>{}</p><p>{}{s}<strong>{}</strong><br>{}{s}{}</p><p>{}</p><p>{}</p>",
        escape_html(&intro),
        escape_html(phone),
        escape_html(&masked),
        escape_html(when_label),
        escape_html(&when),
        escape_html(next),
        escape_html(advice),
        s = escape_html(sep),
    );
    Email {
        to: to.to_owned(),
        subject: say(voice, "enrolled_subject"),
        text,
        html,
    }
}

/// A security notice: what changed (`intro`), the facts (label keys and values), when, and
/// what to do if it was not the user.
fn notice(
    voice: &Voice,
    to: &str,
    subject: &str,
    intro: &str,
    lines: &[(&str, String)],
    at: UnixTime,
) -> Email {
    let what = say(voice, intro);
    let when = at.rfc3339();
    let mut text = format!("{what}\n\n");
    let mut html = format!("<p>{}</p><p>", escape_html(&what));
    let sep = phrase(voice.lang, "label_separator");
    let sep_html = escape_html(sep);
    for (key, value) in lines {
        let label = phrase(voice.lang, key);
        text.push_str(&format!("{label}{sep}{value}\n"));
        html.push_str(&format!(
            "{}{sep_html}<strong>{}</strong><br>",
            escape_html(label),
            escape_html(value)
        ));
    }
    let when_label = phrase(voice.lang, "label_when");
    text.push_str(&format!("{when_label}{sep}{when}\n\n"));
    html.push_str(&format!(
        "{}{sep_html}{}</p>",
        escape_html(when_label),
        escape_html(&when)
    ));
    let advice = say(voice, "advice");
    text.push_str(&advice);
    html.push_str(&format!("<p>{}</p>", escape_html(&advice)));
    Email {
        to: to.to_owned(),
        subject: say(voice, subject),
        text,
        html,
    }
}

/// A phone was added from settings.
pub fn phone_added_email(voice: &Voice, to: &str, number: &PhoneNumber, at: UnixTime) -> Email {
    notice(
        voice,
        to,
        "phone_added_subject",
        "phone_added_intro",
        &[("label_phone", number.masked())],
        at,
    )
}

/// A phone's number was changed.
pub fn phone_replaced_email(
    voice: &Voice,
    to: &str,
    old: &PhoneNumber,
    new: &PhoneNumber,
    at: UnixTime,
) -> Email {
    notice(
        voice,
        to,
        "phone_replaced_subject",
        "phone_replaced_intro",
        &[
            ("label_old_number", old.masked()),
            ("label_new_number", new.masked()),
        ],
        at,
    )
}

/// A phone was removed (and, if it was the last, two-step verification with it).
pub fn phone_removed_email(
    voice: &Voice,
    to: &str,
    number: &PhoneNumber,
    last: bool,
    at: UnixTime,
) -> Email {
    let intro = if last {
        "phone_removed_last_intro"
    } else {
        "phone_removed_intro"
    };
    notice(
        voice,
        to,
        "phone_removed_subject",
        intro,
        &[("label_phone", number.masked())],
        at,
    )
}

/// An administrator reset the user's MFA: the phones removed, and whether an authenticator
/// app was.
pub fn reset_email(
    voice: &Voice,
    to: &str,
    removed: &[PhoneNumber],
    app_removed: bool,
    at: UnixTime,
) -> Email {
    let phones = if removed.is_empty() {
        phrase(voice.lang, "value_none").to_owned()
    } else {
        removed
            .iter()
            .map(PhoneNumber::masked)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let app = phrase(
        voice.lang,
        if app_removed { "value_yes" } else { "value_no" },
    );
    notice(
        voice,
        to,
        "reset_subject",
        "reset_intro",
        &[
            ("label_phones_removed", phones),
            ("label_app_removed", app.to_owned()),
        ],
        at,
    )
}

/// A new set of recovery codes was made (the old set no longer works).
pub fn recovery_codes_created_email(voice: &Voice, to: &str, at: UnixTime) -> Email {
    notice(
        voice,
        to,
        "recovery_codes_created_subject",
        "recovery_codes_created_intro",
        &[],
        at,
    )
}

/// A recovery code was used to sign in; `remaining` codes are left.
pub fn recovery_code_used_email(voice: &Voice, to: &str, remaining: u32, at: UnixTime) -> Email {
    notice(
        voice,
        to,
        "recovery_code_used_subject",
        "recovery_code_used_intro",
        &[("label_codes_left", remaining.to_string())],
        at,
    )
}

/// An authenticator app now protects the account: the first factor (`first`), another beside
/// the phones, or a new app in place of the previous one (`replaced`).
pub fn app_added_email(
    voice: &Voice,
    to: &str,
    label: Option<&str>,
    first: bool,
    replaced: bool,
    at: UnixTime,
) -> Email {
    let (subject, intro) = if first {
        ("app_added_first_subject", "app_added_first_intro")
    } else if replaced {
        ("app_replaced_subject", "app_replaced_intro")
    } else {
        ("app_added_subject", "app_added_intro")
    };
    notice(
        voice,
        to,
        subject,
        intro,
        &[("label_authenticator_app", app_label(voice, label))],
        at,
    )
}

/// The authenticator app was removed (`last`: it was the last factor).
pub fn app_removed_email(
    voice: &Voice,
    to: &str,
    label: Option<&str>,
    last: bool,
    at: UnixTime,
) -> Email {
    let intro = if last {
        "app_removed_last_intro"
    } else {
        "app_removed_intro"
    };
    notice(
        voice,
        to,
        "app_removed_subject",
        intro,
        &[("label_authenticator_app", app_label(voice, label))],
        at,
    )
}

fn app_label(voice: &Voice, label: Option<&str>) -> String {
    label
        .map(str::to_owned)
        .unwrap_or_else(|| phrase(voice.lang, "value_no_name").to_owned())
}

#[cfg(test)]
mod tests;
