//! The published JWKS: how functions that only *verify* assertions get the public keys
//! without ever holding the private signing key.
//!
//! Design (issue 13). The `challenge` function is the only one that reads the signing secret.
//! At cold start it publishes the secret's public keys (its JWKS: `current`, `next` and
//! `previous`) as one item of the service's table (`pk = sk = "JWKS"`), conditioned on the
//! secret version it read: the write succeeds only when no item exists or the stored one came
//! from an *older* secret version (Secrets Manager's `CreatedDate` of the version, in
//! milliseconds). A sandbox started before a rotation can therefore never put back an older key
//! set over a newer one. Verifiers (`phone-edits`, and `challenge` itself for the
//! recovery-codes route) read that item through [`AssertionKeys`]: cached in the process for
//! [`CACHE_SECS`], and read again at once (at most every [`REFRESH_GAP_SECS`]) when an assertion
//! names a `kid` the cache does not know, so a key published by a newer sandbox is picked up
//! without waiting for the cache to expire. Two secret versions created within the same
//! clock tick of Secrets Manager's `CreatedDate` are not ordered (the first published stays):
//! rotation steps are minutes apart.
//!
//! Rotation stays the three steps of the README, each a new secret version that new challenge
//! sandboxes publish: add `next` (published before it signs) → make it `current`, the old one
//! `previous` → drop `previous` once its assertions expired (5 minutes). The table item is
//! written only by `challenge` (IAM denies every other function writes to the `JWKS`
//! partition); the table's encryption and point-in-time recovery cover it as any other item.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use crate::adapters::aws::error_detail;
use crate::error::PortError;
use crate::signing::PublicKeys;

/// How long a verifier trusts the JWKS it read.
pub const CACHE_SECS: u64 = 60;
/// The shortest time between two reads caused by unknown `kid`s (so that forged tokens with
/// random `kid`s cannot turn into one table read each).
pub const REFRESH_GAP_SECS: u64 = 5;

/// The partition and sort key of the published JWKS item.
pub const JWKS_KEY: &str = "JWKS";

/// Where the published JWKS lives.
#[async_trait]
pub trait JwksItem: Send + Sync {
    /// Publishes `jwks` (public keys only) as read from the secret version created at
    /// `version_created` (ms). False when a newer (or the same) version is already published.
    async fn publish(&self, jwks: &Value, version_created: i64) -> Result<bool, PortError>;
    /// The published JWKS, if any.
    async fn fetch(&self) -> Result<Option<Value>, PortError>;
}

/// The item in process memory: for `mfa-local`'s memory backend and tests, where one process
/// signs and verifies. Same rule as the table: an older version never replaces a newer one.
#[derive(Default)]
pub struct MemoryJwks(Mutex<Option<(i64, Value)>>);

impl MemoryJwks {
    /// An item already holding `jwks` of version `version_created`.
    pub fn holding(jwks: Value, version_created: i64) -> MemoryJwks {
        MemoryJwks(Mutex::new(Some((version_created, jwks))))
    }
}

#[async_trait]
impl JwksItem for MemoryJwks {
    async fn publish(&self, jwks: &Value, version_created: i64) -> Result<bool, PortError> {
        let mut item = self
            .0
            .lock()
            .map_err(|_| PortError::new("jwks lock poisoned"))?;
        if item.as_ref().is_some_and(|(v, _)| *v >= version_created) {
            return Ok(false);
        }
        *item = Some((version_created, jwks.clone()));
        Ok(true)
    }

    async fn fetch(&self) -> Result<Option<Value>, PortError> {
        let item = self
            .0
            .lock()
            .map_err(|_| PortError::new("jwks lock poisoned"))?;
        Ok(item.as_ref().map(|(_, v)| v.clone()))
    }
}

/// The item in the service's DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoJwks {
    client: Client,
    table: String,
}

impl DynamoJwks {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoJwks {
        DynamoJwks {
            client,
            table: table.into(),
        }
    }
}

fn key() -> [(String, AttributeValue); 2] {
    [
        ("pk".to_owned(), AttributeValue::S(JWKS_KEY.to_owned())),
        ("sk".to_owned(), AttributeValue::S(JWKS_KEY.to_owned())),
    ]
}

#[async_trait]
impl JwksItem for DynamoJwks {
    async fn publish(&self, jwks: &Value, version_created: i64) -> Result<bool, PortError> {
        let published_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key().into_iter().collect()))
            .item("jwks", AttributeValue::S(jwks.to_string()))
            .item(
                "version_created",
                AttributeValue::N(version_created.to_string()),
            )
            .item("published_at", AttributeValue::N(published_at.to_string()))
            .condition_expression("attribute_not_exists(pk) OR version_created < :v")
            .expression_attribute_values(":v", AttributeValue::N(version_created.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(PortError::new(format!(
                "dynamodb put_item JWKS: {}",
                error_detail(&e)
            ))),
        }
    }

    async fn fetch(&self) -> Result<Option<Value>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key().into_iter().collect()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| PortError::new(format!("dynamodb get_item JWKS: {}", error_detail(&e))))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        match item.get("jwks") {
            Some(AttributeValue::S(text)) => serde_json::from_str(text)
                .map(Some)
                .map_err(|_| PortError::new("the published JWKS item is not JSON")),
            _ => Err(PortError::new(
                "the published JWKS item has no jwks attribute",
            )),
        }
    }
}

#[derive(Default)]
struct Cached {
    keys: PublicKeys,
    read_at: Option<Instant>,
}

/// The public keys a function verifies assertions with: its own signing keys' public halves
/// (the function that signs), then the published JWKS, cached (see the module docs).
pub struct AssertionKeys {
    own: PublicKeys,
    published: Option<Arc<dyn JwksItem>>,
    cache: Mutex<Cached>,
    cache_for: Duration,
    refresh_gap: Duration,
}

impl AssertionKeys {
    /// Verifies with `own` keys and whatever `published` holds.
    pub fn new(own: PublicKeys, published: Option<Arc<dyn JwksItem>>) -> AssertionKeys {
        AssertionKeys {
            own,
            published,
            cache: Mutex::new(Cached::default()),
            cache_for: Duration::from_secs(CACHE_SECS),
            refresh_gap: Duration::from_secs(REFRESH_GAP_SECS),
        }
    }

    /// The same with other cache times (tests).
    pub fn with_times(mut self, cache_for: Duration, refresh_gap: Duration) -> AssertionKeys {
        self.cache_for = cache_for;
        self.refresh_gap = refresh_gap;
        self
    }

    /// The key named `kid`, if this service trusts one by that name now.
    pub async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, PortError> {
        if let Some(k) = self.own.get(kid) {
            return Ok(Some(*k));
        }
        let Some(published) = &self.published else {
            return Ok(None);
        };
        let now = Instant::now();
        {
            let cache = self
                .cache
                .lock()
                .map_err(|_| PortError::new("jwks cache lock poisoned"))?;
            let age = cache.read_at.map(|t| now.duration_since(t));
            let fresh = age.is_some_and(|a| a < self.cache_for);
            if fresh && let Some(k) = cache.keys.get(kid) {
                return Ok(Some(*k));
            }
            // An unknown kid re-reads, but not more often than the gap allows.
            if age.is_some_and(|a| a < self.refresh_gap) {
                return Ok(cache.keys.get(kid).copied());
            }
        }
        let keys = published
            .fetch()
            .await?
            .map(|jwks| PublicKeys::from_jwks(&jwks))
            .unwrap_or_default();
        let found = keys.get(kid).copied();
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| PortError::new("jwks cache lock poisoned"))?;
        *cache = Cached {
            keys,
            read_at: Some(now),
        };
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKeys;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(MemoryJwks, AtomicUsize);

    #[async_trait]
    impl JwksItem for Counting {
        async fn publish(&self, jwks: &Value, v: i64) -> Result<bool, PortError> {
            self.0.publish(jwks, v).await
        }
        async fn fetch(&self) -> Result<Option<Value>, PortError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.fetch().await
        }
    }

    fn kid(keys: &SigningKeys) -> String {
        keys.jwks()["keys"][0]["kid"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn an_older_secret_version_never_replaces_a_newer_one() {
        let item = MemoryJwks::default();
        let (old, new) = (
            SigningKeys::from_secret(&"o".repeat(64)).unwrap(),
            SigningKeys::from_secret(&"n".repeat(64)).unwrap(),
        );
        assert!(item.publish(&new.jwks(), 2000).await.unwrap());
        assert!(!item.publish(&old.jwks(), 1000).await.unwrap());
        assert!(!item.publish(&new.jwks(), 2000).await.unwrap());
        assert_eq!(item.fetch().await.unwrap().unwrap(), new.jwks());
    }

    #[tokio::test]
    async fn unknown_kids_re_read_at_most_once_per_gap_and_new_keys_are_found() {
        let item = Arc::new(Counting(MemoryJwks::default(), AtomicUsize::new(0)));
        let first = SigningKeys::from_secret(&"a".repeat(64)).unwrap();
        item.publish(&first.jwks(), 1).await.unwrap();
        let keys = AssertionKeys::new(PublicKeys::default(), Some(item.clone()));
        assert!(keys.key(&kid(&first)).await.unwrap().is_some());
        assert!(keys.key(&kid(&first)).await.unwrap().is_some());
        assert_eq!(item.1.load(Ordering::SeqCst), 1, "cached");
        for _ in 0..10 {
            assert!(keys.key("forged-kid").await.unwrap().is_none());
        }
        assert_eq!(
            item.1.load(Ordering::SeqCst),
            1,
            "unknown kids wait for the gap"
        );

        // A rotation published by a newer sandbox is found on the next unknown kid.
        let second = SigningKeys::from_secret(
            &serde_json::json!({ "current": "b".repeat(64), "previous": ["a".repeat(64)] })
                .to_string(),
        )
        .unwrap();
        item.publish(&second.jwks(), 2).await.unwrap();
        let keys = AssertionKeys::new(PublicKeys::default(), Some(item.clone()))
            .with_times(Duration::from_secs(60), Duration::ZERO);
        assert!(keys.key(&kid(&first)).await.unwrap().is_some());
        assert!(keys.key(&kid(&second)).await.unwrap().is_some());
    }
}
