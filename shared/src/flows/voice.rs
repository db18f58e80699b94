//! Who a text or an email speaks for, and in which language (contract v2, "Messages"): the
//! application's display name and WebOTP domain from its policy as it is now, and the user's
//! language from their record. The words themselves are [`crate::messages`]'.

use crate::error::MfaError;
use crate::messages::{self, Lang, Voice};
use crate::ports::UserRecord;
use crate::service::Service;
use crate::types::{AppId, Code, Owner, Policy};

/// The application's name, WebOTP domain and the user's language, for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    name: String,
    webotp_domain: Option<String>,
    lang: Lang,
}

impl Speaker {
    pub fn new(policy: &Policy, user: Option<&UserRecord>) -> Speaker {
        Speaker {
            name: policy.name().to_owned(),
            webotp_domain: policy.webotp_domain.as_ref().map(|d| d.as_str().to_owned()),
            lang: Lang::resolve(user.and_then(|u| u.locale.as_ref())),
        }
    }

    pub fn voice(&self) -> Voice<'_> {
        Voice {
            app: &self.name,
            lang: self.lang,
        }
    }

    /// The code text, with the WebOTP line when the policy names a domain.
    pub fn code_text(&self, code: &Code, ttl_secs: u64) -> String {
        messages::code_text(&self.voice(), code, ttl_secs, self.webotp_domain.as_deref())
    }
}

/// The speaker of a text to `owner`: the policy and the user's record, read at once.
pub async fn for_text(svc: &Service, owner: Owner<'_>) -> Result<Speaker, MfaError> {
    let user = async { Ok::<_, MfaError>(svc.store.get_user(owner).await?) };
    let (policy, user) = tokio::try_join!(super::policy::get(svc, owner.app), user)?;
    Ok(Speaker::new(&policy, user.as_ref()))
}

/// The policy an email speaks for. An email never fails its change, so a policy that cannot
/// be read is logged and the application's defaults stand in (its id as its name).
pub async fn policy_for_email(svc: &Service, app: &AppId) -> Policy {
    match super::policy::get(svc, app).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(app_id = %app, error = %e, "policy unreadable: the email names the application by its id");
            Policy::default_for(app.clone())
        }
    }
}
