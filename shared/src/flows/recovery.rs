//! Recovery codes: ten one-time codes shown once, for when no phone is at hand. Each is 10
//! characters of Crockford base32 (50 bits from the CSPRNG), stored only as a keyed hash and
//! used at most once, even by concurrent requests (a conditional delete).

use serde::Serialize;
use serde_json::json;

use crate::error::MfaError;
use crate::messages;
use crate::metrics::Metric;
use crate::service::Service;
use crate::types::UnixTime;

use super::Caller;
use super::audit::{self, Action};
use super::challenge::{self, Assertion};
use super::enrollment::{check_password, notify_user};
use super::factors::Factors;
use super::guards;

/// Codes per set.
pub const SET_SIZE: usize = 10;
/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh code, `XXXXX-XXXXX`: each character takes 5 bits of one random byte, so all 32
/// characters are equally likely (no modulo bias).
fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes)?;
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 0x1f)] as char)
        .collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
}

/// What a person typed, normalised: case, dashes and spaces ignored, and the look-alikes
/// Crockford maps (O→0, I/L→1). `None` unless it is 10 alphabet characters.
fn normalise(input: &str) -> Option<String> {
    let mut out = String::with_capacity(10);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == 10).then_some(out)
}

fn hash(svc: &Service, c: &Caller, normalised: &str) -> String {
    svc.keys
        .recovery_hash(c.app.as_str(), c.user.as_str(), normalised)
}

/// `201` of a new set: shown this once.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NewSet {
    pub codes: Vec<String>,
}

/// `POST /v1/mfa/recovery-codes`: a new set replaces the old.
pub async fn create(svc: &Service, c: &Caller, password: String) -> Result<NewSet, MfaError> {
    check_password(svc, c, password).await?;
    if !Factors::of(svc, c).await?.any() {
        return Err(MfaError::NotEnrolled);
    }
    let codes = (0..SET_SIZE)
        .map(|_| generate())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<String> = codes
        .iter()
        .map(|code| hash(svc, c, &code.replace('-', "")))
        .collect();
    let now = svc.clock.now();
    // False when the last phone went meanwhile: the set is not kept.
    if !svc
        .store
        .replace_recovery_codes(c.owner(), &hashes, now)
        .await?
    {
        return Err(MfaError::NotEnrolled);
    }
    audit::user(
        svc,
        c,
        Action::RecoveryCodesCreated,
        json!({ "count": SET_SIZE }),
    )
    .await;
    notify_user(
        svc,
        &c.app,
        &c.user,
        Action::RecoveryCodesCreated,
        |voice, to| messages::recovery_codes_created_email(voice, to, now),
    )
    .await;
    Ok(NewSet { codes })
}

/// `200` of a used recovery code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Recovered {
    pub assertion: String,
    pub expires_at: UnixTime,
    pub remaining: u32,
}

/// `POST /v1/mfa/challenges/recovery`: a recovery code, once, gives an assertion
/// (`amr: ["recovery"]`). Wrong codes count against the user's hourly budget of failed codes.
pub async fn redeem(svc: &Service, c: &Caller, input: &str) -> Result<Recovered, MfaError> {
    let Some(code) = normalise(input) else {
        return Err(MfaError::InvalidRequest(
            "`code` must be a recovery code such as 7K3QD-M9XWP (10 letters and digits).".into(),
        ));
    };
    // Recovery codes stand in for a factor: without one (a phone or an app), the user has no
    // second factor to recover.
    if !Factors::of(svc, c).await?.any() {
        return Err(MfaError::NotEnrolled);
    }
    let unit = guards::take_code_failure(svc, c).await?;
    // Everything that can fail runs before the code is spent: the assertion is signed and the
    // count read first, so that a failure answers an error with the code still usable. After
    // the use, only best-effort audit and email remain.
    let prepared = match challenge::assert(svc, c, "recovery") {
        Ok(a) => match svc.store.count_recovery_codes(c.owner()).await {
            Ok(n) => Ok((a, n)),
            Err(e) => Err(MfaError::from(e)),
        },
        Err(e) => Err(e),
    };
    let (
        Assertion {
            assertion,
            expires_at,
        },
        unused_before,
    ) = match prepared {
        Ok(p) => p,
        Err(e) => {
            unit.give_back(svc).await;
            return Err(e);
        }
    };
    let used = match svc
        .store
        .consume_recovery_code(c.owner(), &hash(svc, c, &code))
        .await
    {
        Ok(used) => used,
        Err(e) => {
            unit.give_back(svc).await;
            return Err(e.into());
        }
    };
    if !used {
        tracing::info!(app_id = %c.app, user_id = %c.user, "wrong recovery code");
        svc.count(&c.app, Metric::VerificationFailed);
        let left = svc
            .limits
            .code_failures_per_user_per_hour
            .saturating_sub(unit.count);
        if left == 0 {
            // The guess that used up the hour's budget answers as the next one would.
            svc.count(&c.app, Metric::Lockout);
            return Err(MfaError::TooManyAttempts {
                retry_after: unit.resets_in(svc, 3600),
            });
        }
        return Err(MfaError::InvalidCode {
            attempts_remaining: left,
        });
    }
    unit.give_back(svc).await;
    svc.count(&c.app, Metric::VerificationOk);
    // The count read before the use, less this code (a concurrent use of another code may
    // make it one too high for a moment; status shows the stored count).
    let remaining = unused_before.saturating_sub(1);
    audit::user(
        svc,
        c,
        Action::RecoveryCodeUsed,
        json!({ "remaining": remaining }),
    )
    .await;
    let now = svc.clock.now();
    notify_user(
        svc,
        &c.app,
        &c.user,
        Action::RecoveryCodeUsed,
        |voice, to| messages::recovery_code_used_email(voice, to, remaining, now),
    )
    .await;
    Ok(Recovered {
        assertion,
        expires_at,
        remaining,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_alphabet_characters_with_a_dash() {
        for _ in 0..100 {
            let c = generate().unwrap();
            assert_eq!(c.len(), 11);
            assert_eq!(&c[5..6], "-");
            assert_eq!(normalise(&c).unwrap(), c.replace('-', ""));
        }
    }

    #[test]
    fn typing_slips_are_forgiven_but_not_other_characters() {
        assert_eq!(normalise("7k3qd m9xwp").unwrap(), "7K3QDM9XWP");
        assert_eq!(normalise("OIL00-11111").unwrap(), "0110011111");
        for bad in [
            "",
            "7K3QD",
            "7K3QD-M9XWPX",
            "7K3QD-M9XWU",
            "7K3QD_M9XWP",
            "７K3QD-M9XWP",
        ] {
            assert!(normalise(bad).is_none(), "{bad:?}");
        }
    }
}
