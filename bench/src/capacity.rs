//! The capacity simulation (`bench/capacity.sh`, issue 19): the domain flows, driven with a
//! fixed clock that advances one second per simulated second, over the in-memory store wrapped
//! in [`RecordingStore`], which records the DynamoDB partitions, reads and writes each store
//! operation would cost (the DynamoDB adapter's own key builders, `adapters::dynamodb::footprint`).
//! It prints the hottest partitions against DynamoDB's per-partition limits and the SNS, SES,
//! Lambda and API Gateway rates against their default quotas.
//!
//! Each simulated Lambda instance is a clone of the service with its own policy cache, as a warm
//! sandbox is; requests go to the instances in turn. The number of instances is Little's law over
//! the functions' measured warm p50s (README, "Size and speed").

// A benchmark tool, not a request path: a scenario that cannot run stops with the reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use argon2::password_hash::PasswordHasher;
use async_trait::async_trait;
use clap::Parser;
use data_encoding::BASE32_NOPAD;
use mfa_shared::Service;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::adapters::recording::{Load, RecordingStore};
use mfa_shared::config::{Limits, Settings};
use mfa_shared::error::PortError;
use mfa_shared::flows::{Caller, challenge, enrollment, policy, status, totp, users};
use mfa_shared::policy_cache::PolicyCache;
use mfa_shared::ports::{Clock, Email, EmailSender, FixedClock, SmsSender};
use mfa_shared::totp::{TotpSecret, step_at};
use mfa_shared::types::{AppId, Code, Enforcement, Factor, PhoneNumber, UserId};

/// DynamoDB's per-partition limits (units a second).
const PARTITION_WRITES: f64 = 1000.0;
const PARTITION_READS: f64 = 3000.0;
/// Default quotas (per account and Region; see README "Capacity" for how to raise each).
const SNS_SMS_PER_SEC: f64 = 20.0;
const SES_SENDS_PER_SEC: f64 = 14.0;
const LAMBDA_CONCURRENCY: f64 = 1000.0;
const HTTP_API_RPS: f64 = 10_000.0;
/// An on-demand table's default maximum throughput (per table, each of reads and writes).
const TABLE_UNITS_PER_SEC: f64 = 40_000.0;
/// Warm p50 per invocation (ms, TLS + CPU share; README "Size and speed"), by route.
const MS_STATUS: f64 = 5.34;
const MS_START: f64 = 48.6;
const MS_PHONE: f64 = 1.88;
const MS_CODE: f64 = 2.03;
const MS_CHALLENGE: f64 = 2.08;

const PASSWORD: &str = "correct horse battery";
const BIG: &str = "big-tenant";

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Simulates one big tenant's peak over the in-memory store and prints the hottest DynamoDB partitions"
)]
struct Args {
    /// Enrollments a second in the big tenant (a rollout of Required at its peak).
    #[arg(long, default_value_t = 2000)]
    enrollments: u32,
    /// Sign-ins by text a second in the big tenant.
    #[arg(long, default_value_t = 5000)]
    sms_sign_ins: u32,
    /// Sign-ins by authenticator app a second in the big tenant.
    #[arg(long, default_value_t = 5000)]
    app_sign_ins: u32,
    /// Small tenants beside it.
    #[arg(long, default_value_t = 1000)]
    small_tenants: u32,
    /// Sign-ins by text a second in each small tenant.
    #[arg(long, default_value_t = 1)]
    small_sign_ins: u32,
    /// Simulated seconds.
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// The policy cache's lifetime (seconds; 0: no cache, as before issue 19).
    #[arg(long, default_value_t = Limits::default().policy_cache_secs)]
    policy_cache_secs: u64,
    /// Partitions to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Texts, counted; the newest one's code kept (the simulation is sequential).
#[derive(Default)]
struct Phone {
    last: Mutex<String>,
    sent: Mutex<u64>,
}

#[async_trait]
impl SmsSender for Phone {
    async fn send_sms(&self, _to: &PhoneNumber, body: &str) -> Result<(), PortError> {
        if let (Ok(mut last), Ok(mut sent)) = (self.last.lock(), self.sent.lock()) {
            *last = body.chars().take(6).collect();
            *sent += 1;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Mailbox(Mutex<u64>);

#[async_trait]
impl EmailSender for Mailbox {
    async fn send_email(&self, _email: &Email) -> Result<(), PortError> {
        if let Ok(mut n) = self.0.lock() {
            *n += 1;
        }
        Ok(())
    }
}

/// Invocations by route: what Lambda and API Gateway see.
#[derive(Default)]
struct Invocations(HashMap<&'static str, u64>);

impl Invocations {
    fn add(&mut self, route: &'static str) {
        *self.0.entry(route).or_default() += 1;
    }

    fn ms(route: &str) -> f64 {
        match route {
            "status" => MS_STATUS,
            "start" => MS_START,
            "phone" => MS_PHONE,
            "code" => MS_CODE,
            _ => MS_CHALLENGE,
        }
    }
}

struct Sim {
    instances: Vec<Service>,
    next: usize,
    phone: Arc<Phone>,
    clock: Arc<FixedClock>,
    invocations: Invocations,
}

impl Sim {
    /// The next instance (round robin), counting an invocation of `route`.
    fn on(&mut self, route: &'static str) -> &Service {
        self.invocations.add(route);
        self.next = (self.next + 1) % self.instances.len();
        &self.instances[self.next]
    }

    fn code(&self) -> Code {
        let last = self
            .phone
            .last
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        Code::parse(&last).expect("a text with a code was sent")
    }
}

fn caller(app: &AppId, user: &str, i: u64) -> Caller {
    Caller {
        app: app.clone(),
        user: UserId::parse(user).expect("a valid user id"),
        source_ip: format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
    }
}

fn number(i: u64) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415{:07}", 2_000_000 + (i % 7_000_000))).expect("a US number")
}

/// A cheap argon2id hash (8 KiB, one pass): the simulation counts store calls, not CPU.
fn cheap_hash() -> String {
    let params = argon2::Params::new(8, 1, 1, None).expect("params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .expect("hash")
        .to_string()
}

async fn configure(svc: &Service, app: &AppId, enforcement: Enforcement) {
    policy::set_availability(svc, app, true, "operator")
        .await
        .expect("available");
    let change = policy::PolicyChange {
        enabled: true,
        include_in_signup: true,
        enforcement,
        allowed_countries: None,
        factors: Some(vec![Factor::Sms, Factor::Totp]),
        display_name: None,
        webotp_domain: None,
        grace_period_days: Some(14),
    };
    policy::update(svc, app, change, None, "admin")
        .await
        .expect("policy");
}

async fn provision(svc: &Service, c: &Caller, hash: &str) {
    users::put(
        svc,
        &c.app,
        &c.user,
        format!("{}@example.com", c.user),
        true,
        hash.to_owned(),
        None,
    )
    .await
    .expect("user");
}

/// Enrolls `c` by text (Start, phone, code) on `sim`'s instances.
async fn enroll_by_text(sim: &mut Sim, c: &Caller, n: u64) {
    let id = enrollment::start(sim.on("start"), c, PASSWORD.into())
        .await
        .expect("start")
        .enrollment_id;
    enrollment::submit_phone(sim.on("phone"), c, &id, number(n), None)
        .await
        .expect("phone");
    let code = sim.code();
    enrollment::verify(sim.on("code"), c, &id, code)
        .await
        .expect("code");
}

/// Sets an authenticator app up for `c`: its secret.
async fn enroll_app(sim: &mut Sim, c: &Caller) -> TotpSecret {
    let started = totp::begin(sim.on("start"), c, PASSWORD.into(), None)
        .await
        .expect("app setup");
    let secret = TotpSecret::from_bytes(
        &BASE32_NOPAD
            .decode(started.secret.as_bytes())
            .expect("base32"),
    )
    .expect("secret");
    let code = secret.code_at_step(step_at(sim.clock.now()) - 1);
    enrollment::verify_code(sim.on("code"), c, &started.enrollment_id, code)
        .await
        .expect("app code");
    secret
}

async fn sign_in_by_text(sim: &mut Sim, c: &Caller) {
    let sent = challenge::start(sim.on("challenge"), c, None)
        .await
        .expect("challenge");
    let code = sim.code();
    challenge::verify(sim.on("challenge"), c, &sent.challenge_id, code)
        .await
        .expect("sign-in");
}

async fn sign_in_by_app(sim: &mut Sim, c: &Caller, secret: &TotpSecret) {
    let started = challenge::begin(sim.on("challenge"), c, None, Some(Factor::Totp))
        .await
        .expect("app challenge");
    let challenge::Started::App(waiting) = started else {
        panic!("an app challenge texts nothing");
    };
    let code = secret.code_at_step(step_at(sim.clock.now()));
    challenge::verify(sim.on("challenge"), c, &waiting.challenge_id, code)
        .await
        .expect("app sign-in");
}

/// The partitions by load, hottest first (the share of the nearer limit).
fn hottest(loads: &HashMap<String, Load>, seconds: f64) -> Vec<(String, f64, f64, f64)> {
    let mut rows: Vec<(String, f64, f64, f64)> = loads
        .iter()
        .map(|(pk, l)| {
            (
                pk.clone(),
                l.write_units / seconds,
                l.read_units / seconds,
                l.requests as f64 / seconds,
            )
        })
        .collect();
    let share = |r: &(String, f64, f64, f64)| (r.1 / PARTITION_WRITES).max(r.2 / PARTITION_READS);
    rows.sort_by(|a, b| share(b).total_cmp(&share(a)).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// What the scenario needs of the table, SNS, SES, Lambda and API Gateway, against their
/// defaults.
fn quotas(
    sim: &Sim,
    recorder: &RecordingStore,
    emails: u64,
    seconds: f64,
) -> Vec<(String, f64, f64)> {
    let (reads, writes) = units(recorder);
    let texts = sim.phone.sent.lock().map(|n| *n).unwrap_or(0) as f64 / seconds;
    let requests: f64 = sim.invocations.0.values().sum::<u64>() as f64 / seconds;
    let concurrency: f64 = sim
        .invocations
        .0
        .iter()
        .map(|(route, n)| *n as f64 / seconds * Invocations::ms(route) / 1000.0)
        .sum();
    vec![
        (
            "DynamoDB table write units/s".into(),
            writes / seconds,
            TABLE_UNITS_PER_SEC,
        ),
        (
            "DynamoDB table read units/s".into(),
            reads / seconds,
            TABLE_UNITS_PER_SEC,
        ),
        ("SNS SMS publishes a second".into(), texts, SNS_SMS_PER_SEC),
        (
            "SES sends a second".into(),
            emails as f64 / seconds,
            SES_SENDS_PER_SEC,
        ),
        (
            "Lambda concurrent executions".into(),
            concurrency,
            LAMBDA_CONCURRENCY,
        ),
        (
            "API Gateway requests a second".into(),
            requests,
            HTTP_API_RPS,
        ),
    ]
}

/// Read and write units recorded so far, over every partition.
fn units(recorder: &RecordingStore) -> (f64, f64) {
    recorder.loads().values().fold((0.0, 0.0), |(r, w), l| {
        (r + l.read_units, w + l.write_units)
    })
}

/// What one kind of flow cost, per flow, over the recorded peak.
struct PerFlow {
    what: &'static str,
    flows: u64,
    read_units: f64,
    write_units: f64,
    texts: u64,
    emails: u64,
    lambda_ms: f64,
}

/// What the recorder, the phone and the mailbox have counted: snapshots before and after a
/// batch of flows give what the batch cost.
struct Meter<'a> {
    recorder: &'a RecordingStore,
    phone: &'a Phone,
    mailbox: &'a Mailbox,
}

impl Meter<'_> {
    fn snapshot(&self) -> (f64, f64, u64, u64) {
        let (r, w) = units(self.recorder);
        let texts = self.phone.sent.lock().map(|n| *n).unwrap_or(0);
        let emails = self.mailbox.0.lock().map(|n| *n).unwrap_or(0);
        (r, w, texts, emails)
    }

    fn since(
        &self,
        before: (f64, f64, u64, u64),
        what: &'static str,
        flows: u64,
        ms: f64,
    ) -> PerFlow {
        let (r, w, t, e) = self.snapshot();
        PerFlow {
            what,
            flows,
            read_units: r - before.0,
            write_units: w - before.1,
            texts: t - before.2,
            emails: e - before.3,
            lambda_ms: ms,
        }
    }
}

/// Runs the scenario and returns its report; its last line is the hottest partition.
async fn simulate(args: &Args) -> String {
    use std::fmt::Write as _;
    let began = Instant::now();
    let clock = Arc::new(FixedClock::at(1_800_000_000));
    let limits = Limits {
        // The scenario is the tenant's legitimate peak: its own budgets set to fit it.
        texts_per_app_per_day: u32::MAX / 2,
        texts_per_ip_per_hour: u32::MAX / 2,
        policy_cache_secs: args.policy_cache_secs,
        ..Limits::default()
    };
    let (mut base, _outbox) =
        Service::in_memory(limits, Settings::default(), clock.clone()).expect("the service");
    let recorder = Arc::new(RecordingStore::new(Arc::new(MemoryStore::new())));
    recorder.record(false);
    let phone = Arc::new(Phone::default());
    let mailbox = Arc::new(Mailbox::default());
    base.store = recorder.clone();
    base.sms = phone.clone();
    base.email = mailbox.clone();

    // Little's law over the measured warm p50s: the warm sandboxes the peak keeps busy.
    let rate = |n: u32| f64::from(n);
    let enroll_ms = MS_STATUS + MS_START + MS_PHONE + MS_CODE;
    let sign_in_ms = 2.0 * MS_CHALLENGE;
    let busy_ms = rate(args.enrollments) * enroll_ms
        + (rate(args.sms_sign_ins)
            + rate(args.app_sign_ins)
            + rate(args.small_tenants * args.small_sign_ins))
            * sign_in_ms;
    let instances = ((busy_ms / 1000.0).ceil() as usize).max(1);
    let mut sim = Sim {
        instances: (0..instances)
            .map(|_| Service {
                policy_cache: Arc::new(PolicyCache::new(args.policy_cache_secs)),
                ..base.clone()
            })
            .collect(),
        next: 0,
        phone: phone.clone(),
        clock: clock.clone(),
        invocations: Invocations::default(),
    };

    // Set-up, not recorded: the tenants, their enrolled users and the users about to enroll.
    let hash = cheap_hash();
    let big = AppId::parse(BIG).expect("app id");
    configure(&base, &big, Enforcement::Required).await;
    let seconds = u64::from(args.seconds);
    let mut n: u64 = 0;
    let mut next_caller = |app: &AppId, kind: &str| {
        n += 1;
        caller(app, &format!("{kind}-{n}"), n)
    };
    let mut texters = Vec::new();
    for _ in 0..u64::from(args.sms_sign_ins) * seconds {
        let c = next_caller(&big, "sms");
        provision(&base, &c, &hash).await;
        enroll_by_text(&mut sim, &c, texters.len() as u64).await;
        texters.push(c);
    }
    let mut app_users = Vec::new();
    for _ in 0..u64::from(args.app_sign_ins) * seconds {
        let c = next_caller(&big, "app");
        provision(&base, &c, &hash).await;
        let secret = enroll_app(&mut sim, &c).await;
        app_users.push((c, secret));
    }
    let mut newcomers = Vec::new();
    for _ in 0..u64::from(args.enrollments) * seconds {
        let c = next_caller(&big, "new");
        provision(&base, &c, &hash).await;
        newcomers.push(c);
    }
    let mut small = Vec::new();
    for t in 0..args.small_tenants {
        let app = AppId::parse(&format!("small-{t}")).expect("app id");
        configure(&base, &app, Enforcement::Optional).await;
        for _ in 0..u64::from(args.small_sign_ins) * seconds {
            let c = next_caller(&app, "user");
            provision(&base, &c, &hash).await;
            enroll_by_text(&mut sim, &c, 5_000_000 + small.len() as u64).await;
            small.push(c);
        }
    }
    let set_up = began.elapsed();

    // The peak, recorded: each simulated second, its share of every flow.
    sim.invocations = Invocations::default();
    if let (Ok(mut sent), Ok(mut mails)) = (phone.sent.lock(), mailbox.0.lock()) {
        *sent = 0;
        *mails = 0;
    }
    clock.advance(60);
    recorder.record(true);
    fn take<T>(v: &mut Vec<T>, k: u32) -> Vec<T> {
        v.drain(..(k as usize).min(v.len())).collect()
    }
    let meter = Meter {
        recorder: &recorder,
        phone: &phone,
        mailbox: &mailbox,
    };
    let mut per_flow: Vec<PerFlow> = Vec::new();
    let mut add = |p: PerFlow| match per_flow.iter_mut().find(|q| q.what == p.what) {
        Some(q) => {
            q.flows += p.flows;
            q.read_units += p.read_units;
            q.write_units += p.write_units;
            q.texts += p.texts;
            q.emails += p.emails;
        }
        None => per_flow.push(p),
    };
    for _ in 0..args.seconds {
        clock.advance(1);
        let before = meter.snapshot();
        let batch = take(&mut newcomers, args.enrollments);
        let count = batch.len() as u64;
        for (i, c) in batch.into_iter().enumerate() {
            status::status(sim.on("status"), &c).await.expect("status");
            enroll_by_text(&mut sim, &c, 2_000_000 + i as u64).await;
        }
        add(meter.since(
            before,
            "enrollment by text (status, Start, phone, code)",
            count,
            enroll_ms,
        ));
        let before = meter.snapshot();
        let batch = take(&mut texters, args.sms_sign_ins);
        let count = batch.len() as u64;
        for c in batch {
            sign_in_by_text(&mut sim, &c).await;
        }
        add(meter.since(
            before,
            "sign-in by text (challenge, code)",
            count,
            sign_in_ms,
        ));
        let before = meter.snapshot();
        let batch = take(&mut app_users, args.app_sign_ins);
        let count = batch.len() as u64;
        for (c, secret) in batch {
            sign_in_by_app(&mut sim, &c, &secret).await;
        }
        add(meter.since(
            before,
            "sign-in by app (challenge, code)",
            count,
            sign_in_ms,
        ));
        for c in take(&mut small, args.small_tenants * args.small_sign_ins) {
            sign_in_by_text(&mut sim, &c).await;
        }
    }
    recorder.record(false);
    let secs = f64::from(args.seconds);
    let emails = mailbox.0.lock().map(|n| *n).unwrap_or(0);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "== capacity: {BIG} ({} enrollments/s, {} SMS sign-ins/s, {} app sign-ins/s) beside {} small tenants ({} SMS sign-in/s each)",
        args.enrollments,
        args.sms_sign_ins,
        args.app_sign_ins,
        args.small_tenants,
        args.small_sign_ins
    );
    let _ = writeln!(
        out,
        "   {} s simulated after {:.1} s of set-up; {instances} Lambda instances (Little's law over the warm p50s), policy cache {} s",
        args.seconds,
        set_up.as_secs_f64(),
        args.policy_cache_secs
    );
    let _ = writeln!(
        out,
        "== per flow (DynamoDB units as the adapter would spend them; Lambda at the measured warm p50s)"
    );
    for p in per_flow.iter().filter(|p| p.flows > 0) {
        let f = p.flows as f64;
        let _ = writeln!(
            out,
            "   {:<50} {:>5.1} read units {:>5.1} write units {:>4.2} SNS {:>4.2} SES {:>6.1} ms Lambda",
            p.what,
            p.read_units / f,
            p.write_units / f,
            p.texts as f64 / f,
            p.emails as f64 / f,
            p.lambda_ms
        );
    }
    let rows = hottest(&recorder.loads(), secs);
    let _ = writeln!(
        out,
        "== the {} hottest partitions (units a second; limits {PARTITION_WRITES:.0} writes, {PARTITION_READS:.0} reads)",
        args.top
    );
    let _ = writeln!(
        out,
        "   {:<44} {:>10} {:>10} {:>11} {:>9}",
        "partition key", "writes/s", "reads/s", "requests/s", "of limit"
    );
    for (pk, w, r, q) in rows.iter().take(args.top) {
        let share = (w / PARTITION_WRITES).max(r / PARTITION_READS) * 100.0;
        let _ = writeln!(
            out,
            "   {pk:<44} {w:>10.0} {r:>10.0} {q:>11.0} {share:>8.0}%"
        );
    }
    let _ = writeln!(
        out,
        "== account and table quotas (needed, against the default)"
    );
    for (what, need, quota) in quotas(&sim, &recorder, emails, secs) {
        let verdict = if need <= quota {
            "within"
        } else {
            "OVER: raise it"
        };
        let _ = writeln!(
            out,
            "   {what:<32} {need:>10.1}  default {quota:>8.0}  {verdict}"
        );
    }
    let _ = writeln!(out, "   (ran in {:.1} s)", began.elapsed().as_secs_f64());
    let (w, r) = rows.first().map_or((0.0, 0.0), |(_, w, r, _)| (*w, *r));
    let _ = write!(
        out,
        "hottest partition: {w:.0} writes/s, {r:.0} reads/s (limits 1000 / 3000)"
    );
    out
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!("{}", simulate(&Args::parse()).await);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(policy_cache_secs: u64) -> Args {
        Args::parse_from([
            "capacity",
            "--enrollments=4",
            "--sms-sign-ins=6",
            "--app-sign-ins=6",
            "--small-tenants=3",
            "--seconds=2",
            &format!("--policy-cache-secs={policy_cache_secs}"),
        ])
    }

    #[tokio::test]
    async fn a_small_scenario_reports_its_hottest_partition_last() {
        let report = simulate(&small(5)).await;
        let last = report.lines().last().unwrap();
        let re = regex_lite::Regex::new(
            r"^hottest partition: \d+ writes/s, \d+ reads/s \(limits 1000 / 3000\)$",
        )
        .unwrap();
        assert!(re.is_match(last), "{last}");
        // Every flow was run and counted: one text and one email per enrollment, one text per
        // sign-in by text, none by app.
        assert!(report.contains("enrollment by text"), "{report}");
        let line = |what: &str| {
            report
                .lines()
                .find(|l| l.contains(what))
                .unwrap()
                .to_owned()
        };
        assert!(
            line("enrollment by text").contains("1.00 SNS 1.00 SES"),
            "{report}"
        );
        assert!(
            line("sign-in by text").contains("1.00 SNS 0.00 SES"),
            "{report}"
        );
        assert!(
            line("sign-in by app").contains("0.00 SNS 0.00 SES"),
            "{report}"
        );
    }

    #[tokio::test]
    async fn the_policy_cache_takes_the_policy_reads_off_the_hot_list() {
        // Without the cache every request reads the tenant's policy item; with it, each
        // instance reads it once in the TTL.
        let reads = |report: &str| -> f64 {
            report
                .lines()
                .find(|l| l.trim_start().starts_with("APP#big-tenant "))
                .map_or(0.0, |l| {
                    l.split_whitespace().nth(2).unwrap().parse().unwrap()
                })
        };
        let uncached = simulate(&Args {
            top: 100,
            ..small(0)
        })
        .await;
        let cached = simulate(&Args {
            top: 100,
            ..small(5)
        })
        .await;
        assert!(
            reads(&uncached) > 10.0 * reads(&cached).max(1.0),
            "{uncached}\n{cached}"
        );
    }
}
