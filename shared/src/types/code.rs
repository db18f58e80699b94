//! One-time codes: exactly six ASCII digits, drawn from the OS CSPRNG without modulo bias.

use std::fmt;

/// A six-digit one-time code. Its `Debug` never shows the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

/// Why a string is not a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotACode;

/// The largest multiple of 1,000,000 that fits in a `u32` draw; draws at or above it are
/// rejected so that every code is equally likely (no modulo bias).
const ACCEPT_BELOW: u32 = (u32::MAX / 1_000_000) * 1_000_000;

impl Code {
    /// Exactly six ASCII digits; no signs, spaces or Unicode digits.
    pub fn parse(s: &str) -> Result<Code, NotACode> {
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Code(s.to_owned()))
        } else {
            Err(NotACode)
        }
    }

    /// A fresh uniformly random code from the operating system's CSPRNG.
    pub fn generate() -> Result<Code, getrandom::Error> {
        loop {
            let draw = getrandom::u32()?;
            if let Some(code) = Self::from_draw(draw) {
                return Ok(code);
            }
        }
    }

    /// The rejection step of [`Code::generate`], separate so that it can be tested.
    fn from_draw(draw: u32) -> Option<Code> {
        (draw < ACCEPT_BELOW).then(|| Code(format!("{:06}", draw % 1_000_000)))
    }

    /// The code whose digits are `n`'s last six (an authenticator app's truncated HMAC).
    pub(crate) fn from_number(n: u32) -> Code {
        Code(format!("{:06}", n % 1_000_000))
    }

    /// The digits, for the text message and the keyed hash only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_six_ascii_digits() {
        assert!(Code::parse("012345").is_ok());
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+12345",
            "-12345",
            " 12345",
            "12345 ",
            "１２３４５６",
            "١٢٣٤٥٦",
            "12 345",
        ] {
            assert_eq!(Code::parse(bad), Err(NotACode), "{bad:?}");
        }
    }

    #[test]
    fn rejection_sampling_keeps_every_code_equally_likely() {
        assert_eq!(ACCEPT_BELOW, 4_294_000_000);
        assert_eq!(Code::from_draw(0).map(|c| c.0), Some("000000".into()));
        assert_eq!(
            Code::from_draw(ACCEPT_BELOW - 1).map(|c| c.0),
            Some("999999".into())
        );
        assert_eq!(Code::from_draw(ACCEPT_BELOW), None);
        assert_eq!(Code::from_draw(u32::MAX), None);
    }

    #[test]
    fn generated_codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200)
            .map(|_| Code::generate().unwrap().expose().to_owned())
            .collect();
        assert!(codes.iter().all(|c| Code::parse(c).is_ok()));
        // 200 draws from a million values: a repeat-heavy generator would show here.
        assert!(codes.len() > 190);
    }

    #[test]
    fn debug_hides_the_digits() {
        assert_eq!(
            format!("{:?}", Code::parse("123456").unwrap()),
            "Code(******)"
        );
    }
}
