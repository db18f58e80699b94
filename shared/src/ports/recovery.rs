//! Recovery codes: keyed hashes, each usable once.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{Owner, UnixTime};

/// Recovery codes, single use, and only for a user with a factor (a phone or an app).
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - replace_recovery_codes needs a factor (a phone or an app);
/// - replace_recovery_codes replaces the whole set (a kept hash is unused again);
/// - a duplicated recovery hash is one code;
/// - consume_recovery_code is true exactly once (never for an unknown or another user's);
/// - count_recovery_codes counts unused only.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Replaces the user's recovery codes (keyed hashes) with `hashes`, atomically, if the
    /// user has a factor (a phone or an authenticator app) at the moment of the write. False
    /// (nothing written) when they have none: a set made while the last factor is removed
    /// never survives the removal.
    /// - replace_recovery_codes needs a factor (a phone or an app);
    /// - replace_recovery_codes replaces the whole set (a kept hash is unused again);
    /// - a duplicated recovery hash is one code.
    async fn replace_recovery_codes(
        &self,
        owner: Owner<'_>,
        hashes: &[String],
        now: UnixTime,
    ) -> Result<bool, PortError>;
    /// Uses the recovery code with this hash: true exactly once per code, even under races,
    /// and still true when the store's own retry repeats a use whose answer was lost.
    /// - consume_recovery_code is true exactly once (never for an unknown or another user's).
    async fn consume_recovery_code(&self, owner: Owner<'_>, hash: &str) -> Result<bool, PortError>;
    /// How many unused recovery codes the user has.
    /// - count_recovery_codes counts unused only.
    async fn count_recovery_codes(&self, owner: Owner<'_>) -> Result<u32, PortError>;
}
