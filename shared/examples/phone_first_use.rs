//! What validating a phone number costs on first use of its region (its patterns compile
//! then) and after: `cargo run --release -p mfa-shared --example phone_first_use`.
use std::time::Instant;

use mfa_shared::types::PhoneNumber;

fn main() {
    for input in [
        "+14155550123",
        "+14155550124",
        "+447400123456",
        "+4915123456789",
        "+919876543210",
        "+61412345678",
    ] {
        let t = Instant::now();
        let ok = PhoneNumber::parse(input).is_ok();
        println!(
            "{:>8.3} ms  valid={ok}  {}",
            t.elapsed().as_secs_f64() * 1e3,
            &input[..4]
        );
    }
}
