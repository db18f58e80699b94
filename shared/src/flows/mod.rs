//! The product's flows as plain async functions over [`crate::Service`]'s ports. They take
//! validated values and return domain results; HTTP lives in [`crate::http`].

pub mod admin;
pub mod audit;
pub mod challenge;
pub mod code;
pub mod cooldown;
pub mod enrollment;
pub mod factors;
pub mod grace;
pub mod guards;
pub mod phones;
pub mod policy;
pub mod recovery;
pub mod stats;
pub mod status;
pub mod stepup;
pub mod totp;
pub mod users;
pub mod voice;

use crate::types::{AppId, Owner, UserId};

/// The signed-in end user a request acts for, as the authorizer vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub app: AppId,
    pub user: UserId,
    /// `requestContext.http.sourceIp`, never a header.
    pub source_ip: String,
}

impl Caller {
    /// The records this caller acts on.
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            app: &self.app,
            user: &self.user,
        }
    }
}
