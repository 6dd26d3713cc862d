//! Who is calling a gRPC service of the Flight SQL listener (Flight SQL
//! itself and the admin API): the credentials in the call's `authorization`
//! header, checked against the [`UserStore`] and the [`TokenSigner`].
//!
//! A call presents a bearer token — meshgate's own session token from
//! Flight SQL's Handshake, or an identity provider's JWT when `[auth.jwt]`
//! is configured — or basic credentials (`user:password`, the password
//! possibly itself a JWT). [`authenticate`] is the one decision of who the
//! caller is for every service on that listener; impersonation is decided
//! after it (see [`super::flight_identity`]).

use base64::Engine as _;
use meshgate_planner::Identity;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::{looks_like_jwt, TokenError, TokenSigner, UserStore, SESSION_TOKEN};

/// Who is calling: a bearer token (ours from Handshake, or a JWT), or basic
/// credentials. Every failure is `UNAUTHENTICATED`, with a reason that never
/// repeats the credential.
pub fn authenticate(
    metadata: &MetadataMap,
    users: &UserStore,
    signer: &TokenSigner,
) -> Result<Identity, Status> {
    let header = metadata
        .get("authorization")
        .ok_or_else(|| {
            Status::unauthenticated(
                "no credentials: call Handshake with basic credentials and send the bearer token it returns",
            )
        })?
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
    let (scheme, value) = header
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization header has no scheme"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" if users.accepts_jwt() && looks_like_jwt(value.trim()) => users
            .verify_jwt(value.trim())
            .map_err(|e| Status::unauthenticated(e.to_string())),
        "bearer" => signer
            .verify(value.trim(), SESSION_TOKEN)
            .map(|claims| Identity::new(claims.sub))
            .map_err(|e| match e {
                TokenError::Expired => {
                    Status::unauthenticated("bearer token expired: authenticate again")
                }
                _ => Status::unauthenticated("invalid bearer token"),
            }),
        "basic" => {
            let (user, password) = decode_basic(value.trim())?;
            users
                .verify(&user, &password)
                .map_err(|e| Status::unauthenticated(e.to_string()))
        }
        other => Err(Status::unauthenticated(format!(
            "unsupported authorization scheme `{other}` (use Basic or Bearer)"
        ))),
    }
}

/// The JWT a request authenticates with, as a bearer token or as the
/// password of basic credentials.
pub fn presented_jwt(metadata: &MetadataMap) -> Option<String> {
    let header = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    let candidate = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => value.trim().to_owned(),
        "basic" => decode_basic(value.trim()).ok()?.1,
        _ => return None,
    };
    looks_like_jwt(&candidate).then_some(candidate)
}

/// `user` and `password` from the value of a `Basic` authorization header.
pub(crate) fn decode_basic(value: &str) -> Result<(String, String), Status> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    // Clients differ on padding and alphabet (arrow-go sends unpadded base64).
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .ok_or_else(|| Status::unauthenticated("basic credentials are not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Status::unauthenticated("basic credentials are not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| Status::unauthenticated("basic credentials must be user:password"))?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn with_authorization(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn session_tokens_and_basic_credentials_sign_in() {
        let mut users = UserStore::default();
        users.insert("alice", super::super::PasswordHash::generate("pw"));
        let signer = TokenSigner::default();
        let token = signer.issue("alice", SESSION_TOKEN, None, Duration::from_secs(60));
        let identity = authenticate(
            &with_authorization(&format!("Bearer {token}")),
            &users,
            &signer,
        );
        assert_eq!(identity.unwrap().user, "alice");
        // A ticket is not a session token.
        let ticket = signer.issue("alice", "ticket", None, Duration::from_secs(60));
        let err = authenticate(
            &with_authorization(&format!("Bearer {ticket}")),
            &users,
            &signer,
        )
        .unwrap_err();
        assert_eq!(err.message(), "invalid bearer token");
        // Unpadded base64 of alice:pw.
        let basic = with_authorization("Basic YWxpY2U6cHc");
        assert_eq!(authenticate(&basic, &users, &signer).unwrap().user, "alice");
        assert_eq!(presented_jwt(&basic), None);
        let err = authenticate(&MetadataMap::new(), &users, &signer).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        // Our own token is never presented as the identity provider's.
        assert_eq!(
            presented_jwt(&with_authorization(&format!("Bearer {token}"))),
            None
        );
    }
}
