//! The seed's whole path over HTTP against `mfa-local` on the embedded default.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mfa_tests::{LocalServer, Tenant, token, unique_number};
use serde_json::json;

#[tokio::test]
async fn the_seed_walk_from_admin_toggle_to_confirmation_email() {
    let s = LocalServer::memory(&[]);
    let t = Tenant::set_up(&s, "optional").await;

    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(st.status, 200);
    assert_eq!(st.json["prompt"], "enroll");
    assert_eq!(st.json["can_skip"], true);

    let id = t.start(&s).await;
    let number = unique_number();
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json["step"], "code");
    assert!(
        !r.json.to_string().contains(&number[2..]),
        "no full number in the answer"
    );

    let code = s.last_code(&number).await;
    let r = t.code(&s, &id, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["step"], "complete");
    assert_eq!(r.json["confirmation_email"], "sent");
    assert_eq!(r.json["phone"]["primary"], true);

    let emails = s.emails_to(&t.email).await;
    assert_eq!(emails.len(), 1);
    assert!(
        emails[0]
            .1
            .contains(&format!("••••{}", &number[number.len() - 4..]))
    );

    let st = s
        .call("GET", "/v1/mfa/status", Some(&t.user_token), None)
        .await;
    assert_eq!(
        (st.json["enrolled"].clone(), st.json["prompt"].clone()),
        (json!(true), json!("none"))
    );
}

#[tokio::test]
async fn the_local_authorizer_checks_tokens_and_scopes() {
    let s = LocalServer::memory(&[]);
    let no_token = s.call("GET", "/v1/mfa/status", None, None).await;
    assert_eq!(
        (no_token.status, no_token.error()),
        (401, "unauthenticated")
    );

    let expired = token("u1", Some("acme"), None, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s.call("GET", "/v1/mfa/status", Some(&expired), None).await;
    assert_eq!((r.status, r.error()), (401, "unauthenticated"));

    let forged = format!("{}x", s.token("u1", Some("acme"), None));
    let r = s.call("GET", "/v1/mfa/status", Some(&forged), None).await;
    assert_eq!(r.status, 401);

    let user = s.token("u1", Some("acme"), None);
    let r = s
        .call(
            "GET",
            "/v1/admin/applications/acme/mfa-policy",
            Some(&user),
            None,
        )
        .await;
    assert_eq!((r.status, r.error()), (403, "forbidden"));

    let admin = s.token("admin", None, Some("mfa:admin"));
    let r = s
        .call(
            "PUT",
            "/v1/admin/applications/acme/mfa-availability",
            Some(&admin),
            Some(json!({"available": true})),
        )
        .await;
    assert_eq!(r.status, 403, "availability is the operator's");
    let r = s
        .call(
            "GET",
            "/v1/admin/applications/acme/mfa-policy",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["version"], 0);

    let r = s.call("GET", "/v1/nothing-here", Some(&user), None).await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
}

#[tokio::test]
async fn limits_come_from_the_environment() {
    let s = LocalServer::memory(&[
        ("MFA_CODE_MAX_ATTEMPTS", "2"),
        ("MFA_RESEND_COOLDOWN_SECONDS", "1"),
    ]);
    let t = Tenant::set_up(&s, "required").await;
    let r = s
        .call("POST", "/v1/mfa/skip", Some(&t.user_token), None)
        .await;
    assert_eq!((r.status, r.error()), (403, "enrollment_required"));
    let id = t.start(&s).await;
    let number = unique_number();
    let r = t.phone(&s, &id, &number).await;
    assert_eq!(r.json["attempts_remaining"], 2);
    let right = s.last_code(&number).await;
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = t.code(&s, &id, &wrong).await;
    assert_eq!(
        (r.status, r.json["attempts_remaining"].clone()),
        (400, json!(1))
    );
    let r = t.code(&s, &id, &wrong).await;
    assert_eq!((r.status, r.error()), (429, "too_many_attempts"));
    assert!(r.headers.get("retry-after").is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s
        .call(
            "POST",
            &format!("/v1/mfa/enrollments/{id}/resend"),
            Some(&t.user_token),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = t.code(&s, &id, &s.last_code(&number).await).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_reference_page_and_its_local_sign_in_helpers() {
    let s = LocalServer::memory(&[]);
    // The page and its assets, same-origin only.
    let page = s.call("GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(page.json.as_str().unwrap().contains("/web/app.js"));
    for (path, kind) in [
        ("/web/app.js", "text/javascript"),
        ("/web/style.css", "text/css"),
        // The vendored QR library, which app.js imports (an ES module).
        ("/web/vendor/lean-qr-2.7.4.mjs", "text/javascript"),
    ] {
        let r = s.call("GET", path, None, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
    }

    // The user helper refuses a short password and changes nothing; then signs a user in whose
    // token the API accepts (status answers for that user).
    let short = json!({ "app_id": "acme", "user_id": "ada", "email": "ada@example.com", "password": "short" });
    let r = s.call("POST", "/_local/sign-in", None, Some(short)).await;
    assert_eq!(
        (r.status, r.json["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let ok = json!({ "app_id": "acme", "user_id": "ada", "email": "ada@example.com", "password": "correct horse battery" });
    let r = s.call("POST", "/_local/sign-in", None, Some(ok)).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let user = r.json["token"].as_str().unwrap().to_owned();
    let st = s.call("GET", "/v1/mfa/status", Some(&user), None).await;
    assert_eq!(
        (st.status, st.json["email_verified"].as_bool()),
        (200, Some(true))
    );
    // The password was stored as the platform would: Start accepts it.
    let admin = s
        .call(
            "POST",
            "/_local/admin-sign-in",
            None,
            Some(json!({ "app_id": "acme" })),
        )
        .await;
    assert_eq!(admin.status, 200);
    let admin = admin.json["token"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (
            "PUT",
            "/v1/admin/applications/acme/mfa-availability",
            json!({ "available": true }),
        ),
        (
            "PUT",
            "/v1/admin/applications/acme/mfa-policy",
            json!({ "enabled": true, "include_in_signup": true, "enforcement": "optional" }),
        ),
    ] {
        let r = s.call(method, path, Some(&admin), Some(body)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.json);
    }
    let started = s
        .call(
            "POST",
            "/v1/mfa/enrollments",
            Some(&user),
            Some(json!({ "password": "correct horse battery" })),
        )
        .await;
    assert_eq!(started.status, 201, "{}", started.json);
}
