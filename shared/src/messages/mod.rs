//! The words of texts and emails (in progress): SMS segments and the user's locale.

pub mod locale;
pub mod sms;

pub use locale::{BadLocale, Lang, Locale};
