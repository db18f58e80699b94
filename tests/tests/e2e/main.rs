//! The end-to-end tests, in one binary (one link after a change to the service, instead of
//! one per file): a module per suite; what they share is the `mfa_tests` library (`tests/src`).
//!
//! Run one suite by its module path, e.g. `cargo test -p mfa-tests --test e2e signin::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aws;
mod events;
mod faults;
mod lambda_runtime;
mod load;
mod local;
mod observability;
mod pyotp_interop;
mod routes;
mod settings;
mod sign_in_calls;
mod signin;
mod template;
