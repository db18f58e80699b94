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
    pub version: u64,
    pub updated_at: Option<UnixTime>,
    pub updated_by: Option<String>,
}

impl Policy {
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
            version: 0,
            updated_at: None,
            updated_by: None,
        }
    }

    /// MFA is in force for users: the operator made it available and the admin enabled it.
    pub fn in_force(&self) -> bool {
        self.available && self.enabled
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
