//! Adapters behind the ports: AWS for deployments, memory and console for the local default
//! (and, with the `testing` feature, a store that fails on demand), and the recording store of the
//! capacity simulation.

pub mod aws;
pub mod console;
pub mod dynamodb;
/// Only with the `testing` feature: a store that fails on demand, for the tests.
#[cfg(feature = "testing")]
pub mod faulty;
pub mod jwks;
pub mod memory;
/// The capacity simulation's store: memory, recording what DynamoDB would be asked.
pub mod recording;
pub mod secrets_manager;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sns")]
pub mod sns;
