//! SMS segments: which alphabet a text travels in, and how many parts it is billed as.
//!
//! - **GSM-7** when every character is in the GSM 03.38 basic set or its extension table. A
//!   basic character costs one septet; an extension character (`^ { } \ [ ] ~ | €` and form
//!   feed) costs two (an escape, then the character). One part holds 160 septets; a
//!   concatenated text holds 153 per part (the rest is the concatenation header), and an
//!   escape pair is never split across two parts.
//! - **UCS-2** otherwise, counted in UTF-16 code units: 70 in one part, 67 per part when
//!   concatenated, and a surrogate pair (an emoji) is never split across two parts.
//!
//! [`to_gsm7`] is the "smart encoding" step for Latin-script languages: a letter outside
//! GSM-7 becomes its nearest GSM-7 letter (`ó` → `o`), and anything still outside becomes `?`,
//! so that the result is always GSM-7.

use serde::Serialize;

/// The alphabet a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UTF-16 (what carriers call UCS-2), for any text with a character outside GSM-7.
    Ucs2,
}

/// What a text costs: its alphabet, its length in that alphabet's units (septets or UTF-16
/// code units), and the number of parts (segments) it is billed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segments {
    pub encoding: Encoding,
    pub units: usize,
    pub parts: usize,
}

/// Septets in a single-part GSM-7 text.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 text.
pub const GSM7_MULTI: usize = 153;
/// UTF-16 units in a single-part UCS-2 text.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units per part of a concatenated UCS-2 text.
pub const UCS2_MULTI: usize = 67;

/// The GSM 03.38 basic character set (the 128 code points less the escape, 0x1B).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each costs an escape septet plus its own.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets for `c` in GSM-7: 1 (basic set), 2 (extension table) or `None` (not GSM-7).
pub fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` is in GSM-7 (basic set or extension table).
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// The encoding, length and number of parts of `text`.
pub fn segments(text: &str) -> Segments {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    let (encoding, costs, single, multi) = match gsm {
        Some(costs) => (Encoding::Gsm7, costs, GSM7_SINGLE, GSM7_MULTI),
        None => (
            Encoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
            UCS2_SINGLE,
            UCS2_MULTI,
        ),
    };
    let units: usize = costs.iter().sum();
    let parts = if units <= single {
        1
    } else {
        // Pack greedily: a character (an escape pair, a surrogate pair) never straddles parts.
        let mut parts = 1;
        let mut used = 0;
        for cost in costs {
            if used + cost > multi {
                parts += 1;
                used = 0;
            }
            used += cost;
        }
        parts
    };
    Segments {
        encoding,
        units,
        parts,
    }
}

/// The nearest GSM-7 spelling of a character outside GSM-7, for Latin-script text.
fn nearest(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'â' | 'ã' | 'ā' | 'ă' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ā' | 'Ă' | 'Ą' => "A",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'Ć' | 'Č' | 'Ĉ' | 'Ċ' => "C",
        'ď' | 'đ' => "d",
        'Ď' | 'Đ' => "D",
        'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'È' | 'Ê' | 'Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'ğ' | 'ģ' => "g",
        'Ğ' | 'Ģ' => "G",
        'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' | 'Į' | 'İ' => "I",
        'ł' | 'ľ' | 'ĺ' | 'ļ' => "l",
        'Ł' | 'Ľ' | 'Ĺ' | 'Ļ' => "L",
        'ń' | 'ň' | 'ņ' => "n",
        'Ń' | 'Ň' | 'Ņ' => "N",
        'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ō' | 'Ő' => "O",
        'œ' => "oe",
        'Œ' => "OE",
        'ŕ' | 'ř' => "r",
        'Ŕ' | 'Ř' => "R",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'Ś' | 'Š' | 'Ş' | 'Ș' => "S",
        'ť' | 'ţ' | 'ț' => "t",
        'Ť' | 'Ţ' | 'Ț' => "T",
        'ú' | 'û' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ū' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ª' => "a",
        'º' => "o",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '`' | '´' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '«' | '»' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2002}' | '\u{2003}' | '\u{2009}' | '\u{200A}' | '\u{202F}' | '\t' => " ",
        '\u{2022}' | '\u{00B7}' => ".",
        _ => return None,
    })
}

/// The "smart encoding" step for Latin-script text: keep every GSM-7 character, replace a
/// letter outside GSM-7 with its nearest GSM-7 spelling (`ó` → `o`, `ç` → `c`, `œ` → `oe`,
/// curly quotes → straight, dashes → `-`, no-break spaces → space), and anything else with
/// `?`. The result is always GSM-7 ([`is_gsm7`]).
pub fn to_gsm7(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm7_septets(c).is_some() {
            out.push(c);
        } else if let Some(s) = nearest(c) {
            out.push_str(s);
        } else {
            out.push('?');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basic_set_has_127_characters_and_the_extension_10() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
        assert!(!GSM7_BASIC.chars().any(|c| GSM7_EXTENSION.contains(c)));
    }

    #[test]
    fn gsm7_counts_septets_and_parts() {
        let a160 = "a".repeat(160);
        assert_eq!(
            segments(&a160),
            Segments {
                encoding: Encoding::Gsm7,
                units: 160,
                parts: 1
            }
        );
        let s = segments(&"a".repeat(161));
        assert_eq!((s.encoding, s.units, s.parts), (Encoding::Gsm7, 161, 2));
        assert_eq!(segments(&"a".repeat(306)).parts, 2);
        assert_eq!(segments(&"a".repeat(307)).parts, 3);
        let euro = segments(&"€".repeat(80));
        assert_eq!(
            (euro.encoding, euro.units, euro.parts),
            (Encoding::Gsm7, 160, 1)
        );
        let euro = segments(&"€".repeat(81));
        assert_eq!((euro.units, euro.parts), (162, 2));
        // 152 septets then an escape pair: the pair moves whole to the second part.
        let straddle = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(segments(&straddle).parts, 2);
        assert_eq!(segments("").parts, 1);
        assert_eq!(segments("^{}\\[~]|€\u{c}").units, 20);
    }

    #[test]
    fn ucs2_counts_utf16_units_and_parts() {
        let e = segments("😀");
        assert_eq!((e.encoding, e.units, e.parts), (Encoding::Ucs2, 2, 1));
        let s = segments(&"あ".repeat(70));
        assert_eq!((s.encoding, s.units, s.parts), (Encoding::Ucs2, 70, 1));
        assert_eq!(segments(&"あ".repeat(71)).parts, 2);
        assert_eq!(segments(&"あ".repeat(134)).parts, 2);
        assert_eq!(segments(&"あ".repeat(135)).parts, 3);
        // One non-GSM letter turns the whole text to UCS-2.
        let s = segments(&format!("{}ó", "a".repeat(69)));
        assert_eq!((s.encoding, s.units, s.parts), (Encoding::Ucs2, 70, 1));
        // 66 units then a surrogate pair: the pair moves whole to the second part.
        let straddle = format!("{}😀{}", "あ".repeat(66), "あ".repeat(10));
        assert_eq!(segments(&straddle).parts, 2);
        let straddle = format!("{}😀{}", "あ".repeat(66), "あ".repeat(66));
        assert_eq!(segments(&straddle).parts, 3);
    }

    #[test]
    fn smart_encoding_keeps_gsm7_letters_and_replaces_the_rest() {
        let es = "Tu código de verificación caducó; ¿lo recibiste? Sí, único.";
        assert_eq!(
            to_gsm7(es),
            "Tu codigo de verificacion caduco; ¿lo recibiste? Si, unico."
        );
        let pt = "Não compartilhe: ação, opções, você, português, à vista.";
        assert_eq!(
            to_gsm7(pt),
            "Nao compartilhe: acao, opcoes, voce, portugues, à vista."
        );
        let fr = "Ne le partagez jamais\u{a0}: cœur, «\u{a0}garçon\u{a0}», l’été — où.";
        assert_eq!(
            to_gsm7(fr),
            "Ne le partagez jamais : coeur, \" garcon \", l'été - où."
        );
        let kept = "é è ù ì ò ä ö ü ñ ß Ä Ö Ü Ñ Å å Ø ø Æ æ É Ç à";
        assert_eq!(to_gsm7(kept), kept);
        assert_eq!(to_gsm7("“Acme”–Ωmega…"), "\"Acme\"-Ωmega...");
        assert_eq!(to_gsm7("Acme 😀 東京"), "Acme ? ??");
        for s in [es, pt, fr, "😀 東京 ŵ", "€{}[]"] {
            assert!(is_gsm7(&to_gsm7(s)), "{s}");
        }
    }
}
