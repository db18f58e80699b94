//! Times aws-lc's first random bytes in a process against the next ones. aws-lc (rustls'
//! crypto provider in the SDK's default HTTPS client) seeds its generator on first use, CPU
//! jitter entropy included: a one-off cost per process that lands on whatever first needs
//! randomness — in our functions the TLS handshake of the Secrets Manager read during init.
//! Run it under a CPU quota (`bench/argon2-shares.sh` shows how) for a Lambda size's share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

fn fill_ms() -> f64 {
    let mut bytes = [0u8; 32];
    let t = Instant::now();
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let first = fill_ms();
    let second = fill_ms();
    println!("aws-lc random bytes: first use {first:.2} ms, next {second:.3} ms");
}
