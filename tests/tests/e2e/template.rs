//! `template.yaml` deploys what the code reads and alarms on what the code counts: every
//! `MFA_*` variable of `shared/src/config.rs` is set for the functions, and each alarm on the
//! service's own metrics names a metric, namespace and reason the functions really emit; and
//! `env.json.example` sets, per function, exactly the variables `sam local` would pass it.
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
fn alarms_watch_sms_failures_throttling_spend_the_app_budget_and_5xx_rates() {
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
    let throttled = own(Metric::SmsThrottled);
    assert_eq!(throttled["Namespace"].as_str(), Some(NAMESPACE));
    assert!(dimension(throttled, "Service").is_some());
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

// ---------------------------------------------------------------- tenant scoping for admins

/// Stand-ins for the `!Sub` placeholders of the admin API's execute-api ARNs.
const ARN_PREFIX: &str = "arn:aws:execute-api:eu-west-1:111122223333:a1b2c3";

/// IAM's ARN matching: `*` matches any run of characters (`/` included), `?` any one.
fn iam_matches(pattern: &str, arn: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), arn.chars().collect());
    // reach[j]: the pattern read so far matches the first j characters of the ARN.
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for &c in &p {
        let mut next = vec![false; s.len() + 1];
        for j in 0..=s.len() {
            next[j] = match c {
                '*' => reach[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && reach[j - 1],
                c => j > 0 && reach[j - 1] && s[j - 1] == c,
            };
        }
        reach = next;
    }
    reach[s.len()]
}

/// The admin API's routes: (method, path) of every `HttpApi` event on `AdminApi`.
fn admin_routes(t: &Yaml) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, res) in t["Resources"].as_hash().unwrap() {
        let Some(events) = res["Properties"]["Events"].as_hash() else {
            continue;
        };
        for (_, ev) in events {
            let p = &ev["Properties"];
            if ev["Type"].as_str() == Some("HttpApi") && p["ApiId"].as_str() == Some("AdminApi") {
                out.push((
                    p["Method"].as_str().unwrap().to_owned(),
                    p["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The `Allow` resources of a managed policy, with the `!Sub` placeholders filled in.
fn policy_resources(t: &Yaml, name: &str) -> Vec<String> {
    let res = &t["Resources"][name];
    assert_eq!(
        res["Type"].as_str(),
        Some("AWS::IAM::ManagedPolicy"),
        "{name}"
    );
    let mut out = Vec::new();
    for st in res["Properties"]["PolicyDocument"]["Statement"]
        .as_vec()
        .unwrap()
    {
        assert_eq!(st["Effect"].as_str(), Some("Allow"), "{name}");
        assert_eq!(st["Action"].as_str(), Some("execute-api:Invoke"), "{name}");
        for r in st["Resource"].as_vec().unwrap() {
            let r = r.as_str().unwrap();
            let filled = r.replace(
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${AdminApi}",
                ARN_PREFIX,
            );
            assert!(!filled.contains("${"), "{name}: {r}");
            out.push(filled);
        }
    }
    out
}

/// The ARN that API Gateway checks for a call of `route` on application `app` (stage `live`).
fn request_arn((method, path): &(String, String), app: &str) -> String {
    let path = path.replace("{app_id}", app).replace("{user_id}", "user-7");
    assert!(
        !path.contains('{'),
        "a path parameter without a sample: {path}"
    );
    format!("{ARN_PREFIX}/live/{method}{path}")
}

/// The README's tenant-admin policy (section "Tenant scoping for admins"): everything under
/// the application's path, except the operator's availability route.
fn tenant_admin_allows(app: &str, arn: &str) -> bool {
    let allow = format!("{ARN_PREFIX}/*/*/v1/admin/applications/{app}/*");
    let deny = format!("{ARN_PREFIX}/*/PUT/v1/admin/applications/*/mfa-availability");
    iam_matches(&allow, arn) && !iam_matches(&deny, arn)
}

#[test]
fn iam_matching_as_the_policies_rely_on_it() {
    assert!(iam_matches("a/*/c", "a/b/c"));
    assert!(iam_matches("a/*/c", "a/b/x/c"));
    assert!(iam_matches("a/?/c", "a/b/c"));
    assert!(!iam_matches("a/?/c", "a/bb/c"));
    assert!(!iam_matches("a/acme/*", "a/acme2/x"));
    assert!(!iam_matches("a/b", "a/b/c"));
}

/// Issue 13, point 7: an admin can be limited to one application. Every admin route lives under
/// `/v1/admin/applications/{app_id}/`, the deployed admin policy names the application as its
/// own path segment (so putting an app id in place of its `*` narrows it to that application),
/// and the README's per-application policy allows exactly the admin routes of that application:
/// none of another's, and never the operator's availability route.
#[test]
fn admin_routes_and_policy_can_be_scoped_to_one_application() {
    let t = template();
    let routes = admin_routes(&t);
    assert!(routes.len() >= 6, "{routes:?}");
    for (method, path) in &routes {
        assert!(
            path.starts_with("/v1/admin/applications/{app_id}/"),
            "{method} {path} is not under one application's path"
        );
    }
    let availability = |r: &(String, String)| {
        r.0 == "PUT" && r.1 == "/v1/admin/applications/{app_id}/mfa-availability"
    };
    assert!(routes.iter().any(availability), "{routes:?}");

    let admin = policy_resources(&t, "AdminInvokePolicy");
    let operator = policy_resources(&t, "OperatorInvokePolicy");
    let allowed = |policy: &[String], arn: &str| policy.iter().any(|p| iam_matches(p, arn));
    for route in &routes {
        let arn = request_arn(route, "acme");
        // The deployed policies split the routes: the operator's availability, the admin's rest.
        assert_eq!(
            allowed(&admin, &arn),
            !availability(route),
            "admin policy, {arn}"
        );
        assert_eq!(
            allowed(&operator, &arn),
            availability(route),
            "operator policy, {arn}"
        );
        // The README's per-application policy: the admin's routes of that application only.
        assert_eq!(
            tenant_admin_allows("acme", &arn),
            !availability(route),
            "{arn}"
        );
        for other in ["globex", "acme2", "acm", "ac"] {
            let theirs = request_arn(route, other);
            assert!(!tenant_admin_allows("acme", &theirs), "{theirs}");
        }
    }

    // The admin policy's resources name the application as a segment of its own: with an app id
    // in place of that `*`, each allows the same routes for that application and none of
    // another's, always within the per-application policy.
    for resource in &admin {
        let (head, tail) = resource
            .split_once("/v1/admin/applications/")
            .unwrap_or_else(|| panic!("not an application route: {resource}"));
        let rest = tail
            .strip_prefix("*/")
            .unwrap_or_else(|| panic!("the app segment is not `*`: {resource}"));
        let narrowed = format!("{head}/v1/admin/applications/acme/{rest}");
        let mut covers = 0;
        for route in &routes {
            let mine = request_arn(route, "acme");
            if iam_matches(resource, &mine) {
                covers += 1;
                assert!(iam_matches(&narrowed, &mine), "{narrowed} lost {mine}");
                assert!(tenant_admin_allows("acme", &mine), "{mine}");
            }
            for other in ["globex", "acme2"] {
                assert!(!iam_matches(&narrowed, &request_arn(route, other)));
            }
        }
        assert!(covers > 0, "{resource} allows no admin route");
    }
}

/// Each function's variables as the template declares them: Globals' and its own.
fn declared_variables(t: &Yaml, function: &Yaml) -> BTreeSet<String> {
    [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ]
    .into_iter()
    .filter_map(Yaml::as_hash)
    .flat_map(|h| h.keys().filter_map(|k| k.as_str().map(str::to_owned)))
    .collect()
}

/// `env.json.example` (copied to `env.json` for `sam local ... --env-vars env.json`) sets every
/// variable of every function, by its logical id, and nothing else: `sam local` passes a
/// function only the variables the template declares, so an undeclared one would be dropped
/// without a word. Its endpoint is not `localhost`, which inside `sam local`'s container is the
/// container itself.
#[test]
fn env_json_example_sets_each_functions_variables() {
    let t = template();
    let text = std::fs::read_to_string(root().join("env.json.example")).unwrap();
    let example: serde_json::Value = serde_json::from_str(&text).unwrap();
    let example = example.as_object().expect("an object of functions");
    let mut functions = BTreeSet::new();
    for (id, res) in t["Resources"].as_hash().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap();
        functions.insert(id.to_owned());
        let set = example
            .get(id)
            .and_then(|v| v.as_object())
            .unwrap_or_else(|| panic!("env.json.example has no {id}"));
        let set: BTreeSet<String> = set
            .iter()
            .map(|(k, v)| {
                assert!(v.is_string(), "{id}.{k}: sam local wants strings");
                k.clone()
            })
            .collect();
        let declared = declared_variables(&t, res);
        let missing: Vec<_> = declared.difference(&set).collect();
        let dropped: Vec<_> = set.difference(&declared).collect();
        assert!(
            missing.is_empty(),
            "{id}: not in env.json.example: {missing:?}"
        );
        assert!(
            dropped.is_empty(),
            "{id}: not declared by template.yaml, so sam local drops them: {dropped:?}"
        );
        let endpoint = example[id]["AWS_ENDPOINT_URL"].as_str().unwrap();
        assert!(
            !endpoint.contains("localhost") && !endpoint.contains("127.0.0.1"),
            "{id}: {endpoint} is the container itself under sam local"
        );
    }
    let stray: Vec<_> = example.keys().filter(|k| !functions.contains(*k)).collect();
    assert!(
        stray.is_empty(),
        "env.json.example: not functions of template.yaml: {stray:?}"
    );
}

// ---------------------------------------------------------------- texting functions' concurrency

/// Whether `y` holds, anywhere, an IAM statement allowing `sns:Publish`.
fn allows_publish(y: &Yaml) -> bool {
    match y {
        Yaml::Hash(h) => {
            let publish = |a: &Yaml| a.as_str() == Some("sns:Publish");
            let action = &y["Action"];
            (y["Effect"].as_str() == Some("Allow")
                && (publish(action) || action.as_vec().is_some_and(|v| v.iter().any(publish))))
                || h.values().any(allows_publish)
        }
        Yaml::Array(v) => v.iter().any(allows_publish),
        _ => false,
    }
}

/// Each function that may publish texts has a reserved-concurrency parameter, unreserved by
/// default (-1), wired to it through a condition that drops the property at -1: the four
/// texting functions, and only they.
#[test]
fn texting_functions_have_reserved_concurrency_parameters_unreserved_by_default() {
    let t = template();
    let expected: BTreeSet<(&str, &str)> = [
        ("phone-submit", "PhoneSubmitReservedConcurrency"),
        ("code-verify", "CodeVerifyReservedConcurrency"),
        ("challenge", "ChallengeReservedConcurrency"),
        ("phone-edits", "PhoneEditsReservedConcurrency"),
    ]
    .into();
    let mut found = BTreeSet::new();
    for (_, res) in t["Resources"].as_hash().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let reserved = &res["Properties"]["ReservedConcurrentExecutions"];
        if !allows_publish(&res["Properties"]["Policies"]) {
            assert!(
                reserved.is_badvalue(),
                "{binary} sends no text: {reserved:?}"
            );
            continue;
        }
        // `!If [Condition, !Ref Parameter, !Ref AWS::NoValue]` (the tags are not kept).
        let parts = reserved
            .as_vec()
            .unwrap_or_else(|| panic!("{binary}: no reserved concurrency: {reserved:?}"));
        let (condition, parameter) = (parts[0].as_str().unwrap(), parts[1].as_str().unwrap());
        assert_eq!(parts[2].as_str(), Some("AWS::NoValue"), "{binary}");
        let p = &t["Parameters"][parameter];
        assert_eq!(p["Type"].as_str(), Some("Number"), "{parameter}");
        assert_eq!(
            p["Default"].as_i64(),
            Some(-1),
            "{parameter}: unreserved by default"
        );
        let description = p["Description"].as_str().unwrap();
        assert!(
            description.contains("SMS rate quota") && description.contains(binary),
            "{parameter} says how to size it: {description}"
        );
        // The condition holds exactly when the parameter is not -1.
        let not_equals = &t["Conditions"][condition][0];
        assert_eq!(not_equals[0].as_str(), Some(parameter), "{condition}");
        assert_eq!(not_equals[1].as_str(), Some("-1"), "{condition}");
        found.insert((binary, parameter));
    }
    assert_eq!(found, expected);
}
