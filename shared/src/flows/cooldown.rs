//! The resend cooldown across a user's sign-in challenges (issue 13).
//!
//! Each enrollment and challenge has its own cooldown between its texts; without more, a
//! caller could sidestep it by starting a fresh challenge (or resending another live one)
//! every time. The rule: **a user's challenge texts are at least the cooldown apart**, whatever
//! challenge they belong to. A fresh challenge, or a resend of any challenge, within the
//! cooldown of the user's last challenge text answers `429 resend_too_soon` with
//! `Retry-After`. It is one counter per user (`chl-cool#app#user`, one unit per window of the
//! cooldown's length) taken before the text budgets and the challenge item, and given back
//! when nothing was sent. Enrollment texts have their own rule (`enrollment::submit_phone`).

use crate::error::MfaError;
use crate::metrics::{Metric, Reason};
use crate::service::Service;

use super::Caller;
use super::guards::{self, CounterKey, Take, Taken};

/// The unit of the user's challenge-text cooldown, taken for one text.
#[derive(Debug)]
pub struct ChallengeCooldown(Taken);

impl ChallengeCooldown {
    /// Takes the unit: `429 resend_too_soon` while the user's last challenge text is within
    /// the cooldown.
    pub async fn take(svc: &Service, c: &Caller) -> Result<ChallengeCooldown, MfaError> {
        let now = svc.clock.now();
        let key = CounterKey::ChallengeCooldown(c);
        match guards::take(svc, key, 1, svc.limits.resend_cooldown_secs).await? {
            Take::Taken(taken) => Ok(ChallengeCooldown(taken)),
            Take::Refused(refused) => {
                svc.count(&c.app, Metric::RateLimited(Reason::ResendCooldown));
                Err(MfaError::ResendTooSoon {
                    retry_after: now.secs_until(refused.until),
                })
            }
        }
    }

    /// Gives the unit back: no text went out.
    pub async fn give_back(self, svc: &Service) {
        self.0.give_back(svc).await;
    }

    /// Runs `send` under the unit: kept when it succeeded (a text went out, or may have),
    /// given back when it failed (nothing was sent).
    pub async fn around<T>(
        self,
        svc: &Service,
        send: impl std::future::Future<Output = Result<T, MfaError>>,
    ) -> Result<T, MfaError> {
        let result = send.await;
        if result.is_err() {
            self.give_back(svc).await;
        }
        result
    }
}
