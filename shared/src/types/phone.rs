//! Phone numbers, validated by libphonenumber's rules (`phone_metadata`, a table built
//! from its metadata at compile time).

use std::fmt;

use super::phone_metadata::{self, NumberType};

/// An ISO 3166-1 alpha-2 region, e.g. `US`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    /// Two ASCII capital letters that name an assigned ISO 3166-1 alpha-2 region.
    pub fn parse(s: &str) -> Option<CountryCode> {
        let ok = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        (ok && phone_metadata::is_region(s)).then(|| CountryCode(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a string is not a phone number we can text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    /// Not a valid international number; the text says why in words a person can act on.
    Invalid(&'static str),
    /// A valid number of a kind that cannot receive our texts (toll-free, premium-rate, ...).
    UnsupportedType(&'static str),
}

/// A valid phone number that can receive texts, kept in E.164.
/// `Debug` and `Display` show only the masked form.
#[derive(Clone)]
pub struct PhoneNumber {
    e164: String,
    calling_code: u16,
    region: Option<CountryCode>,
}

impl PhoneNumber {
    /// Accepts E.164 (`+14155550123`) or the same with spaces, dashes, dots and brackets
    /// (`+1 (415) 555-0123`). A leading `+` and the country calling code are required.
    pub fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
        const INVALID: &str = "Enter the number in international format, starting with + and the country code, e.g. +1 415 555 0123.";
        let trimmed = input.trim();
        let Some(rest) = trimmed.strip_prefix('+') else {
            return Err(PhoneError::Invalid(INVALID));
        };
        if trimmed.len() > 40 {
            return Err(PhoneError::Invalid(INVALID));
        }
        let mut digits = String::with_capacity(16);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => return Err(PhoneError::Invalid(INVALID)),
            }
        }
        // E.164 allows at most 15 digits; fewer than 7 is never a real subscriber number.
        if !(7..=15).contains(&digits.len()) {
            return Err(PhoneError::Invalid(INVALID));
        }
        let Some(valid) = phone_metadata::validate(&digits) else {
            return Err(PhoneError::Invalid(
                "That is not a valid phone number for its country. Check the digits and the country code.",
            ));
        };
        match valid.kind {
            NumberType::Mobile
            | NumberType::FixedLineOrMobile
            | NumberType::Voip
            | NumberType::PersonalNumber
            | NumberType::Pager => {}
            NumberType::TollFree => return Err(PhoneError::UnsupportedType("toll-free")),
            NumberType::PremiumRate => return Err(PhoneError::UnsupportedType("premium-rate")),
            NumberType::SharedCost => return Err(PhoneError::UnsupportedType("shared-cost")),
            NumberType::FixedLine => return Err(PhoneError::UnsupportedType("fixed-line")),
            NumberType::Uan | NumberType::Voicemail => {
                return Err(PhoneError::UnsupportedType("non-mobile"));
            }
        }
        Ok(PhoneNumber {
            e164: format!("+{}{}", valid.code, valid.national),
            calling_code: valid.code,
            region: valid.region.as_deref().and_then(CountryCode::parse),
        })
    }

    /// Rebuilds a number this service stored itself, validated when it was stored: only its
    /// shape (E.164 with a known calling code) is checked again, not libphonenumber's rules,
    /// so that a number the rules stop accepting after an update stays the user's factor, and
    /// so that the functions that only show stored numbers do not link the rules' table. Its
    /// region is not looked up (it is needed only to admit a new number).
    pub fn from_stored(e164: &str) -> Result<PhoneNumber, PhoneError> {
        const NOT_STORED: &str = "not a stored number";
        let digits = e164
            .strip_prefix('+')
            .ok_or(PhoneError::Invalid(NOT_STORED))?;
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::Invalid(NOT_STORED));
        }
        let calling_code =
            phone_metadata::calling_code(e164).ok_or(PhoneError::Invalid(NOT_STORED))?;
        Ok(PhoneNumber {
            e164: e164.to_owned(),
            calling_code,
            region: None,
        })
    }

    /// The full number, for SNS and the table only. Never log or return it.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The region the number belongs to, if libphonenumber names one (not for non-geographic
    /// codes such as +882), for a number just parsed; `None` for one read from the store.
    pub fn region(&self) -> Option<&CountryCode> {
        self.region.as_ref()
    }

    /// `+`, the country calling code, `•` for every other digit but the last four:
    /// `+14155550123` → `+1••••••0123`.
    pub fn masked(&self) -> String {
        let cc = self.calling_code.to_string();
        let national = self.e164.get(1 + cc.len()..).unwrap_or_default();
        let keep = national.len().min(4);
        let hidden = national.len() - keep;
        let mut out = String::with_capacity(self.e164.len() * 3);
        out.push('+');
        out.push_str(&cc);
        out.extend(std::iter::repeat_n('•', hidden));
        out.push_str(&national[hidden..]);
        out
    }
}

/// Two numbers are the same number when their E.164 forms are equal.
impl PartialEq for PhoneNumber {
    fn eq(&self, other: &PhoneNumber) -> bool {
        self.e164 == other.e164
    }
}

impl Eq for PhoneNumber {}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_punctuated_forms() {
        for input in ["+14155550123", "+1 (415) 555-0123", " +1 415.555.0123 "] {
            let n = PhoneNumber::parse(input).unwrap();
            assert_eq!(n.e164(), "+14155550123", "{input}");
            assert_eq!(n.region().map(CountryCode::as_str), Some("US"));
        }
        let uk = PhoneNumber::parse("+44 7400 123456").unwrap();
        assert_eq!(uk.e164(), "+447400123456");
        assert_eq!(uk.region().map(CountryCode::as_str), Some("GB"));
    }

    #[test]
    fn masks_all_but_country_code_and_last_four() {
        assert_eq!(
            PhoneNumber::parse("+14155550123").unwrap().masked(),
            "+1••••••0123"
        );
        assert_eq!(
            PhoneNumber::parse("+447400123456").unwrap().masked(),
            "+44••••••3456"
        );
        let shown = format!(
            "{:?} {}",
            PhoneNumber::parse("+14155550123").unwrap(),
            PhoneNumber::parse("+14155550123").unwrap()
        );
        assert!(!shown.contains("4155550123"), "{shown}");
    }

    #[test]
    fn refuses_what_is_not_an_international_number() {
        for bad in [
            "",
            "4155550123",
            "+",
            "+1",
            "+1 415 555 012a",
            "+1-415-555-0123 ext 4",
            "++14155550123",
            "+1234567890123456",
            "+1 999 555 0123",
            "+１４１５５５５０１２３",
            "+14155550123\0",
        ] {
            assert!(
                matches!(PhoneNumber::parse(bad), Err(PhoneError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_numbers_that_cannot_receive_texts() {
        // US toll-free, UK premium-rate, a UK fixed line.
        assert_eq!(
            PhoneNumber::parse("+1 800 555 0123"),
            Err(PhoneError::UnsupportedType("toll-free"))
        );
        assert_eq!(
            PhoneNumber::parse("+44 909 8790 123"),
            Err(PhoneError::UnsupportedType("premium-rate"))
        );
        assert_eq!(
            PhoneNumber::parse("+44 20 7946 0123"),
            Err(PhoneError::UnsupportedType("fixed-line"))
        );
    }

    #[test]
    fn every_regions_patterns_compile_with_regex_lite() {
        let mut n = 0;
        for (i, region) in phone_metadata::all_regions() {
            assert!(phone_metadata::compiles(i).is_ok(), "{:?}", region.iso());
            n += 1;
        }
        assert!(n > 240, "{n} regions");
    }

    #[test]
    fn a_stored_number_the_rules_no_longer_accept_is_kept() {
        // +1 999 is not a valid area code today: parse refuses it, from_stored keeps it.
        assert!(PhoneNumber::parse("+19995550123").is_err());
        let kept = PhoneNumber::from_stored("+19995550123").unwrap();
        assert_eq!(kept.e164(), "+19995550123");
        assert_eq!(kept.masked(), "+1••••••0123");
        assert_eq!(kept.region(), None);
        assert!(PhoneNumber::from_stored("+1999").is_err());
        assert!(PhoneNumber::from_stored("19995550123").is_err());
    }

    #[test]
    fn a_national_prefix_left_in_is_stripped_as_libphonenumber_does() {
        let n = PhoneNumber::parse("+44 07400 123456").unwrap();
        assert_eq!(n.e164(), "+447400123456");
    }

    #[test]
    fn countries_are_iso_alpha_2() {
        assert!(CountryCode::parse("US").is_some());
        assert!(CountryCode::parse("GB").is_some());
        for bad in ["us", "USA", "ZZ", "", "U"] {
            assert!(CountryCode::parse(bad).is_none(), "{bad:?}");
        }
    }
}
