//! Sign-in assertions: compact JWS signed EdDSA (Ed25519), and the JWKS that verifies them.
//!
//! Keys come from one Secrets Manager secret (see [`SigningKeys::from_secret`]): the stack
//! generates random material and each key's Ed25519 seed is SHA-256 of its material, so
//! CloudFormation's `GenerateSecretString` is enough to make a key. Rotation adds a key before
//! it signs and keeps the old one listed until its assertions have expired (README, "Rotation").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Assertions live 5 minutes (the contract).
pub const ASSERTION_TTL_SECS: u64 = 300;

/// One Ed25519 key. `Debug` never shows the private half.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    public: [u8; 32],
    signing: SigningKey,
    /// Listed in the JWKS, but does not sign (the newest key of a rotation, or the previous).
    pub signs: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, signs: {})", self.kid, self.signs)
    }
}

impl Key {
    /// The key whose seed is SHA-256 of `material` (at least 32 bytes of secret randomness).
    pub fn from_material(material: &str, signs: bool) -> Result<Key, KeyError> {
        if material.len() < 32 {
            return Err(KeyError(
                "each signing key's material must be at least 32 characters",
            ));
        }
        let seed: [u8; 32] = Sha256::digest(material.as_bytes()).into();
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let kid = hex::encode(&Sha256::digest(public)[..8]);
        Ok(Key {
            kid,
            public,
            signing,
            signs,
        })
    }

    /// The public JWK (RFC 8037).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.public),
        })
    }
}

/// Why the signing secret is unusable.
#[derive(Debug, thiserror::Error)]
#[error("signing keys: {0}")]
pub struct KeyError(pub &'static str);

/// The keys of a deployment: exactly one signs; all are published.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    keys: Vec<Key>,
}

impl SigningKeys {
    /// Parses the secret. Either a plain string (one key, which signs), or JSON
    /// `{"current": "...", "next": "...", "previous": ["...", ...]}` where `current` signs,
    /// `next` is published ahead of a rotation and `previous` stay published until the
    /// assertions they signed have expired.
    pub fn from_secret(secret: &str) -> Result<SigningKeys, KeyError> {
        let trimmed = secret.trim();
        if !trimmed.starts_with('{') {
            return Ok(SigningKeys {
                keys: vec![Key::from_material(trimmed, true)?],
            });
        }
        let v: Value =
            serde_json::from_str(trimmed).map_err(|_| KeyError("the secret is not valid JSON"))?;
        let current = v["current"]
            .as_str()
            .ok_or(KeyError("the secret has no \"current\" key"))?;
        let mut keys = vec![Key::from_material(current, true)?];
        if let Some(next) = v.get("next").and_then(Value::as_str) {
            keys.push(Key::from_material(next, false)?);
        }
        for prev in v
            .get("previous")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let material = prev
                .as_str()
                .ok_or(KeyError("\"previous\" must list strings"))?;
            keys.push(Key::from_material(material, false)?);
        }
        Ok(SigningKeys { keys })
    }

    /// A fresh random key, for the in-memory backend.
    pub fn random() -> Result<SigningKeys, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let material = hex::encode(bytes);
        Ok(SigningKeys {
            keys: vec![
                Key::from_material(&material, true).map_err(|_| getrandom::Error::UNSUPPORTED)?,
            ],
        })
    }

    /// The public halves only, for verifying (no private key leaves this value).
    pub fn public_keys(&self) -> PublicKeys {
        PublicKeys(
            self.keys
                .iter()
                .filter_map(|k| Some((k.kid.clone(), VerifyingKey::from_bytes(&k.public).ok()?)))
                .collect(),
        )
    }

    fn signer(&self) -> Option<&Key> {
        self.keys.iter().find(|k| k.signs)
    }

    /// `{"keys": [...]}`: every key, signing or not.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(Key::jwk).collect::<Vec<_>>() })
    }

    /// Signs `claims` as a compact JWS (RFC 7515; `alg: EdDSA` per RFC 8037, `typ: JWT`,
    /// `kid`): `base64url(header).base64url(claims).base64url(Ed25519 signature)`. Written
    /// out rather than through a JWT crate, which would link RSA and ECDSA code as well
    /// (~0.3 MB) to sign with the one algorithm used here; the tests verify the tokens
    /// with `jsonwebtoken`.
    pub fn sign(&self, claims: &impl Serialize) -> Option<String> {
        let key = self.signer()?;
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid });
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).ok()?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?));
        let signature = key.signing.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Some(token)
    }
}

/// Public keys by `kid`: what a verifier holds (never a private key).
#[derive(Debug, Clone, Default)]
pub struct PublicKeys(Vec<(String, VerifyingKey)>);

impl PublicKeys {
    /// Parses a JWKS (`{"keys": [...]}`), keeping only Ed25519 keys for EdDSA with a `kid`.
    pub fn from_jwks(jwks: &Value) -> PublicKeys {
        let keys = jwks["keys"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        PublicKeys(keys.iter().filter_map(jwk_key).collect())
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.0.iter().find(|(k, _)| k == kid).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JWKS of these keys (as [`SigningKeys::jwks`] writes it).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .0
            .iter()
            .map(|(kid, v)| {
                json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                        "kid": kid, "x": URL_SAFE_NO_PAD.encode(v.to_bytes()) })
            })
            .collect();
        json!({ "keys": keys })
    }
}

fn jwk_key(jwk: &Value) -> Option<(String, VerifyingKey)> {
    if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
        return None;
    }
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str()?)
        .ok()?
        .try_into()
        .ok()?;
    Some((
        jwk["kid"].as_str()?.to_owned(),
        VerifyingKey::from_bytes(&x).ok()?,
    ))
}

/// A compact JWS split and decoded, before its signature is checked.
#[derive(Debug)]
pub struct ParsedJws<'a> {
    /// `base64url(header).base64url(claims)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub kid: String,
    pub claims: Value,
    signature: Signature,
}

/// The longest token looked at: ours are ~400 bytes.
const MAX_TOKEN_LEN: usize = 4096;

/// Splits and decodes a compact JWS of ours: exactly three parts, a header with `alg: EdDSA`
/// (nothing else: no `none`, no HMAC confusion) and a `kid`, no `crit`, JSON claims and a
/// 64-byte signature. `None` for anything else. The signature is not checked here.
pub fn parse_jws(token: &str) -> Option<ParsedJws<'_>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signing_input, sig_b64) = token.rsplit_once('.')?;
    let (header_b64, claims_b64) = signing_input.split_once('.')?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    if header["alg"] != "EdDSA" || header.get("crit").is_some() {
        return None;
    }
    let kid = header["kid"].as_str()?.to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).ok()?).ok()?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig_b64).ok()?.try_into().ok()?;
    Some(ParsedJws {
        signing_input,
        kid,
        claims: claims.is_object().then_some(claims)?,
        signature: Signature::from_bytes(&sig),
    })
}

impl ParsedJws<'_> {
    /// Checks the signature with `key` (`verify_strict`: no small-order keys, no malleable
    /// signatures).
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    fn verify(jwks: &Value, token: &str) -> Option<Value> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let jwk = jwks["keys"]
            .as_array()?
            .iter()
            .find(|k| k["kid"] == kid.as_str())?;
        let key = DecodingKey::from_ed_components(jwk["x"].as_str()?).ok()?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .ok()
            .map(|d| d.claims)
    }

    fn claims() -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({ "sub": "ada", "iat": now, "exp": now + ASSERTION_TTL_SECS })
    }

    #[test]
    fn signs_and_the_jwks_verifies() {
        let keys = SigningKeys::from_secret(&"k".repeat(64)).unwrap();
        let token = keys.sign(&claims()).unwrap();
        assert_eq!(verify(&keys.jwks(), &token).unwrap()["sub"], "ada");
        let jwk = &keys.jwks()["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
        assert!(!format!("{keys:?}").contains("kkkk"));
    }

    #[test]
    fn a_rotation_keeps_the_previous_key_published_and_verifiable() {
        let (old, new) = ("o".repeat(64), "n".repeat(64));
        let before = SigningKeys::from_secret(&old).unwrap();
        let token = before.sign(&claims()).unwrap();
        let after =
            SigningKeys::from_secret(&json!({ "current": new, "previous": [old] }).to_string())
                .unwrap();
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(
            verify(&after.jwks(), &token).is_some(),
            "old assertions still verify"
        );
        let fresh = after.sign(&claims()).unwrap();
        assert_ne!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid,
            jsonwebtoken::decode_header(&token).unwrap().kid,
            "the new key signs"
        );
        let dropped = SigningKeys::from_secret(&new).unwrap();
        assert!(
            verify(&dropped.jwks(), &token).is_none(),
            "once dropped, the old key verifies nothing"
        );
    }

    #[test]
    fn a_next_key_is_published_before_it_signs() {
        let keys = SigningKeys::from_secret(
            &json!({ "current": "c".repeat(40), "next": "x".repeat(40) }).to_string(),
        )
        .unwrap();
        let token = keys.sign(&claims()).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        assert_eq!(keys.jwks()["keys"][0]["kid"], kid.as_str());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn our_tokens_parse_and_verify_with_the_public_keys_only() {
        let keys = SigningKeys::from_secret(&"k".repeat(64)).unwrap();
        let token = keys.sign(&claims()).unwrap();
        let public = PublicKeys::from_jwks(&keys.jwks());
        let jws = parse_jws(&token).unwrap();
        assert!(jws.signed_by(public.get(&jws.kid).unwrap()));
        assert_eq!(jws.claims["sub"], "ada");
        assert_eq!(public.jwks(), keys.jwks(), "the JWKS round-trips");
        let other = SigningKeys::from_secret(&"o".repeat(64)).unwrap();
        let other_public = other.public_keys();
        assert!(other_public.get(&jws.kid).is_none());
        let (_, other_key) = &other_public.0[0];
        assert!(!jws.signed_by(other_key), "another key's signature fails");
    }

    #[test]
    fn tampered_or_foreign_shapes_do_not_parse_or_verify() {
        let keys = SigningKeys::from_secret(&"k".repeat(64)).unwrap();
        let token = keys.sign(&claims()).unwrap();
        let public = keys.public_keys();
        let parts: Vec<&str> = token.split('.').collect();
        // Claims changed under the same signature.
        let forged_claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "eve" }).to_string());
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        let jws = parse_jws(&forged).unwrap();
        assert!(!jws.signed_by(public.get(&jws.kid).unwrap()));
        // alg none / HS256, missing kid, crit, extra parts, junk.
        for header in [
            json!({ "alg": "none", "kid": "x" }),
            json!({ "alg": "HS256", "kid": "x" }),
            json!({ "alg": "EdDSA" }),
            json!({ "alg": "EdDSA", "kid": "x", "crit": ["exp"] }),
        ] {
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            assert!(parse_jws(&format!("{h}.{}.{}", parts[1], parts[2])).is_none());
        }
        assert!(parse_jws(&format!("{token}.x")).is_none());
        assert!(parse_jws("").is_none());
        assert!(parse_jws("a.b.c").is_none());
        assert!(parse_jws(&"a".repeat(5000)).is_none());
    }

    #[test]
    fn weak_or_malformed_secrets_are_refused() {
        assert!(SigningKeys::from_secret("short").is_err());
        assert!(
            SigningKeys::from_secret("{\"next\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}")
                .is_err()
        );
        assert!(SigningKeys::from_secret("{not json").is_err());
    }
}
