//! The routes of `template.yaml`, of `openapi.yaml` and of `mfa-local` are the same set, each
//! served by the same function and behind the same authorizer everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use mfa_shared::http::routes::{self, Access, Function, ROUTES, function_for};
use mfa_tests::{LocalServer, root};
use yaml_rust2::{Yaml, YamlLoader};

type Route = (String, String);

fn load(file: &str) -> Yaml {
    let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .remove(0)
}

fn binary(f: Function) -> &'static str {
    match f {
        Function::PolicyConfig => "policy-config",
        Function::EnrollmentStart => "enrollment-start",
        Function::PhoneSubmit => "phone-submit",
        Function::CodeVerify => "code-verify",
        Function::PhoneEdits => "phone-edits",
        Function::Challenge => "challenge",
    }
}

fn served() -> BTreeSet<Route> {
    ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_string()))
        .collect()
}

/// `(method, path)` → (binary, API) of every HttpApi event in the template.
fn template_routes() -> Vec<(Route, String, String)> {
    let t = load("template.yaml");
    let mut out = Vec::new();
    for (_, res) in t["Resources"].as_hash().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let bin = res["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary")
            .to_owned();
        for (_, ev) in res["Properties"]["Events"].as_hash().unwrap() {
            assert_eq!(ev["Type"].as_str(), Some("HttpApi"));
            let p = &ev["Properties"];
            let route = (
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
            );
            let api = match &p["ApiId"] {
                Yaml::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            out.push((route, bin.clone(), api));
        }
    }
    out
}

fn openapi_routes() -> BTreeSet<Route> {
    let o = load("openapi.yaml");
    let mut out = BTreeSet::new();
    for (path, item) in o["paths"].as_hash().unwrap() {
        for (method, _) in item.as_hash().unwrap() {
            let m = method.as_str().unwrap();
            if ["get", "put", "post", "patch", "delete"].contains(&m) {
                out.insert((m.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

#[test]
fn the_template_the_openapi_file_and_the_server_have_the_same_routes() {
    let template: BTreeSet<Route> = template_routes().into_iter().map(|(r, _, _)| r).collect();
    let openapi = openapi_routes();
    let server = served();
    assert_eq!(template, server, "template.yaml vs the server's routes");
    assert_eq!(openapi, server, "openapi.yaml vs the server's routes");
}

#[test]
fn each_route_is_deployed_to_the_function_and_api_that_serve_it() {
    for ((method, path), bin, api) in template_routes() {
        let (f, access) =
            function_for(&path).unwrap_or_else(|| panic!("{method} {path}: no function"));
        assert_eq!(bin, binary(f), "{method} {path}");
        let want = match access {
            Access::User | Access::Public => "UserApi",
            Access::Admin | Access::Operator => "AdminApi",
        };
        assert!(
            api.contains(want),
            "{method} {path} is on {api}, expected {want}"
        );
    }
}

#[tokio::test]
async fn mfa_local_answers_every_route() {
    let s = LocalServer::memory(&[]);
    let user = s.token("u1", Some("acme"), None);
    let admin = s.token("admin", None, Some("mfa:admin"));
    let operator = s.token("ops", None, Some("mfa:operator"));
    for &routes::Route {
        method, template, ..
    } in ROUTES
    {
        let path = template
            .replace("{app_id}", "acme")
            .replace("{user_id}", "u1")
            .replace("{enrollment_id}", "enr_00000000000000000000000000000000")
            .replace("{phone_id}", "ph_00000000000000000000000000000000")
            .replace("{challenge_id}", "chl_00000000000000000000000000000000");
        let (_, access) = function_for(&path).unwrap();
        let token = match access {
            Access::User => Some(&user),
            Access::Admin => Some(&admin),
            Access::Operator => Some(&operator),
            Access::Public => None,
        };
        let r = s.call(method, &path, token.map(String::as_str), None).await;
        // Routed: whatever the answer (a missing body, an unknown enrollment), never "no such
        // route" or "method not allowed".
        assert!(
            r.status != 405 && r.error() != "not_found",
            "{method} {path}: {r:?}"
        );
    }
}

/// Step-up (contract v2): the user API lets a browser send `MFA-Assertion`; only the function
/// that signs assertions may read the signing secret or write the published keys, and every
/// route that changes factors documents the header and its `403 step_up_required`.
#[test]
fn only_the_signer_holds_the_signing_key_and_the_proof_header_is_allowed() {
    let t = load("template.yaml");
    let headers = t["Resources"]["UserApi"]["Properties"]["CorsConfiguration"]["AllowHeaders"]
        .as_vec()
        .unwrap();
    assert!(
        headers.iter().any(|h| h
            .as_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("mfa-assertion"))),
        "{headers:?}"
    );
    for (name, res) in t["Resources"].as_hash().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap();
        let signer = name == "ChallengeFunction";
        let statements = res["Properties"]["Policies"][0]["Statement"]
            .as_vec()
            .unwrap();
        let reads_signing_key = statements.iter().any(|s| {
            s["Effect"].as_str() == Some("Allow")
                && format!("{:?}", s["Resource"]).contains("SigningKeySecret")
        });
        assert_eq!(reads_signing_key, signer, "{name}: the signing secret");
        let env = format!("{:?}", res["Properties"]["Environment"]);
        assert_eq!(
            env.contains("MFA_SIGNING_SECRET_ID"),
            signer,
            "{name}: {env}"
        );
        let writes = statements.iter().any(|s| {
            s["Effect"].as_str() == Some("Allow")
                && format!("{:?}", s["Action"]).contains("dynamodb:PutItem")
        });
        let denied = statements.iter().any(|s| {
            s["Effect"].as_str() == Some("Deny")
                && format!("{:?}", s["Condition"]).contains("JWKS")
                && format!("{:?}", s["Action"]).contains("dynamodb:PutItem")
        });
        if writes && !signer {
            assert!(denied, "{name} may write the published keys");
        }
    }
    let spec = load("openapi.yaml");
    for (path, method) in [
        ("/v1/mfa/phones", "post"),
        ("/v1/mfa/phones/{phone_id}", "put"),
        ("/v1/mfa/phones/{phone_id}", "delete"),
        ("/v1/mfa/recovery-codes", "post"),
        ("/v1/mfa/totp", "post"),
        ("/v1/mfa/totp", "delete"),
    ] {
        let op = &spec["paths"][path][method];
        let text = format!("{:?}", op["parameters"]);
        assert!(text.contains("MfaAssertion"), "{method} {path}: {text}");
        let forbidden = format!("{:?}", op["responses"]["403"]);
        assert!(
            forbidden.contains("StepUpRequired"),
            "{method} {path}: {forbidden}"
        );
    }
}

/// Authenticator apps (contract v2): the key that their secrets are sealed under is read by
/// exactly the three functions that need it (phone-edits sets an app up, code-verify checks its
/// first code, challenge signs in with it), each naming that one secret and no other, and only
/// those three are told its id. No function reads secrets by wildcard.
#[test]
fn only_three_functions_read_the_totp_sealing_key() {
    let t = load("template.yaml");
    let secret = &t["Resources"]["TotpKeySecret"];
    assert_eq!(
        secret["Type"].as_str(),
        Some("AWS::SecretsManager::Secret"),
        "{secret:?}"
    );
    assert_eq!(secret["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(secret["UpdateReplacePolicy"].as_str(), Some("Retain"));
    let want: BTreeSet<&str> = [
        "PhoneEditsFunction",
        "CodeVerifyFunction",
        "ChallengeFunction",
    ]
    .into_iter()
    .collect();
    let (mut readers, mut told) = (BTreeSet::new(), BTreeSet::new());
    for (name, res) in t["Resources"].as_hash().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap();
        let statements = res["Properties"]["Policies"][0]["Statement"]
            .as_vec()
            .unwrap();
        for s in statements {
            let action = format!("{:?}", s["Action"]);
            let resource = format!("{:?}", s["Resource"]);
            if s["Effect"].as_str() != Some("Allow") {
                continue;
            }
            assert!(
                !(action.contains("secretsmanager") && resource.contains('*')),
                "{name}: reads secrets by wildcard: {s:?}"
            );
            assert!(
                !action.contains("secretsmanager:*") && !action.contains("\"*\""),
                "{name}: a wildcard action: {s:?}"
            );
            if resource.contains("TotpKeySecret") {
                assert_eq!(
                    s["Action"].as_str(),
                    Some("secretsmanager:GetSecretValue"),
                    "{name}: only reads the sealing key: {s:?}"
                );
                // yaml_rust2 reads `!Ref X` as the plain string X.
                assert_eq!(
                    s["Resource"].as_str(),
                    Some("TotpKeySecret"),
                    "{name}: the sealing key in a statement of its own: {s:?}"
                );
                readers.insert(name);
            }
        }
        let env = format!("{:?}", res["Properties"]["Environment"]);
        if env.contains("MFA_TOTP_SECRET_ID") {
            assert_eq!(
                res["Properties"]["Environment"]["Variables"]["MFA_TOTP_SECRET_ID"].as_str(),
                Some("TotpKeySecret"),
                "{name}: {env}"
            );
            told.insert(name);
        }
    }
    assert_eq!(readers, want, "who may read TotpKeySecret");
    assert_eq!(told, want, "who is given MFA_TOTP_SECRET_ID");
    let globals = format!("{:?}", t["Globals"]);
    assert!(
        !globals.contains("MFA_TOTP_SECRET_ID") && !globals.contains("TotpKeySecret"),
        "the sealing key's id is not a global: {globals}"
    );
}
