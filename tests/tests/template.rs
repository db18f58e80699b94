//! `template.yaml` deploys what the code reads and alarms on what the code counts: every
//! `MFA_*` variable of `shared/src/config.rs` is set for the functions, and each alarm on the
//! service's own metrics names a metric, namespace and reason the functions really emit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use mfa_shared::metrics::{Metric, NAMESPACE, Reason};
use mfa_tests::root;
use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Every `"MFA_..."` literal in the configuration code.
fn variables_read() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("shared/src/config.rs")).unwrap();
    src.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("MFA_") && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// Variables set in Globals and in any function's own environment.
fn variables_set(t: &Yaml) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |env: &Yaml| {
        if let Some(h) = env["Variables"].as_hash() {
            out.extend(h.keys().filter_map(|k| k.as_str().map(str::to_owned)));
        }
    };
    add(&t["Globals"]["Function"]["Environment"]);
    for (_, res) in t["Resources"].as_hash().unwrap() {
        add(&res["Properties"]["Environment"]);
    }
    out
}

#[test]
fn every_setting_the_code_reads_is_deployed() {
    let t = template();
    let read = variables_read();
    assert!(read.contains("MFA_TEXTS_PER_APP_PER_DAY"), "{read:?}");
    let set = variables_set(&t);
    let missing: Vec<_> = read.difference(&set).collect();
    assert!(missing.is_empty(), "not set by template.yaml: {missing:?}");
}

fn alarms(t: &Yaml) -> Vec<&Yaml> {
    t["Resources"]
        .as_hash()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| &r["Properties"])
        .collect()
}

fn dimension<'a>(alarm: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    alarm["Dimensions"]
        .as_vec()?
        .iter()
        .find(|d| d["Name"].as_str() == Some(name))
        .map(|d| &d["Value"])
}

#[test]
fn alarms_watch_sms_failures_spend_the_app_budget_and_5xx_rates() {
    let t = template();
    let all = alarms(&t);
    let own = |metric: Metric| {
        all.iter()
            .find(|a| a["MetricName"].as_str() == Some(metric.name()))
            .unwrap_or_else(|| panic!("no alarm on {}", metric.name()))
    };
    let sms = own(Metric::SmsSendError);
    assert_eq!(sms["Namespace"].as_str(), Some(NAMESPACE));
    assert!(dimension(sms, "Service").is_some());
    let budget = own(Metric::RateLimited(Reason::TextsPerApp));
    assert_eq!(budget["Namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        dimension(budget, "Reason").and_then(Yaml::as_str),
        Some(Reason::TextsPerApp.as_str())
    );
    assert!(
        all.iter()
            .any(|a| a["Namespace"].as_str() == Some("AWS/SNS")
                && a["MetricName"].as_str() == Some("SMSMonthToDateSpentUSD")),
        "no SMS spend alarm"
    );
    let rates: Vec<_> = all
        .iter()
        .filter(|a| {
            a["Metrics"].as_vec().is_some_and(|m| {
                m.iter().any(|q| {
                    q["MetricStat"]["Metric"]["MetricName"].as_str() == Some("5xx")
                        && q["MetricStat"]["Metric"]["Namespace"].as_str() == Some("AWS/ApiGateway")
                })
            })
        })
        .collect();
    assert_eq!(rates.len(), 2, "a 5xx-rate alarm per API");
    for a in all {
        assert!(
            a["AlarmActions"].as_vec().is_some_and(|v| !v.is_empty()),
            "an alarm notifies someone: {a:?}"
        );
    }
}
