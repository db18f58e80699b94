//! An application's MFA policy, as the admin sets it and the operator gates it.

use serde::Serialize;

use super::{AppId, CountryCode, UnixTime};

/// Whether the enrollment screens offer Skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Optional,
    Required,
}

impl Enforcement {
    pub fn parse(s: &str) -> Option<Enforcement> {
        match s {
            "optional" => Some(Enforcement::Optional),
            "required" => Some(Enforcement::Required),
            _ => None,
        }
    }

    pub fn is_required(self) -> bool {
        self == Enforcement::Required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Optional => "optional",
            Enforcement::Required => "required",
        }
    }
}

/// A kind of second factor (contract v2: `"sms"` or `"totp"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Factor {
    /// A code texted to a verified phone.
    Sms,
    /// A code from an authenticator app (RFC 6238).
    Totp,
}

impl Factor {
    pub const ALL: [Factor; 2] = [Factor::Sms, Factor::Totp];

    pub fn parse(s: &str) -> Option<Factor> {
        Factor::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Sms => "sms",
            Factor::Totp => "totp",
        }
    }
}

/// The application's name as texts and emails show it (contract v2, "Messages"): 1-30
/// characters, no control characters or line breaks, no leading or trailing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 30;

    /// Why a name is refused is said in the admin API's message (`display_name`).
    pub fn parse(s: &str) -> Result<DisplayName, &'static str> {
        let n = s.chars().count();
        if n == 0 || n > Self::MAX_CHARS {
            return Err("must be 1 to 30 characters");
        }
        // Control characters include \n, \r, \t and U+0085; U+2028/2029 are line breaks too.
        if s.chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            return Err("must not contain control characters or line breaks");
        }
        if s.trim() != s {
            return Err("must not start or end with a space");
        }
        Ok(DisplayName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The host name of the page that asks the browser for the texted code (WebOTP): lower-case
/// ASCII labels of letters, digits and inner hyphens, at least two, 253 characters at most.
/// No scheme, path, port, user or trailing dot; an internationalised name is given in its
/// `xn--` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebOtpDomain(String);

impl WebOtpDomain {
    pub fn parse(s: &str) -> Result<WebOtpDomain, &'static str> {
        if s.contains("://") || s.contains(['/', ':', '@', '?', '#']) {
            return Err("must be a host name only, without a scheme, port or path");
        }
        let lower = s.to_ascii_lowercase();
        let labels: Vec<&str> = lower.split('.').collect();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if lower.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
            return Err("must be a host name such as login.example.com");
        }
        Ok(WebOtpDomain(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The stored policy. `version` 0 means never configured (the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub app_id: AppId,
    /// Set by the operator: may this application use MFA at all?
    pub available: bool,
    /// Users may enroll from their settings.
    pub enabled: bool,
    /// Also show enrollment after sign-up and inside logged-in sessions.
    pub include_in_signup: bool,
    pub enforcement: Enforcement,
    /// `None`: every country.
    pub allowed_countries: Option<Vec<CountryCode>>,
    /// The second factors new enrollments and challenges may use: never empty, in
    /// [`Factor::ALL`]'s order, without repeats. Factors already bound keep working for sign-in.
    pub factors: Vec<Factor>,
    /// The name texts and emails give the application; `None`: its id.
    pub display_name: Option<DisplayName>,
    /// When set, every code text ends with `@{domain} #{code}` (WebOTP autofill).
    pub webotp_domain: Option<WebOtpDomain>,
    /// Under `required`, the days a user who is not enrolled may still Skip, counted from the
    /// first time status prompted them (contract v2, "Rolling MFA out"): 0 to
    /// [`Policy::MAX_GRACE_PERIOD_DAYS`], 0 for none. See [`crate::flows::grace`].
    pub grace_period_days: u16,
    pub version: u64,
    pub updated_at: Option<UnixTime>,
    pub updated_by: Option<String>,
}

impl Policy {
    /// The longest grace period an admin may set, in days.
    pub const MAX_GRACE_PERIOD_DAYS: u16 = 90;

    /// What an application that was never configured answers.
    pub fn default_for(app_id: AppId) -> Policy {
        Policy {
            app_id,
            available: false,
            enabled: false,
            include_in_signup: false,
            enforcement: Enforcement::Optional,
            allowed_countries: None,
            factors: vec![Factor::Sms],
            display_name: None,
            webotp_domain: None,
            grace_period_days: 0,
            version: 0,
            updated_at: None,
            updated_by: None,
        }
    }

    /// MFA is in force for users: the operator made it available and the admin enabled it.
    pub fn in_force(&self) -> bool {
        self.available && self.enabled
    }

    /// The name texts and emails give the application: its display name, or else its id.
    pub fn name(&self) -> &str {
        self.display_name
            .as_ref()
            .map_or(self.app_id.as_str(), DisplayName::as_str)
    }

    /// Whether new enrollments and challenges may use `factor`.
    pub fn allows(&self, factor: Factor) -> bool {
        self.factors.contains(&factor)
    }

    /// Whether a number from `region` may be enrolled.
    pub fn allows_region(&self, region: Option<&CountryCode>) -> bool {
        match (&self.allowed_countries, region) {
            (None, _) => true,
            (Some(list), Some(r)) => list.contains(r),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_short_single_lines() {
        for ok in [
            "Acme Travel",
            "A",
            &"x".repeat(30),
            "Café Ñandú",
            "アクメ旅行",
            "€€€",
        ] {
            assert_eq!(DisplayName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            &"x".repeat(31),
            "Acme\nTravel",
            "Acme\r",
            "Acme\u{2028}Travel",
            "Acme\u{85}",
            "Acme\u{0}",
            "Acme\tTravel",
            " Acme",
            "Acme ",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn webotp_domains_are_host_names_only() {
        for (given, stored) in [
            ("login.acme.example", "login.acme.example"),
            ("Login.Acme.Example", "login.acme.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.c1.example", "a-b.c1.example"),
        ] {
            assert_eq!(WebOtpDomain::parse(given).unwrap().as_str(), stored);
        }
        for bad in [
            "https://login.acme.example",
            "login.acme.example/path",
            "login.acme.example:443",
            "user@login.acme.example",
            "localhost",
            "login..acme",
            "-login.acme.example",
            "login-.acme.example",
            "login.acme.example.",
            "bücher.example",
            "login acme.example",
            "",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(WebOtpDomain::parse(bad).is_err(), "{bad:?}");
        }
    }
}
