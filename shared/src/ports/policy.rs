//! The application's policy: one versioned record per application.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{AppId, Policy};

/// The application's policy, written only over the version the writer read.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - policy never configured is none;
/// - a second first write of a policy loses;
/// - put_policy with a stale version is refused (the stored policy stays);
/// - policy factors read back as written;
/// - policy message settings read back as written.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// The application's policy as last written.
    /// - policy never configured is none;
    /// - policy factors read back as written;
    /// - policy message settings read back as written.
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError>;
    /// Writes `policy` only if the stored version is still `expected_version` (0: none).
    /// Returns false when someone else wrote first.
    /// - a second first write of a policy loses;
    /// - put_policy with a stale version is refused (the stored policy stays).
    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError>;
}
