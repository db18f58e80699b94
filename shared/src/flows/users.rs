//! The platform provisions the accounts the service knows (`PUT .../users/{user_id}`).

use crate::crypto::is_argon2_phc;
use crate::error::MfaError;
use crate::ports::UserRecord;
use crate::service::Service;
use crate::types::{AppId, UserId};

/// An email address, checked for shape only (the platform verified it).
pub fn check_email(email: &str) -> Result<(), MfaError> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(MfaError::InvalidRequest(
            "`email` must be an email address such as ada@example.com.".into(),
        ))
    }
}

/// Creates or replaces what the service knows of a user.
pub async fn put(
    svc: &Service,
    app: &AppId,
    user: &UserId,
    email: String,
    email_verified: bool,
    password_hash: String,
    locale: Option<crate::messages::Locale>,
) -> Result<UserRecord, MfaError> {
    check_email(&email)?;
    if !is_argon2_phc(&password_hash) {
        return Err(MfaError::InvalidRequest(
            "`password_hash` must be an argon2 PHC string ($argon2id$v=19$...).".into(),
        ));
    }
    let record = UserRecord {
        app_id: app.clone(),
        user_id: user.clone(),
        email,
        email_verified,
        password_hash,
        locale,
        updated_at: svc.clock.now(),
    };
    svc.store.put_user(&record).await?;
    tracing::info!(app_id = %app, user_id = %user, "user provisioned");
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::check_email;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(check_email("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@example.com.",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
