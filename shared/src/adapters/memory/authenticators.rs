//! The in-memory store's authenticator apps, and the steps each user has used.

use super::*;
use crate::ports::{AppCodeUse, AppCompletion, AuthenticatorStore, SessionKind};
use crate::types::AuthenticatorId;

/// Whether the stored session `e` is still open for an app code at `now`: live, at the code
/// step, and of the kind the flow read (an authenticator app's).
fn app_session_open(e: &Enrollment, read: &Enrollment, now: UnixTime) -> bool {
    e.expires_at > now && e.step == Step::Code && e.kind.is_app() && e.kind == read.kind
}

#[async_trait]
impl AuthenticatorStore for MemoryStore {
    async fn get_app(&self, owner: Owner<'_>) -> Result<Option<AuthenticatorRecord>, PortError> {
        Ok(self.lock()?.apps.get(&user_key(owner)).cloned())
    }

    async fn take_app_attempt(
        &self,
        session: &Enrollment,
        max: u32,
        now: UnixTime,
    ) -> Result<Option<u32>, PortError> {
        let mut s = self.lock()?;
        s.wrote(now);
        match s.enrollments.get_mut(&ekey(session)) {
            Some(e) if app_session_open(e, session, now) && e.app_attempts < max => {
                e.app_attempts += 1;
                Ok(Some(e.app_attempts))
            }
            _ => Ok(None),
        }
    }

    async fn complete_app(&self, code: AppCodeUse<'_>) -> Result<AppCompletion, PortError> {
        let (session, now) = (code.session, code.now);
        let mut s = self.lock()?;
        s.wrote(now);
        let key = user_key(session.owner());
        // In the order of the DynamoDB adapter's reasons: the session, the step, the factors.
        if !s
            .enrollments
            .get(&ekey(session))
            .is_some_and(|e| app_session_open(e, session, now))
        {
            return Ok(AppCompletion::SessionGone);
        }
        if s.steps_used
            .get(&key)
            .and_then(|steps| steps.get(&code.step))
            .is_some_and(|until| *until > now)
        {
            return Ok(AppCompletion::StepUsed);
        }
        let app = match &session.kind {
            SessionKind::AppSetup(setup) => {
                if setup.first && s.has_factor(&key) {
                    return Ok(AppCompletion::FactorsChanged);
                }
                // Any other setup needs the factors as the flow saw them (as DynamoDB's
                // condition does).
                if let Some(seen) = code.seen.filter(|_| !setup.first) {
                    let phones = s.phones.get(&key).map_or(0, Vec::len);
                    let app = s.apps.get(&key).map(|a| &a.authenticator_id);
                    if phones != seen.phones as usize || app != seen.app.as_ref() {
                        return Ok(AppCompletion::FactorsChanged);
                    }
                }
                // Binds the app, replacing a previous one.
                AuthenticatorRecord {
                    authenticator_id: setup.authenticator.clone(),
                    sealed: setup.sealed.clone(),
                    label: setup.label.clone(),
                    verified_at: now,
                    last_used_at: None,
                }
            }
            SessionKind::AppSignIn(id) => {
                let Some(bound) = s.apps.get(&key).filter(|a| &a.authenticator_id == id) else {
                    return Ok(AppCompletion::FactorsChanged);
                };
                AuthenticatorRecord {
                    sealed: code.reseal.cloned().unwrap_or_else(|| bound.sealed.clone()),
                    last_used_at: Some(now),
                    ..bound.clone()
                }
            }
            _ => return Ok(AppCompletion::SessionGone),
        };
        let before = s.held(&key);
        s.apps.insert(key.clone(), app);
        s.factors_moved(&key, before);
        s.steps_used
            .entry(key)
            .or_default()
            .insert(code.step, code.step_remembered_until);
        if let Some(e) = s.enrollments.get_mut(&ekey(session)) {
            e.step = Step::Complete;
        }
        Ok(AppCompletion::Done)
    }

    async fn remove_app(
        &self,
        owner: Owner<'_>,
        id: &AuthenticatorId,
        phones_seen: u32,
    ) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let key = user_key(owner);
        let phones = s.phones.get(&key).map_or(0, Vec::len);
        let bound = s.apps.get(&key).is_some_and(|a| &a.authenticator_id == id);
        if !bound || phones != phones_seen as usize {
            return Ok(false);
        }
        let before = s.held(&key);
        s.apps.remove(&key);
        s.factors_moved(&key, before);
        if phones == 0 {
            // The last factor: the recovery codes go in the same step.
            s.recovery.remove(&key);
        }
        Ok(true)
    }
}
