//! Fixed-window counters: rate limits and lockouts.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::UnixTime;

/// What a counter answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// One unit taken; `window_start` identifies the window for a later release.
    Taken { count: u32, window_start: UnixTime },
    /// The limit is reached (or the counter is blocked) until `until`. `first` is true for
    /// exactly one refusal per window (or per block): the first after the limit was reached,
    /// recorded on the counter in the same conditional write, so that the caller audits a
    /// block once and only counts the refusals after it.
    Limited { until: UnixTime, first: bool },
}

/// A fixed window's limit: at most `limit` units per window of `secs` seconds (the window opens
/// at its first unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub secs: u64,
}

impl Window {
    pub const fn new(limit: u32, secs: u64) -> Window {
        Window { limit, secs }
    }
}

/// Fixed-window counters, taken and released in single conditional writes.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - counter_take refuses at the limit, first once (per window);
/// - counter_take opens a new window after the old one (at its first unit);
/// - counter_give_back only to its window (never below zero, never creating a counter);
/// - counter_block refuses until its end, first once (per block).
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Takes one unit from the fixed window counter `key` (the window opens at the first unit
    /// and lasts `window.secs`), unless `window.limit` units are taken or the counter is blocked.
    /// - counter_take refuses at the limit, first once (per window);
    /// - counter_take opens a new window after the old one (at its first unit).
    async fn counter_take(
        &self,
        key: &str,
        window: Window,
        now: UnixTime,
    ) -> Result<Counted, PortError>;
    /// Gives one unit back to the window that opened at `window_start` (no-op for a newer one).
    /// - counter_give_back only to its window (never below zero, never creating a counter).
    async fn counter_give_back(&self, key: &str, window_start: UnixTime) -> Result<(), PortError>;
    /// Blocks the counter until `until` (the password lockout); a counter never taken is left
    /// alone.
    /// - counter_block refuses until its end, first once (per block).
    async fn counter_block(&self, key: &str, until: UnixTime) -> Result<(), PortError>;
}
