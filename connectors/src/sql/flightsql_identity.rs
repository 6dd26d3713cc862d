//! `identity = "forward"` on a `flightsql` catalog: queries run at the
//! remote as the end user, not as the service account.
//!
//! For every call that runs a query, this gateway signs a short-lived JWT
//! naming the end user (`sub`), their groups and attributes, with a key the
//! remote trusts for this purpose (the remote's `[auth.jwt]`), and sends it
//! as the bearer token. The service account still lists the remote's tables
//! (there is no end user then). Trust model:
//! - whoever holds the signing key can act as any user at the remote:
//!   prefer an asymmetric algorithm (the remote keeps only the public key),
//!   and keep the private key with this gateway alone;
//! - every token names the remote (`aud`, required here), so a token for
//!   one domain is refused by another, and lives `forward_ttl_secs` (60 s
//!   by default; a token is made per query, not per session);
//! - the user forwarded is the one this gateway's policy evaluated — after
//!   impersonation, if the policy allowed it — so the remote sees the same
//!   person this gateway audited.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::error::{DataFusionError, Result as DfResult};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;

use crate::{ConnectorError, EndUser};

/// Who the remote sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum IdentityMode {
    /// Every query runs as the configured service account.
    #[default]
    ServiceAccount,
    /// Queries run as the end user (a JWT this gateway signs).
    Forward,
}

/// The `forward_*` options of a `flightsql` catalog.
#[derive(Debug, Clone, Default)]
pub(super) struct ForwardOptions<'a> {
    pub algorithm: Option<&'a str>,
    pub secret: Option<&'a str>,
    pub key_file: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub ttl_secs: u64,
    pub groups_claim: &'a str,
}

/// Signs the tokens that carry end users to the remote.
pub(super) struct Forwarder {
    key: EncodingKey,
    header: Header,
    issuer: Option<String>,
    audience: String,
    ttl_secs: u64,
    groups_claim: String,
    /// Tokens already signed, reused for half their life (the remote may
    /// keep a session per token).
    signed: moka::sync::Cache<EndUser, String>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("algorithm", &self.header.alg)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

const ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// The algorithm `name` names, in any case (`hs256`, `EdDSA`).
fn algorithm(name: &str) -> Option<Algorithm> {
    let upper = name.to_ascii_uppercase();
    let canonical = if upper == "EDDSA" { "EdDSA" } else { &upper };
    canonical.parse().ok()
}

fn hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The longest a forwarded token may live.
const MAX_TTL_SECS: u64 = 3600;

impl ForwardOptions<'_> {
    /// Check the options without reading files; errors name the key.
    pub(super) fn validate(&self) -> Result<Algorithm, ConnectorError> {
        let name = self.algorithm.ok_or_else(|| {
            ConnectorError::option(
                "forward_algorithm",
                format!("identity = \"forward\" needs the signing algorithm, one of {ALGORITHMS}"),
            )
        })?;
        let alg = algorithm(name).ok_or_else(|| {
            ConnectorError::option(
                "forward_algorithm",
                format!("`{name}` is not one of {ALGORITHMS}"),
            )
        })?;
        match (hmac(alg), self.secret, self.key_file) {
            (true, Some(secret), None) if secret.len() >= 32 => {}
            (true, Some(_), None) => {
                return Err(ConnectorError::option(
                    "forward_secret",
                    "must be at least 32 bytes",
                ))
            }
            (true, _, _) => {
                return Err(ConnectorError::option(
                    "forward_secret",
                    format!("{alg:?} signs with `forward_secret` (and no `forward_key_file`)"),
                ))
            }
            (false, None, Some(_)) => {}
            (false, _, _) => {
                return Err(ConnectorError::option(
                    "forward_key_file",
                    format!(
                        "{alg:?} signs with the PEM private key in `forward_key_file` (and no `forward_secret`)"
                    ),
                ))
            }
        }
        if self.audience.is_none_or(|a| a.trim().is_empty()) {
            return Err(ConnectorError::option(
                "forward_audience",
                "identity = \"forward\" needs the audience the remote expects (its `[auth.jwt] audience`), \
                 so that a token for this remote is refused by any other",
            ));
        }
        if self.ttl_secs == 0 || self.ttl_secs > MAX_TTL_SECS {
            return Err(ConnectorError::option(
                "forward_ttl_secs",
                format!("must be between 1 and {MAX_TTL_SECS}"),
            ));
        }
        if self.groups_claim.trim().is_empty() {
            return Err(ConnectorError::option(
                "forward_groups_claim",
                "must not be empty",
            ));
        }
        Ok(alg)
    }

    /// The signer, with a key file read relative to `base_dir`.
    pub(super) fn forwarder(&self, base_dir: &Path) -> Result<Forwarder, ConnectorError> {
        let alg = self.validate()?;
        let key = match (self.secret, self.key_file) {
            (Some(secret), _) => EncodingKey::from_secret(secret.as_bytes()),
            (None, Some(file)) => {
                let path = base_dir.join(file);
                let pem = std::fs::read(&path).map_err(|e| {
                    ConnectorError::option("forward_key_file", format!("{}: {e}", path.display()))
                })?;
                match alg {
                    Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                    _ => EncodingKey::from_rsa_pem(&pem),
                }
                .map_err(|e| {
                    ConnectorError::option(
                        "forward_key_file",
                        format!("{}: not a PEM private key for {alg:?}: {e}", path.display()),
                    )
                })?
            }
            (None, None) => unreachable!("validated"),
        };
        let mut header = Header::new(alg);
        header.kid = self.key_id.map(str::to_owned);
        Ok(Forwarder {
            key,
            header,
            issuer: self.issuer.map(str::to_owned),
            audience: self.audience.unwrap_or_default().to_owned(),
            ttl_secs: self.ttl_secs,
            groups_claim: self.groups_claim.to_owned(),
            signed: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_millis(self.ttl_secs * 500))
                .build(),
        })
    }
}

/// Claims the forwarded token carries besides the user's attributes.
const RESERVED: &[&str] = &["sub", "iss", "aud", "exp", "iat", "nbf", "jti"];

impl Forwarder {
    /// The `authorization` header value that presents `user` to the remote:
    /// a token signed now, or one signed less than half its life ago.
    pub(super) fn authorization(&self, user: &EndUser) -> DfResult<String> {
        if let Some(header) = self.signed.get(user) {
            return Ok(header);
        }
        let header = self.sign(user)?;
        self.signed.insert(user.clone(), header.clone());
        Ok(header)
    }

    fn sign(&self, user: &EndUser) -> DfResult<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut claims: BTreeMap<String, serde_json::Value> = user
            .attributes
            .iter()
            .filter(|(name, _)| !RESERVED.contains(&name.as_str()) && **name != self.groups_claim)
            .map(|(name, value)| (name.clone(), value.clone().into()))
            .collect();
        claims.insert("sub".into(), user.name.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.ttl_secs).into());
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), issuer.clone().into());
        }
        claims.insert(self.groups_claim.clone(), user.groups.to_vec().into());
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| {
            DataFusionError::External(format!("cannot sign the forwarded identity: {e}").into())
        })?;
        Ok(format!("Bearer {token}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn options(secret: &str) -> ForwardOptions<'_> {
        ForwardOptions {
            algorithm: Some("HS256"),
            secret: Some(secret),
            audience: Some("claims-domain"),
            issuer: Some("mesh"),
            ttl_secs: 60,
            groups_claim: "groups",
            ..Default::default()
        }
    }

    #[test]
    fn the_token_names_the_user_for_this_remote_only() {
        let secret = "a-secret-of-at-least-thirty-two-bytes!";
        let forwarder = options(secret).forwarder(Path::new(".")).unwrap();
        let user = EndUser {
            name: "alice".into(),
            groups: vec!["adjusters".into()],
            attributes: [
                ("region".to_owned(), "west".to_owned()),
                ("sub".to_owned(), "root".to_owned()),
            ]
            .into(),
        };
        let header = forwarder.authorization(&user).unwrap();
        let token = header.strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["claims-domain"]);
        validation.set_issuer(&["mesh"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        // An attribute cannot replace the user.
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["groups"], serde_json::json!(["adjusters"]));
        assert_eq!(claims["region"], "west");
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 60);
        // Another audience refuses it.
        validation.set_audience(&["other-domain"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .is_err());
    }

    #[test]
    fn algorithms_are_named_in_any_case() {
        assert_eq!(algorithm("hs256"), Some(Algorithm::HS256));
        assert_eq!(algorithm("EDDSA"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm("PS512"), Some(Algorithm::PS512));
        assert_eq!(algorithm("none"), None);
    }

    #[test]
    fn bad_options_name_their_key() {
        let short = options("short");
        assert!(short
            .validate()
            .unwrap_err()
            .to_string()
            .contains("forward_secret"));
        let mut no_audience = options("a-secret-of-at-least-thirty-two-bytes!");
        no_audience.audience = None;
        assert!(no_audience
            .validate()
            .unwrap_err()
            .to_string()
            .contains("forward_audience"));
        let mut rsa_with_secret = options("a-secret-of-at-least-thirty-two-bytes!");
        rsa_with_secret.algorithm = Some("RS256");
        assert!(rsa_with_secret
            .validate()
            .unwrap_err()
            .to_string()
            .contains("forward_key_file"));
        let mut unknown = options("a-secret-of-at-least-thirty-two-bytes!");
        unknown.algorithm = Some("none");
        assert!(unknown
            .validate()
            .unwrap_err()
            .to_string()
            .contains("forward_algorithm"));
    }
}
