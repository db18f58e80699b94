//! The AWS wiring against moto (`MFA_TEST_MOTO_URL`): bootstrap, the secrets, every port.

use aws_sdk_dynamodb::types::{KeyType, TableStatus};

use super::{LinkedEmail, LinkedSms, StartupError, bootstrap, moto, service_from_sdk_config};
use crate::adapters::dynamodb::{PK, SK, TTL};
use crate::config::{AwsNames, Limits, Settings};
use crate::ports::Email;
use crate::signing::SigningKeys;
use crate::types::PhoneNumber;

/// The service as a function with every client starts it.
async fn start(
    sdk: &aws_config::SdkConfig,
    names: AwsNames,
    settings: Settings,
) -> Result<crate::Service, StartupError> {
    service_from_sdk_config::<LinkedSms, LinkedEmail>(sdk, names, Limits::default(), settings).await
}

#[tokio::test]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn bootstrap_is_idempotent_and_the_service_reaches_every_aws_port() {
    let url = std::env::var("MFA_TEST_MOTO_URL").unwrap();
    let sdk = moto::sdk_config(&url).await;
    let names = AwsNames {
        table_name: moto::unique("mfa-table"),
        secret_id: moto::unique("mfa-secret"),
        signing_secret_id: Some(moto::unique("mfa-signing")),
        totp_secret_id: None,
    };
    let sender = format!("{}@example.com", moto::unique("sender"));

    // A missing secret is named, not guessed at.
    let err = start(&sdk, names.clone(), Settings::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StartupError::SecretUnreadable { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&names.secret_id) && text.contains("ResourceNotFoundException"),
        "{text}"
    );
    assert!(
        !text.contains("SdkBody") && text.len() < 400,
        "compact, no raw response: {text}"
    );

    bootstrap(&sdk, &names, &sender).await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let signing_id = names.signing_secret_id.clone().unwrap();
    let signing_value = |sm: aws_sdk_secretsmanager::Client, id: String| async move {
        sm.get_secret_value()
            .secret_id(id)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    };
    let signing_secret = signing_value(sm.clone(), signing_id.clone()).await;
    bootstrap(&sdk, &names, &sender).await.unwrap();
    assert_eq!(
        signing_value(sm.clone(), signing_id.clone()).await,
        signing_secret,
        "a second bootstrap keeps the signing secret"
    );
    assert_eq!(signing_secret.len(), 64);
    assert!(signing_secret.bytes().all(|b| b.is_ascii_hexdigit()));

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = ddb
        .describe_table()
        .table_name(&names.table_name)
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    assert_eq!(table.table_status(), Some(&TableStatus::Active));
    let keys: Vec<_> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().clone()))
        .collect();
    assert_eq!(keys, vec![(PK, KeyType::Hash), (SK, KeyType::Range)]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&names.table_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some(TTL)
    );

    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(&names.secret_id)
        .send()
        .await
        .unwrap();
    let value = secret.secret_string().unwrap();
    assert_eq!(value.len(), 128);
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));

    let settings = Settings {
        sender_email: sender.clone(),
        sms_sender_id: Some("MFA".into()),
        ..Settings::default()
    };
    let svc = start(&sdk, names.clone(), settings.clone()).await.unwrap();
    let signing = svc.signing.as_ref().expect("the signing keys were read");
    let jwks = signing.jwks();
    let listed = jwks["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["alg"], "EdDSA");
    assert_eq!(
        signing.jwks(),
        SigningKeys::from_secret(&signing_secret).unwrap().jwks(),
        "the keys are the secret's"
    );
    assert!(signing.sign(&serde_json::json!({ "sub": "u" })).is_some());

    // Without a signing secret id, no signing keys (and nothing else is read).
    let unsigned = AwsNames {
        signing_secret_id: None,
        totp_secret_id: None,
        ..names.clone()
    };
    let svc_unsigned = start(&sdk, unsigned, settings.clone()).await.unwrap();
    assert!(svc_unsigned.signing.is_none());

    // A missing or unusable signing secret is named, never shown.
    let missing = AwsNames {
        signing_secret_id: Some(moto::unique("mfa-signing-missing")),
        totp_secret_id: None,
        ..names.clone()
    };
    let err = start(&sdk, missing.clone(), settings.clone())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, StartupError::SecretUnreadable { secret_id, .. } if Some(secret_id) == missing.signing_secret_id.as_ref()),
        "{err}"
    );
    let weak_id = moto::unique("mfa-signing-weak");
    sm.create_secret()
        .name(&weak_id)
        .secret_string("too-short-value")
        .send()
        .await
        .unwrap();
    let weak = AwsNames {
        signing_secret_id: Some(weak_id.clone()),
        totp_secret_id: None,
        ..names.clone()
    };
    let err = start(&sdk, weak, settings.clone()).await.err().unwrap();
    assert!(matches!(err, StartupError::SigningKeys { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&weak_id), "{text}");
    assert!(!text.contains("too-short-value"), "{text}");
    assert!(
        svc.store
            .get_policy(&crate::types::AppId::parse("nobody").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let marker = moto::unique("marker");
    let to = PhoneNumber::parse("+14155550123").unwrap();
    svc.sms
        .send_sms(&to, &format!("Your code is 123456 {marker}"))
        .await
        .unwrap();
    let email = Email {
        to: "user@example.com".into(),
        subject: format!("Subject {marker}"),
        text: "text body".into(),
        html: "<p>html body</p>".into(),
    };
    svc.email.send_email(&email).await.unwrap();

    let data: serde_json::Value =
        serde_json::from_str(&moto::http_get(&url, "/moto-api/data.json")).unwrap();
    let sms = data["sns"]["SMS"].to_string();
    assert!(
        sms.contains(&marker) && sms.contains("+14155550123"),
        "{sms}"
    );
    let messages = data["ses"]["Message"].to_string();
    assert!(messages.contains(&marker), "{messages}");
}
