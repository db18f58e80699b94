//! Phones in settings, admin reset and the audit log over HTTP, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mfa_tests::{Launch, LocalServer, Reply, Tenant, unique_number};
use serde_json::{Value, json};

async fn phones(s: &LocalServer, t: &Tenant) -> Vec<Value> {
    let r = s
        .call("GET", "/v1/mfa/phones", Some(&t.user_token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["phones"].as_array().unwrap().clone()
}

/// A change from settings, with the step-up proof a user would send (PATCH needs none, and
/// gets one anyway: it must not mind).
async fn settings_change(
    s: &LocalServer,
    t: &Tenant,
    method: &str,
    path: &str,
    body: Value,
) -> Reply {
    t.change(s, method, path, body).await
}

/// Verifies the code just texted to `number` for enrollment `id`.
async fn confirm(s: &LocalServer, t: &Tenant, id: &str, number: &str) -> Reply {
    t.code(s, id, &s.last_code(number).await).await
}

async fn the_settings_walk(s: &LocalServer) {
    let t = Tenant::set_up(s, "optional").await;
    let (first, second, third) = (unique_number(), unique_number(), unique_number());
    t.enroll(s, &first).await;

    // Add another phone: password, then a code to the new number.
    let r = settings_change(
        s,
        &t,
        "POST",
        "/v1/mfa/phones",
        json!({"password": t.password, "phone_number": second, "label": "Work"}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["purpose"].clone()),
        (202, json!("add")),
        "{r:?}"
    );
    let added = confirm(s, &t, r.json["enrollment_id"].as_str().unwrap(), &second).await;
    assert_eq!(added.status, 200, "{added:?}");
    let list = phones(s, &t).await;
    assert_eq!(list.len(), 2);
    let (first_id, second_id) = (
        list[0]["phone_id"].as_str().unwrap().to_owned(),
        list[1]["phone_id"].as_str().unwrap().to_owned(),
    );

    // Replace the first number: the same phone id carries the new number, label and primary kept.
    let r = settings_change(
        s,
        &t,
        "PUT",
        &format!("/v1/mfa/phones/{first_id}"),
        json!({"password": t.password, "phone_number": third}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["purpose"].clone()),
        (202, json!("replace")),
        "{r:?}"
    );
    assert!(
        phones(s, &t).await[0]["masked"]
            .as_str()
            .unwrap()
            .ends_with(&first[first.len() - 4..]),
        "old number until verified"
    );
    let replaced = confirm(s, &t, r.json["enrollment_id"].as_str().unwrap(), &third).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let list = phones(s, &t).await;
    assert_eq!(list[0]["phone_id"], first_id);
    assert_eq!(list[0]["primary"], true);
    assert!(
        list[0]["masked"]
            .as_str()
            .unwrap()
            .ends_with(&third[third.len() - 4..])
    );

    // Make the second primary, then remove the first.
    let r = settings_change(
        s,
        &t,
        "PATCH",
        &format!("/v1/mfa/phones/{second_id}"),
        json!({"primary": true}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["primary"].clone()),
        (200, json!(true)),
        "{r:?}"
    );
    let r = settings_change(
        s,
        &t,
        "DELETE",
        &format!("/v1/mfa/phones/{first_id}"),
        json!({"password": t.password}),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let list = phones(s, &t).await;
    assert_eq!(
        (
            list.len(),
            list[0]["phone_id"].as_str().unwrap(),
            list[0]["primary"].clone()
        ),
        (1, second_id.as_str(), json!(true))
    );

    // Notifications for the enrollment, the add, the replace and the removal.
    let subjects = s.subjects_to(&t.email).await;
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(
        subjects.iter().any(|x| x.contains("added"))
            && subjects.iter().any(|x| x.contains("changed"))
            && subjects.iter().any(|x| x.contains("removed"))
    );

    // Admin reset, then the audit log of this user, newest first.
    let r = s
        .call(
            "DELETE",
            &format!("/v1/admin/applications/{}/users/{}/mfa", t.app, t.user),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(phones(s, &t).await.is_empty());
    assert_eq!(s.emails_to(&t.email).await.len(), 5);
    let r = t.audit(s).await;
    assert_eq!(r.status, 200, "{r:?}");
    let actions = r.actions();
    assert_eq!(
        actions,
        [
            "mfa.reset",
            "phone.removed",
            "phone.primary_changed",
            "phone.replaced",
            "phone.added",
            "challenge.verified",
            "enrollment.completed"
        ]
    );
    assert_eq!(r.json["events"][0]["actor"], "admin@example.com");
    for n in [&first, &second, &third] {
        assert!(
            !r.json.to_string().contains(&n[1..]),
            "no full number in the audit log"
        );
    }
    // Page through the application's whole log, two at a time.
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/admin/applications/{}/audit-events?limit=2{cursor}",
            t.app
        );
        let r = s.call("GET", &path, Some(&t.admin), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        seen += r.json["events"].as_array().unwrap().len();
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen, 9,
        "7 of the user's (the step-up challenge included), the availability and the policy change"
    );
}

mfa_tests::on_both_backends!(
    the_settings_walk,
    settings_walk_on_memory,
    settings_walk_on_moto
);
mfa_tests::on_localstack!(the_settings_walk, settings_walk_on_localstack);

#[tokio::test]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn two_replaces_of_one_phone_at_once_leave_one_consistent_phone_on_moto() {
    let s = Arc::new(LocalServer::aws(Launch {
        bootstrap: true,
        env: vec![("MFA_RESEND_COOLDOWN_SECONDS".into(), "1".into())],
        ..Launch::default()
    }));
    let t = Arc::new(Tenant::set_up(&s, "optional").await);
    let first = unique_number();
    t.enroll(&s, &first).await;
    let id = phones(&s, &t).await[0]["phone_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut pending = Vec::new();
    for number in [unique_number(), unique_number()] {
        let r = settings_change(
            &s,
            &t,
            "PUT",
            &format!("/v1/mfa/phones/{id}"),
            json!({"password": t.password, "phone_number": number}),
        )
        .await;
        assert_eq!(r.status, 202, "{r:?}");
        pending.push((
            r.json["enrollment_id"].as_str().unwrap().to_owned(),
            s.last_code(&number).await,
            number,
        ));
    }
    let tasks: Vec<_> = pending
        .clone()
        .into_iter()
        .map(|(e, code, _)| {
            let (s, t) = (s.clone(), t.clone());
            tokio::spawn(async move { t.code(&s, &e, &code).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap().status);
    }
    // Racing on the old number, one wins and the other is refused (409); one after the
    // other, both apply in turn. Either way: one phone, one of the numbers, claims to match.
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let list = phones(&s, &t).await;
    assert_eq!(list.len(), 1);
    let masked = list[0]["masked"].as_str().unwrap();
    let winner = pending
        .iter()
        .find(|(_, _, n)| masked.ends_with(&n[n.len() - 4..]))
        .expect("one of the two numbers");
    // The loser's number is free to add; the winner's is taken.
    let loser = pending.iter().find(|(_, _, n)| n != &winner.2).unwrap();
    let r = settings_change(
        &s,
        &t,
        "POST",
        "/v1/mfa/phones",
        json!({"password": t.password, "phone_number": winner.2}),
    )
    .await;
    assert_eq!((r.status, r.error()), (409, "phone_already_enrolled"));
    for free in [&loser.2, &first] {
        let body = json!({"password": t.password, "phone_number": free});
        let r = settings_change(&s, &t, "POST", "/v1/mfa/phones", body).await;
        assert_eq!(r.status, 202, "{r:?}");
    }
}
