//! The service: its ports, keys and settings, built once per cold start and shared by every
//! request of that sandbox.

use std::sync::Arc;

use crate::config::{Limits, Settings};
use crate::crypto::Keys;
use crate::metrics::{Metric, Metrics};
use crate::ports::{Clock, EmailSender, SmsSender, Store};
use crate::types::AppId;

/// Everything a flow needs. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct Service {
    pub store: Arc<dyn Store>,
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub clock: Arc<dyn Clock>,
    /// Where the operators' counts go (EMF on Lambda, kept in memory locally).
    pub metrics: Arc<dyn Metrics>,
    pub keys: Keys,
    /// The assertion signing keys; only the function that signs sign-in assertions (and
    /// serves the JWKS) is given them.
    pub signing: Option<crate::signing::SigningKeys>,
    /// The public keys that step-up proofs are verified with (every function has them; see
    /// [`crate::adapters::jwks`] for how a function that only verifies gets them).
    pub assertion_keys: Arc<crate::adapters::jwks::AssertionKeys>,
    /// The keys authenticator-app secrets are sealed under (`MFA_TOTP_SECRET_ID`); only the
    /// functions that set up, check or sign in with an app are given them.
    pub app_keys: Option<Arc<crate::totp::SealingKeys>>,
    pub limits: Limits,
    pub settings: Settings,
    /// The policies this instance read in the last few seconds (`limits.policy_cache_secs`).
    pub policy_cache: Arc<crate::policy_cache::PolicyCache>,
}

impl Service {
    /// Counts `metric` for `app`.
    pub fn count(&self, app: &AppId, metric: Metric) {
        self.metrics.count(app, metric);
    }

    /// The embedded default: an in-process store, texts and emails to the console outbox, a
    /// random code key for this process.
    pub fn in_memory(
        limits: Limits,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<(Service, crate::adapters::console::ConsoleOutbox), getrandom::Error> {
        let outbox = crate::adapters::console::ConsoleOutbox::new(Arc::clone(&clock));
        let signing = crate::signing::SigningKeys::random()?;
        // One process signs and verifies: the verifier reads the keys the signer published.
        let published = crate::adapters::jwks::MemoryJwks::holding(signing.jwks(), 1);
        let assertion_keys = crate::adapters::jwks::AssertionKeys::new(
            crate::signing::PublicKeys::default(),
            Some(Arc::new(published)),
        );
        let svc = Service {
            store: Arc::new(crate::adapters::memory::MemoryStore::new()),
            sms: Arc::new(outbox.clone()),
            email: Arc::new(outbox.clone()),
            clock,
            metrics: Arc::new(crate::metrics::Recorded::new()),
            keys: Keys::random()?,
            signing: Some(signing),
            assertion_keys: Arc::new(assertion_keys),
            app_keys: Some(Arc::new(crate::totp::SealingKeys::random()?)),
            policy_cache: Arc::new(crate::policy_cache::PolicyCache::new(
                limits.policy_cache_secs,
            )),
            limits,
            settings,
        };
        Ok((svc, outbox))
    }
}
