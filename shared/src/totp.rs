//! Authenticator apps (RFC 6238 TOTP: HMAC-SHA1, 6 digits, 30-second steps) and their secrets
//! sealed at rest.
//!
//! - [`TotpSecret`]: 20 random bytes, shown once as RFC 4648 base32 (no padding) and in an
//!   `otpauth://` URI; its `Debug` never shows it.
//! - [`TotpSecret::matching_step`]: which of the steps around `now` a guess is the code of. All
//!   three candidates are computed and compared in constant time, whichever matches.
//! - [`SealingKeys`]: XChaCha20-Poly1305 under keys from Secrets Manager. The associated data
//!   binds the application, user and authenticator ids, so a ciphertext copied to another
//!   user's (or another authenticator's) item does not open. A random 24-byte nonce per seal
//!   (XChaCha's nonce is long enough for random nonces to be safe).
//!
//! The HMAC is RustCrypto's `hmac` over `sha1`, base32 is `data-encoding`'s: nothing here
//! re-implements a primitive.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::types::ids::AuthenticatorId;
use crate::types::{AppId, Code, UnixTime, UserId};

/// Seconds per step (RFC 6238's default, what every app assumes).
pub const PERIOD_SECS: i64 = 30;

/// Steps accepted either side of the current one (RFC 6238 5.2's recommended skew).
pub const SKEW_STEPS: i64 = 1;

/// Length of a secret in bytes (RFC 4226 recommends 160 bits for HMAC-SHA1).
pub const SECRET_LEN: usize = 20;

/// The step `t` falls in (RFC 6238's `T = floor((t - T0) / X)`, `T0 = 0`).
pub fn step_at(t: UnixTime) -> i64 {
    t.0.div_euclid(PERIOD_SECS)
}

/// An authenticator app's shared secret. Never logged: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// 20 bytes from the operating system's CSPRNG.
    pub fn generate() -> Result<TotpSecret, getrandom::Error> {
        let mut bytes = [0u8; SECRET_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(TotpSecret(bytes))
    }

    /// A secret from its bytes (tests, and [`SealingKeys::open`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<TotpSecret> {
        bytes.try_into().ok().map(TotpSecret)
    }

    /// The secret as the user types it: RFC 4648 base32 without padding (32 characters).
    pub fn base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
    /// URI that apps scan as a QR code. The label's parts and the issuer are percent-encoded:
    /// everything but RFC 3986's unreserved characters (so `:` `@` `&` `?` `#` and spaces are).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let enc = |s: &str| utf8_percent_encode(s, RESERVED).to_string();
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
            enc(issuer),
            enc(account),
            self.base32(),
            enc(issuer),
        )
    }

    /// The code of `step` (RFC 4226 HOTP with the step as counter, dynamic truncation, 6 digits).
    pub fn code_at_step(&self, step: i64) -> Code {
        Code::from_number(hotp(&self.0, u64::try_from(step).unwrap_or(0)))
    }

    /// The step among `now`'s and the [`SKEW_STEPS`] either side whose code `guess` is, if any.
    /// Every candidate is computed and compared in constant time; the loop never exits early.
    pub fn matching_step(&self, guess: &Code, now: UnixTime) -> Option<i64> {
        let current = step_at(now);
        let mut found: Option<i64> = None;
        for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
            let code = self.code_at_step(step);
            let same: bool = code
                .expose()
                .as_bytes()
                .ct_eq(guess.expose().as_bytes())
                .into();
            if same && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// RFC 4226: HMAC-SHA1 of the counter, dynamically truncated to 31 bits.
fn hotp(key: &[u8], counter: u64) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(key) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ])
}

/// A secret as stored: `v1.{kid}.{base64url nonce}.{base64url ciphertext+tag}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl Sealed {
    /// A stored value, as read back (checked when opened).
    pub fn from_stored(s: String) -> Sealed {
        Sealed(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the key it was sealed under.
    pub fn kid(&self) -> Option<&str> {
        let mut parts = self.0.split('.');
        (parts.next() == Some("v1")).then(|| parts.next()).flatten()
    }
}

/// Why a sealing key set was refused (names no key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authenticator app key: {0}")]
pub struct SealingKeyError(pub &'static str);

/// Why a sealed secret did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed under a key that is no longer configured")]
    UnknownKey,
    #[error("the sealed value is malformed or was not sealed for this item")]
    Rejected,
}

struct SealingKey {
    kid: String,
    cipher: XChaCha20Poly1305,
}

/// The keys authenticator-app secrets are sealed under: the first seals, every one opens.
///
/// From the secret string (Secrets Manager): either one string of key material (what the
/// stack generates), or JSON `{"current": "...", "previous": ["..."]}` during a rotation
/// (README, "Key rotation"). Each key is SHA-256 of its material; its id, stored with each
/// sealed value, is the first 8 hex digits of SHA-256 of `"kid"` and the key.
pub struct SealingKeys {
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("SealingKeys").field("kids", &kids).finish()
    }
}

impl SealingKeys {
    /// Keys from the secret's value. Material shorter than 32 characters is refused.
    pub fn from_secret(secret: &str) -> Result<SealingKeys, SealingKeyError> {
        let trimmed = secret.trim();
        let materials: Vec<String> = if trimmed.starts_with('{') {
            let v: Value = serde_json::from_str(trimmed)
                .map_err(|_| SealingKeyError("the secret is not valid JSON"))?;
            let current = v["current"]
                .as_str()
                .ok_or(SealingKeyError("the secret has no \"current\" key"))?;
            let mut all = vec![current.to_owned()];
            for prev in v
                .get("previous")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                all.push(
                    prev.as_str()
                        .ok_or(SealingKeyError("\"previous\" must list strings"))?
                        .to_owned(),
                );
            }
            all
        } else {
            vec![trimmed.to_owned()]
        };
        let keys = materials
            .iter()
            .map(|m| {
                if m.len() < 32 {
                    return Err(SealingKeyError(
                        "key material must be at least 32 characters",
                    ));
                }
                Ok(SealingKey::from_key(Sha256::digest(m.as_bytes()).into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SealingKeys { keys })
    }

    /// A fresh random key, for the in-memory backend.
    pub fn random() -> Result<SealingKeys, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(SealingKeys {
            keys: vec![SealingKey::from_key(key)],
        })
    }

    /// The id of the key that seals now.
    pub fn current_kid(&self) -> &str {
        self.keys.first().map_or("", |k| k.kid.as_str())
    }

    /// Seals `secret` for one authenticator of one user of one application.
    pub fn seal(
        &self,
        secret: &TotpSecret,
        app: &AppId,
        user: &UserId,
        authenticator: &AuthenticatorId,
    ) -> Result<Sealed, SealError> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = self.keys.first().ok_or(SealError)?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let aad = associated_data(app, user, authenticator);
        let ct = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &secret.0,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError)?;
        Ok(Sealed(format!(
            "v1.{}.{}.{}",
            key.kid,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ct)
        )))
    }

    /// Opens a sealed secret for the item it was sealed for; anything else is refused.
    pub fn open(
        &self,
        sealed: &Sealed,
        app: &AppId,
        user: &UserId,
        authenticator: &AuthenticatorId,
    ) -> Result<TotpSecret, OpenError> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = sealed.0.split('.').collect();
        let [version, kid, nonce, ct] = parts.as_slice() else {
            return Err(OpenError::Rejected);
        };
        if *version != "v1" {
            return Err(OpenError::Rejected);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == *kid)
            .ok_or(OpenError::UnknownKey)?;
        let nonce: [u8; 24] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Rejected)?;
        let ct = URL_SAFE_NO_PAD
            .decode(ct)
            .map_err(|_| OpenError::Rejected)?;
        let aad = associated_data(app, user, authenticator);
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Rejected)?;
        TotpSecret::from_bytes(&plain).ok_or(OpenError::Rejected)
    }
}

/// Sealing failed (no key, or no randomness): the flow answers `503`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not seal an authenticator app secret")]
pub struct SealError;

impl SealingKey {
    fn from_key(key: [u8; 32]) -> SealingKey {
        let mut h = Sha256::new();
        h.update(b"kid");
        h.update(key);
        let kid = hex::encode(&h.finalize()[..4]);
        SealingKey {
            kid,
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }
}

/// The associated data: each id length-prefixed, so that no two (app, user, authenticator)
/// triples share one.
fn associated_data(app: &AppId, user: &UserId, authenticator: &AuthenticatorId) -> Vec<u8> {
    let mut aad = b"mfa-totp-v1".to_vec();
    for part in [app.as_str(), user.as_str(), authenticator.as_str()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows: the seed is the ASCII "12345678901234567890" and the
    /// codes are the 8-digit ones; their last 6 digits are the 6-digit codes (the truncation is
    /// mod 10^digits of the same 31-bit number).
    const RFC6238_SHA1: [(i64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        for (t, eight) in RFC6238_SHA1 {
            let code = secret.code_at_step(step_at(UnixTime(t)));
            assert_eq!(code.expose(), &eight[2..], "T = {t}");
            let full = hotp(&secret.0, u64::try_from(step_at(UnixTime(t))).unwrap()) % 100_000_000;
            assert_eq!(format!("{full:08}"), eight, "T = {t}");
        }
    }

    #[test]
    fn base32_and_uri_are_what_apps_read() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.otpauth_uri("Acme Travel", "ada@example.com"),
            "otpauth://totp/Acme%20Travel:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Travel&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(TotpSecret::generate().unwrap().base32().len(), 32);
    }

    #[test]
    fn one_step_either_side_is_accepted_and_two_are_not() {
        let secret = TotpSecret::generate().unwrap();
        let now = UnixTime(1_800_000_015);
        let here = step_at(now);
        for d in -1..=1 {
            let code = secret.code_at_step(here + d);
            assert_eq!(secret.matching_step(&code, now), Some(here + d));
        }
        for d in [-2, 2] {
            let code = secret.code_at_step(here + d);
            // A code two steps away may collide with a nearer one by chance (1 in 10^6).
            let hit = secret.matching_step(&code, now);
            assert!(hit.is_none() || hit.is_some_and(|s| (s - here).abs() <= 1));
        }
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_item() {
        let keys = SealingKeys::random().unwrap();
        let secret = TotpSecret::generate().unwrap();
        let app = AppId::parse("acme").unwrap();
        let user = UserId::parse("ada").unwrap();
        let other_user = UserId::parse("bob").unwrap();
        let other_app = AppId::parse("globex").unwrap();
        let id = AuthenticatorId::generate().unwrap();
        let other_id = AuthenticatorId::generate().unwrap();
        let sealed = keys.seal(&secret, &app, &user, &id).unwrap();
        assert!(!sealed.as_str().contains(&secret.base32()));
        assert_eq!(keys.open(&sealed, &app, &user, &id).unwrap(), secret);
        for (a, u, i) in [
            (&app, &other_user, &id),
            (&other_app, &user, &id),
            (&app, &user, &other_id),
        ] {
            assert_eq!(keys.open(&sealed, a, u, i), Err(OpenError::Rejected));
        }
        // Another deployment's key does not open it (and says so).
        let stranger = SealingKeys::random().unwrap();
        assert_eq!(
            stranger.open(&sealed, &app, &user, &id),
            Err(OpenError::UnknownKey)
        );
        // Two seals of one secret differ (fresh nonces).
        assert_ne!(keys.seal(&secret, &app, &user, &id).unwrap(), sealed);
    }

    #[test]
    fn a_rotation_keeps_old_seals_open_and_seals_under_the_new_key() {
        let old = "o".repeat(40);
        let new = "n".repeat(40);
        let before = SealingKeys::from_secret(&old).unwrap();
        let during =
            SealingKeys::from_secret(&format!(r#"{{"current":"{new}","previous":["{old}"]}}"#))
                .unwrap();
        let after = SealingKeys::from_secret(&new).unwrap();
        let (app, user, id) = (
            AppId::parse("acme").unwrap(),
            UserId::parse("ada").unwrap(),
            AuthenticatorId::generate().unwrap(),
        );
        let secret = TotpSecret::generate().unwrap();
        let sealed_old = before.seal(&secret, &app, &user, &id).unwrap();
        assert_eq!(during.open(&sealed_old, &app, &user, &id).unwrap(), secret);
        let sealed_new = during.seal(&secret, &app, &user, &id).unwrap();
        assert_eq!(sealed_new.kid(), Some(during.current_kid()));
        assert_eq!(after.open(&sealed_new, &app, &user, &id).unwrap(), secret);
        assert_eq!(
            after.open(&sealed_old, &app, &user, &id),
            Err(OpenError::UnknownKey)
        );
        assert!(SealingKeys::from_secret("short").is_err());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        assert!(!format!("{secret:?}").contains("GEZDG"));
        assert!(!format!("{:?}", SealingKeys::random().unwrap()).contains("cipher"));
    }
}
