//! The capacity work of issue 19: the policy cache per warm instance, and the recording store
//! of the capacity simulation (`bench/capacity.sh`), whose key layout is checked here against
//! the DynamoDB adapter's own requests on moto, so that the two cannot drift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use data_encoding::BASE32_NOPAD;
use mfa_shared::adapters::dynamodb::DynamoStore;
use mfa_shared::adapters::dynamodb::footprint::Access;
use mfa_shared::adapters::memory::MemoryStore;
use mfa_shared::adapters::recording::RecordingStore;
use mfa_shared::config::Limits;
use mfa_shared::flows::{
    Caller, admin, audit, challenge, enrollment, phones, policy, stats, status, totp,
};
use mfa_shared::ports::Store;
use mfa_shared::totp::{TotpSecret, step_at};
use mfa_shared::types::{Enforcement, Factor};
use serde_json::Value;

use crate::kit::{self, PASSWORD, World, unique};

fn limits(policy_cache_secs: u64) -> Limits {
    Limits {
        policy_cache_secs,
        ..Limits::default()
    }
}

async fn world(store: Arc<dyn Store>, policy_cache_secs: u64) -> World {
    kit::both_factors(store, limits(policy_cache_secs)).await
}

// ---------------------------------------------------------------- the policy cache

/// Another warm instance of the same deployment: the same store, its own policy cache.
fn another_instance(w: &World) -> mfa_shared::Service {
    mfa_shared::Service {
        policy_cache: Arc::new(mfa_shared::policy_cache::PolicyCache::new(
            w.svc.limits.policy_cache_secs,
        )),
        ..w.svc.clone()
    }
}

kit::on_both!(
    "mfa-cache",
    a_saved_policy_holds_at_once_where_saved_and_within_the_ttl_elsewhere,
);

async fn a_saved_policy_holds_at_once_where_saved_and_within_the_ttl_elsewhere(
    store: Arc<dyn Store>,
) {
    let w = world(store, 5).await;
    let other = another_instance(&w);
    let ada = w.user("ada").await;
    // The other instance reads the policy (optional: Skip offered) and keeps it.
    assert!(status::status(&other, &ada).await.unwrap().can_skip);
    kit::set_policy(&w.svc, &w.app, true, true, Enforcement::Required).await;
    // Where it was saved: at once. Elsewhere: the kept copy, for less than the TTL.
    assert!(!status::status(&w.svc, &ada).await.unwrap().can_skip);
    w.advance(4);
    assert!(status::status(&other, &ada).await.unwrap().can_skip);
    w.advance(1);
    assert!(!status::status(&other, &ada).await.unwrap().can_skip);
    // The admin API never shows a kept copy.
    let fresh = policy::get_fresh(&other, &w.app).await.unwrap();
    assert_eq!(fresh.enforcement, Enforcement::Required);
}

#[tokio::test]
async fn within_the_ttl_an_instance_reads_the_policy_once() {
    for (ttl, reads) in [(5, 1), (0, 6)] {
        let recorder = Arc::new(RecordingStore::new(Arc::new(MemoryStore::new())));
        let w = world(recorder.clone(), ttl).await;
        let ada = w.user("ada").await;
        let other = another_instance(&w);
        recorder.record(true);
        let before = policy_reads(&recorder, &w);
        for _ in 0..6 {
            status::status(&other, &ada).await.unwrap();
        }
        assert_eq!(policy_reads(&recorder, &w) - before, reads, "ttl {ttl}");
        // Past the TTL, one read more.
        if ttl > 0 {
            w.advance(ttl as i64);
            status::status(&other, &ada).await.unwrap();
            assert_eq!(policy_reads(&recorder, &w) - before, reads + 1);
        }
    }
}

fn policy_reads(recorder: &RecordingStore, w: &World) -> u64 {
    recorder
        .loads()
        .get(&format!("APP#{}", w.app))
        .map_or(0, |l| l.requests)
}

// ---------------------------------------------------------------- the recorder's key layout

/// One scenario that touches every kind of item: provisioning, an enrollment by text, a sign-in
/// by text, an app set up and signed in with, a phone added and removed, a skip, the status,
/// the adoption figures, the audit log (the application's and a user's) and an admin reset.
async fn scenario(w: &World) {
    let (ada, bob) = (w.user("ada").await, w.user("bob").await);
    status::status(&w.svc, &ada).await.unwrap();
    w.enroll(&ada, "+14155550101", None).await;
    let sent = challenge::start(&w.svc, &ada, None).await.unwrap();
    w.sign_in(&ada, &sent.challenge_id, w.code()).await.unwrap();
    let secret = set_up_app(w, &ada).await;
    w.advance(60);
    let started = challenge::begin(&w.svc, &ada, None, Some(Factor::Totp))
        .await
        .unwrap();
    let challenge::Started::App(waiting) = started else {
        panic!("an app challenge sends no text");
    };
    let code = secret.code_at_step(step_at(w.svc.clock.now()));
    w.sign_in(&ada, &waiting.challenge_id, code).await.unwrap();
    let added = w.add_phone(&ada, "+14155550102").await;
    let id = added.enrollment_id.unwrap();
    w.verify(&ada, &id, &w.last_code()).await.unwrap();
    let list = phones::list(&w.svc, &ada).await.unwrap();
    phones::remove(&w.svc, &ada, &list[1].phone_id, PASSWORD.into())
        .await
        .unwrap();
    status::skip(&w.svc, &bob).await.unwrap();
    stats::adoption(&w.svc, &w.app).await.unwrap();
    audit::list(&w.svc, &w.app, None, 10, None).await.unwrap();
    audit::list(&w.svc, &w.app, Some(&ada.user), 10, None)
        .await
        .unwrap();
    admin::reset(&w.svc, &w.app, &ada.user, "admin")
        .await
        .unwrap();
}

async fn set_up_app(w: &World, c: &Caller) -> TotpSecret {
    let started = totp::begin(&w.svc, c, PASSWORD.into(), None).await.unwrap();
    let secret =
        TotpSecret::from_bytes(&BASE32_NOPAD.decode(started.secret.as_bytes()).unwrap()).unwrap();
    let code = secret.code_at_step(step_at(w.svc.clock.now()));
    enrollment::verify_code(&w.svc, c, &started.enrollment_id, code)
        .await
        .unwrap();
    secret
}

/// The partition keys of every DynamoDB request the client sends, by operation (an item of a
/// transaction is one each), read from the request bodies before they go.
#[derive(Debug, Default, Clone)]
struct Wire(Arc<Mutex<Vec<(String, String)>>>);

impl Intercept for Wire {
    fn name(&self) -> &'static str {
        "wire"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let op = req
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1))
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_slice(req.body().bytes().unwrap_or_default())?;
        let pk = |v: &Value| v["pk"]["S"].as_str().map(str::to_owned);
        let mut seen = Vec::new();
        match op.as_str() {
            "GetItem" | "UpdateItem" | "DeleteItem" => seen.extend(pk(&body["Key"])),
            "PutItem" => seen.extend(pk(&body["Item"])),
            "Query" => seen.extend(
                body["ExpressionAttributeValues"][":pk"]["S"]
                    .as_str()
                    .map(str::to_owned),
            ),
            "TransactWriteItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    for (kind, field) in [
                        ("Put", "Item"),
                        ("Update", "Key"),
                        ("Delete", "Key"),
                        ("ConditionCheck", "Key"),
                    ] {
                        seen.extend(pk(&item[kind][field]));
                    }
                }
            }
            _ => {}
        }
        if let Ok(mut log) = self.0.lock() {
            log.extend(seen.into_iter().map(|pk| (op.clone(), pk)));
        }
        Ok(())
    }
}

/// A key with the scenario's application id, shard numbers and keyed number tags replaced,
/// so that two runs (another application, other random ids, another code key) compare.
fn shape(app: &str, pk: &str) -> String {
    let pk = pk.replace(app, "{app}");
    let parts: Vec<&str> = pk.split('#').collect();
    let numbered = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let tag = |p: &str| p.len() == 32 && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts
        .iter()
        .map(|p| match *p {
            p if numbered(p) => "{k}",
            p if tag(p) => "{tag}",
            p => p,
        })
        .collect::<Vec<_>>()
        .join("#")
}

/// (operation, key shape) → requests.
fn layout(
    app: &str,
    accesses: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for (op, pk) in accesses {
        *m.entry((op, shape(app, &pk))).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
async fn the_recorders_key_layout_matches_the_dynamodb_adapters() {
    // The adapter on moto, its requests read off the wire.
    let sdk = kit::emulators::sdk("MFA_TEST_MOTO_URL").await;
    let table = unique("mfa-capacity");
    mfa_shared::adapters::aws::ensure_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
        .await
        .unwrap();
    let wire = Wire::default();
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(wire.clone())
        .build();
    let dynamo = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(conf),
        table,
    ));
    let on_aws = world(dynamo, 5).await;
    wire.0.lock().unwrap().clear();
    scenario(&on_aws).await;
    let sent = wire.0.lock().unwrap().clone();

    // The recorder over memory, the same scenario.
    let recorder = Arc::new(RecordingStore::new(Arc::new(MemoryStore::new())).keeping_log());
    let in_memory = world(recorder.clone(), 5).await;
    recorder.record(false);
    let skip = recorder.log().len();
    recorder.record(true);
    scenario(&in_memory).await;
    let recorded: Vec<(String, String)> = recorder.log()[skip..]
        .iter()
        .map(|Access { op, pk, .. }| ((*op).to_owned(), pk.clone()))
        .collect();

    let adapter = layout(on_aws.app.as_str(), sent);
    let model = layout(in_memory.app.as_str(), recorded);
    // The same partitions for the same operations...
    let keys = |m: &BTreeMap<(String, String), usize>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        keys(&model),
        keys(&adapter),
        "recorder (left) and adapter (right) key layouts"
    );
    // ...as many times, but for transactions whose item counts the recorder estimates (the
    // sessions a reset deletes).
    for (key, n) in &adapter {
        if key.0 != "TransactWriteItems" {
            assert_eq!(model.get(key), Some(n), "{key:?}");
        }
    }
}
