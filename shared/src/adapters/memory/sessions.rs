//! The in-memory store's enrollments and sign-in challenges.

use super::*;
use crate::ports::CodeUse;
use crate::types::Owner;

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_enrollment(&self, enrollment: &Enrollment) -> Result<(), PortError> {
        let mut s = self.lock()?;
        let now = enrollment.created_at;
        s.wrote(now);
        let key = ekey(enrollment);
        if s.enrollments.contains_key(&key) {
            return Err(PortError::new("enrollment id collision"));
        }
        // End the oldest open ones so that, with this one, at most MAX_LIVE_ENROLLMENTS stay.
        let mut open: Vec<(UnixTime, SessionId)> = s
            .enrollments
            .values()
            .filter(|e| {
                e.app_id == enrollment.app_id && e.user_id == enrollment.user_id && e.is_open(now)
            })
            .map(|e| (e.created_at, e.id.clone()))
            .collect();
        open.sort();
        let excess = (open.len() + 1).saturating_sub(MAX_LIVE_ENROLLMENTS);
        for (_, id) in open.into_iter().take(excess) {
            s.enrollments
                .remove(&(enrollment.app_id.clone(), enrollment.user_id.clone(), id));
        }
        s.enrollments.insert(key, enrollment.clone());
        Ok(())
    }

    async fn get_enrollment(
        &self,
        owner: Owner<'_>,
        id: &SessionId,
    ) -> Result<Option<Enrollment>, PortError> {
        Ok(self
            .lock()?
            .enrollments
            .get(&(owner.app.clone(), owner.user.clone(), id.clone()))
            .cloned())
    }

    async fn begin_send(
        &self,
        enrollment: &Enrollment,
        send: &NewSend,
    ) -> Result<Option<Enrollment>, PortError> {
        let mut s = self.lock()?;
        s.wrote(send.now);
        let Some(e) = s.enrollments.get_mut(&ekey(enrollment)) else {
            return Ok(None);
        };
        let allowed = e.expires_at > send.now
            && matches!(e.step, Step::Phone | Step::Code)
            && e.sends < send.max_sends
            && send
                .last_sent_at_most
                .is_none_or(|limit| e.last_sent_at.is_none_or(|last| last <= limit))
            && send
                .replaces
                .as_ref()
                .is_none_or(|id| e.pending.as_ref().is_some_and(|p| &p.code_id == id));
        if !allowed {
            return Ok(None);
        }
        let previous = e.clone();
        e.step = Step::Code;
        e.sends += 1;
        e.last_sent_at = Some(send.now);
        e.pending = Some(send.code.clone());
        Ok(Some(previous))
    }

    async fn undo_send(&self, previous: &Enrollment, failed: &CodeId) -> Result<(), PortError> {
        let mut s = self.lock()?;
        if let Some(e) = s.enrollments.get_mut(&ekey(previous))
            && e.pending.as_ref().is_some_and(|p| &p.code_id == failed)
        {
            *e = previous.clone();
        }
        Ok(())
    }

    async fn take_code_attempt(
        &self,
        code: CodeUse<'_>,
        max: u32,
    ) -> Result<Option<u32>, PortError> {
        let (enrollment, code_id, now) = (code.enrollment, code.code_id, code.now);
        let mut s = self.lock()?;
        let Some(e) = s.enrollments.get_mut(&ekey(enrollment)) else {
            return Ok(None);
        };
        let live = e.expires_at > now && e.step == Step::Code;
        match e.pending.as_mut() {
            Some(p) if live && &p.code_id == code_id && p.expires_at > now && p.attempts < max => {
                p.attempts += 1;
                Ok(Some(p.attempts))
            }
            _ => Ok(None),
        }
    }

    async fn complete_enrollment(
        &self,
        code: CodeUse<'_>,
        change: &PhoneChange,
    ) -> Result<Completion, PortError> {
        let (enrollment, code_id, now) = (code.enrollment, code.code_id, code.now);
        let mut s = self.lock()?;
        let owner_key = user_key(enrollment.owner());
        let Some(e) = s.enrollments.get(&ekey(enrollment)) else {
            return Ok(Completion::CodeGone);
        };
        let open = e.expires_at > now
            && e.step == Step::Code
            && e.pending
                .as_ref()
                .is_some_and(|p| &p.code_id == code_id && p.expires_at > now);
        if !open {
            return Ok(Completion::CodeGone);
        }
        let tags = s.number_tags.get(&owner_key).cloned().unwrap_or_default();
        let phones = s.phones.get(&owner_key).cloned().unwrap_or_default();
        if change
            .claimed_tag()
            .is_some_and(|tag| tags.contains_key(tag))
        {
            return Ok(Completion::NumberTaken);
        }
        match change {
            PhoneChange::Add {
                phone,
                number_tag,
                seen_count,
                app_seen,
            } => {
                // An enrollment of the first phone never adds to a user who has one (a second
                // Start begun before the first completed).
                // Nor to a user with an authenticator app (the first factor is bound).
                let has_app = s.apps.contains_key(&owner_key);
                if enrollment.kind == crate::ports::SessionKind::Enroll
                    && (!phones.is_empty() || has_app)
                {
                    return Ok(Completion::PhonesChanged);
                }
                // A first phone also needs the app as seen (as DynamoDB's condition does).
                if phones.len() != *seen_count as usize
                    || (*seen_count == 0 && has_app != *app_seen)
                {
                    return Ok(Completion::PhonesChanged);
                }
                let before = s.held(&owner_key);
                s.number_tags
                    .entry(owner_key.clone())
                    .or_default()
                    .insert(number_tag.clone(), phone.phone_id.clone());
                s.phones
                    .entry(owner_key.clone())
                    .or_default()
                    .push(phone.clone());
                s.factors_moved(&owner_key, before);
            }
            PhoneChange::Challenge { phone_id, number } => {
                if !phones
                    .iter()
                    .any(|p| &p.phone_id == phone_id && &p.number == number)
                {
                    return Ok(Completion::PhonesChanged);
                }
            }
            PhoneChange::Replace {
                phone_id,
                old_number,
                old_number_tag,
                new_number,
                new_number_tag,
            } => {
                let Some(pos) = phones
                    .iter()
                    .position(|p| &p.phone_id == phone_id && &p.number == old_number)
                else {
                    return Ok(Completion::PhonesChanged);
                };
                let claims = s.number_tags.entry(owner_key.clone()).or_default();
                claims.remove(old_number_tag);
                claims.insert(new_number_tag.clone(), phone_id.clone());
                if let Some(list) = s.phones.get_mut(&owner_key) {
                    list[pos].number = new_number.clone();
                    list[pos].verified_at = now;
                }
            }
        }
        if let Some(e) = s.enrollments.get_mut(&ekey(enrollment)) {
            e.step = Step::Complete;
            e.pending = None;
        }
        Ok(Completion::Done)
    }
}
