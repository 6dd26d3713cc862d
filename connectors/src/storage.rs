//! Where a table's files live: local paths and `s3://` URLs, and the object
//! stores that read them.
//!
//! Local paths are resolved against the configuration file's directory so a
//! config can be moved together with its data. S3 stores are built from the
//! catalog's `[catalogs.NAME.s3]` table, falling back to the standard AWS
//! environment variables, and are registered on the shared runtime under the
//! bucket's URL, which is where DataFusion's scans look them up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::SessionState;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use serde::Deserialize;
use url::Url;

use crate::ConnectorError;

/// S3 (or S3-compatible) connection settings for one catalog.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageOptions {
    /// e.g. `http://127.0.0.1:9000` for MinIO; AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Never printed (see [`Secret`](crate::secrets::Secret)).
    pub secret_access_key: Option<crate::secrets::Secret>,
    pub session_token: Option<crate::secrets::Secret>,
    /// Allow plain HTTP endpoints (local test servers).
    pub allow_http: Option<bool>,
    /// `https://bucket.endpoint/...` instead of `https://endpoint/bucket/...`.
    pub virtual_hosted_style: Option<bool>,
}

/// The secret keys inside a `[catalogs.NAME.s3]` table.
pub(crate) const S3_SECRET_KEYS: &[&str] = &["s3.secret_access_key", "s3.session_token"];

/// A table location: either an absolute local path or a URL with a scheme.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    Local(PathBuf),
    Remote(Url),
}

impl Location {
    /// Resolve `path` against the catalog's `root` (if any) and the config directory.
    pub(crate) fn resolve(
        base_dir: &Path,
        root: Option<&str>,
        path: &str,
    ) -> Result<Self, ConnectorError> {
        if has_scheme(path) {
            return parse_remote(path);
        }
        match root {
            Some(root) if has_scheme(root) => {
                let joined = format!(
                    "{}/{}",
                    root.trim_end_matches('/'),
                    path.trim_start_matches('/')
                );
                parse_remote(&joined)
            }
            _ => {
                let path = Path::new(path);
                let full = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    let root = root.map(Path::new).unwrap_or(Path::new(""));
                    let root = if root.is_absolute() {
                        root.to_path_buf()
                    } else {
                        base_dir.join(root)
                    };
                    root.join(path)
                };
                Ok(Location::Local(normalize(&full)))
            }
        }
    }

    /// The location as a string DataFusion's listing tables accept (a path or URL).
    pub(crate) fn as_listing_path(&self) -> String {
        match self {
            Location::Local(path) => path.to_string_lossy().into_owned(),
            Location::Remote(url) => url.to_string(),
        }
    }

    /// The location as a directory URL (Delta tables are directories).
    pub(crate) fn as_dir_url(&self) -> Result<Url, ConnectorError> {
        match self {
            Location::Local(path) => Url::from_directory_path(path).map_err(|_| {
                ConnectorError::Storage(format!("{} is not an absolute path", path.display()))
            }),
            Location::Remote(url) => Ok(url.clone()),
        }
    }
}

fn has_scheme(s: &str) -> bool {
    s.contains("://")
}

fn parse_remote(s: &str) -> Result<Location, ConnectorError> {
    let url = Url::parse(s).map_err(|e| ConnectorError::Storage(format!("bad URL `{s}`: {e}")))?;
    match url.scheme() {
        "s3" | "s3a" | "file" => Ok(Location::Remote(url)),
        other => Err(ConnectorError::Storage(format!(
            "unsupported URL scheme `{other}` in `{s}` (supported: local paths, file://, s3://)"
        ))),
    }
}

/// Lexically clean `a/./b/../c` without touching the file system (the path may
/// be a glob or not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Build the object store for a remote location and register it on the
/// session's runtime, so scans of this location read through it.
pub(crate) fn register_store(
    session: &SessionState,
    location: &Location,
    options: Option<&StorageOptions>,
) -> Result<Option<Arc<dyn ObjectStore>>, ConnectorError> {
    let Location::Remote(url) = location else {
        return Ok(None);
    };
    if url.scheme() == "file" {
        return Ok(None);
    }
    let bucket = url
        .host_str()
        .ok_or_else(|| ConnectorError::Storage(format!("`{url}` names no bucket")))?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(opts) = options {
        if let Some(endpoint) = &opts.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &opts.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &opts.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &opts.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        if let Some(token) = &opts.session_token {
            builder = builder.with_token(token.expose());
        }
        if let Some(allow_http) = opts.allow_http {
            builder = builder.with_allow_http(allow_http);
        }
        if let Some(vhost) = opts.virtual_hosted_style {
            builder = builder.with_virtual_hosted_style_request(vhost);
        }
    }
    // The error text of the builder never contains the credentials themselves.
    let store: Arc<dyn ObjectStore> = Arc::new(
        builder
            .build()
            .map_err(|e| ConnectorError::Storage(format!("S3 store for `{bucket}`: {e}")))?,
    );
    let base = Url::parse(&format!("{}://{bucket}", url.scheme()))
        .map_err(|e| ConnectorError::Storage(e.to_string()))?;
    session
        .runtime_env()
        .register_object_store(&base, store.clone());
    Ok(Some(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_config_dir_and_root() {
        let loc =
            Location::resolve(Path::new("/etc/mesh"), Some("data/../files"), "a.csv").unwrap();
        assert_eq!(loc.as_listing_path(), "/etc/mesh/files/a.csv");
        let loc = Location::resolve(Path::new("/etc/mesh"), None, "/abs/b.parquet").unwrap();
        assert_eq!(loc.as_listing_path(), "/abs/b.parquet");
    }

    #[test]
    fn remote_roots_join_with_paths() {
        let loc = Location::resolve(Path::new("/x"), Some("s3://bucket/prefix/"), "t/").unwrap();
        assert_eq!(loc.as_listing_path(), "s3://bucket/prefix/t/");
    }

    #[test]
    fn unsupported_schemes_are_rejected() {
        let err = Location::resolve(Path::new("/x"), None, "ftp://host/a.csv").unwrap_err();
        assert!(err.to_string().contains("unsupported URL scheme"), "{err}");
    }
}
