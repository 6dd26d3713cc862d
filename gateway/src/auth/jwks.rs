//! The identity provider's signing keys as a JSON Web Key Set, from a file
//! or a URL, kept fresh so the provider can rotate them.
//!
//! Verification itself never waits for I/O: it looks the token's `kid` up in
//! the cached set. Before verifying, an async caller lets the cache catch up
//! ([`JwkCache::refresh_for`]): the set is fetched again when it is older
//! than the refresh interval or when a token names a key id the set does not
//! have (the provider has rotated). Refetches are rate limited — at most one
//! per `jwks_min_refetch_secs`, however many tokens with made-up key ids
//! arrive — and a failed fetch keeps the last good set.
//!
//! Only keys that fit the configured algorithm are kept (key type, curve,
//! `alg` and `use` must agree); a symmetric (`oct`) key in a set is ignored,
//! so a public key set can never turn into an HMAC secret.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Largest key set accepted (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwksLocation {
    File(PathBuf),
    Url(String),
}

impl std::fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// The usable keys of one fetched set.
#[derive(Default)]
pub(crate) struct KeySet {
    by_id: HashMap<String, Arc<DecodingKey>>,
    /// Keys without a `kid`; used only when the set has exactly one key.
    anonymous: Vec<Arc<DecodingKey>>,
}

impl KeySet {
    /// Parse a JWKS document, keeping the keys that fit `algorithm`.
    pub(crate) fn parse(bytes: &[u8], algorithm: Algorithm) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a JSON Web Key Set ({{\"keys\": [...]}}): {e}"))?;
        let mut set = KeySet::default();
        for value in document.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if !fits(&jwk, algorithm) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_id.insert(kid, key);
                }
                None => set.anonymous.push(key),
            }
        }
        if set.len() == 0 {
            return Err(format!("the key set has no {algorithm:?} signing key"));
        }
        Ok(set)
    }

    fn len(&self) -> usize {
        self.by_id.len() + self.anonymous.len()
    }

    fn get(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, String> {
        match kid {
            Some(kid) => self
                .by_id
                .get(kid)
                .cloned()
                .ok_or_else(|| format!("no signing key with id `{kid}`")),
            None if self.len() == 1 => Ok(self
                .by_id
                .values()
                .chain(&self.anonymous)
                .next()
                .cloned()
                .expect("one key")),
            None => Err("the token names no key id (kid) and the key set has several keys".into()),
        }
    }

    fn contains(&self, kid: &str) -> bool {
        self.by_id.contains_key(kid)
    }
}

/// Whether a JWK may verify tokens signed with `algorithm`.
fn fits(jwk: &Jwk, algorithm: Algorithm) -> bool {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
    ) {
        return false;
    }
    if let Some(alg) = jwk.common.key_algorithm {
        if alg != KeyAlgorithm::from(algorithm) {
            return false;
        }
    }
    use Algorithm::*;
    match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::RSA(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => true,
        (AlgorithmParameters::EllipticCurve(ec), ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(okp), EdDSA) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

#[derive(Default)]
struct CacheState {
    keys: Arc<KeySet>,
    /// When the set in `keys` was fetched.
    fetched: Option<Instant>,
    /// When a fetch was last started, successful or not (the rate limit).
    attempted: Option<Instant>,
}

/// A key set that refreshes itself on demand.
pub(crate) struct JwkCache {
    location: JwksLocation,
    algorithm: Algorithm,
    refresh: Duration,
    min_refetch: Duration,
    state: RwLock<CacheState>,
    /// One fetch at a time; callers arriving meanwhile use its result.
    fetching: tokio::sync::Mutex<()>,
    client: OnceLock<reqwest::Client>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for JwkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkCache")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl JwkCache {
    pub(crate) fn new(
        location: JwksLocation,
        algorithm: Algorithm,
        refresh: Duration,
        min_refetch: Duration,
    ) -> Self {
        Self {
            location,
            algorithm,
            refresh,
            min_refetch,
            state: RwLock::new(CacheState::default()),
            fetching: tokio::sync::Mutex::new(()),
            client: OnceLock::new(),
            fetches: 0.into(),
        }
    }

    /// Start with a set already read (a file checked at configuration time).
    pub(crate) fn with_keys(self, keys: KeySet) -> Self {
        {
            let mut state = self.state.write().expect("jwks lock");
            state.keys = Arc::new(keys);
            state.fetched = Some(Instant::now());
        }
        self
    }

    /// How many fetches were started (for tests of the rate limit).
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key for a token's `kid`, from the cached set.
    pub(crate) fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, String> {
        let keys = self.state.read().expect("jwks lock").keys.clone();
        if keys.len() == 0 {
            return Err(format!(
                "no signing keys could be loaded from {}",
                self.location
            ));
        }
        keys.get(kid)
    }

    /// Fetch the set again if it is stale or lacks `kid`, within the rate limit.
    pub(crate) async fn refresh_for(&self, kid: Option<&str>) {
        if !self.wants_fetch(kid) {
            return;
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Someone else may have fetched while this caller waited.
        if !self.wants_fetch(kid) {
            return;
        }
        {
            let mut state = self.state.write().expect("jwks lock");
            if let Some(at) = state.attempted {
                if at.elapsed() < self.min_refetch {
                    tracing::debug!(location = %self.location, "JWKS refetch skipped: rate limited");
                    return;
                }
            }
            state.attempted = Some(Instant::now());
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(location = %self.location, keys = keys.len(), "JWKS loaded");
                let mut state = self.state.write().expect("jwks lock");
                state.keys = Arc::new(keys);
                state.fetched = Some(Instant::now());
            }
            Err(problem) => {
                tracing::warn!(location = %self.location, %problem, "JWKS fetch failed; the previous key set stays in use");
            }
        }
    }

    fn wants_fetch(&self, kid: Option<&str>) -> bool {
        let state = self.state.read().expect("jwks lock");
        let stale = state.fetched.is_none_or(|at| at.elapsed() >= self.refresh);
        let unknown = kid.is_some_and(|kid| !state.keys.contains(kid));
        stale || unknown
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let bytes = match &self.location {
            JwksLocation::File(path) => tokio::fs::read(path).await.map_err(|e| e.to_string())?,
            JwksLocation::Url(url) => self.download(url).await?,
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        KeySet::parse(&bytes, self.algorithm)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let client = match self.client.get() {
            Some(client) => client,
            None => {
                crate::tls::install_crypto_provider();
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                self.client.get_or_init(|| client)
            }
        };
        let mut response = client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    /// A JWKS with one fresh P-256 key per id, and the private keys.
    pub(crate) fn es256_set(kids: &[&str]) -> (String, Vec<EncodingKey>) {
        let mut jwks = Vec::new();
        let mut private = Vec::new();
        for kid in kids {
            let pair = rcgen::KeyPair::generate().unwrap();
            let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
            jwk.common.key_id = Some((*kid).to_owned());
            jwks.push(serde_json::to_value(jwk).unwrap());
            private.push(key);
        }
        (serde_json::json!({ "keys": jwks }).to_string(), private)
    }

    #[test]
    fn keys_that_do_not_fit_the_algorithm_are_dropped() {
        let (jwks, _) = es256_set(&["a"]);
        assert!(KeySet::parse(jwks.as_bytes(), Algorithm::ES256).is_ok());
        // An ES256 key never verifies RS256 (or any other) tokens.
        assert!(KeySet::parse(jwks.as_bytes(), Algorithm::RS256).is_err());
        // A symmetric key in a set is never used.
        let oct =
            r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"#;
        assert!(KeySet::parse(oct.as_bytes(), Algorithm::ES256).is_err());
        assert!(KeySet::parse(b"{}", Algorithm::ES256).is_err());
    }

    #[tokio::test]
    async fn unknown_key_ids_refetch_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (jwks, _) = es256_set(&["a"]);
        std::fs::write(&path, &jwks).unwrap();
        let cache = JwkCache::new(
            JwksLocation::File(path.clone()),
            Algorithm::ES256,
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        cache.refresh_for(Some("a")).await;
        assert_eq!(cache.fetch_count(), 1);
        assert!(cache.key(Some("a")).is_ok());
        // Made-up key ids cannot make it fetch again within the interval.
        for kid in ["x", "y", "z"] {
            cache.refresh_for(Some(kid)).await;
            assert!(cache.key(Some(kid)).is_err());
        }
        assert_eq!(cache.fetch_count(), 1);
        // A known key id never fetches.
        cache.refresh_for(Some("a")).await;
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test]
    async fn a_rotated_set_replaces_the_old_keys_and_a_broken_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let (first, _) = es256_set(&["a"]);
        std::fs::write(&path, &first).unwrap();
        let cache = JwkCache::new(
            JwksLocation::File(path.clone()),
            Algorithm::ES256,
            Duration::from_secs(3600),
            Duration::ZERO,
        );
        cache.refresh_for(None).await;
        let (second, _) = es256_set(&["b"]);
        std::fs::write(&path, &second).unwrap();
        cache.refresh_for(Some("b")).await;
        assert!(cache.key(Some("b")).is_ok());
        assert!(cache.key(Some("a")).is_err(), "a rotated-out key is gone");
        std::fs::write(&path, "not json").unwrap();
        cache.refresh_for(Some("c")).await;
        assert!(cache.key(Some("b")).is_ok(), "the last good set stays");
    }
}
