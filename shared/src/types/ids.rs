//! Identifiers. The caller's ids (user, application) come from the authorizer's claims or the
//! admin route and are checked for shape; the service's own ids carry 128 random bits.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadId(pub &'static str);

/// An external id (application or user): 1 to 128 characters of `A-Z a-z 0-9 . _ - : @ | +`.
/// `#` and `/` are refused because they separate key parts and path segments.
fn check_external(s: &str, what: &'static str) -> Result<(), BadId> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:@|+".contains(&b));
    if ok { Ok(()) } else { Err(BadId(what)) }
}

/// An id newtype over a `String` (its attributes, then its name), with what every id has:
/// `as_str`, and `Display` and `Serialize` as that string. Each id's own macro adds `parse`.
macro_rules! string_id {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

macro_rules! external_id {
    ($name:ident, $what:literal) => {
        string_id!(
            #[doc = concat!("A validated ", $what, ".")]
            $name
        );

        impl $name {
            pub fn parse(s: &str) -> Result<Self, BadId> {
                check_external(s, $what).map(|()| Self(s.to_owned()))
            }
        }
    };
}

external_id!(AppId, "application id");
external_id!(UserId, "user id");

/// Whose records a store call reads or writes: one user of one application (the partition
/// of the user's phones, codes and sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub app: &'a AppId,
    pub user: &'a UserId,
}

impl<'a> Owner<'a> {
    pub const fn new(app: &'a AppId, user: &'a UserId) -> Owner<'a> {
        Owner { app, user }
    }
}

/// 16 bytes from the OS CSPRNG as 32 lowercase hex characters.
fn random_128() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

macro_rules! random_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        string_id!(
            #[doc = concat!("A ", $what, " id: `", $prefix, "` and 128 random bits in hex.")]
            $name
        );

        impl $name {
            pub fn generate() -> Result<Self, getrandom::Error> {
                Ok(Self(format!("{}{}", $prefix, random_128()?)))
            }

            /// Accepts only the exact shape [`Self::generate`] makes, so that anything else
            /// answers "not found" without touching the store.
            pub fn parse(s: &str) -> Result<Self, BadId> {
                let hex = s.strip_prefix($prefix).ok_or(BadId($what))?;
                let ok = hex.len() == 32
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(BadId($what))
                }
            }
        }
    };
}

random_id!(EnrollmentId, "enr_", "enrollment");
random_id!(PhoneId, "ph_", "phone");
random_id!(CodeId, "code_", "code");
random_id!(ChallengeId, "chl_", "challenge");
random_id!(AuthenticatorId, "totp_", "authenticator app");

/// A code session's id: an enrollment's (`enr_…`) or a sign-in challenge's (`chl_…`). Both are
/// stored alike, each under its own string, so an id of the one kind never finds the other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionId {
    Enrollment(EnrollmentId),
    SignIn(ChallengeId),
}

impl SessionId {
    /// A stored id, of either kind.
    pub fn parse_stored(s: &str) -> Result<Self, BadId> {
        EnrollmentId::parse(s)
            .map(SessionId::Enrollment)
            .or_else(|_| ChallengeId::parse(s).map(SessionId::SignIn))
    }

    pub fn as_str(&self) -> &str {
        match self {
            SessionId::Enrollment(id) => id.as_str(),
            SessionId::SignIn(id) => id.as_str(),
        }
    }

    /// A sign-in challenge's id (the challenge routes' kind).
    pub fn is_sign_in(&self) -> bool {
        matches!(self, SessionId::SignIn(_))
    }

    /// The enrollment id, if this is one.
    pub fn as_enrollment(&self) -> Option<&EnrollmentId> {
        match self {
            SessionId::Enrollment(id) => Some(id),
            SessionId::SignIn(_) => None,
        }
    }

    /// The challenge id, if this is one.
    pub fn as_challenge(&self) -> Option<&ChallengeId> {
        match self {
            SessionId::SignIn(id) => Some(id),
            SessionId::Enrollment(_) => None,
        }
    }
}

impl From<EnrollmentId> for SessionId {
    fn from(id: EnrollmentId) -> Self {
        SessionId::Enrollment(id)
    }
}

impl From<ChallengeId> for SessionId {
    fn from(id: ChallengeId) -> Self {
        SessionId::SignIn(id)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_refuse_separators_and_odd_characters() {
        assert!(UserId::parse("auth0|5f7c8ec7c33c6c004bbafe82").is_ok());
        assert!(UserId::parse("6b8f2a4e-1c3d-4e5f-8a9b-0c1d2e3f4a5b").is_ok());
        for bad in ["", "a#b", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn random_ids_round_trip_and_differ() {
        let a = EnrollmentId::generate().unwrap();
        let b = EnrollmentId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(EnrollmentId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 4 + 32);
        assert!(EnrollmentId::parse("enr_123").is_err());
        assert!(EnrollmentId::parse(&a.as_str().to_uppercase()).is_err());
        assert!(PhoneId::parse(a.as_str()).is_err());
    }

    #[test]
    fn session_ids_keep_their_kind_and_string() {
        let enr = EnrollmentId::generate().unwrap();
        let chl = ChallengeId::generate().unwrap();
        let (a, b) = (SessionId::from(enr.clone()), SessionId::from(chl.clone()));
        assert_eq!(SessionId::parse_stored(enr.as_str()).unwrap(), a);
        assert_eq!(SessionId::parse_stored(chl.as_str()).unwrap(), b);
        assert_eq!((a.as_str(), b.as_str()), (enr.as_str(), chl.as_str()));
        assert!(!a.is_sign_in() && b.is_sign_in());
        assert_eq!(
            (a.as_enrollment(), b.as_challenge()),
            (Some(&enr), Some(&chl))
        );
        assert!(a.as_challenge().is_none() && b.as_enrollment().is_none());
        // The same random part under the other prefix is another id.
        let swapped = chl.as_str().replacen("chl_", "enr_", 1);
        assert_ne!(SessionId::parse_stored(&swapped).unwrap(), b);
        assert!(SessionId::parse_stored("ph_0123456789abcdef0123456789abcdef").is_err());
    }
}
