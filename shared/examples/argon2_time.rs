//! Times one password check at OWASP's argon2id costs (m=19456 KiB, t=2, p=1) through
//! `crypto::verify_password`, the flows' own path (PHC parameters, blocking thread): run it
//! under a CPU quota to see the password step at a Lambda memory size's CPU share (see
//! `bench/argon2-shares.sh`). Prints the median and the slowest of `N` (arg 1, default 9) runs
//! in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(9);
    let phc = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19456, 2, 1, None).unwrap(),
    )
    .hash_password(b"correct horse")
    .unwrap()
    .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            let check = rt.block_on(mfa_shared::crypto::verify_password(
                Some(phc.clone()),
                "correct horse".into(),
            ));
            assert!(check.matches);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "argon2id m=19456 t=2 p=1: median {:.1} ms, max {:.1} ms over {n}",
        ms[n / 2],
        ms[n - 1]
    );
}
