//! The words of texts and emails (in progress): SMS segment counting first.

pub mod sms;
