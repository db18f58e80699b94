//! [`Locale`], a BCP 47 language tag, and [`Lang`], the languages the messages are written in.
//!
//! The tag is checked by hand against the RFC 5646 `langtag` production (and its
//! `privateuse` form). Why not a crate: ICU4X `icu_locale_core` 2.4 is already in this crate's
//! dependency graph (through `url` → `idna`), so it would add no crate, and it too splits on
//! `-` only and takes 2-3 letter languages; but it parses *Unicode* BCP 47 locale identifiers
//! (UTS #35), which refuse tags RFC 5646 calls well-formed: extlang (`zh-yue-HK`) and
//! private-use tags (`x-...`). `language-tags` 0.3.2 (tiny, no dependencies, last released in
//! 2021) parses RFC 5646 but is not in the lock file, and accepts `english` (5-8 letter
//! languages). The service only needs "well-formed, and which language": the check below is
//! ~100 lines with no tables and no dependency, and its tests list the cases.
//!
//! Stricter than the grammar in two places: the primary language has 2 or 3 letters (the 4 and
//! 5-8 letter forms are reserved and never assigned), so `english` is refused; and the 26
//! grandfathered tags (`i-klingon`, `en-GB-oed`, ...), deprecated since RFC 4646, are refused.
//! Well-formed, not "valid": subtags are not checked against the IANA registry, so `xx` is
//! accepted (and speaks English, see [`Lang::resolve`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest tag accepted (the contract's bound; RFC 5646 §4.4.1 suggests 35 for
/// language-script-region-variant tags).
pub const MAX_LOCALE_LEN: usize = 35;

/// A well-formed BCP 47 language tag, kept in the canonical case of RFC 5646 §2.1.1
/// (`pt-BR`, `zh-Hant-TW`, `es`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locale(String);

/// A string that is not a well-formed BCP 47 language tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a BCP 47 language tag (such as `es` or `pt-BR`)")]
pub struct BadLocale;

fn alpha(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn alnum(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn titlecase(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = lower[..1].to_ascii_uppercase();
    out.push_str(&lower[1..]);
    out
}

impl Locale {
    /// Parses and canonicalises a tag: `language ["-" script] ["-" region] *("-" variant)
    /// *("-" extension) ["-" privateuse]`, or a `privateuse` tag (`x-...`) alone.
    pub fn parse(s: &str) -> Result<Locale, BadLocale> {
        if s.is_empty() || s.len() > MAX_LOCALE_LEN || !s.is_ascii() {
            return Err(BadLocale);
        }
        let subtags: Vec<&str> = s.split('-').collect();
        if !subtags.iter().all(|t| alnum(t, 1..=8)) {
            return Err(BadLocale); // empty subtags, `_`, spaces, control characters
        }
        let mut out: Vec<String> = Vec::with_capacity(subtags.len());
        let mut i = 0;
        // A private-use tag alone: "x" 1*("-" 1*8alphanum).
        if subtags[0].eq_ignore_ascii_case("x") {
            if subtags.len() < 2 {
                return Err(BadLocale);
            }
            return Ok(Locale(s.to_ascii_lowercase()));
        }
        // language = 2*3ALPHA ["-" extlang] / 4ALPHA / 5*8ALPHA, but only 2*3ALPHA here: the
        // registry has never assigned a 4-8 letter language, and `english` is a mistake.
        if !alpha(subtags[0], 2..=3) {
            return Err(BadLocale);
        }
        out.push(subtags[0].to_ascii_lowercase());
        i += 1;
        // extlang = 3ALPHA *2("-" 3ALPHA), only after a 2-3 letter language
        if subtags[0].len() <= 3 {
            let mut n = 0;
            while n < 3 && i < subtags.len() && alpha(subtags[i], 3..=3) {
                out.push(subtags[i].to_ascii_lowercase());
                i += 1;
                n += 1;
            }
        }
        // script = 4ALPHA
        if i < subtags.len() && alpha(subtags[i], 4..=4) {
            out.push(titlecase(subtags[i]));
            i += 1;
        }
        // region = 2ALPHA / 3DIGIT
        if i < subtags.len() {
            let t = subtags[i];
            if alpha(t, 2..=2) {
                out.push(t.to_ascii_uppercase());
                i += 1;
            } else if t.len() == 3 && t.bytes().all(|b| b.is_ascii_digit()) {
                out.push(t.to_owned());
                i += 1;
            }
        }
        // variant = 5*8alphanum / (DIGIT 3alphanum)
        while i < subtags.len() {
            let t = subtags[i];
            let digit_first = t.len() == 4 && t.as_bytes()[0].is_ascii_digit();
            if alnum(t, 5..=8) || digit_first {
                out.push(t.to_ascii_lowercase());
                i += 1;
            } else {
                break;
            }
        }
        // extension = singleton 1*("-" (2*8alphanum)), singleton any alphanumeric but x
        while i < subtags.len() && subtags[i].len() == 1 && !subtags[i].eq_ignore_ascii_case("x") {
            out.push(subtags[i].to_ascii_lowercase());
            i += 1;
            let start = i;
            while i < subtags.len() && alnum(subtags[i], 2..=8) {
                out.push(subtags[i].to_ascii_lowercase());
                i += 1;
            }
            if i == start {
                return Err(BadLocale);
            }
        }
        // privateuse = "x" 1*("-" (1*8alphanum))
        if i < subtags.len() && subtags[i].eq_ignore_ascii_case("x") {
            if i + 1 == subtags.len() {
                return Err(BadLocale);
            }
            out.extend(subtags[i..].iter().map(|t| t.to_ascii_lowercase()));
            i = subtags.len();
        }
        if i != subtags.len() {
            return Err(BadLocale);
        }
        Ok(Locale(out.join("-")))
    }

    /// The tag in canonical case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag, lower case (`pt` for `pt-BR`; `x` for a private-use tag).
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or("")
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Locale {
    type Err = BadLocale;
    fn from_str(s: &str) -> Result<Locale, BadLocale> {
        Locale::parse(s)
    }
}

impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Locale, D::Error> {
        let s = String::deserialize(d)?;
        Locale::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A language the messages are written in. Each has one data file, `locales/{tag}.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Es,
    Fr,
    De,
    PtBr,
    Ja,
}

impl Lang {
    /// Every language, English (the fallback and the reference for the keys) first.
    pub const ALL: [Lang; 6] = [Lang::En, Lang::Es, Lang::Fr, Lang::De, Lang::PtBr, Lang::Ja];

    /// The language for a user's locale: the region falls back to its language (`es-MX` →
    /// Spanish, `pt-PT` → Portuguese as written in Brazil), an unknown language or no locale
    /// to English.
    pub fn resolve(locale: Option<&Locale>) -> Lang {
        match locale.map(Locale::language) {
            Some("es") => Lang::Es,
            Some("fr") => Lang::Fr,
            Some("de") => Lang::De,
            Some("pt") => Lang::PtBr,
            Some("ja") => Lang::Ja,
            _ => Lang::En,
        }
    }

    /// The BCP 47 tag the language's data file is named after.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::PtBr => "pt-BR",
            Lang::Ja => "ja",
        }
    }

    /// Whether the language is written in the Latin script, so that its texts go through
    /// [`super::sms::to_gsm7`] and fit GSM-7 segments.
    pub fn is_latin(self) -> bool {
        !matches!(self, Lang::Ja)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_tags_parse_in_canonical_case() {
        for (input, canonical) in [
            ("es", "es"),
            ("pt-BR", "pt-BR"),
            ("PT-br", "pt-BR"),
            ("zh-Hant-TW", "zh-Hant-TW"),
            ("ZH-hANT-tw", "zh-Hant-TW"),
            ("en-US", "en-US"),
            ("xx", "xx"),
            ("es-419", "es-419"),
            ("sr-Latn-RS", "sr-Latn-RS"),
            ("de-CH-1901", "de-CH-1901"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
            ("zh-yue-HK", "zh-yue-HK"),
            ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
            ("en-a-BBB-x-A-CCC", "en-a-bbb-x-a-ccc"),
            ("x-whatever", "x-whatever"),
            ("ja-JP", "ja-JP"),
        ] {
            assert_eq!(
                Locale::parse(input).map(|l| l.to_string()),
                Ok(canonical.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_tags_are_refused() {
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "es-",
            "-es",
            "en--US",
            "en US",
            " en",
            "en\n",
            "en\u{0}",
            "x",
            "en-x",
            "en-a",
            "en-a-x-y",
            "de-419-DE",
            "a-DE",
            "ar-a-aaa-b-bbb-a-ccc-",
            "ñu",
            "en-US-abcdefghi",
            "123",
            "en-ÜS",
            "i-klingon",
        ] {
            assert_eq!(Locale::parse(bad), Err(BadLocale), "{bad:?}");
        }
        let long = "en-aaaaaaaa-bbbbbbbb-cccccccc-dddddd"; // 36
        assert_eq!(long.len(), 36);
        assert_eq!(Locale::parse(long), Err(BadLocale));
        assert!(Locale::parse(&long[..35]).is_ok());
    }

    #[test]
    fn locales_serialize_as_strings() -> Result<(), serde_json::Error> {
        let l: Locale = serde_json::from_str("\"pt-br\"")?;
        assert_eq!(serde_json::to_string(&l)?, "\"pt-BR\"");
        assert!(serde_json::from_str::<Locale>("\"en_US\"").is_err());
        Ok(())
    }

    #[test]
    fn the_language_falls_back_from_region_to_language_to_english() -> Result<(), BadLocale> {
        for (tag, lang) in [
            ("pt-PT", Lang::PtBr),
            ("pt-BR", Lang::PtBr),
            ("pt", Lang::PtBr),
            ("es-MX", Lang::Es),
            ("es", Lang::Es),
            ("ja-JP", Lang::Ja),
            ("fr-CA", Lang::Fr),
            ("de-AT", Lang::De),
            ("en-GB", Lang::En),
            ("xx", Lang::En),
            ("zh", Lang::En),
            ("zh-Hant-TW", Lang::En),
            ("x-es", Lang::En),
        ] {
            assert_eq!(Lang::resolve(Some(&Locale::parse(tag)?)), lang, "{tag}");
        }
        assert_eq!(Lang::resolve(None), Lang::En);
        Ok(())
    }
}
