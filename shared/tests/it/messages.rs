//! Messages people trust and read (contract v2, "Messages"): the texts and emails a user
//! receives, read from the outbox after the real flows, name the application by its display
//! name, speak the user's language (falling back from region to language to English), end
//! with the WebOTP line when the policy names a domain, and fit their segments. Each case runs
//! on the in-memory store and (when `MFA_TEST_MOTO_URL` names a moto server; `#[ignore]`d
//! otherwise) on DynamoDB.

use std::sync::Arc;

use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::Limits;
use mfa_shared::flows::{Caller, challenge, policy, recovery};
use mfa_shared::messages::sms::{Encoding, segments};
use mfa_shared::messages::{self, Lang, Voice};
use mfa_shared::ports::Store;
use mfa_shared::types::{Code, DisplayName, Enforcement, WebOtpDomain};

use crate::kit::{self, PASSWORD, T0, World, unique};

kit::on_both!(
    "mfa-messages",
    a_spanish_user_reads_spanish_under_the_display_name,
    a_japanese_user_reads_japanese_and_the_webotp_line,
    locales_fall_back_from_region_to_language_to_english,
    every_code_text_sent_fits_its_segments,
    the_display_name_is_escaped_in_html_and_defaults_to_the_id,
);

/// A fresh application on `store`, MFA enabled, named `name` (if any) with `domain` (if any).
async fn world(store: Arc<dyn Store>, name: Option<&str>, domain: Option<&str>) -> World {
    let w = kit::deployment(store, Limits::default(), T0, &unique("app")).await;
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement: Enforcement::Optional,
        allowed_countries: None,
        factors: None,
        display_name: Some(name.map(|n| DisplayName::parse(n).unwrap())),
        webotp_domain: Some(domain.map(|d| WebOtpDomain::parse(d).unwrap())),
        grace_period_days: None,
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
    w
}

/// The newest text's body.
fn last_text(w: &World) -> String {
    w.outbox.snapshot().sms.last().expect("a text").body.clone()
}

/// The newest email: subject, text part, HTML part.
fn last_email(w: &World) -> (String, String, String) {
    let e = w.outbox.snapshot().email.last().cloned().expect("an email");
    (e.subject, e.text, e.html)
}

/// What `messages` says `lang` reads for the newest text's code.
fn expected(w: &World, app: &str, lang: Lang, domain: Option<&str>) -> String {
    let code = Code::parse(&last_text(w)[..6]).unwrap();
    messages::code_text(&Voice { app, lang }, &code, 600, domain)
}

async fn a_spanish_user_reads_spanish_under_the_display_name(store: Arc<dyn Store>) {
    let w = world(store, Some("Acme Travel"), None).await;
    let c = w.user_speaking("ada", "es").await;
    w.enroll(&c, "+14155550101", None).await;
    let text = last_text(&w);
    assert_eq!(text, expected(&w, "Acme Travel", Lang::Es, None));
    assert!(
        text.contains("es tu codigo de verificacion de Acme Travel"),
        "Spanish, in GSM-7 letters: {text}"
    );
    let s = segments(&text);
    assert_eq!((s.encoding, s.parts), (Encoding::Gsm7, 1), "{text}");
    let (subject, body, html) = last_email(&w);
    assert!(subject.contains("Acme Travel"), "{subject}");
    assert!(subject.contains("verificación en dos pasos"), "{subject}");
    assert!(body.contains("Teléfono: +1••••••0101"), "{body}");
    assert!(html.contains("Acme Travel"), "{html}");
    // A sign-in text and a recovery-codes email, in Spanish too.
    challenge::start(&w.svc, &c, None).await.unwrap();
    assert_eq!(last_text(&w), expected(&w, "Acme Travel", Lang::Es, None));
    recovery::create(&w.svc, &c, PASSWORD.into()).await.unwrap();
    let (subject, _, _) = last_email(&w);
    assert!(subject.contains("Acme Travel"), "{subject}");
    assert!(subject.contains("códigos de recuperación"), "{subject}");
}

async fn a_japanese_user_reads_japanese_and_the_webotp_line(store: Arc<dyn Store>) {
    let w = world(store, Some("アクメ旅行"), Some("login.acme.example")).await;
    let c = w.user_speaking("ada", "ja-JP").await;
    w.enroll(&c, "+14155550101", None).await;
    let text = last_text(&w);
    let code = &text[..6];
    assert_eq!(
        text,
        expected(&w, "アクメ旅行", Lang::Ja, Some("login.acme.example"))
    );
    assert!(text.contains("アクメ旅行の確認コード"), "{text}");
    assert_eq!(
        text.lines().last(),
        Some(format!("@login.acme.example #{code}").as_str()),
        "the origin-bound last line: {text}"
    );
    let s = segments(&text);
    assert_eq!(s.encoding, Encoding::Ucs2);
    assert!(s.parts <= 2, "{s:?}");
    let (subject, body, _) = last_email(&w);
    assert!(subject.contains("アクメ旅行"), "{subject}");
    assert!(subject.contains("2段階認証"), "{subject}");
    assert!(!body.contains("Two-step"), "{body}");
}

async fn locales_fall_back_from_region_to_language_to_english(store: Arc<dyn Store>) {
    let w = world(store, Some("Acme"), None).await;
    for (i, (locale, lang)) in [
        ("pt-PT", Lang::PtBr),
        ("pt-BR", Lang::PtBr),
        ("es-MX", Lang::Es),
        ("fr-CA", Lang::Fr),
        ("de", Lang::De),
        ("xx", Lang::En),
        ("zh-Hant-TW", Lang::En),
    ]
    .into_iter()
    .enumerate()
    {
        let c = w.user_speaking(&format!("user{i}"), locale).await;
        w.enroll(&c, &format!("+1415555010{i}"), None).await;
        assert_eq!(last_text(&w), expected(&w, "Acme", lang, None), "{locale}");
    }
    // No locale at all: English.
    let c: Caller = w.user("plain").await;
    w.enroll(&c, "+14155550199", None).await;
    let text = last_text(&w);
    assert_eq!(text, expected(&w, "Acme", Lang::En, None));
    assert!(text.contains("is your Acme verification code"), "{text}");
    let pt = messages::code_text(
        &Voice {
            app: "Acme",
            lang: Lang::PtBr,
        },
        &Code::parse("123456").unwrap(),
        600,
        None,
    );
    assert!(pt.contains("é o seu codigo"), "Portuguese in GSM-7: {pt}");
}

async fn every_code_text_sent_fits_its_segments(store: Arc<dyn Store>) {
    // The longest name and a 40-character domain.
    let name = "Acme Travel International Grou";
    let domain = format!("{}.acme.example", "l".repeat(27));
    assert_eq!((name.chars().count(), domain.len()), (30, 40));
    let w = world(store, Some(name), Some(&domain)).await;
    for (i, locale) in ["en", "es", "fr", "de", "pt-BR", "ja"]
        .into_iter()
        .enumerate()
    {
        let c = w.user_speaking(&format!("user{i}"), locale).await;
        w.enroll(&c, &format!("+1415555020{i}"), None).await;
        let text = last_text(&w);
        assert!(
            text.ends_with(&format!("\n@{domain} #{}", &text[..6])),
            "{text}"
        );
        let s = segments(&text);
        if locale == "ja" {
            assert_eq!(s.encoding, Encoding::Ucs2, "{text}");
            assert!(s.parts <= 2, "{locale}: {s:?} {text}");
        } else {
            assert_eq!(
                (s.encoding, s.parts),
                (Encoding::Gsm7, 1),
                "{locale}: {s:?} {text}"
            );
        }
    }
}

async fn the_display_name_is_escaped_in_html_and_defaults_to_the_id(store: Arc<dyn Store>) {
    let w = world(store, Some("Acme <b>&"), None).await;
    let c = w.user("ada").await;
    w.enroll(&c, "+14155550101", None).await;
    let (subject, text, html) = last_email(&w);
    assert!(subject.contains("Acme <b>&"), "{subject}");
    assert!(text.contains("Acme <b>&"), "{text}");
    assert!(html.contains("Acme &lt;b&gt;&amp;"), "{html}");
    assert!(!html.contains("<b>&"), "{html}");
    // Without a display name, the application's id.
    let w = world(Arc::new(MemoryStore::new()), None, None).await;
    let c = w.user("ada").await;
    w.enroll(&c, "+14155550101", None).await;
    assert!(last_text(&w).contains(&format!("your {} verification", w.app)));
}
