//! Adapters behind the ports: AWS for deployments, memory and console for the local default.

pub mod aws;
pub mod console;
pub mod dynamodb;
pub mod faulty;
pub mod memory;
pub mod secrets_manager;
pub mod ses;
pub mod sns;
