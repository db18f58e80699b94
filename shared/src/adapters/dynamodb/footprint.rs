//! What each store operation costs DynamoDB, by partition: the accesses this adapter issues
//! for it (operation, partition key, read and write units), built with the adapter's own key
//! builders. The capacity simulation (`bench/capacity.sh`) records them over the in-memory
//! store; `footprint_matches_the_adapter_on_moto` (moto_tests.rs) runs one scenario through
//! both and compares, so the two cannot drift.
//!
//! Units, as DynamoDB bills them for items this small (under 1 KB written, 4 KB read): a
//! strongly consistent `GetItem` or a one-page `Query` 1 read unit; `PutItem`, `UpdateItem`
//! and `DeleteItem` 1 write unit; every item of a transaction 2 write units (condition checks
//! included). A `Query` of a user's partition is one page here (its items are a few KB).

use crate::ports::{AuditEvent, Enrollment, PhoneChange, Removal, SessionKind};
use crate::types::{AppId, Owner, UserId};

use super::audit::{AUDIT_SHARDS, audit_shard_of, audit_shard_pk};
use super::keys::{app_pk, counter_pk, user_audit_pk, user_pk};
use super::stats::{STATS_SHARDS, shard_of, stats_pk};

/// One request's share of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// The DynamoDB operation: `GetItem`, `Query`, `PutItem`, `UpdateItem` or
    /// `TransactWriteItems` (one access per item of a transaction).
    pub op: &'static str,
    pub pk: String,
    pub read_units: f64,
    pub write_units: f64,
}

/// The accesses of store operations, built up one request at a time.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Footprint(pub Vec<Access>);

impl Footprint {
    fn read(&mut self, op: &'static str, pk: String) -> &mut Self {
        self.0.push(Access {
            op,
            pk,
            read_units: 1.0,
            write_units: 0.0,
        });
        self
    }

    fn write(&mut self, op: &'static str, pk: String) -> &mut Self {
        self.0.push(Access {
            op,
            pk,
            read_units: 0.0,
            write_units: 1.0,
        });
        self
    }

    /// A transaction of `items` items in partition `pk`.
    fn tx(&mut self, pk: &str, items: usize) -> &mut Self {
        for _ in 0..items {
            self.0.push(Access {
                op: "TransactWriteItems",
                pk: pk.to_owned(),
                read_units: 0.0,
                write_units: 2.0,
            });
        }
        self
    }

    pub fn get_policy(app: &AppId) -> Footprint {
        let mut f = Footprint::default();
        f.read("GetItem", app_pk(app));
        f
    }

    pub fn put_policy(app: &AppId) -> Footprint {
        let mut f = Footprint::default();
        f.write("PutItem", app_pk(app));
        f
    }

    /// `GetItem` of one of the user's items (profile, skip, an enrollment, the app).
    pub fn get_user_item(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.read("GetItem", user_pk(o.app, o.user));
        f
    }

    /// `Query` of the user's partition (overview, phones, recovery codes).
    pub fn query_user(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.read("Query", user_pk(o.app, o.user));
        f
    }

    /// `UpdateItem` of one of the user's items (a send, an attempt, a label, the grace, a
    /// recovery code's use).
    pub fn update_user_item(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.write("UpdateItem", user_pk(o.app, o.user));
        f
    }

    /// `PutItem` of one of the user's items (an undone send).
    pub fn put_user_item(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.write("PutItem", user_pk(o.app, o.user));
        f
    }

    fn stats(o: Owner<'_>) -> String {
        stats_pk(o.app, shard_of(o.user))
    }

    /// A user created: the profile and the count of users, one transaction. (A replaced
    /// user is one `PutItem` after the refused transaction; the simulation only creates.)
    pub fn put_user(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.tx(&user_pk(o.app, o.user), 1).tx(&Self::stats(o), 1);
        f
    }

    pub fn put_skip(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.tx(&user_pk(o.app, o.user), 1).tx(&Self::stats(o), 1);
        f
    }

    /// The reset: a query of the user's partition, then one transaction of the count item,
    /// the recovery set, `phones` phones with their claims, `sessions` sessions and `codes`
    /// recovery codes, and the move of the counts when there were factors.
    pub fn reset_user(
        o: Owner<'_>,
        phones: usize,
        app: bool,
        sessions: usize,
        codes: usize,
    ) -> Footprint {
        let mut f = Self::query_user(o);
        f.tx(&user_pk(o.app, o.user), 2 + 2 * phones + sessions + codes);
        if phones > 0 || app {
            f.tx(&Self::stats(o), 1);
        }
        f
    }

    /// A new session: the query of the user's open ones, then the transaction that puts it
    /// (and ends `ended` older ones).
    pub fn create_enrollment(e: &Enrollment, ended: usize) -> Footprint {
        let o = e.owner();
        let mut f = Self::query_user(o);
        f.tx(&user_pk(o.app, o.user), 1 + ended);
        f
    }

    /// A code's completion: one transaction of the session and the phone change's items,
    /// with the move of the counts for a first phone.
    pub fn complete_enrollment(e: &Enrollment, change: &PhoneChange) -> Footprint {
        let o = e.owner();
        let user = user_pk(o.app, o.user);
        let mut f = Footprint::default();
        match change {
            PhoneChange::Add { seen_count, .. } => {
                f.tx(&user, 4);
                let first = e.kind == SessionKind::Enroll || *seen_count == 0;
                if first {
                    f.tx(&Self::stats(o), 1);
                }
            }
            PhoneChange::Replace {
                old_number_tag,
                new_number_tag,
                ..
            } => {
                f.tx(
                    &user,
                    if old_number_tag == new_number_tag {
                        3
                    } else {
                        4
                    },
                );
            }
            PhoneChange::Challenge { .. } => {
                f.tx(&user, 2);
            }
        }
        f
    }

    /// Make-primary: the two flags and a check of every other phone seen, and of the count.
    pub fn set_primary(o: Owner<'_>, seen: usize) -> Footprint {
        let mut f = Footprint::default();
        f.tx(&user_pk(o.app, o.user), seen.max(1) + 1);
        f
    }

    /// A factor's removal: its transaction (the phone, its claim and the count, a check or
    /// update of each other phone; or the app), the move of the counts when it was the
    /// user's last phone or the app, and, for the last factor, a query for the recovery codes
    /// and their deletion with the set (`codes`).
    pub fn remove_phone(o: Owner<'_>, r: &Removal, codes: usize) -> Footprint {
        let mut f = Footprint::default();
        let user = user_pk(o.app, o.user);
        let others = r.seen.len().saturating_sub(1);
        if r.is_last() {
            f = Self::query_user(o);
        }
        f.tx(&user, 3 + others);
        if r.is_last_phone() {
            f.tx(&Self::stats(o), 1);
        }
        if r.is_last() {
            f.tx(&user, 1 + codes);
        }
        f
    }

    pub fn remove_app(o: Owner<'_>, phones_seen: u32, codes: usize) -> Footprint {
        let user = user_pk(o.app, o.user);
        let last = phones_seen == 0;
        let mut f = if last {
            Self::query_user(o)
        } else {
            Footprint::default()
        };
        f.tx(&user, 1).tx(&Self::stats(o), 1);
        if last {
            f.tx(&user, 1 + codes);
        }
        f
    }

    /// An app code's commit: the session, the used step and the app (the counts move for a
    /// setup that binds a first app).
    pub fn complete_app(session: &Enrollment, counted: bool) -> Footprint {
        let o = session.owner();
        let mut f = Footprint::default();
        f.tx(&user_pk(o.app, o.user), 3);
        if counted {
            f.tx(&Self::stats(o), 1);
        }
        f
    }

    /// A new recovery set: the query of the old one, then one transaction (the check of a
    /// factor, the old codes deleted, the new ones put, the set's generation).
    pub fn replace_recovery_codes(o: Owner<'_>, old: usize, new: usize) -> Footprint {
        let mut f = Self::query_user(o);
        f.tx(&user_pk(o.app, o.user), 2 + old + new);
        f
    }

    /// An audit event: under the application, and under its user when it names one (one
    /// transaction then).
    pub fn append_audit(e: &AuditEvent) -> Footprint {
        let mut f = Footprint::default();
        let shard = audit_shard_pk(&e.app_id, audit_shard_of(e.id.as_str()));
        match &e.user_id {
            Some(user) => {
                f.tx(&shard, 1).tx(&user_audit_pk(&e.app_id, user), 1);
            }
            None => {
                f.write("PutItem", shard);
            }
        }
        f
    }

    /// A page of the log: the user's partition, or a query of every application shard.
    pub fn list_audit(app: &AppId, user: Option<&UserId>) -> Footprint {
        let mut f = Footprint::default();
        match user {
            Some(u) => {
                f.read("Query", user_audit_pk(app, u));
            }
            None => {
                for shard in 0..AUDIT_SHARDS {
                    f.read("Query", audit_shard_pk(app, shard));
                }
            }
        }
        f
    }

    /// One counter's `UpdateItem` (a take, a give-back, a block).
    pub fn counter(key: &str) -> Footprint {
        let mut f = Footprint::default();
        f.write("UpdateItem", counter_pk(key));
        f
    }

    /// The adoption figures: a query of every shard.
    pub fn adoption(app: &AppId) -> Footprint {
        let mut f = Footprint::default();
        for shard in 0..STATS_SHARDS {
            f.read("Query", stats_pk(app, shard));
        }
        f
    }

    pub fn count_text(o: Owner<'_>) -> Footprint {
        let mut f = Footprint::default();
        f.write("UpdateItem", Self::stats(o));
        f
    }
}
