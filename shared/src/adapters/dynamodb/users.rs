//! The user's profile and skip items, and the admin reset.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

use crate::error::PortError;
use crate::ports::users::UserOverview;
use crate::ports::{PhoneRecord, UserRecord, UserStore};
use crate::types::{AppId, UnixTime, UserId};

use super::item::*;
use super::keys::*;
use super::phones::*;
use super::request::*;
use super::transact::*;
use super::{DynamoStore, Item};

/// How many times `reset_user` and `replace_recovery_codes` start over when concurrent
/// changes keep cancelling them.
pub(super) const RESET_RETRIES: usize = 8;

/// The user's profile item.
pub fn user_to_item(u: &UserRecord) -> Item {
    let mut item = key(user_pk(&u.app_id, &u.user_id), SK_PROFILE);
    item.insert(APP_ID.into(), s(u.app_id.as_str()));
    item.insert(USER_ID.into(), s(u.user_id.as_str()));
    item.insert(EMAIL.into(), s(u.email.as_str()));
    item.insert(
        EMAIL_VERIFIED.into(),
        AttributeValue::Bool(u.email_verified),
    );
    item.insert(PASSWORD_HASH.into(), s(u.password_hash.as_str()));
    item.insert(UPDATED_AT.into(), t(u.updated_at));
    item
}

/// The user a profile item holds.
pub fn user_from_item(item: &Item) -> Result<UserRecord, PortError> {
    const W: &str = "user";
    Ok(UserRecord {
        app_id: parse_id(item, W, APP_ID, AppId::parse)?,
        user_id: parse_id(item, W, USER_ID, UserId::parse)?,
        email: get_s(item, W, EMAIL)?.to_owned(),
        email_verified: get_bool(item, W, EMAIL_VERIFIED)?,
        password_hash: get_s(item, W, PASSWORD_HASH)?.to_owned(),
        updated_at: get_t(item, W, UPDATED_AT)?,
    })
}

/// The skip item: expires (TTL) when the skip ends.
pub fn skip_to_item(app: &AppId, user: &UserId, until: UnixTime) -> Item {
    let mut item = key(user_pk(app, user), SK_SKIP);
    item.insert(UNTIL.into(), t(until));
    item.insert(TTL.into(), t(until));
    item
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn get_user(&self, app: &AppId, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        self.get("get_user", key(user_pk(app, user), SK_PROFILE))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    /// One query of the user's partition (strongly consistent, all pages) for what four reads
    /// gave: the profile, the skip, the phones and the unused recovery codes. Enrollments,
    /// challenges and number claims are filtered out by DynamoDB (read, not sent).
    async fn user_overview(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<UserOverview>, PortError> {
        const OP: &str = "user_overview";
        let mut query = Query::partition(user_pk(app, user), None);
        let x = query.expr();
        let sk = x.name(SK);
        let not_listed = format!(
            "NOT (begins_with({sk}, {}) OR begins_with({sk}, {}))",
            x.value("enrollments", s(ENROLLMENT_PREFIX)),
            x.value("numbers", s(NUMBER_PREFIX)),
        );
        let query = query.filter(not_listed);
        let mut overview = UserOverview::default();
        let mut placed = Vec::new();
        let mut read = |item: &Item| -> Result<(), PortError> {
            let sk = get_s(item, "user partition", SK)?;
            if sk == SK_PROFILE {
                overview.user = Some(user_from_item(item)?);
            } else if sk == SK_SKIP {
                overview.skip = Some(get_t(item, "skip", UNTIL)?);
            } else if sk.starts_with(PHONE_PREFIX) {
                placed.push(placed_phone(item)?);
            } else if sk.starts_with(RECOVERY_PREFIX) && !item.contains_key(USED_BY) {
                overview.recovery_codes_remaining =
                    overview.recovery_codes_remaining.saturating_add(1);
            }
            Ok(())
        };
        self.paginate(OP, &query, |page, _| {
            page.iter().try_for_each(&mut read)?;
            Ok(Page::Next(None))
        })
        .await?;
        overview.phones = in_list_order(placed);
        Ok(Some(overview))
    }

    async fn put_user(&self, user: &UserRecord) -> Result<(), PortError> {
        self.put("put_user", user_to_item(user)).await
    }

    async fn get_skip(&self, app: &AppId, user: &UserId) -> Result<Option<UnixTime>, PortError> {
        match self
            .get("get_skip", key(user_pk(app, user), SK_SKIP))
            .await?
        {
            Some(item) => Ok(Some(get_t(&item, "skip", UNTIL)?)),
            None => Ok(None),
        }
    }

    async fn put_skip(&self, app: &AppId, user: &UserId, until: UnixTime) -> Result<(), PortError> {
        self.put("put_skip", skip_to_item(app, user, until)).await
    }

    async fn reset_user(&self, app: &AppId, user: &UserId) -> Result<Vec<PhoneRecord>, PortError> {
        const OP: &str = "reset_user";
        let table = self.table.as_str();
        let mut removed = Vec::new();
        for attempt in 0..RESET_RETRIES {
            if attempt > 0 {
                // Let the concurrent change finish before reading again.
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            // Each delete is guarded by what was read: a phone by its number (a concurrent
            // replace moves its claims), the count by its value (a concurrent add or removal
            // moves it). A lost race starts over from a fresh read.
            let mut count_item = None;
            let mut phone_items = Vec::new();
            let mut other_items = Vec::new();
            let mut set_seen = None;
            for item in self.query_partition(OP, user_pk(app, user)).await? {
                let sk = get_s(&item, "user partition", SK)?.to_owned();
                if sk == SK_PHONES {
                    let mut x = Expr::default();
                    let condition = match opt_n::<u32>(&item, "phone count", COUNT)? {
                        Some(c) => format!("{} = {}", x.name(COUNT), x.value("seen", n(c))),
                        None => format!("attribute_not_exists({})", x.name(COUNT)),
                    };
                    count_item = Some((
                        tx_delete(OP, table, key(user_pk(app, user), sk), Some(&condition), &x)?,
                        None,
                    ));
                } else if sk.starts_with(PHONE_PREFIX) {
                    let (place, phone) = placed_phone(&item)?;
                    let mut x = Expr::default();
                    let condition = format!(
                        "{} = {}",
                        x.name(NUMBER),
                        x.value("number", s(phone.number.e164()))
                    );
                    phone_items.push((
                        tx_delete(OP, table, key(user_pk(app, user), sk), Some(&condition), &x)?,
                        Some((place, phone)),
                    ));
                } else if sk == SK_RECOVERY_SET {
                    set_seen = Some(opt_n::<u64>(&item, "recovery set", GENERATION)?);
                } else if sk.starts_with(NUMBER_PREFIX)
                    || sk.starts_with(ENROLLMENT_PREFIX)
                    || sk.starts_with(RECOVERY_PREFIX)
                {
                    other_items.push((
                        tx_delete(
                            OP,
                            table,
                            key(user_pk(app, user), sk),
                            None,
                            &Expr::default(),
                        )?,
                        None,
                    ));
                }
            }
            // The recovery set goes only at the generation read (or stays absent): a set made
            // after the read makes this reset read again, so that it never survives.
            let mut x = Expr::default();
            let set_condition = match set_seen {
                Some(Some(g)) => format!("{} = {}", x.name(GENERATION), x.value("seen", n(g))),
                Some(None) => format!("attribute_not_exists({})", x.name(GENERATION)),
                None => format!("attribute_not_exists({})", x.name(PK)),
            };
            let set_item = (
                tx_delete(
                    OP,
                    table,
                    key(user_pk(app, user), SK_RECOVERY_SET),
                    Some(&set_condition),
                    &x,
                )?,
                None,
            );
            // One transaction in any real case (at most 5 phones and their claims, 3 live
            // enrollments or challenges and a few finished ones, ten recovery codes); more
            // items go in chunks, the count, the set and the phones first.
            let ops: Vec<(TransactWriteItem, Option<(UnixTime, PhoneRecord)>)> = count_item
                .into_iter()
                .chain(std::iter::once(set_item))
                .chain(phone_items)
                .chain(other_items)
                .collect();
            let mut ops = ops.into_iter().peekable();
            let mut lost = false;
            while ops.peek().is_some() {
                let (chunk, phones): (Vec<_>, Vec<_>) =
                    ops.by_ref().take(MAX_TRANSACTION_ITEMS).unzip();
                match self.transact(OP, chunk).await? {
                    Tx::Done => removed.extend(phones.into_iter().flatten()),
                    Tx::Cancelled(codes) if lost_race(&codes) => {
                        lost = true;
                        break;
                    }
                    Tx::Cancelled(codes) => return Err(cancelled_err(OP, &codes)),
                }
            }
            if !lost {
                return Ok(in_list_order(removed));
            }
        }
        Err(PortError::new(
            "dynamodb reset_user: gave up after repeated concurrent changes",
        ))
    }
}

#[cfg(test)]
mod overview_moto_tests {
    use aws_sdk_dynamodb::Client;

    use super::*;
    use crate::adapters::aws::moto;
    use crate::ports::{PhoneStore, RecoveryStore};
    use crate::types::{PhoneId, PhoneNumber};

    /// The one query answers what the four reads answer, item kinds it skips included.
    #[tokio::test]
    #[ignore = "needs moto: run by tests/run.sh with MFA_TEST_MOTO_URL"]
    async fn user_overview_is_what_the_four_reads_give() {
        let (sdk, table) = moto::fresh_table("mfa-overview").await;
        let db = DynamoStore::new(Client::new(&sdk), table);
        let app = AppId::parse("app-overview").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let four = async || UserOverview {
            user: db.get_user(&app, &user).await.unwrap(),
            phones: db.list_phones(&app, &user).await.unwrap(),
            skip: db.get_skip(&app, &user).await.unwrap(),
            recovery_codes_remaining: db.count_recovery_codes(&app, &user).await.unwrap(),
        };

        // Nothing stored yet.
        let none = db.user_overview(&app, &user).await.unwrap().unwrap();
        assert_eq!(none, UserOverview::default());
        assert_eq!(none, four().await);

        let pk = user_pk(&app, &user);
        let profile = UserRecord {
            app_id: app.clone(),
            user_id: user.clone(),
            email: "u@example.com".into(),
            email_verified: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            updated_at: UnixTime(1_800_000_000),
        };
        let phone = |n: &str, primary: bool, at: i64| PhoneRecord {
            phone_id: PhoneId::generate().unwrap(),
            number: PhoneNumber::parse(n).unwrap(),
            label: primary.then(|| "mine".to_owned()),
            primary,
            verified_at: UnixTime(at),
        };
        let mut items = vec![
            user_to_item(&profile),
            skip_to_item(&app, &user, UnixTime(1_800_000_600)),
            phone_to_item(&app, &user, &phone("+14155550101", false, 1_800_000_200)),
            phone_to_item(&app, &user, &phone("+14155550102", true, 1_800_000_100)),
            key(pk.clone(), number_sk("tag-a")),
            key(pk.clone(), "ENROLLMENT#enr_0"),
            key(pk.clone(), SK_PHONES),
            key(pk.clone(), SK_RECOVERY_SET),
        ];
        for h in ["aa", "bb", "cc"] {
            items.push(key(pk.clone(), recovery_sk(h)));
        }
        let mut used = key(pk.clone(), recovery_sk("dd"));
        used.insert(USED_BY.into(), s("token"));
        items.push(used);
        // Another user's items are not read.
        items.push(phone_to_item(
            &app,
            &UserId::parse("user-2").unwrap(),
            &phone("+14155550103", true, 1_800_000_000),
        ));
        for item in items {
            db.put("t", item).await.unwrap();
        }

        let overview = db.user_overview(&app, &user).await.unwrap().unwrap();
        assert_eq!(overview, four().await);
        assert_eq!(overview.user, Some(profile));
        assert_eq!(overview.skip, Some(UnixTime(1_800_000_600)));
        let numbers: Vec<_> = overview.phones.iter().map(|p| p.number.e164()).collect();
        assert_eq!(numbers, ["+14155550102", "+14155550101"]);
        assert_eq!(overview.recovery_codes_remaining, 3);
    }
}
