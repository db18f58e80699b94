//! What the service counts for the people who run it, as CloudWatch metrics.
//!
//! On Lambda each count is one line of CloudWatch Embedded Metric Format (EMF) on stdout:
//! CloudWatch Logs turns it into a metric with no API call and no extra latency. The metric
//! names and the `Reason` values are what `template.yaml`'s alarms and any dashboard refer to,
//! so they are stable. The application id rides along as a plain property (searchable with
//! Logs Insights) and not as a dimension: one dimension value per tenant would multiply the
//! metric bill by the number of tenants.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::types::AppId;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "MfaService";

/// One thing worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// A text with a code was handed to SNS.
    TextSent,
    /// SNS refused or failed a text (the user got `502 sms_send_failed`), or its outcome is
    /// unknown (counted as sent). Not a throttled text: that is [`Metric::SmsThrottled`].
    SmsSendError,
    /// SNS throttled a text (the account's SMS rate quota, after the SDK's retries): the user
    /// got `503 service_unavailable` with `Retry-After` and every budget unit back.
    SmsThrottled,
    /// SES refused or failed an email (the change it reported stands).
    EmailSendError,
    /// A right code (enrollment, sign-in challenge or recovery code).
    VerificationOk,
    /// A wrong code.
    VerificationFailed,
    /// Password checks locked, a code burned by its last wrong guess, or a user's hourly budget
    /// of wrong codes used up.
    Lockout,
    /// A password checked with argon2 (a missing user's too, against the dummy hash): the
    /// CPU the password routes spend.
    PasswordChecked,
    /// A request refused by a rate limit; the reason names the limit.
    RateLimited(Reason),
}

/// Which limit refused a request: the `Reason` dimension of `RateLimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    TextsPerUser,
    TextsPerNumber,
    TextsPerIp,
    TextsPerApp,
    SendsPerEnrollment,
    ResendCooldown,
    PasswordAttempts,
    CodeFailuresPerUser,
}

impl Reason {
    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TextsPerUser => "texts_per_user",
            Reason::TextsPerNumber => "texts_per_number",
            Reason::TextsPerIp => "texts_per_ip",
            Reason::TextsPerApp => "texts_per_app",
            Reason::SendsPerEnrollment => "sends_per_enrollment",
            Reason::ResendCooldown => "resend_cooldown",
            Reason::PasswordAttempts => "password_attempts",
            Reason::CodeFailuresPerUser => "code_failures_per_user",
        }
    }
}

impl Metric {
    /// The metric name in CloudWatch.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TextSent => "TextsSent",
            Metric::SmsSendError => "SmsSendErrors",
            Metric::SmsThrottled => "SmsThrottled",
            Metric::EmailSendError => "EmailSendErrors",
            Metric::VerificationOk => "VerificationsOk",
            Metric::VerificationFailed => "VerificationsFailed",
            Metric::Lockout => "Lockouts",
            Metric::PasswordChecked => "PasswordChecks",
            Metric::RateLimited(_) => "RateLimitBlocks",
        }
    }
}

/// Where counts go.
pub trait Metrics: Send + Sync {
    fn count(&self, app: &AppId, metric: Metric);
}

/// The EMF document of one count, as one line. `service` is the `Service` dimension (the stack
/// name on AWS), so that two deployments in one account never add up.
pub fn emf_line(service: &str, app: &AppId, metric: Metric, at_millis: u64) -> String {
    let name = metric.name();
    let mut dimensions = vec!["Service"];
    let mut doc = json!({
        "_aws": {
            "Timestamp": at_millis,
            "CloudWatchMetrics": [],
        },
        "Service": service,
        "app_id": app.as_str(),
        name: 1,
    });
    if let Metric::RateLimited(reason) = metric {
        dimensions.push("Reason");
        doc["Reason"] = json!(reason.as_str());
    }
    doc["_aws"]["CloudWatchMetrics"] = json!([{
        "Namespace": NAMESPACE,
        "Dimensions": [dimensions],
        "Metrics": [{ "Name": name, "Unit": "Count" }],
    }]);
    doc.to_string()
}

/// EMF lines on stdout: what the Lambda functions use.
pub struct EmfStdout {
    service: String,
}

impl EmfStdout {
    pub fn new(service: impl Into<String>) -> Self {
        EmfStdout {
            service: service.into(),
        }
    }
}

impl Metrics for EmfStdout {
    fn count(&self, app: &AppId, metric: Metric) {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let line = emf_line(&self.service, app, metric, millis);
        // One write of the whole line, so that concurrent requests never interleave. A metric
        // that cannot be written is lost; the request it counts is not failed for it.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// Counts kept in memory, one number per metric: the embedded default and the tests.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<HashMap<Metric, usize>>>);

impl Recorded {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `metric` was counted (for any application).
    pub fn total(&self, metric: Metric) -> usize {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(&metric).copied())
            .unwrap_or(0)
    }
}

impl Metrics for Recorded {
    fn count(&self, _app: &AppId, metric: Metric) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(metric).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_line_declares_the_metric_it_carries() {
        let app = AppId::parse("app-1").unwrap();
        let line = emf_line("mfa-prod", &app, Metric::TextSent, 1_700_000_000_000);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'));
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], NAMESPACE);
        assert_eq!(decl["Dimensions"], json!([["Service"]]));
        assert_eq!(
            decl["Metrics"],
            json!([{"Name": "TextsSent", "Unit": "Count"}])
        );
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(v["TextsSent"], 1);
        assert_eq!(v["Service"], "mfa-prod");
        assert_eq!(v["app_id"], "app-1");
    }

    #[test]
    fn rate_limit_blocks_carry_their_reason_as_a_dimension() {
        let app = AppId::parse("app-1").unwrap();
        let line = emf_line("mfa", &app, Metric::RateLimited(Reason::TextsPerApp), 0);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Dimensions"], json!([["Service", "Reason"]]));
        assert_eq!(v["Reason"], "texts_per_app");
        assert_eq!(v["RateLimitBlocks"], 1);
    }

    #[test]
    fn recorded_counts_what_was_counted() {
        let r = Recorded::new();
        let app = AppId::parse("a").unwrap();
        r.count(&app, Metric::TextSent);
        r.count(&app, Metric::TextSent);
        r.count(&app, Metric::Lockout);
        assert_eq!(r.total(Metric::TextSent), 2);
        assert_eq!(r.total(Metric::Lockout), 1);
        assert_eq!(r.total(Metric::VerificationOk), 0);
    }
}
