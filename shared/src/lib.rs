//! The MFA service's domain crate.
//!
//! - [`types`]: values that can only be built valid (phone numbers, codes, ids, the policy).
//! - [`ports`]: the small traits the flows need (store, SMS, email, secrets, clock).
//! - [`flows`]: the product's flows as plain async functions over those ports.
//! - [`http`]: the Lambda handlers (API Gateway HTTP API v2 events in, JSON out) and the one
//!   function that maps a domain error to an HTTP answer.
//! - [`messages`]: the words of every text and email, per language, under the app's display name.
//! - [`metrics`]: counts for the operators (CloudWatch Embedded Metric Format on Lambda).
//! - [`adapters`]: DynamoDB, SNS, SES v2 and Secrets Manager, plus in-memory and console ones.
//!
//! The binaries in `functions/` and the local server in `infra/` only wire these together.

pub mod adapters;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flows;
pub mod http;
pub mod logging;
pub mod messages;
pub mod metrics;
pub mod policy_cache;
pub mod ports;
pub mod service;
pub mod signing;
pub mod totp;
pub mod types;

pub use error::MfaError;
pub use service::Service;
