//! Code session items (enrollments and sign-in challenges), with their pending code.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::stats::tx_factors;
use crate::error::PortError;
use crate::ports::{
    AppSetup, CodeUse, Completion, Enrollment, MAX_LIVE_ENROLLMENTS, NewSend, PendingCode,
    PhoneChange, SessionKind, SessionStore, Step,
};
use crate::ports::{FactorDelta, FactorsHeld};
use crate::totp::Sealed;
use crate::types::ids::{CodeId, SessionId};
use crate::types::{AppId, AuthenticatorId, Owner, PhoneId, UserId};

use super::item::{
    APP_ATTEMPTS, APP_ID, ATTEMPTS, CODE_EXPIRES_AT, CODE_HASH, CODE_ID, CODE_LABEL, CODE_NUMBER,
    CREATED_AT, ENROLLMENT_ID, EXPIRES_AT, LAST_SENT_AT, NUMBER, PENDING_ATTRS, PURPOSE,
    PURPOSE_PHONE_ID, SENDS, STEP, TOTP_FIRST, TOTP_ID, TOTP_SEALED, USER_ID, VERIFIED_AT,
    WRITE_TOKEN, get_bool, get_n, get_s, get_t, malformed, n, opt_n, opt_s, opt_t, parse_id, s,
    stored_number, t,
};
use super::keys::{
    ENROLLMENT_PREFIX, PK, SK, TTL, enrollment_sk, key, number_sk, phone_sk, user_pk,
};
use super::phones::{number_claim_item, phone_to_item, tx_count};
use super::request::{Expr, Page, Query, Written, carries_token, exists_with, write_token};
use super::transact::{
    MAX_TRANSACTION_ITEMS, Tx, cancelled_err, condition_failed, lost_race, tx_check, tx_delete,
    tx_put, tx_update,
};
use super::{DynamoStore, Item};

/// At most this many expired enrollment items are deleted by one
/// `create_enrollment` (TTL deletes the rest, lazily), so that a user's partition stays small.
pub(super) const CLOSED_ENROLLMENTS_SWEPT: usize = 10;

/// The purpose of an authenticator app's setup session.
pub(super) const PURPOSE_APP_SETUP: &str = "totp";

/// The purpose of a sign-in challenge answered by an authenticator app.
pub(super) const PURPOSE_APP_SIGN_IN: &str = "totp_challenge";

/// A code session's item, expiring (TTL) with it. The stored names predate [`SessionKind`]:
/// the kind is the attribute `purpose` (a sign-in is `challenge`), a replace's or a sign-in's
/// phone is `replace_phone_id`, and the id (`enr_…` or `chl_…`) is `enrollment_id`. An app
/// setup (`totp`) keeps `totp_id`, `totp_sealed`, its label in `code_label` and `totp_first`;
/// an app sign-in (`totp_challenge`) keeps `totp_id`; both count `app_attempts`.
pub fn enrollment_to_item(e: &Enrollment) -> Item {
    let mut item = key(user_pk(&e.app_id, &e.user_id), enrollment_sk(&e.id));
    item.insert(ENROLLMENT_ID.into(), s(e.id.as_str()));
    item.insert(APP_ID.into(), s(e.app_id.as_str()));
    item.insert(USER_ID.into(), s(e.user_id.as_str()));
    let purpose = match &e.kind {
        SessionKind::Enroll => "enroll",
        SessionKind::Add => "add",
        SessionKind::Replace(phone) => {
            item.insert(PURPOSE_PHONE_ID.into(), s(phone.as_str()));
            "replace"
        }
        SessionKind::SignIn(phone) => {
            item.insert(PURPOSE_PHONE_ID.into(), s(phone.as_str()));
            "challenge"
        }
        SessionKind::AppSetup(setup) => {
            item.insert(TOTP_ID.into(), s(setup.authenticator.as_str()));
            item.insert(TOTP_SEALED.into(), s(setup.sealed.as_str()));
            if let Some(label) = &setup.label {
                item.insert(CODE_LABEL.into(), s(label.as_str()));
            }
            item.insert(TOTP_FIRST.into(), AttributeValue::Bool(setup.first));
            PURPOSE_APP_SETUP
        }
        SessionKind::AppSignIn(app) => {
            item.insert(TOTP_ID.into(), s(app.as_str()));
            PURPOSE_APP_SIGN_IN
        }
    };
    if e.kind.is_app() {
        item.insert(APP_ATTEMPTS.into(), n(e.app_attempts));
    }
    item.insert(PURPOSE.into(), s(purpose));
    item.insert(STEP.into(), s(e.step.as_str()));
    item.insert(CREATED_AT.into(), t(e.created_at));
    item.insert(EXPIRES_AT.into(), t(e.expires_at));
    item.insert(TTL.into(), t(e.expires_at));
    item.insert(SENDS.into(), n(e.sends));
    if let Some(at) = e.last_sent_at {
        item.insert(LAST_SENT_AT.into(), t(at));
    }
    if let Some(p) = &e.pending {
        item.insert(CODE_ID.into(), s(p.code_id.as_str()));
        item.insert(CODE_HASH.into(), s(p.code_hash.as_str()));
        item.insert(CODE_NUMBER.into(), s(p.number.e164()));
        if let Some(label) = &p.label {
            item.insert(CODE_LABEL.into(), s(label.as_str()));
        }
        item.insert(CODE_EXPIRES_AT.into(), t(p.expires_at));
        item.insert(ATTEMPTS.into(), n(p.attempts));
    }
    item
}

/// The code session a session item holds.
pub fn enrollment_from_item(item: &Item) -> Result<Enrollment, PortError> {
    const W: &str = "enrollment";
    let kind = match get_s(item, W, PURPOSE)? {
        "enroll" => SessionKind::Enroll,
        "add" => SessionKind::Add,
        "replace" => SessionKind::Replace(parse_id(item, W, PURPOSE_PHONE_ID, PhoneId::parse)?),
        "challenge" => SessionKind::SignIn(parse_id(item, W, PURPOSE_PHONE_ID, PhoneId::parse)?),
        PURPOSE_APP_SETUP => SessionKind::AppSetup(AppSetup {
            authenticator: parse_id(item, W, TOTP_ID, AuthenticatorId::parse)?,
            sealed: Sealed::from_stored(get_s(item, W, TOTP_SEALED)?.to_owned()),
            label: opt_s(item, CODE_LABEL),
            first: get_bool(item, W, TOTP_FIRST)?,
        }),
        PURPOSE_APP_SIGN_IN => {
            SessionKind::AppSignIn(parse_id(item, W, TOTP_ID, AuthenticatorId::parse)?)
        }
        _ => return Err(malformed(W, PURPOSE)),
    };
    let pending = if item.contains_key(CODE_ID) {
        Some(PendingCode {
            code_id: parse_id(item, W, CODE_ID, CodeId::parse)?,
            code_hash: get_s(item, W, CODE_HASH)?.to_owned(),
            number: stored_number(item, W, CODE_NUMBER)?,
            label: opt_s(item, CODE_LABEL),
            expires_at: get_t(item, W, CODE_EXPIRES_AT)?,
            attempts: get_n(item, W, ATTEMPTS)?,
        })
    } else {
        None
    };
    Ok(Enrollment {
        id: parse_id(item, W, ENROLLMENT_ID, SessionId::parse_stored)?,
        app_id: parse_id(item, W, APP_ID, AppId::parse)?,
        user_id: parse_id(item, W, USER_ID, UserId::parse)?,
        kind,
        step: Step::parse(get_s(item, W, STEP)?).ok_or_else(|| malformed(W, STEP))?,
        created_at: get_t(item, W, CREATED_AT)?,
        expires_at: get_t(item, W, EXPIRES_AT)?,
        sends: get_n(item, W, SENDS)?,
        last_sent_at: opt_t(item, W, LAST_SENT_AT)?,
        pending,
        app_attempts: opt_n(item, W, APP_ATTEMPTS)?.unwrap_or(0),
    })
}

pub(super) fn enrollment_key(e: &Enrollment) -> Item {
    key(user_pk(&e.app_id, &e.user_id), enrollment_sk(&e.id))
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        const OP: &str = "create_enrollment";
        let table = self.table.as_str();
        let pk = user_pk(&enrollment.app_id, &enrollment.user_id);
        let now = enrollment.created_at;
        // The user's enrollments and challenges as they are: the oldest open ones beyond
        // MAX_LIVE_ENROLLMENTS - 1 are ended (deleted) in the same transaction as the put, and
        // a few expired ones are swept with them. Two creates racing may each
        // keep what the other ends; the next create ends the excess again.
        let query = Query::partition(pk.clone(), Some(ENROLLMENT_PREFIX));
        let mut open = Vec::new();
        let mut closed = Vec::new();
        self.paginate(OP, &query, |page, _| {
            for item in &page {
                // Read from the raw attributes, not the whole record: an item this version
                // cannot parse (a kind added later) is left alone, never swept.
                const W: &str = "enrollment";
                let sk = get_s(item, W, SK)?.to_owned();
                let (Ok(created_at), Ok(expires_at), Ok(step)) = (
                    get_t(item, W, CREATED_AT),
                    get_t(item, W, EXPIRES_AT),
                    get_s(item, W, STEP),
                ) else {
                    continue;
                };
                // A finished one stays until it expires: a late retry of it answers that it is
                // complete, not that it is gone (as the in-memory store does).
                if now >= expires_at {
                    closed.push(sk);
                } else if step != Step::Complete.as_str() {
                    open.push((created_at, sk));
                }
            }
            Ok(Page::Next(None))
        })
        .await?;
        open.sort();
        let excess = (open.len() + 1).saturating_sub(MAX_LIVE_ENROLLMENTS);
        let ended = open.into_iter().take(excess).map(|(_, sk)| sk);
        let swept = closed.into_iter().take(CLOSED_ENROLLMENTS_SWEPT);
        let mut absent = Expr::default();
        let absent_condition = format!("attribute_not_exists({})", absent.name(PK));
        let mut items = vec![tx_put(
            OP,
            table,
            enrollment_to_item(enrollment),
            Some(&absent_condition),
            &absent,
        )?];
        for sk in ended.chain(swept).take(MAX_TRANSACTION_ITEMS - 1) {
            items.push(tx_delete(
                OP,
                table,
                key(pk.clone(), sk),
                None,
                &Expr::default(),
            )?);
        }
        match self.transact(OP, items).await? {
            Tx::Done => Ok(()),
            Tx::Cancelled(codes) if condition_failed(&codes, 0) => Err(PortError::new(
                "dynamodb create_enrollment: enrollment id collision",
            )),
            // An ended one changed meanwhile (a conflict that outlasted the retries): the
            // new one is not stored; the caller may try again.
            Tx::Cancelled(codes) => Err(cancelled_err(OP, &codes)),
        }
    }

    async fn get_enrollment(
        &self,
        owner: Owner<'_>,
        id: &SessionId,
    ) -> Result<Option<Enrollment>, PortError> {
        self.get(
            "get_enrollment",
            key(user_pk(owner.app, owner.user), enrollment_sk(id)),
        )
        .await?
        .map(|item| enrollment_from_item(&item))
        .transpose()
    }

    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError> {
        let code = &send.code;
        let mut x = Expr::default();
        let pk = x.name(PK);
        let step = x.name(STEP);
        let sends = x.name(SENDS);
        let expires_at = x.name(EXPIRES_AT);
        let last_sent_at = x.name(LAST_SENT_AT);
        let code_id = x.name(CODE_ID);
        let now = x.value("now", t(send.now));

        let mut set = vec![
            format!("{step} = {}", x.value("code_step", s(Step::Code.as_str()))),
            format!("{sends} = {sends} + {}", x.value("one", n(1))),
            format!("{last_sent_at} = {now}"),
            format!("{code_id} = {}", x.value("cid", s(code.code_id.as_str()))),
            format!(
                "{} = {}",
                x.name(CODE_HASH),
                x.value("hash", s(code.code_hash.as_str()))
            ),
            format!(
                "{} = {}",
                x.name(CODE_NUMBER),
                x.value("number", s(code.number.e164()))
            ),
            format!(
                "{} = {}",
                x.name(CODE_EXPIRES_AT),
                x.value("cexp", t(code.expires_at))
            ),
            format!(
                "{} = {}",
                x.name(ATTEMPTS),
                x.value("attempts", n(code.attempts))
            ),
        ];
        let label = x.name(CODE_LABEL);
        let update = match &code.label {
            Some(l) => {
                set.push(format!("{label} = {}", x.value("label", s(l.as_str()))));
                format!("SET {}", set.join(", "))
            }
            None => format!("SET {} REMOVE {label}", set.join(", ")),
        };

        let mut conditions = vec![
            format!("attribute_exists({pk})"),
            format!("{expires_at} > {now}"),
            format!(
                "{step} IN ({}, {})",
                x.value("phone_step", s(Step::Phone.as_str())),
                x.value("code_step", s(Step::Code.as_str()))
            ),
            format!("{sends} < {}", x.value("max_sends", n(send.max_sends))),
        ];
        if let Some(limit) = send.last_sent_at_most {
            conditions.push(format!(
                "(attribute_not_exists({last_sent_at}) OR {last_sent_at} <= {})",
                x.value("last_limit", t(limit))
            ));
        }
        if let Some(replaces) = &send.replaces {
            conditions.push(format!(
                "{code_id} = {}",
                x.value("replaces", s(replaces.as_str()))
            ));
        }

        match self
            .update_once(
                "begin_send",
                enrollment_key(enrollment),
                &update,
                &conditions.join(" AND "),
                x,
                ReturnValue::AllOld,
            )
            .await?
        {
            Written::Applied(Some(old)) => Ok(Some(enrollment_from_item(&old)?)),
            Written::Applied(None) => Err(PortError::new(
                "dynamodb begin_send: no previous item returned",
            )),
            // An earlier try of this call was applied (its answer lost): the send is counted
            // once. The item before it is gone; the enrollment as the caller read it stands in
            // for it (what an undo would put back).
            Written::Replayed(_) => Ok(Some(enrollment.clone())),
            Written::Refused(_) => Ok(None),
        }
    }

    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError> {
        let mut x = Expr::default();
        let condition = format!(
            "{} = {}",
            x.name(CODE_ID),
            x.value("failed", s(failed.as_str()))
        );
        // A refused condition means a newer send or a completion came first: leave it be.
        self.put_if("undo_send", enrollment_to_item(previous), &condition, &x)
            .await?;
        Ok(())
    }

    async fn take_code_attempt(
        &self,
        code: CodeUse<'_>,
        max: u32,
    ) -> Result<Option<u32>, PortError> {
        let (enrollment, code_id, now) = (code.enrollment, code.code_id, code.now);
        let mut x = Expr::default();
        let attempts = x.name(ATTEMPTS);
        let now = x.value("now", t(now));
        let update = format!("SET {attempts} = {attempts} + {}", x.value("one", n(1)));
        let condition = format!(
            "{step} = {code_step} AND {cid} = {cid_v} AND {attempts} < {max} AND {cexp} > {now} AND {exp} > {now}",
            step = x.name(STEP),
            code_step = x.value("code_step", s(Step::Code.as_str())),
            cid = x.name(CODE_ID),
            cid_v = x.value("cid", s(code_id.as_str())),
            max = x.value("max", n(max)),
            cexp = x.name(CODE_EXPIRES_AT),
            exp = x.name(EXPIRES_AT),
        );
        match self
            .update_once(
                "take_code_attempt",
                enrollment_key(enrollment),
                &update,
                &condition,
                x,
                ReturnValue::AllNew,
            )
            .await?
        {
            // Replayed: an earlier try took this attempt (its answer lost); not twice.
            Written::Applied(Some(item)) | Written::Replayed(item) => {
                Ok(Some(get_n(&item, "enrollment", ATTEMPTS)?))
            }
            Written::Applied(None) => Err(PortError::new(
                "dynamodb take_code_attempt: no item returned",
            )),
            Written::Refused(_) => Ok(None),
        }
    }

    async fn complete_enrollment(
        &self,
        code: CodeUse<'_>,
        change: &PhoneChange,
    ) -> Result<Completion, PortError> {
        const OP: &str = "complete_enrollment";
        let (enrollment, code_id, now) = (code.enrollment, code.code_id, code.now);
        let (app, user) = (&enrollment.app_id, &enrollment.user_id);
        let phone_key = |phone_id: &PhoneId| key(user_pk(app, user), phone_sk(phone_id));
        let table = self.table.as_str();

        // (0) The enrollment: complete, if the code is still pending and both are unexpired.
        // It carries this call's token: if the transaction's answer is lost and its retry
        // finds the code gone, the token says the completion was ours (DynamoDB's
        // ClientRequestToken covers a retry within 10 minutes too; emulators may not).
        let token = write_token()?;
        let mut x = Expr::default();
        let step = x.name(STEP);
        let now_v = x.value("now", t(now));
        let removed: Vec<String> = PENDING_ATTRS.iter().map(|a| x.name(a)).collect();
        let update = format!(
            "SET {step} = {}, {} = {} REMOVE {}",
            x.value("complete", s(Step::Complete.as_str())),
            x.name(WRITE_TOKEN),
            x.value("wtok", s(token.as_str())),
            removed.join(", ")
        );
        let condition = format!(
            "{step} = {code_step} AND {cid} = {cid_v} AND {cexp} > {now_v} AND {exp} > {now_v}",
            code_step = x.value("code_step", s(Step::Code.as_str())),
            cid = x.name(CODE_ID),
            cid_v = x.value("cid", s(code_id.as_str())),
            cexp = x.name(CODE_EXPIRES_AT),
            exp = x.name(EXPIRES_AT),
        );
        let complete = tx_update(
            OP,
            table,
            enrollment_key(enrollment),
            &update,
            &condition,
            &x,
        )?;

        let mut absent = Expr::default();
        let absent_condition = format!("attribute_not_exists({})", absent.name(PK));
        let mut items = vec![complete];
        // Which item's failed condition means what; checked in this order (the in-memory
        // store's): a code no longer pending says nothing about the phones.
        let (number_item, phones_item, collision_item);
        match change {
            PhoneChange::Add {
                phone,
                number_tag,
                seen_count,
                app_seen,
            } => {
                // (1) the phone, (2) its number's claim, (3) the count, still as seen.
                items.push(tx_put(
                    OP,
                    table,
                    phone_to_item(app, user, phone),
                    Some(&absent_condition),
                    &absent,
                )?);
                items.push(tx_put(
                    OP,
                    table,
                    number_claim_item(app, user, number_tag, &phone.phone_id, now),
                    Some(&absent_condition),
                    &absent,
                )?);
                // The first phone's enrollment adds only to a user with none (a second Start
                // begun before the first completed must not add a phone as the first).
                // Nor to a user with an authenticator app: the first factor is bound.
                // A first phone also pins the app as seen: whether it enrolls the user is
                // counted in this transaction.
                let (seen, app_seen) = if enrollment.kind == SessionKind::Enroll {
                    (0, Some(false))
                } else {
                    (*seen_count, (*seen_count == 0).then_some(*app_seen))
                };
                items.push(tx_count(OP, table, app, user, seen, 1, app_seen)?);
                (collision_item, number_item, phones_item) = (Some(1), 2, 3);
                if seen == 0 {
                    let app = app_seen.unwrap_or(false);
                    let delta = FactorDelta::between(
                        FactorsHeld { phone: false, app },
                        FactorsHeld { phone: true, app },
                    );
                    items.extend(tx_factors(OP, table, enrollment.owner(), delta)?);
                }
            }
            PhoneChange::Replace {
                phone_id,
                old_number,
                old_number_tag,
                new_number,
                new_number_tag,
            } => {
                // (1) the phone, if it still has the old number: the new number, verified now
                // (label, primary and its place in the list stay).
                let mut px = Expr::default();
                let number = px.name(NUMBER);
                let update = format!(
                    "SET {number} = {}, {} = {}",
                    px.value("new", s(new_number.e164())),
                    px.name(VERIFIED_AT),
                    px.value("now", t(now)),
                );
                let condition = exists_with(&mut px, NUMBER, "old", s(old_number.e164()));
                items.push(tx_update(
                    OP,
                    table,
                    phone_key(phone_id),
                    &update,
                    &condition,
                    &px,
                )?);
                // (2) the old number's claim goes (unless it is the new one too: then the new
                // claim's condition fails, as the in-memory store answers NumberTaken),
                // (3) the new number's claim comes.
                if old_number_tag != new_number_tag {
                    items.push(tx_delete(
                        OP,
                        table,
                        key(user_pk(app, user), number_sk(old_number_tag)),
                        None,
                        &Expr::default(),
                    )?);
                }
                number_item = items.len();
                items.push(tx_put(
                    OP,
                    table,
                    number_claim_item(app, user, new_number_tag, phone_id, now),
                    Some(&absent_condition),
                    &absent,
                )?);
                (collision_item, phones_item) = (None, 1);
            }
            PhoneChange::Challenge { phone_id, number } => {
                // (1) The phone the code was texted to must still exist with that number: a
                // removal or replace that commits first makes this completion fail.
                let mut px = Expr::default();
                let condition = exists_with(&mut px, NUMBER, "number", s(number.e164()));
                items.push(tx_check(OP, table, phone_key(phone_id), &condition, &px)?);
                (collision_item, number_item, phones_item) = (None, usize::MAX, 1);
            }
        }

        let codes = match self.transact(OP, items).await? {
            Tx::Done => return Ok(Completion::Done),
            Tx::Cancelled(codes) => codes,
        };
        if condition_failed(&codes, 0) {
            let ours = self
                .get(OP, enrollment_key(enrollment))
                .await?
                .is_some_and(|item| carries_token(&item, WRITE_TOKEN, &token));
            Ok(if ours {
                Completion::Done
            } else {
                Completion::CodeGone
            })
        } else if condition_failed(&codes, number_item) {
            Ok(Completion::NumberTaken)
        } else if condition_failed(&codes, phones_item) {
            Ok(Completion::PhonesChanged)
        } else if collision_item.is_some_and(|i| condition_failed(&codes, i)) {
            Err(PortError::new(
                "dynamodb complete_enrollment: phone id collision",
            ))
        } else if lost_race(&codes) {
            // Only conflicts with concurrent transactions on these items: nothing was written,
            // and the code stays pending.
            Ok(Completion::PhonesChanged)
        } else {
            Err(cancelled_err(OP, &codes))
        }
    }
}
