//! Authenticator apps (being written).
