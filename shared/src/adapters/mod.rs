//! Adapters behind the ports: AWS for deployments, memory and console for the local default.

pub mod aws;
pub mod console;
pub mod dynamodb;
pub mod faulty;
pub mod https;
pub mod jwks;
pub mod memory;
pub mod secrets_manager;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sns")]
pub mod sns;
