use std::collections::BTreeSet;

use super::sms::{Encoding, segments};
use super::*;

/// The placeholders of a template, `{name}` with `name` in `[a-z_]+`.
fn placeholders(template: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            out.insert(rest[..close].to_owned());
            rest = &rest[close + 1..];
        }
    }
    out
}

fn strict(json: &str) -> Result<Catalog, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn every_language_has_the_keys_and_placeholders_of_english() -> Result<(), serde_json::Error> {
    let english = strict(SOURCES[0].1)?;
    for (i, (lang, json)) in SOURCES.iter().enumerate() {
        assert_eq!(Lang::ALL[i], *lang);
        assert_eq!(index(*lang), i);
        let catalog = strict(json)?;
        assert_eq!(
            catalog.keys().collect::<Vec<_>>(),
            english.keys().collect::<Vec<_>>(),
            "keys of {}",
            lang.tag()
        );
        for (key, template) in &catalog {
            let want = english
                .get(key)
                .map(|t| placeholders(t))
                .unwrap_or_default();
            assert_eq!(placeholders(template), want, "{}: {key}", lang.tag());
            assert!(!template.trim().is_empty(), "{}: {key}", lang.tag());
            // Rendering with every placeholder leaves no brace behind.
            let filled = fill(
                template,
                &[("app", "Acme"), ("code", "042137"), ("minutes", "10")],
            );
            assert!(
                !filled.contains('{') && !filled.contains('}'),
                "{}: {key}: {filled}",
                lang.tag()
            );
        }
        // The parsed-once catalog is the same as the strict parse.
        assert_eq!(&catalogs()[i], &catalog);
    }
    Ok(())
}

#[test]
fn fill_is_one_pass_and_keeps_unknown_braces() {
    assert_eq!(
        fill("{code} {app}", &[("app", "{code}"), ("code", "1")]),
        "1 {code}"
    );
    assert_eq!(fill("a {x} {", &[("app", "A")]), "a {x} {");
}

fn code() -> Code {
    Code::parse("042137").unwrap_or_else(|_| unreachable!())
}

const DOMAIN_40: &str = "auth.acme-travel-international-group.com";
const PLAIN_30: &str = "Acme Travel International Grou";
const ORDINARY: &str = "Acme Travel";

#[test]
fn every_code_text_fits_its_segments_and_the_fallback_is_what_makes_it_fit() {
    let euro_30 = "€".repeat(30);
    let brace_30 = "{}".repeat(15);
    assert_eq!(DOMAIN_40.len(), 40);
    assert_eq!(PLAIN_30.chars().count(), 30);
    let mut fell_back = 0;
    println!(
        "{:<6} {:<12} {:<7} {:<6} {:<5} {:>5} {:>5}",
        "lang", "name", "webotp", "words", "enc", "units", "parts"
    );
    for lang in Lang::ALL {
        for (name_kind, name) in [
            ("ordinary", ORDINARY),
            ("30 letters", PLAIN_30),
            ("30 x €", euro_30.as_str()),
            ("30 x {}", brace_30.as_str()),
        ] {
            for domain in [None, Some(DOMAIN_40)] {
                let voice = Voice { app: name, lang };
                let text = code_text(&voice, &code(), 3600, domain);
                let full = code_text_as(&voice, "code_text", &code(), 3600, domain);
                let short = code_text_as(&voice, "code_text_short", &code(), 3600, domain);
                let s = segments(&text);
                let words = if text == full { "full" } else { "short" };
                println!(
                    "{:<6} {:<12} {:<7} {:<6} {:<5} {:>5} {:>5}",
                    lang.tag(),
                    name_kind,
                    if domain.is_some() { "yes" } else { "no" },
                    words,
                    format!("{:?}", s.encoding),
                    s.units,
                    s.parts
                );
                assert!(text.starts_with("042137"), "{text}");
                assert!(text.contains("60"), "{text}");
                if let Some(d) = domain {
                    assert_eq!(text.lines().last(), Some(format!("@{d} #042137").as_str()));
                } else {
                    assert!(!text.contains('@'), "{text}");
                }
                if lang.is_latin() {
                    assert_eq!(s.encoding, Encoding::Gsm7, "{text}");
                    assert!(s.units <= 160 && s.parts == 1, "{lang:?} {s:?} {text}");
                } else if domain.is_some() {
                    assert!(s.units <= 134 && s.parts <= 2, "{lang:?} {s:?} {text}");
                } else {
                    assert!(s.units <= 70 && s.parts == 1, "{lang:?} {s:?} {text}");
                }
                // The full wording is kept whenever it fits, and the short one is sent exactly
                // when the full one does not fit.
                let full_fits = within_budget(lang, &full, domain.is_some());
                assert_eq!(text == full, full_fits, "{lang:?} {name_kind} {domain:?}");
                if !full_fits {
                    assert_eq!(text, short);
                    fell_back += 1;
                }
                // Ordinary names get the full sentence.
                if name == ORDINARY && domain.is_none() {
                    assert_eq!(text, full, "{lang:?}");
                }
            }
        }
        // The extreme case needs the fallback in every language: a name of 30 extension
        // characters with the WebOTP line in GSM-7, a 30-letter name without it in UCS-2 (with
        // it, two UCS-2 parts hold the full wording).
        let (app, domain) = if lang.is_latin() {
            (euro_30.as_str(), Some(DOMAIN_40))
        } else {
            (PLAIN_30, None)
        };
        let full = code_text_as(&Voice { app, lang }, "code_text", &code(), 3600, domain);
        assert!(
            !within_budget(lang, &full, domain.is_some()),
            "{lang:?}: {full}"
        );
    }
    assert!(fell_back >= Lang::ALL.len());
}

#[test]
fn the_lifetime_is_in_whole_minutes() {
    let voice = Voice {
        app: "Acme",
        lang: Lang::En,
    };
    assert!(code_text(&voice, &code(), 600, None).contains(" 10 min"));
    assert!(code_text(&voice, &code(), 601, None).contains(" 11 min"));
    assert!(code_text(&voice, &code(), 59, None).contains(" 1 min"));
}

#[test]
fn spanish_and_japanese_code_texts_say_the_expected_words() {
    let es = code_text(
        &Voice {
            app: "Acme Viajes",
            lang: Lang::Es,
        },
        &code(),
        600,
        None,
    );
    assert_eq!(
        es,
        "042137 es tu codigo de verificacion de Acme Viajes. Caduca en 10 min. No lo compartas: nunca te lo pediremos."
    );
    let ja = code_text(
        &Voice {
            app: "Acme",
            lang: Lang::Ja,
        },
        &code(),
        600,
        Some("acme.example"),
    );
    assert!(ja.starts_with("042137 はAcmeの確認コードです。"), "{ja}");
    assert!(ja.contains("有効期限は10分です") && ja.contains("誰にも教えないでください"));
    assert!(ja.ends_with("\n@acme.example #042137"));
    // A Latin-script text makes the display name GSM-7 too; a Japanese one keeps it.
    let fr = code_text(
        &Voice {
            app: "Café “Crème”",
            lang: Lang::Fr,
        },
        &code(),
        300,
        None,
    );
    assert!(fr.starts_with(
        "042137 est votre code de vérification Café \"Crème\". Il expire dans 5 min."
    ));
    let ja = code_text(
        &Voice {
            app: "東京ホテル",
            lang: Lang::Ja,
        },
        &code(),
        300,
        None,
    );
    assert!(ja.contains("東京ホテルの確認コード"));
}

fn every_email(voice: &Voice) -> Vec<(&'static str, Email)> {
    let to = "ada@example.com";
    let n = PhoneNumber::parse("+14155550123").unwrap_or_else(|_| unreachable!());
    let m = PhoneNumber::parse("+14155550199").unwrap_or_else(|_| unreachable!());
    let at = UnixTime(0);
    vec![
        ("enrolled", enrolled_email(voice, to, &n, at)),
        ("phone_added", phone_added_email(voice, to, &n, at)),
        (
            "phone_replaced",
            phone_replaced_email(voice, to, &n, &m, at),
        ),
        (
            "phone_removed",
            phone_removed_email(voice, to, &n, false, at),
        ),
        (
            "phone_removed_last",
            phone_removed_email(voice, to, &n, true, at),
        ),
        (
            "reset",
            reset_email(voice, to, &[n.clone(), m.clone()], true, at),
        ),
        ("reset_none", reset_email(voice, to, &[], false, at)),
        ("codes_created", recovery_codes_created_email(voice, to, at)),
        ("code_used", recovery_code_used_email(voice, to, 7, at)),
        (
            "app_first",
            app_added_email(voice, to, Some("Phone <1>"), true, false, at),
        ),
        (
            "app_replaced",
            app_added_email(voice, to, None, false, true, at),
        ),
        (
            "app_added",
            app_added_email(voice, to, Some("Yubi"), false, false, at),
        ),
        ("app_removed", app_removed_email(voice, to, None, false, at)),
        (
            "app_removed_last",
            app_removed_email(voice, to, Some("Yubi"), true, at),
        ),
    ]
}

#[test]
fn every_email_in_every_language_names_the_app_and_escapes_html() {
    for lang in Lang::ALL {
        let voice = Voice {
            app: "<b>Acme</b> & Co",
            lang,
        };
        for (what, e) in every_email(&voice) {
            let ctx = format!("{} {what}", lang.tag());
            assert_eq!(e.to, "ada@example.com");
            assert!(
                e.subject.contains("<b>Acme</b> & Co"),
                "{ctx}: {}",
                e.subject
            );
            assert!(e.text.contains("<b>Acme</b> & Co"), "{ctx}");
            assert!(e.html.contains("&lt;b&gt;Acme&lt;/b&gt; &amp; Co"), "{ctx}");
            assert!(!e.html.contains("<b>"), "{ctx}");
            assert!(e.text.contains("1970-01-01T00:00:00Z"), "{ctx}");
            for part in [&e.subject, &e.text, &e.html] {
                assert!(!part.contains('{') && !part.contains('}'), "{ctx}: {part}");
                assert!(!part.contains("4155550123"), "{ctx}");
            }
            if what.starts_with("phone") || what == "enrolled" || what == "reset" {
                assert!(e.text.contains("+1••••••0123"), "{ctx}");
            }
            if what == "app_first" {
                assert!(e.html.contains("Phone &lt;1&gt;") && e.text.contains("Phone <1>"));
            }
            // Every language but English says it in its own words.
            if lang != Lang::En {
                let en = every_email(&Voice {
                    app: voice.app,
                    lang: Lang::En,
                });
                let same = en.iter().find(|(w, _)| *w == what).map(|(_, e)| e);
                assert_ne!(same.map(|e| &e.text), Some(&e.text), "{ctx}");
            }
        }
    }
    let ja = reset_email(
        &Voice {
            app: "Acme",
            lang: Lang::Ja,
        },
        "ada@example.com",
        &[],
        true,
        UnixTime(0),
    );
    assert!(ja.subject.contains("2段階認証がリセットされました"));
    assert!(
        ja.text.contains("削除された電話番号：なし") && ja.text.contains("認証アプリの削除：はい")
    );
    let es = recovery_code_used_email(
        &Voice {
            app: "Acme",
            lang: Lang::Es,
        },
        "ada@example.com",
        3,
        UnixTime(0),
    );
    assert!(es.text.contains("Códigos restantes: 3"), "{}", es.text);
}
