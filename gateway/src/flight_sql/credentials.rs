//! Who is calling a service of the Flight SQL listener: a bearer token
//! (ours from Handshake, or a JWT) or basic credentials, in the call's
//! headers.

use base64::Engine as _;
use meshgate_planner::Identity;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::SESSION_TOKEN;
use crate::auth::{looks_like_jwt, TokenError, TokenSigner, UserStore};

/// Who is calling a service of the Flight SQL listener: a bearer token (ours
/// from Handshake, or a JWT), or basic credentials.
pub(crate) fn authenticate(
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
pub(super) fn presented_jwt(metadata: &MetadataMap) -> Option<String> {
    let header = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    let candidate = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => value.trim().to_owned(),
        "basic" => decode_basic(value.trim()).ok()?.1,
        _ => return None,
    };
    looks_like_jwt(&candidate).then_some(candidate)
}

fn decode_basic(value: &str) -> Result<(String, String), Status> {
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
