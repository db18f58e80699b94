//! CPU per request of the domain flows, with in-memory adapters (no I/O): `cargo bench -p
//! mfa-shared --bench flows`. Budget (issue 7): a warm request other than the password step
//! spends at most 2 ms of CPU in our code.
//!
//! Each flow runs for a fresh user whose state the (unmeasured) setup prepares, so that the
//! rate limits and cooldowns never answer instead of the flow. The users' stored password
//! hashes use tiny argon2 costs so that setups are quick; the password step itself, at OWASP's
//! costs (m=19456 KiB, t=2, p=1), is measured once on its own (`password/argon2id_owasp`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mfa_shared::Service;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::config::{Limits, Settings};
use mfa_shared::error::PortError;
use mfa_shared::flows::{Caller, challenge, enrollment, policy, status, users};
use mfa_shared::metrics::Recorded;
use mfa_shared::ports::{Email, EmailSender, FixedClock, SmsSender};
use mfa_shared::types::{AppId, Code, Enforcement, EnrollmentId, PhoneNumber, UserId};

const PASSWORD: &str = "correct horse battery";

/// Keeps only the newest text's code: no printing, no growing outbox.
#[derive(Default)]
struct Sink(Mutex<String>);

#[async_trait]
impl SmsSender for Sink {
    async fn send_sms(&self, _to: &PhoneNumber, body: &str) -> Result<(), PortError> {
        *self.0.lock().unwrap() = body[..6].to_owned();
        Ok(())
    }
}

#[async_trait]
impl EmailSender for Sink {
    async fn send_email(&self, _email: &Email) -> Result<(), PortError> {
        Ok(())
    }
}

fn hash(pw: &str, m: u32, t: u32) -> String {
    let params = Params::new(m, t, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(pw.as_bytes())
        .unwrap()
        .to_string()
}

struct World {
    svc: Service,
    sink: Arc<Sink>,
    app: AppId,
    cheap_hash: String,
    next: AtomicU64,
}

impl World {
    async fn new() -> World {
        let limits = Limits {
            resend_cooldown_secs: 0,
            max_sends_per_enrollment: u32::MAX,
            texts_per_user_per_day: u32::MAX,
            texts_per_number_per_hour: u32::MAX,
            texts_per_ip_per_hour: u32::MAX,
            texts_per_app_per_day: u32::MAX,
            code_failures_per_user_per_hour: u32::MAX,
            ..Limits::default()
        };
        let clock = Arc::new(FixedClock::at(1_800_000_000));
        let (mut svc, _outbox) = Service::in_memory(limits, Settings::default(), clock).unwrap();
        let sink = Arc::new(Sink::default());
        svc.store = Arc::new(MemoryStore::new());
        svc.sms = sink.clone();
        svc.email = sink.clone();
        svc.metrics = Arc::new(Recorded::new());
        let app = AppId::parse("acme").unwrap();
        policy::set_availability(&svc, &app, true, "operator")
            .await
            .unwrap();
        policy::update(&svc, &app, change(Enforcement::Optional), None, "admin")
            .await
            .unwrap();
        World {
            svc,
            sink,
            app,
            cheap_hash: hash(PASSWORD, 8, 1),
            next: AtomicU64::new(0),
        }
    }

    async fn user(&self) -> Caller {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let user = UserId::parse(&format!("user{n}")).unwrap();
        let email = format!("user{n}@example.com");
        users::put(
            &self.svc,
            &self.app,
            &user,
            email,
            true,
            self.cheap_hash.clone(),
            None,
        )
        .await
        .unwrap();
        Caller {
            app: self.app.clone(),
            user,
            source_ip: "198.51.100.7".into(),
        }
    }

    async fn started(&self) -> (Caller, EnrollmentId) {
        let c = self.user().await;
        let id = enrollment::start(&self.svc, &c, PASSWORD.into())
            .await
            .unwrap()
            .enrollment_id;
        (c, id)
    }

    async fn code_sent(&self) -> (Caller, EnrollmentId, Code) {
        let (c, id) = self.started().await;
        enrollment::submit_phone(&self.svc, &c, &id, number(), None)
            .await
            .unwrap();
        (c, id, self.last_code())
    }

    async fn enrolled(&self) -> Caller {
        let (c, id, code) = self.code_sent().await;
        enrollment::verify(&self.svc, &c, &id, code).await.unwrap();
        c
    }

    fn last_code(&self) -> Code {
        Code::parse(&self.sink.0.lock().unwrap()).unwrap()
    }
}

fn number() -> PhoneNumber {
    PhoneNumber::parse("+14155550123").unwrap()
}

fn change(enforcement: Enforcement) -> policy::PolicyChange {
    policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement,
        allowed_countries: None,
        factors: None,
        display_name: None,
        webotp_domain: None,
        grace_period_days: None,
    }
}

fn flows(cr: &mut Criterion) {
    // Lambda runs each function on a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(World::new());
    let mut g = cr.benchmark_group("flow");

    let c = rt.block_on(w.user());
    g.bench_function("status", |b| {
        b.iter(|| rt.block_on(status::status(&w.svc, &c)).unwrap())
    });
    g.bench_function("phone_submit", |b| {
        b.iter_batched(
            || rt.block_on(w.started()),
            |(c, id)| {
                rt.block_on(enrollment::submit_phone(&w.svc, &c, &id, number(), None))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("code_verify", |b| {
        b.iter_batched(
            || rt.block_on(w.code_sent()),
            |(c, id, code)| {
                rt.block_on(enrollment::verify(&w.svc, &c, &id, code))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("resend", |b| {
        b.iter_batched(
            || rt.block_on(w.code_sent()),
            |(c, id, _)| rt.block_on(enrollment::resend(&w.svc, &c, &id)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("challenge_verify", |b| {
        b.iter_batched(
            || {
                rt.block_on(async {
                    let c = w.enrolled().await;
                    let sent = challenge::start(&w.svc, &c, None).await.unwrap();
                    (c, sent.challenge_id, w.last_code())
                })
            },
            |(c, id, code)| {
                rt.block_on(challenge::verify(&w.svc, &c, &id, code))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("policy_get", |b| {
        b.iter(|| rt.block_on(policy::get(&w.svc, &w.app)).unwrap())
    });
    let mut flip = false;
    g.bench_function("policy_put", |b| {
        b.iter(|| {
            flip = !flip;
            let e = if flip {
                Enforcement::Required
            } else {
                Enforcement::Optional
            };
            rt.block_on(policy::update(&w.svc, &w.app, change(e), None, "admin"))
                .unwrap()
        })
    });
    g.finish();
}

/// One password check at OWASP's argon2id costs, through the same `verify_password` the flows
/// call (parameters from the PHC string, on a blocking thread).
fn password(cr: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let phc = hash(PASSWORD, 19456, 2);
    let mut g = cr.benchmark_group("password");
    g.sample_size(10);
    g.bench_function("argon2id_owasp", |b| {
        b.iter(|| {
            let check = rt.block_on(mfa_shared::crypto::verify_password(
                Some(phc.clone()),
                PASSWORD.into(),
            ));
            assert!(check.matches);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = flows, password
}
criterion_main!(benches);
