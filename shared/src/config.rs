//! Deployment settings read from the environment at cold start. A missing required variable
//! or a malformed one fails start-up with its name, never a request.

use std::env;

/// The contract's limits (see "Limits" in the API contract); each is set by the variable named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub code_ttl_secs: u64,
    pub code_max_attempts: u32,
    pub resend_cooldown_secs: u64,
    pub max_sends_per_enrollment: u32,
    pub texts_per_user_per_day: u32,
    pub texts_per_number_per_hour: u32,
    pub texts_per_ip_per_hour: u32,
    /// Texts per application per day, all its users (`MFA_TEXTS_PER_APP_PER_DAY`): a circuit
    /// breaker against SMS pumping that spreads over many accounts, numbers and addresses.
    pub texts_per_app_per_day: u32,
    pub password_max_attempts: u32,
    pub code_failures_per_user_per_hour: u32,
    pub enrollment_ttl_secs: u64,
    /// How long a Skip holds (`MFA_SKIP_SECONDS`, 7 days by default).
    pub skip_secs: u64,
    /// Verification phones per user (`MFA_MAX_PHONES_PER_USER`, 5 by default).
    pub max_phones_per_user: u32,
    /// How long audit events are kept (`MFA_AUDIT_RETENTION_DAYS`, a year by default).
    pub audit_retention_days: u64,
    /// How long a warm instance keeps an application's policy (`MFA_POLICY_CACHE_SECONDS`, 5
    /// by default, at most [`MAX_POLICY_CACHE_SECS`], 0 for none): see [`crate::policy_cache`].
    pub policy_cache_secs: u64,
}

/// The password lockout window and lock length (15 minutes, fixed by the contract).
pub const PASSWORD_WINDOW_SECS: u64 = 15 * 60;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            code_ttl_secs: 600,
            code_max_attempts: 5,
            resend_cooldown_secs: 30,
            max_sends_per_enrollment: 5,
            texts_per_user_per_day: 10,
            texts_per_number_per_hour: 5,
            texts_per_ip_per_hour: 20,
            texts_per_app_per_day: 10_000,
            password_max_attempts: 5,
            code_failures_per_user_per_hour: 20,
            enrollment_ttl_secs: 1800,
            skip_secs: 7 * 24 * 3600,
            max_phones_per_user: 5,
            audit_retention_days: 365,
            policy_cache_secs: 5,
        }
    }
}

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}, got {value:?}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// The longest code lifetime (`MFA_CODE_TTL_SECONDS`): an hour.
pub const MAX_CODE_TTL_SECS: u64 = 3600;

/// The longest a warm instance keeps a policy (`MFA_POLICY_CACHE_SECONDS`): the contract's
/// "a few seconds".
pub const MAX_POLICY_CACHE_SECS: u64 = 10;

/// Reads variables through a lookup function so that tests need not touch the process env.
pub struct EnvSource<F: Fn(&str) -> Option<String>>(pub F);

impl EnvSource<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        EnvSource(|k| env::var(k).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match (self.0)(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn number<T: std::str::FromStr + PartialOrd + From<u8>>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<T>() {
                Ok(n) if n >= T::from(1) => Ok(n),
                _ => Err(ConfigError::Invalid {
                    name,
                    expected: "a whole number of at least 1",
                    value: v,
                }),
            },
        }
    }

    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        // Each limit from its variable, or its default where the variable is unset.
        macro_rules! limits {
            ($($field:ident: $var:literal,)*) => {
                Limits { $($field: self.number($var, d.$field)?,)* ..d.clone() }
            };
        }
        Ok(limits! {
            code_ttl_secs: "MFA_CODE_TTL_SECONDS",
            code_max_attempts: "MFA_CODE_MAX_ATTEMPTS",
            resend_cooldown_secs: "MFA_RESEND_COOLDOWN_SECONDS",
            max_sends_per_enrollment: "MFA_MAX_SENDS_PER_ENROLLMENT",
            texts_per_user_per_day: "MFA_TEXTS_PER_USER_PER_DAY",
            texts_per_number_per_hour: "MFA_TEXTS_PER_NUMBER_PER_HOUR",
            texts_per_ip_per_hour: "MFA_TEXTS_PER_IP_PER_HOUR",
            texts_per_app_per_day: "MFA_TEXTS_PER_APP_PER_DAY",
            password_max_attempts: "MFA_PASSWORD_MAX_ATTEMPTS",
            code_failures_per_user_per_hour: "MFA_CODE_FAILURES_PER_USER_PER_HOUR",
            enrollment_ttl_secs: "MFA_ENROLLMENT_TTL_SECONDS",
            skip_secs: "MFA_SKIP_SECONDS",
            max_phones_per_user: "MFA_MAX_PHONES_PER_USER",
            audit_retention_days: "MFA_AUDIT_RETENTION_DAYS",
        })
        .and_then(|l| {
            // A code text says its lifetime in minutes and must fit one SMS segment in every
            // language (`messages`): at most an hour, which is also as long as a code sent by
            // text should live.
            if l.code_ttl_secs > MAX_CODE_TTL_SECS {
                return Err(ConfigError::Invalid {
                    name: "MFA_CODE_TTL_SECONDS",
                    expected: "a whole number from 1 to 3600",
                    value: l.code_ttl_secs.to_string(),
                });
            }
            Ok(l)
        })
        .and_then(|l| {
            // 0 is allowed here (no cache), unlike the limits above.
            let name = "MFA_POLICY_CACHE_SECONDS";
            let policy_cache_secs = match self.optional(name) {
                None => d.policy_cache_secs,
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_POLICY_CACHE_SECS)
                    .ok_or(ConfigError::Invalid {
                        name,
                        expected: "a whole number of seconds from 0 to 10",
                        value: v,
                    })?,
            };
            Ok(Limits {
                policy_cache_secs,
                ..l
            })
        })
    }

    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            sender_email: self.optional("MFA_SENDER_EMAIL").unwrap_or(d.sender_email),
            sms_sender_id: self.optional("MFA_SMS_SENDER_ID"),
            issuer: self.optional("MFA_ISSUER").unwrap_or(d.issuer),
            metrics_service: self
                .optional("MFA_METRICS_SERVICE")
                .unwrap_or(d.metrics_service),
        }
    }
}

/// Who messages come from, and the assertions' issuer. The name a message gives the application is
/// its policy's display name (see [`crate::flows::voice`]), not a deployment setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The SES sender identity (`MFA_SENDER_EMAIL`).
    pub sender_email: String,
    /// Optional alphanumeric SMS sender id where the country allows it (`MFA_SMS_SENDER_ID`).
    pub sms_sender_id: Option<String>,
    /// The `iss` of sign-in assertions (`MFA_ISSUER`).
    pub issuer: String,
    /// The `Service` dimension of the CloudWatch metrics (`MFA_METRICS_SERVICE`; the stack name
    /// on AWS), so that deployments sharing an account are told apart.
    pub metrics_service: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sender_email: "no-reply@mfa.example.com".to_owned(),
            sms_sender_id: None,
            issuer: "mfa".to_owned(),
            metrics_service: "mfa".to_owned(),
        }
    }
}

/// Where the AWS backend keeps things (`MFA_TABLE_NAME`, `MFA_SECRET_ID`, for the function
/// that signs assertions `MFA_SIGNING_SECRET_ID`, and for the functions that set up, check or
/// sign in with authenticator apps `MFA_TOTP_SECRET_ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsNames {
    pub table_name: String,
    pub secret_id: String,
    pub signing_secret_id: Option<String>,
    pub totp_secret_id: Option<String>,
}

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    pub fn aws_names(&self) -> Result<AwsNames, ConfigError> {
        Ok(AwsNames {
            table_name: self.required("MFA_TABLE_NAME")?,
            secret_id: self.required("MFA_SECRET_ID")?,
            signing_secret_id: self.optional("MFA_SIGNING_SECRET_ID"),
            totp_secret_id: self.optional("MFA_TOTP_SECRET_ID"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> EnvSource<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvSource(move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        assert_eq!(env(&[]).limits().unwrap(), Limits::default());
    }

    #[test]
    fn each_limit_is_read_from_its_variable() {
        let l = env(&[
            ("MFA_CODE_TTL_SECONDS", "60"),
            ("MFA_TEXTS_PER_IP_PER_HOUR", "3"),
        ])
        .limits()
        .unwrap();
        assert_eq!(l.code_ttl_secs, 60);
        assert_eq!(l.texts_per_ip_per_hour, 3);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = env(&[("MFA_CODE_MAX_ATTEMPTS", "five")])
            .limits()
            .unwrap_err();
        assert!(err.to_string().contains("MFA_CODE_MAX_ATTEMPTS"), "{err}");
        let err = env(&[("MFA_CODE_MAX_ATTEMPTS", "0")]).limits().unwrap_err();
        assert!(err.to_string().contains("MFA_CODE_MAX_ATTEMPTS"), "{err}");
        let err = env(&[("MFA_CODE_TTL_SECONDS", "3601")])
            .limits()
            .unwrap_err();
        assert!(err.to_string().contains("MFA_CODE_TTL_SECONDS"), "{err}");
        assert!(env(&[("MFA_CODE_TTL_SECONDS", "3600")]).limits().is_ok());
    }

    #[test]
    fn the_policy_cache_is_0_to_10_seconds() {
        let secs = |v: &str| env(&[("MFA_POLICY_CACHE_SECONDS", v)]).limits();
        assert_eq!(secs("0").unwrap().policy_cache_secs, 0);
        assert_eq!(secs("10").unwrap().policy_cache_secs, 10);
        assert_eq!(env(&[]).limits().unwrap().policy_cache_secs, 5);
        for bad in ["11", "-1", "five"] {
            let err = secs(bad).unwrap_err();
            assert!(
                err.to_string().contains("MFA_POLICY_CACHE_SECONDS"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let err = env(&[("MFA_TABLE_NAME", "t")]).aws_names().unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MFA_SECRET_ID is required but not set"
        );
    }
}
