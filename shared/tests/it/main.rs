//! The integration tests of `mfa-shared`, in one binary (one link after a change to the
//! library, instead of one per file): a module per suite, and `kit`, the world they share.
//!
//! Run one suite by its module path, e.g. `cargo test -p mfa-shared --test it store_contract::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

mod abuse;
mod adoption;
mod capacity;
mod faults;
mod flows;
mod grace;
mod handlers;
mod hostile_input;
mod messages;
mod phone_metadata;
mod refusals;
mod settings;
mod signin;
mod store_contract;
mod store_races;
mod totp;
