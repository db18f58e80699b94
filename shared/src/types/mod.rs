//! Values that can only be built valid: parse, don't validate.

pub mod code;
pub mod ids;
pub mod phone;
pub mod phone_metadata;
pub mod policy;
pub mod time;

pub use code::Code;
pub use ids::{AppId, AuthenticatorId, EnrollmentId, Owner, PhoneId, UserId};
pub use phone::{CountryCode, PhoneNumber};
pub use policy::{DisplayName, Enforcement, Factor, Policy, WebOtpDomain};
pub use time::UnixTime;
