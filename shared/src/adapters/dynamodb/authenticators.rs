//! The authenticator app (attributes of the phone count item), its sessions' attempts and
//! completions, and the used step items.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::stats::tx_factors;
use crate::error::PortError;
use crate::ports::{
    AppCodeUse, AppCompletion, AuthenticatorRecord, AuthenticatorStore, Enrollment, SessionKind,
    Step,
};
use crate::ports::{FactorDelta, FactorsHeld};
use crate::types::{AppId, AuthenticatorId, Owner, UnixTime, UserId};

use super::item::{
    APP_ATTEMPTS, EXPIRES_AT, PURPOSE, STEP, TOTP_ATTRS, TOTP_ID, TOTP_LABEL, TOTP_LAST_USED_AT,
    TOTP_SEALED, TOTP_STEP, TOTP_VERIFIED_AT, USED_AT, WRITE_TOKEN, get_n, n, s, t,
};
use super::keys::{PK, SK_PHONES, TTL, key, totp_step_sk, user_pk};
use super::phones::{app_from_item, app_is, count_is};
use super::request::{Expr, Written, carries_token, write_token};
use super::sessions::{PURPOSE_APP_SETUP, PURPOSE_APP_SIGN_IN, enrollment_key};
use super::transact::{
    Tx, cancelled_err, condition_failed, lost_race, tx_put, tx_update, tx_update_if,
};
use super::{DynamoStore, Item};

/// The item that marks `step` used by the user until `until` (its TTL).
pub fn used_step_item(
    app: &AppId,
    user: &UserId,
    step: i64,
    at: UnixTime,
    until: UnixTime,
) -> Item {
    let mut item = key(user_pk(app, user), totp_step_sk(step));
    item.insert(TOTP_STEP.into(), n(step));
    item.insert(USED_AT.into(), t(at));
    item.insert(TTL.into(), t(until));
    item
}

/// An app session's purpose and the app it is about, or `None` for a phone session.
fn app_purpose(kind: &SessionKind) -> Option<(&'static str, &AuthenticatorId)> {
    match kind {
        SessionKind::AppSetup(setup) => Some((PURPOSE_APP_SETUP, &setup.authenticator)),
        SessionKind::AppSignIn(id) => Some((PURPOSE_APP_SIGN_IN, id)),
        _ => None,
    }
}

/// The condition that an app session is still open at `now`: at the code step, unexpired,
/// and of the purpose and app the flow read.
fn session_open(x: &mut Expr, purpose: &str, app: &AuthenticatorId, now: UnixTime) -> String {
    format!(
        "{} = {} AND {} > {} AND {} = {} AND {} = {}",
        x.name(STEP),
        x.value("code_step", s(Step::Code.as_str())),
        x.name(EXPIRES_AT),
        x.value("now", t(now)),
        x.name(PURPOSE),
        x.value("purpose", s(purpose)),
        x.name(TOTP_ID),
        x.value("session_app", s(app.as_str())),
    )
}

#[async_trait]
impl AuthenticatorStore for DynamoStore {
    async fn get_app(&self, owner: Owner<'_>) -> Result<Option<AuthenticatorRecord>, PortError> {
        match self
            .get("get_app", key(user_pk(owner.app, owner.user), SK_PHONES))
            .await?
        {
            Some(item) => app_from_item(&item),
            None => Ok(None),
        }
    }

    async fn take_app_attempt(
        &self,
        session: &Enrollment,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        let Some((purpose, app)) = app_purpose(&session.kind) else {
            return Ok(None);
        };
        let mut x = Expr::default();
        let attempts = x.name(APP_ATTEMPTS);
        let update = format!("SET {attempts} = {attempts} + {}", x.value("one", n(1)));
        let condition = format!(
            "{} AND {attempts} < {}",
            session_open(&mut x, purpose, app, now),
            x.value("max", n(max)),
        );
        match self
            .update_once(
                "take_app_attempt",
                enrollment_key(session),
                &update,
                &condition,
                x,
                ReturnValue::AllNew,
            )
            .await?
        {
            // Replayed: an earlier try took this attempt (its answer lost); not twice.
            Written::Applied(Some(item)) | Written::Replayed(item) => {
                Ok(Some(get_n(&item, "enrollment", APP_ATTEMPTS)?))
            }
            Written::Applied(None) => Err(PortError::new(
                "dynamodb take_app_attempt: no item returned",
            )),
            Written::Refused(_) => Ok(None),
        }
    }

    async fn complete_app(&self, code: AppCodeUse<'_>) -> Result<AppCompletion, PortError> {
        const OP: &str = "complete_app";
        let (session, now) = (code.session, code.now);
        let Some((purpose, session_app)) = app_purpose(&session.kind) else {
            return Ok(AppCompletion::SessionGone);
        };
        let (app, user) = (&session.app_id, &session.user_id);
        let table = self.table.as_str();

        // (0) The session: complete, if still open. It carries this call's token: if the
        // transaction's answer is lost and its retry finds the session complete, the token
        // says the completion was ours.
        let token = write_token()?;
        let mut x = Expr::default();
        let condition = session_open(&mut x, purpose, session_app, now);
        let update = format!(
            "SET {} = {}, {} = {}",
            x.name(STEP),
            x.value("complete", s(Step::Complete.as_str())),
            x.name(WRITE_TOKEN),
            x.value("wtok", s(token.as_str())),
        );
        let complete = tx_update(OP, table, enrollment_key(session), &update, &condition, &x)?;

        // (1) The step, used once per user: its item must be absent (or expired, TTL being
        // lazy).
        let mut sx = Expr::default();
        let step_unused = format!(
            "attribute_not_exists({}) OR {} <= {}",
            sx.name(PK),
            sx.name(TTL),
            sx.value("now", t(now)),
        );
        let step = tx_put(
            OP,
            table,
            used_step_item(app, user, code.step, now, code.step_remembered_until),
            Some(&step_unused),
            &sx,
        )?;

        // (2) The app, on the phone count item: bound by a setup (replacing any previous one;
        // a first setup only while the user has no phone and no app), or used by a sign-in
        // (only while that app is still bound).
        let mut px = Expr::default();
        let mut counted = None;
        let (update, condition) = match &session.kind {
            SessionKind::AppSetup(setup) => {
                let mut set = vec![
                    format!(
                        "{} = {}",
                        px.name(TOTP_ID),
                        px.value("id", s(setup.authenticator.as_str()))
                    ),
                    format!(
                        "{} = {}",
                        px.name(TOTP_SEALED),
                        px.value("sealed", s(setup.sealed.as_str()))
                    ),
                    format!(
                        "{} = {}",
                        px.name(TOTP_VERIFIED_AT),
                        px.value("verified", t(now))
                    ),
                ];
                let mut remove = vec![px.name(TOTP_LAST_USED_AT)];
                match &setup.label {
                    Some(label) => set.push(format!(
                        "{} = {}",
                        px.name(TOTP_LABEL),
                        px.value("label", s(label.as_str()))
                    )),
                    None => remove.push(px.name(TOTP_LABEL)),
                }
                let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
                // Any other setup binds over the factors as the flow read them.
                let (condition, before) = if setup.first {
                    let no_phone = count_is(&mut px, 0);
                    let none = format!("({no_phone}) AND {}", app_is(&mut px, false));
                    (Some(none), Some(FactorsHeld::default()))
                } else if let Some(seen) = code.seen {
                    let phones = count_is(&mut px, seen.phones);
                    let app = match &seen.app {
                        Some(id) => format!(
                            "{} = {}",
                            px.name(TOTP_ID),
                            px.value("seen_app", s(id.as_str()))
                        ),
                        None => app_is(&mut px, false),
                    };
                    let held = FactorsHeld {
                        phone: seen.phones > 0,
                        app: seen.app.is_some(),
                    };
                    (Some(format!("({phones}) AND {app}")), Some(held))
                } else {
                    (None, None)
                };
                counted = before.map(|b| FactorDelta::between(b, FactorsHeld { app: true, ..b }));
                (update, condition)
            }
            SessionKind::AppSignIn(id) => {
                let mut update = format!(
                    "SET {} = {}",
                    px.name(TOTP_LAST_USED_AT),
                    px.value("used", t(now))
                );
                if let Some(sealed) = code.reseal {
                    update.push_str(&format!(
                        ", {} = {}",
                        px.name(TOTP_SEALED),
                        px.value("sealed", s(sealed.as_str()))
                    ));
                }
                let condition =
                    format!("{} = {}", px.name(TOTP_ID), px.value("id", s(id.as_str())));
                (update, Some(condition))
            }
            _ => return Ok(AppCompletion::SessionGone),
        };
        let bind = tx_update_if(
            OP,
            table,
            key(user_pk(app, user), SK_PHONES),
            &update,
            condition.as_deref(),
            &px,
        )?;

        let mut items = vec![complete, step, bind];
        if let Some(delta) = counted {
            items.extend(tx_factors(OP, table, session.owner(), delta)?);
        }
        let codes = match self.transact(OP, items).await? {
            Tx::Done => return Ok(AppCompletion::Done),
            Tx::Cancelled(codes) => codes,
        };
        // In the order of the in-memory store: the session, the step, the factors.
        if condition_failed(&codes, 0) {
            let ours = self
                .get(OP, enrollment_key(session))
                .await?
                .is_some_and(|item| carries_token(&item, WRITE_TOKEN, &token));
            Ok(if ours {
                AppCompletion::Done
            } else {
                AppCompletion::SessionGone
            })
        } else if condition_failed(&codes, 1) {
            Ok(AppCompletion::StepUsed)
        } else if condition_failed(&codes, 2) || lost_race(&codes) {
            // A failed factor condition, or only conflicts that outlasted the retries:
            // nothing was written, and the session stays open.
            Ok(AppCompletion::FactorsChanged)
        } else {
            Err(cancelled_err(OP, &codes))
        }
    }

    async fn remove_app(
        &self,
        owner: Owner<'_>,
        id: &AuthenticatorId,
        phones_seen: u32,
    ) -> Result<bool, PortError> {
        const OP: &str = "remove_app";
        let Owner { app, user } = owner;
        let pk = user_pk(app, user);
        let mut x = Expr::default();
        let removed: Vec<String> = TOTP_ATTRS.iter().map(|a| x.name(a)).collect();
        let update = format!("REMOVE {}", removed.join(", "));
        // Still this app, and still the phones seen: with none, this is the last factor.
        let condition = format!(
            "{} = {} AND ({})",
            x.name(TOTP_ID),
            x.value("id", s(id.as_str())),
            count_is(&mut x, phones_seen),
        );
        let unbind = tx_update(
            OP,
            self.table.as_str(),
            key(pk.clone(), SK_PHONES),
            &update,
            &condition,
            &x,
        )?;
        let phone = phones_seen > 0;
        let delta = FactorDelta::between(
            FactorsHeld { phone, app: true },
            FactorsHeld { phone, app: false },
        );
        let mut items = vec![unbind];
        items.extend(tx_factors(OP, self.table.as_str(), owner, delta)?);
        self.remove_factor(OP, &pk, phones_seen == 0, items).await
    }
}
