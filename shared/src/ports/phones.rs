//! A user's verified phones (the second factors), their number claims, and the one order
//! in which they are shown and picked.

use async_trait::async_trait;

use crate::error::PortError;
use crate::types::{Owner, PhoneId, PhoneNumber, UnixTime};

/// A verified phone: a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRecord {
    pub phone_id: PhoneId,
    pub number: PhoneNumber,
    pub label: Option<String>,
    pub primary: bool,
    pub verified_at: UnixTime,
}

/// A phone removal, with what the flow saw when it checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub phone: PhoneRecord,
    pub number_tag: String,
    /// Every phone the user had when checked (the removed one included), with its primary
    /// flag: the removal fails if the count or any primary flag changed meanwhile, so that a
    /// concurrent make-primary can never leave two primaries or none.
    pub seen: Vec<PhoneRecord>,
    /// The phone that becomes primary when the primary one goes (seen as not primary).
    pub promote: Option<PhoneId>,
    /// Whether the user had an authenticator app when checked: the removal fails if that
    /// changed meanwhile, so that "the last factor" holds under a concurrent app removal.
    pub app_seen: bool,
}

impl Removal {
    /// Whether this removes the user's last phone.
    pub fn is_last_phone(&self) -> bool {
        self.seen.len() <= 1
    }

    /// Whether this removes the user's last factor (their last phone, and no app), which
    /// also drops their recovery codes.
    pub fn is_last(&self) -> bool {
        self.is_last_phone() && !self.app_seen
    }
}

/// Puts phones in the one order in which they are shown and picked: the primary first, then
/// the others in the store's order (the order first verified; a replaced phone keeps its
/// place). "The oldest other phone" (the one promoted when the primary goes, the one a
/// challenge falls back to) is the first after the primary in this order.
pub fn display_order(phones: &mut [PhoneRecord]) {
    // A stable sort: phones of the same rank keep the store's order.
    phones.sort_by_key(|p| !p.primary);
}

/// A user's phones, listed in the order first verified.
///
/// Its guarantees, each the name of a case of `shared/tests/it/store_contract.rs`:
/// - phones are listed in the order first verified;
/// - a replaced phone keeps its place in the list;
/// - set_phone_label sets and clears (an unknown phone is `None`, and nothing is created);
/// - set_primary leaves exactly one primary (also from none, or of the primary itself);
/// - set_primary refuses when the phones changed (a flag, the count, an unknown phone);
/// - remove_phone releases the number and promotes;
/// - remove_phone refuses when the phones changed (a flag, the number, the count);
/// - remove_phone promotes only another phone not primary;
/// - remove_phone of the last phone drops recovery codes (for good);
/// - a phone removal counts the app (the last phone is not the last factor).
#[async_trait]
pub trait PhoneStore: Send + Sync {
    /// The user's phones.
    /// - phones are listed in the order first verified (the `verified_at` they were added
    ///   with; phones added in the same second come in an unspecified order);
    /// - a replaced phone keeps its place in the list.
    async fn list_phones(&self, owner: Owner<'_>) -> Result<Vec<PhoneRecord>, PortError>;
    /// Sets or clears a phone's label. `None` when the user has no such phone.
    /// - set_phone_label sets and clears (an unknown phone is `None`, and nothing is created).
    async fn set_phone_label(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError>;
    /// Makes `phone_id` the only primary phone, atomically, if the user's phones are still
    /// `seen` (the same count, each with the primary flag seen). False when they changed.
    /// - set_primary leaves exactly one primary (also from none, or of the primary itself);
    /// - set_primary refuses when the phones changed (a flag, the count, an unknown phone).
    async fn set_primary(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError>;
    /// Removes a phone and its number claim (and promotes another to primary), atomically;
    /// the last phone takes the user's recovery codes with it in the same write. False when
    /// the user's phones changed since the flow looked.
    /// - remove_phone releases the number and promotes;
    /// - remove_phone refuses when the phones changed (a flag, the number, the count);
    /// - remove_phone promotes only another phone not primary;
    /// - remove_phone of the last phone drops recovery codes (for good).
    async fn remove_phone(&self, owner: Owner<'_>, removal: &Removal) -> Result<bool, PortError>;
}
