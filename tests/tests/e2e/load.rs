//! The bounded load test (`mfa_tests::load`): simulated users enroll concurrently for a few
//! seconds, then the run must show no 5xx and no other unexpected answer, every completed
//! enrollment present, and exactly one text per accepted send. Timings are reported
//! (`target/load-report-{memory,moto}.txt`), never asserted. `tests/load.sh` runs it longer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mfa_tests::load::{self, Backend, Options};

/// One load run at a time, so that the two do not share the machine's cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_users_enroll_for_eight_seconds_on_the_memory_backend() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = load::run(&Options {
        backend: Backend::Memory,
        users: 8,
        duration: Duration::from_secs(8),
    })
    .await;
    report.assert_correct("memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server: run by tests/run.sh (sets MFA_TEST_MOTO_URL)"]
async fn eight_users_enroll_for_twelve_seconds_on_moto_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = load::run(&Options {
        backend: Backend::Moto,
        users: 8,
        duration: Duration::from_secs(12),
    })
    .await;
    report.assert_correct("moto");
}
