//! The world the flow tests run in: the service over the in-memory store (behind a
//! [`FaultyStore`], so a test can make any store call fail), the console outbox, recorded
//! metrics and a fixed clock, with one application where MFA is available and enabled.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use argon2::password_hash::PasswordHasher;
use mfa_shared::adapters::console::ConsoleOutbox;
use mfa_shared::adapters::faulty::FaultyStore;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::flows::{Caller, enrollment, policy, status, users};
use mfa_shared::metrics::Recorded;
use mfa_shared::ports::FixedClock;
use mfa_shared::types::{AppId, Code, Enforcement, EnrollmentId, PhoneNumber, UserId};
use mfa_shared::{MfaError, Service};

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

pub fn hash(pw: &str) -> String {
    argon2::Argon2::default()
        .hash_password(pw.as_bytes())
        .unwrap()
        .to_string()
}

pub async fn world(limits: Limits) -> World {
    let clock = Arc::new(FixedClock::at(T0));
    let (mut svc, outbox) = Service::in_memory(limits, Settings::default(), clock.clone()).unwrap();
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let metrics = Recorded::new();
    svc.store = store.clone();
    svc.metrics = Arc::new(metrics.clone());
    let app = AppId::parse("acme").unwrap();
    policy::set_availability(&svc, &app, true, "operator")
        .await
        .unwrap();
    set_policy(&svc, &app, true, true, Enforcement::Optional).await;
    World {
        svc,
        store,
        outbox,
        metrics,
        clock,
        app,
    }
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
    };
    policy::update(svc, app, change, None, "admin")
        .await
        .unwrap();
}

impl World {
    pub async fn user(&self, id: &str) -> Caller {
        self.user_at(id, "198.51.100.7").await
    }

    pub async fn user_at(&self, id: &str, ip: &str) -> Caller {
        let user = UserId::parse(id).unwrap();
        users::put(
            &self.svc,
            &self.app,
            &user,
            format!("{id}@example.com"),
            true,
            hash(PASSWORD),
        )
        .await
        .unwrap();
        Caller {
            app: self.app.clone(),
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
