//! The application's policy item.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::PortError;
use crate::ports::PolicyStore;
use crate::types::{AppId, CountryCode, DisplayName, Enforcement, Factor, Policy, WebOtpDomain};

use super::item::{
    ALLOWED_COUNTRIES, APP_ID, AVAILABLE, DISPLAY_NAME, ENABLED, ENFORCEMENT, FACTORS,
    GRACE_PERIOD_DAYS, INCLUDE_IN_SIGNUP, UPDATED_AT, UPDATED_BY, VERSION, WEBOTP_DOMAIN, get_bool,
    get_n, get_s, malformed, n, opt_n, opt_s, opt_t, parse_id, s, t,
};
use super::keys::{PK, SK_POLICY, app_pk, key};
use super::request::Expr;
use super::{DynamoStore, Item};

/// The policy item.
pub fn policy_to_item(p: &Policy) -> Item {
    let mut item = key(app_pk(&p.app_id), SK_POLICY);
    item.insert(APP_ID.into(), s(p.app_id.as_str()));
    item.insert(AVAILABLE.into(), AttributeValue::Bool(p.available));
    item.insert(ENABLED.into(), AttributeValue::Bool(p.enabled));
    item.insert(
        INCLUDE_IN_SIGNUP.into(),
        AttributeValue::Bool(p.include_in_signup),
    );
    item.insert(ENFORCEMENT.into(), s(p.enforcement.as_str()));
    if let Some(list) = &p.allowed_countries {
        // A list (not a string set) so that an empty allow-list survives the round trip.
        item.insert(
            ALLOWED_COUNTRIES.into(),
            AttributeValue::L(list.iter().map(|c| s(c.as_str())).collect()),
        );
    }
    item.insert(
        FACTORS.into(),
        AttributeValue::L(p.factors.iter().map(|f| s(f.as_str())).collect()),
    );
    if let Some(name) = &p.display_name {
        item.insert(DISPLAY_NAME.into(), s(name.as_str()));
    }
    if let Some(domain) = &p.webotp_domain {
        item.insert(WEBOTP_DOMAIN.into(), s(domain.as_str()));
    }
    item.insert(GRACE_PERIOD_DAYS.into(), n(p.grace_period_days));
    item.insert(VERSION.into(), n(p.version));
    if let Some(at) = p.updated_at {
        item.insert(UPDATED_AT.into(), t(at));
    }
    if let Some(by) = &p.updated_by {
        item.insert(UPDATED_BY.into(), s(by.as_str()));
    }
    item
}

/// The policy a policy item holds.
pub fn policy_from_item(item: &Item) -> Result<Policy, PortError> {
    const W: &str = "policy";
    let allowed_countries = match item.get(ALLOWED_COUNTRIES) {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::L(list)) => Some(
            list.iter()
                .map(|v| v.as_s().ok().and_then(|c| CountryCode::parse(c)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed(W, ALLOWED_COUNTRIES))?,
        ),
        Some(_) => return Err(malformed(W, ALLOWED_COUNTRIES)),
    };
    // A policy written before apps existed allowed SMS only.
    let factors = match item.get(FACTORS) {
        None | Some(AttributeValue::Null(_)) => vec![Factor::Sms],
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| v.as_s().ok().and_then(|f| Factor::parse(f)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(W, FACTORS))?,
        Some(_) => return Err(malformed(W, FACTORS)),
    };
    Ok(Policy {
        app_id: parse_id(item, W, APP_ID, AppId::parse)?,
        available: get_bool(item, W, AVAILABLE)?,
        enabled: get_bool(item, W, ENABLED)?,
        include_in_signup: get_bool(item, W, INCLUDE_IN_SIGNUP)?,
        enforcement: Enforcement::parse(get_s(item, W, ENFORCEMENT)?)
            .ok_or_else(|| malformed(W, ENFORCEMENT))?,
        allowed_countries,
        factors,
        display_name: opt_s(item, DISPLAY_NAME)
            .map(|v| DisplayName::parse(&v).map_err(|_| malformed(W, DISPLAY_NAME)))
            .transpose()?,
        webotp_domain: opt_s(item, WEBOTP_DOMAIN)
            .map(|v| WebOtpDomain::parse(&v).map_err(|_| malformed(W, WEBOTP_DOMAIN)))
            .transpose()?,
        // A policy written before grace periods existed has none.
        grace_period_days: match opt_n::<u16>(item, W, GRACE_PERIOD_DAYS)? {
            None => 0,
            Some(d) if d <= Policy::MAX_GRACE_PERIOD_DAYS => d,
            Some(_) => return Err(malformed(W, GRACE_PERIOD_DAYS)),
        },
        version: get_n(item, W, VERSION)?,
        updated_at: opt_t(item, W, UPDATED_AT)?,
        updated_by: opt_s(item, UPDATED_BY),
    })
}

#[async_trait]
impl PolicyStore for DynamoStore {
    async fn get_policy(&self, app: &AppId) -> Result<Option<Policy>, PortError> {
        self.get("get_policy", key(app_pk(app), SK_POLICY))
            .await?
            .map(|item| policy_from_item(&item))
            .transpose()
    }

    async fn put_policy(&self, policy: &Policy, expected_version: u64) -> Result<bool, PortError> {
        let mut x = Expr::default();
        let version = x.name(VERSION);
        let expected = x.value("expected", n(expected_version));
        let condition = if expected_version == 0 {
            format!(
                "attribute_not_exists({}) OR {version} = {expected}",
                x.name(PK)
            )
        } else {
            format!("{version} = {expected}")
        };
        self.put_if("put_policy", policy_to_item(policy), &condition, &x)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            grace_period_days: 30,
            ..Policy::default_for(AppId::parse("acme").unwrap())
        }
    }

    #[test]
    fn the_grace_period_round_trips_and_old_items_have_none() {
        let p = policy();
        let mut item = policy_to_item(&p);
        assert_eq!(item.get(GRACE_PERIOD_DAYS), Some(&n(30)));
        assert_eq!(policy_from_item(&item).unwrap(), p);
        // Written before grace periods existed.
        item.remove(GRACE_PERIOD_DAYS);
        assert_eq!(policy_from_item(&item).unwrap().grace_period_days, 0);
        for bad in [n(91), n(-1), n(1.5), s("30")] {
            item.insert(GRACE_PERIOD_DAYS.into(), bad);
            assert!(policy_from_item(&item).is_err());
        }
    }
}
