//! Phones in settings: list, add another, replace a number (make-before-break), relabel,
//! make primary, remove. Adds and replaces are enrollments of their own kind: their code is
//! checked and resent through the enrollment routes.

use serde_json::json;

use crate::error::MfaError;
use crate::messages;
use crate::ports::{PhoneRecord, Removal, SessionKind, display_order};
use crate::service::Service;
use crate::types::{Factor, PhoneId, PhoneNumber};

use super::audit::{self, Action};
use super::code::{self, Text};
use super::enrollment::{self, CodeSent, check_password, clean_label, notify_user};
use super::factors::Factors;
use super::status::PhoneView;
use super::{Caller, policy};

/// The user's phones, primary first, then oldest first (in the order first verified: a
/// replaced phone keeps its place).
pub async fn list(svc: &Service, c: &Caller) -> Result<Vec<PhoneView>, MfaError> {
    let mut phones = svc.store.list_phones(c.owner()).await?;
    display_order(&mut phones);
    Ok(phones.iter().map(PhoneView::from).collect())
}

/// The phone `id` among `phones`; `404 phone_not_found` when it is not the user's.
fn pick(phones: &[PhoneRecord], id: &PhoneId) -> Result<PhoneRecord, MfaError> {
    phones
        .iter()
        .find(|p| &p.phone_id == id)
        .cloned()
        .ok_or(MfaError::PhoneNotFound)
}

async fn find(
    svc: &Service,
    c: &Caller,
    id: &PhoneId,
) -> Result<(PhoneRecord, Vec<PhoneRecord>), MfaError> {
    let phones = svc.store.list_phones(c.owner()).await?;
    Ok((pick(&phones, id)?, phones))
}

/// Starts an add or a replace: policy, password, then the number's checks; texts the code.
async fn begin(
    svc: &Service,
    c: &Caller,
    kind: SessionKind,
    password: String,
    number: PhoneNumber,
    label: Option<String>,
) -> Result<CodeSent, MfaError> {
    let label = clean_label(label)?;
    let (policy, _) = enrollment::may_enroll(svc, c, password, Factor::Sms).await?;
    let Factors { phones, app } = Factors::of(svc, c).await?;
    match &kind {
        SessionKind::Replace(id) if !phones.iter().any(|p| &p.phone_id == id) => {
            return Err(MfaError::PhoneNotFound);
        }
        SessionKind::Add if phones.len() >= svc.limits.max_phones_per_user as usize => {
            return Err(MfaError::TooManyPhones {
                max: svc.limits.max_phones_per_user,
            });
        }
        _ => {}
    }
    if phones.iter().any(|p| p.number == number) {
        return Err(MfaError::PhoneAlreadyEnrolled);
    }
    // An add begun while the user has no factor needed no step-up proof (there was nothing to
    // prove), so it may only ever bind a *first* factor: it completes as an enrollment, which
    // the store refuses once the user has a phone or an app. Otherwise someone holding only the password
    // could begin it before the owner enrolls and complete it after, adding their own phone
    // beside the owner's without a proof.
    let answer_purpose = if matches!(kind, SessionKind::Add) {
        "add"
    } else {
        "replace"
    };
    let kind = match kind {
        SessionKind::Add if phones.is_empty() && app.is_none() => SessionKind::Enroll,
        other => other,
    };
    enrollment::check_region(&policy, &number)?;
    let e = enrollment::create(svc, c, kind).await?;
    let text = Text {
        number,
        label,
        replaces: None,
        cooldown: false,
    };
    let sent = code::send(svc, c, &e, text).await?;
    Ok(CodeSent {
        enrollment_id: e.id.as_enrollment().cloned(),
        purpose: Some(answer_purpose),
        ..CodeSent::new(svc, &sent)
    })
}

/// `POST /v1/mfa/phones`: another phone (at most five).
pub async fn add(
    svc: &Service,
    c: &Caller,
    password: String,
    number: PhoneNumber,
    label: Option<String>,
) -> Result<CodeSent, MfaError> {
    begin(svc, c, SessionKind::Add, password, number, label).await
}

/// `PUT /v1/mfa/phones/{id}`: a new number for a phone. The old number stays in force until
/// the new one is verified; then the same phone id carries it, label and primary flag kept.
pub async fn replace(
    svc: &Service,
    c: &Caller,
    id: &PhoneId,
    password: String,
    number: PhoneNumber,
) -> Result<CodeSent, MfaError> {
    begin(
        svc,
        c,
        SessionKind::Replace(id.clone()),
        password,
        number,
        None,
    )
    .await
}

/// `PATCH /v1/mfa/phones/{id}`: a new label (`Some(None)` clears it) and/or primary.
pub async fn update(
    svc: &Service,
    c: &Caller,
    id: &PhoneId,
    label: Option<Option<String>>,
    make_primary: bool,
) -> Result<PhoneView, MfaError> {
    let (mut phone, phones) = find(svc, c, id).await?;
    if let Some(label) = label {
        let label = clean_label(label)?;
        phone = svc
            .store
            .set_phone_label(c.owner(), id, label)
            .await?
            .ok_or(MfaError::PhoneNotFound)?;
    }
    if make_primary && !phone.primary {
        let previous = phones
            .iter()
            .find(|p| p.primary)
            .map(|p| p.phone_id.clone());
        // The store checks every phone's primary flag as seen here: a concurrent removal or
        // make-primary makes this one fail rather than leave two primaries or none.
        if !svc.store.set_primary(c.owner(), id, &phones).await? {
            return Err(MfaError::Conflict);
        }
        phone.primary = true;
        let details =
            json!({ "phone_id": id, "masked": phone.number.masked(), "previous": previous });
        audit::user(svc, c, Action::PhonePrimaryChanged, details).await;
    }
    Ok(PhoneView::from(&phone))
}

/// `DELETE /v1/mfa/phones/{id}`. The last factor (the last phone of a user without an
/// authenticator app) cannot go while the policy is `required` (`409 last_phone_required`, as
/// the v1 contract names it for this route); otherwise removing it un-enrolls the user. A removed primary hands over to the oldest other
/// (the first after it in [`display_order`]).
pub async fn remove(
    svc: &Service,
    c: &Caller,
    id: &PhoneId,
    password: String,
) -> Result<(), MfaError> {
    check_password(svc, c, password).await?;
    // The phones and the app, read at once (the app decides whether this is the last factor).
    let Factors { mut phones, app } = Factors::of(svc, c).await?;
    let phone = pick(&phones, id)?;
    let app_seen = app.is_some();
    let policy = policy::get(svc, &c.app).await?;
    let last = phones.len() == 1 && !app_seen;
    if last && policy.in_force() && policy.enforcement.is_required() {
        return Err(MfaError::LastPhoneRequired);
    }
    display_order(&mut phones);
    let promote = if phone.primary {
        phones
            .iter()
            .find(|p| p.phone_id != phone.phone_id)
            .map(|p| p.phone_id.clone())
    } else {
        None
    };
    // The last factor takes the recovery codes with it in the same write (un-enrolled: they
    // cannot come back with a later enrollment, and a set made meanwhile does not survive).
    // The store checks the app as seen, so a concurrent app removal cannot leave none.
    let removal = Removal {
        app_seen,
        number_tag: svc.keys.number_tag(&phone.number),
        seen: phones,
        promote: promote.clone(),
        phone: phone.clone(),
    };
    if !svc.store.remove_phone(c.owner(), &removal).await? {
        return Err(MfaError::Conflict);
    }
    tracing::info!(app_id = %c.app, user_id = %c.user, phone = %phone.number, "phone removed");
    let details = json!({ "phone_id": id, "masked": phone.number.masked(), "unenrolled": last, "promoted": promote });
    audit::user(svc, c, Action::PhoneRemoved, details).await;
    let now = svc.clock.now();
    notify_user(svc, &c.app, &c.user, Action::PhoneRemoved, |voice, to| {
        messages::phone_removed_email(voice, to, &phone.number, last, now)
    })
    .await;
    Ok(())
}
