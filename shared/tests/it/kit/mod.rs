//! What the suites share. The world the flow tests run in: the service over a store (the
//! in-memory one unless a suite passes another; always behind a [`FaultyStore`], so a test can
//! make any store call fail), the console outbox, recorded metrics and a fixed clock, with one
//! application where MFA is available (and, from [`world`], enabled). Also the cached argon2
//! hash ([`hash`]), the API Gateway v2 events and answers ([`apigw`]) and the DynamoDB
//! emulators ([`emulators`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod apigw;
pub mod emulators;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::adapters::faulty::FaultyStore;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::flows::{Caller, challenge, enrollment, phones, policy, status, users};
use mfa_shared::metrics::Recorded;
use mfa_shared::ports::{FixedClock, Store};
use mfa_shared::types::ids::ChallengeId;
use mfa_shared::types::{AppId, Code, Enforcement, EnrollmentId, PhoneNumber, UserId};
use mfa_shared::{MfaError, Service};

/// Each case (`async fn case(store: Arc<dyn Store>)`), once per store: a module per case with
/// `on_memory`, and `on_moto` on a fresh table named after `prefix` (ignored unless
/// `MFA_TEST_MOTO_URL` names a moto server: tests/run.sh runs it).
macro_rules! on_both {
    ($prefix:literal, $($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn on_memory() {
                super::$case(std::sync::Arc::new(
                    mfa_shared::adapters::memory::MemoryStore::new(),
                ))
                .await;
            }

            #[tokio::test]
            #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
            async fn on_moto() {
                super::$case($crate::kit::emulators::moto($prefix).await).await;
            }
        }
    )*};
}
pub(crate) use on_both;

pub const T0: i64 = 1_800_000_000;
pub const PASSWORD: &str = "correct horse battery";
pub const NUMBER: &str = "+14155550123";

pub struct World {
    pub svc: Service,
    pub store: Arc<FaultyStore>,
    pub outbox: ConsoleOutbox,
    pub metrics: Recorded,
    pub clock: Arc<FixedClock>,
    pub app: AppId,
}

/// The argon2 PHC hash of `pw`, made once per password and test process: argon2 at its
/// default cost is slow in debug builds, and every suite provisions users with one.
pub fn hash(pw: &str) -> String {
    static HASHES: Memo = Memo::new();
    HASHES.get(pw, || {
        argon2::Argon2::default()
            .hash_password(pw.as_bytes())
            .unwrap()
            .to_string()
    })
}

/// Values made once per key and test process.
pub struct Memo<T = String>(OnceLock<Mutex<HashMap<String, T>>>);

impl<T: Clone> Memo<T> {
    pub const fn new() -> Self {
        Memo(OnceLock::new())
    }

    /// The value of `key`, made by `make` the first time.
    pub fn get(&self, key: &str, make: impl FnOnce() -> T) -> T {
        let mut map = self.0.get_or_init(Mutex::default).lock().unwrap();
        map.entry(key.to_owned()).or_insert_with(make).clone()
    }
}

/// Messages as pairs: a text's `(to, body)`, an email's `(subject, text)`.
pub type Messages = Vec<(String, String)>;

/// What the outbox holds: the texts and the emails.
pub fn sent(outbox: &ConsoleOutbox) -> (Messages, Messages) {
    let s = outbox.snapshot();
    let texts = s.sms.into_iter().map(|m| (m.to, m.body)).collect();
    let emails = s.email.into_iter().map(|e| (e.subject, e.text)).collect();
    (texts, emails)
}

/// A name no other test (or earlier run against the same emulator) uses: `prefix-` and 12
/// random hex digits.
pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}-{}", hex::encode(b))
}

/// The default limits with `change` made: `limits_with(|l| l.texts_per_user_per_day = 1)`.
pub fn limits_with(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    change(&mut limits);
    limits
}

/// Application `acme` on the in-memory store at [`T0`], MFA available and enabled
/// (optional, in sign-up).
pub async fn world(limits: Limits) -> World {
    let w = deployment(Arc::new(MemoryStore::new()), limits, T0, "acme").await;
    set_policy(&w.svc, &w.app, true, true, Enforcement::Optional).await;
    w
}

/// [`world`] and its user `ada`.
pub async fn ada(limits: Limits) -> (World, Caller) {
    let w = world(limits).await;
    let c = w.user("ada").await;
    (w, c)
}

/// The service over `store` with its clock at `now`, where the operator has made MFA
/// available to application `app`; no policy saved yet.
pub async fn deployment(store: Arc<dyn Store>, limits: Limits, now: i64, app: &str) -> World {
    let clock = Arc::new(FixedClock::at(now));
    let (mut svc, outbox) = Service::in_memory(limits, Settings::default(), clock.clone()).unwrap();
    let store = Arc::new(FaultyStore::new(store));
    let metrics = Recorded::new();
    svc.store = store.clone();
    svc.metrics = Arc::new(metrics.clone());
    let app = AppId::parse(app).unwrap();
    policy::set_availability(&svc, &app, true, "operator")
        .await
        .unwrap();
    World {
        svc,
        store,
        outbox,
        metrics,
        clock,
        app,
    }
}

/// A fresh application on `store` (its own id), MFA enabled with the sign-up screens,
/// optional, texts and authenticator apps allowed.
pub async fn both_factors(store: Arc<dyn Store>, limits: Limits) -> World {
    let w = deployment(store, limits, T0, &unique("app")).await;
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement: Enforcement::Optional,
        allowed_countries: None,
        factors: Some(vec![
            mfa_shared::types::Factor::Sms,
            mfa_shared::types::Factor::Totp,
        ]),
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(&w.svc, &w.app, change, None, "admin")
        .await
        .unwrap();
    w
}

pub async fn set_policy(
    svc: &Service,
    app: &AppId,
    enabled: bool,
    signup: bool,
    enforcement: Enforcement,
) {
    let change = policy::PolicyChange {
        enabled,
        include_in_signup: signup,
        enforcement,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    };
    policy::update(svc, app, change, None, "admin")
        .await
        .unwrap();
}

impl World {
    pub async fn user(&self, id: &str) -> Caller {
        self.user_at(id, "198.51.100.7").await
    }

    /// User `id` of the application, provisioned with [`PASSWORD`] and a verified email.
    pub async fn user_at(&self, id: &str, ip: &str) -> Caller {
        self.provision(&self.app, id, ip, true).await
    }

    /// User `id` of application `app` (which may be another tenant than [`World::app`]),
    /// provisioned with [`PASSWORD`], signing in from `ip`.
    pub async fn provision(&self, app: &AppId, id: &str, ip: &str, email_verified: bool) -> Caller {
        self.provision_in(app, id, ip, email_verified, None).await
    }

    /// User `id` of the application, speaking `locale` (BCP 47), with [`PASSWORD`] and a
    /// verified email.
    pub async fn user_speaking(&self, id: &str, locale: &str) -> Caller {
        let locale = mfa_shared::messages::Locale::parse(locale).unwrap();
        self.provision_in(&self.app.clone(), id, "198.51.100.7", true, Some(locale))
            .await
    }

    async fn provision_in(
        &self,
        app: &AppId,
        id: &str,
        ip: &str,
        email_verified: bool,
        locale: Option<mfa_shared::messages::Locale>,
    ) -> Caller {
        let user = UserId::parse(id).unwrap();
        users::put(
            &self.svc,
            app,
            &user,
            format!("{id}@example.com"),
            email_verified,
            hash(PASSWORD),
            locale,
        )
        .await
        .unwrap();
        Caller {
            app: app.clone(),
            user,
            source_ip: ip.into(),
        }
    }

    pub async fn start(&self, c: &Caller) -> EnrollmentId {
        enrollment::start(&self.svc, c, PASSWORD.into())
            .await
            .unwrap()
            .enrollment_id
    }

    /// An enrollment of `c` at the code step: started, and [`NUMBER`] texted.
    pub async fn at_code(&self, c: &Caller) -> EnrollmentId {
        let id = self.start(c).await;
        self.phone(c, &id, NUMBER).await.unwrap();
        id
    }

    pub async fn phone(
        &self,
        c: &Caller,
        id: &EnrollmentId,
        number: &str,
    ) -> Result<enrollment::CodeSent, MfaError> {
        enrollment::submit_phone(&self.svc, c, id, PhoneNumber::parse(number).unwrap(), None).await
    }

    pub async fn verify(
        &self,
        c: &Caller,
        id: &EnrollmentId,
        code: &str,
    ) -> Result<enrollment::Completed, MfaError> {
        enrollment::verify(&self.svc, c, id, Code::parse(code).unwrap()).await
    }

    /// Enrolls `c` with `number` (start, phone, the texted code); panics on any refusal.
    pub async fn enroll(
        &self,
        c: &Caller,
        number: &str,
        label: Option<&str>,
    ) -> enrollment::Completed {
        let id = self.start(c).await;
        let number = PhoneNumber::parse(number).unwrap();
        enrollment::submit_phone(&self.svc, c, &id, number, label.map(str::to_owned))
            .await
            .unwrap();
        enrollment::verify(&self.svc, c, &id, self.code())
            .await
            .unwrap()
    }

    /// Signs `c` in: the code of sign-in challenge `id`.
    pub async fn sign_in(
        &self,
        c: &Caller,
        id: &ChallengeId,
        code: Code,
    ) -> Result<challenge::Assertion, MfaError> {
        challenge::verify(&self.svc, c, id, code).await
    }

    /// Begins adding `number` (unlabelled) to `c`'s phones from settings, with the password;
    /// panics on a refusal.
    pub async fn add_phone(&self, c: &Caller, number: &str) -> enrollment::CodeSent {
        let number = PhoneNumber::parse(number).unwrap();
        phones::add(&self.svc, c, PASSWORD.into(), number, None)
            .await
            .unwrap()
    }

    /// Replaces `c`'s first phone by `number` through settings (the password, then the code
    /// texted to the new number); panics on any refusal.
    pub async fn replace_first_phone(&self, c: &Caller, number: &str) -> enrollment::Completed {
        let phone = phones::list(&self.svc, c).await.unwrap()[0]
            .phone_id
            .clone();
        let number = PhoneNumber::parse(number).unwrap();
        let sent = phones::replace(&self.svc, c, &phone, PASSWORD.into(), number)
            .await
            .unwrap();
        let id = sent.enrollment_id.expect("a replace sends a code");
        enrollment::verify(&self.svc, c, &id, self.code())
            .await
            .unwrap()
    }

    /// The code in the newest text, parsed.
    pub fn code(&self) -> Code {
        Code::parse(&self.last_code()).unwrap()
    }

    /// The code in the newest text.
    pub fn last_code(&self) -> String {
        self.outbox
            .snapshot()
            .sms
            .last()
            .expect("a text was sent")
            .body[..6]
            .to_owned()
    }

    pub fn texts(&self) -> usize {
        self.outbox.snapshot().sms.len()
    }

    /// A code that is certainly not the one sent.
    pub fn wrong_code(&self) -> String {
        let right: u32 = self.last_code().parse().unwrap();
        format!("{:06}", (right + 1) % 1_000_000)
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    pub async fn enrolled(&self, c: &Caller) -> bool {
        status::status(&self.svc, c).await.unwrap().enrolled
    }
}
