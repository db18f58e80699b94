//! Phone numbers, parsed with the `phonenumber` crate (a port of Google's libphonenumber).

use std::fmt;

use phonenumber::{Mode, Type};

/// An ISO 3166-1 alpha-2 region, e.g. `US`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(String);

impl CountryCode {
    /// Two ASCII capital letters that name an assigned ISO 3166-1 alpha-2 region.
    pub fn parse(s: &str) -> Option<CountryCode> {
        let ok = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        (ok && s.parse::<phonenumber::country::Id>().is_ok()).then(|| CountryCode(s.to_owned()))
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
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    calling_code: u16,
    region: Option<CountryCode>,
}

impl PhoneNumber {
    /// Accepts E.164 (`+14155550123`) or the same with spaces, dashes, dots and brackets
    /// (`+1 (415) 555-0123`). A leading `+` and the country calling code are required.
    /// Loads libphonenumber's metadata (it is built on first use): called at cold start so
    /// that the first phone step does not pay for it. Measured with `bench/run.sh`: it was
    /// ~100 ms of phone-submit's first request unthrottled, ~500 ms at 256 MB's CPU share.
    pub fn load_metadata() {
        let _ = phonenumber::parse(None, "+14155550123").map(|n| phonenumber::is_valid(&n));
    }

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
        let candidate = format!("+{digits}");
        let parsed =
            phonenumber::parse(None, &candidate).map_err(|_| PhoneError::Invalid(INVALID))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid(
                "That is not a valid phone number for its country. Check the digits and the country code.",
            ));
        }
        match parsed.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile
            | Type::FixedLineOrMobile
            | Type::Voip
            | Type::PersonalNumber
            | Type::Pager => {}
            Type::TollFree => return Err(PhoneError::UnsupportedType("toll-free")),
            Type::PremiumRate => return Err(PhoneError::UnsupportedType("premium-rate")),
            Type::SharedCost => return Err(PhoneError::UnsupportedType("shared-cost")),
            Type::FixedLine => return Err(PhoneError::UnsupportedType("fixed-line")),
            _ => return Err(PhoneError::UnsupportedType("non-mobile")),
        }
        let e164 = parsed.format().mode(Mode::E164).to_string();
        let region = parsed
            .country()
            .id()
            .and_then(|id| CountryCode::parse(id.as_ref()));
        Ok(PhoneNumber {
            e164,
            calling_code: parsed.code().value(),
            region,
        })
    }

    /// Rebuilds a number this service stored itself (already validated in E.164).
    pub fn from_stored(e164: &str) -> Result<PhoneNumber, PhoneError> {
        PhoneNumber::parse(e164)
    }

    /// The full number, for SNS and the table only. Never log or return it.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The region the number belongs to, if libphonenumber names one.
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
    fn countries_are_iso_alpha_2() {
        assert!(CountryCode::parse("US").is_some());
        assert!(CountryCode::parse("GB").is_some());
        for bad in ["us", "USA", "ZZ", "", "U"] {
            assert!(CountryCode::parse(bad).is_none(), "{bad:?}");
        }
    }
}
