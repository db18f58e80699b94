//! The small traits the flows run over, and the records they exchange.
//!
//! Every write that guards single use or a counter is one conditional operation of the store
//! (a DynamoDB condition expression, a compare under a lock in memory): the flows never read a
//! value, decide, and then write it back unconditionally.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{PhoneNumber, UnixTime};

pub mod audit;
pub mod authenticators;
pub mod counters;
pub mod phones;
pub mod policy;
pub mod recovery;
pub mod sessions;
pub mod stats;
pub mod users;

pub use audit::{AuditEvent, AuditPage, AuditQuery, AuditStore};
pub use authenticators::{
    AppCodeUse, AppCompletion, AppSetupSeen, AuthenticatorRecord, AuthenticatorStore,
};
pub use counters::{Counted, CounterStore, Window};
pub use phones::{PhoneRecord, PhoneStore, Removal, display_order};
pub use policy::PolicyStore;
pub use recovery::RecoveryStore;
pub use sessions::{
    AppSetup, CodeUse, Completion, Enrollment, MAX_LIVE_ENROLLMENTS, NewSend, PendingCode,
    PhoneChange, SessionKind, SessionStore, Step,
};
pub use stats::{Adoption, FactorDelta, FactorsHeld, StatsStore};
pub use users::{Grace, ResetFactors, UserOverview, UserRecord, UserStore};

/// The service's table, in domain terms: the sum of the nine aggregates' stores.
///
/// Each aggregate's trait lists its guarantees, one a line, in the words of the case of
/// `shared/tests/it/store_contract.rs` that checks it on every store (in memory, and DynamoDB on
/// moto and on dynoxide). Times are the caller's `now`; what has expired is refused even
/// while DynamoDB's TTL has not deleted it. Any type with all nine is a `Store`, so the flows
/// keep one `Arc<dyn Store>`.
pub trait Store:
    PolicyStore
    + UserStore
    + SessionStore
    + PhoneStore
    + AuthenticatorStore
    + RecoveryStore
    + AuditStore
    + CounterStore
    + StatsStore
{
}

impl<T> Store for T where
    T: PolicyStore
        + UserStore
        + SessionStore
        + PhoneStore
        + AuthenticatorStore
        + RecoveryStore
        + AuditStore
        + CounterStore
        + StatsStore
        + ?Sized
{
}

/// Sends text messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(&self, to: &PhoneNumber, body: &str) -> Result<(), PortError>;
}

/// An email with a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Sends email.
#[async_trait]
pub trait EmailSender: Send + Sync {
    async fn send_email(&self, email: &Email) -> Result<(), PortError>;
}

/// Reads secret values (once per cold start; the service keeps what it read).
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secret_string(&self, id: &str) -> Result<String, PortError>;
}

/// The time. Tests use a fixed clock they move by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Default)]
pub struct FixedClock(std::sync::atomic::AtomicI64);

impl FixedClock {
    pub fn at(t: i64) -> FixedClock {
        FixedClock(std::sync::atomic::AtomicI64::new(t))
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
