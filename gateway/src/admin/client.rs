//! The client of the admin APIs: the policy (`meshgate policy
//! get|list|diff|apply`) and data product descriptors (`meshgate product
//! get|apply`).
//!
//! It signs every call in with what the user gave: basic credentials, or a
//! bearer token (an identity provider's JWT). An `https://` server needs the
//! CA certificate to trust; nothing falls back to an unverified connection.

use std::path::PathBuf;

use base64::Engine as _;
use meshgate_proto::admin::v1 as pb;
use thiserror::Error;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Status};

/// Why a client could not be set up. Errors of the calls themselves are the
/// server's [`Status`].
#[derive(Debug, Error)]
pub enum AdminClientError {
    #[error("no credentials: give --user and MESHGATE_PASSWORD (or --password), or --token")]
    NoCredentials,
    #[error("`{server}` is not a URL")]
    NotAUrl {
        server: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The CA certificate file could not be read.
    #[error("{}", path.display())]
    CaCertificate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("https needs --ca-cert: the PEM of the CA that signed the gateway's certificate")]
    CaCertificateNeeded,
    #[error(transparent)]
    Tls(tonic::transport::Error),
    #[error("connecting to {server}")]
    Connect {
        server: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("credentials are not ASCII")]
    CredentialsNotAscii(#[source] tonic::metadata::errors::InvalidMetadataValue),
}

/// How to reach and sign in to a gateway.
pub struct AdminTarget {
    /// `http://host:port` or `https://host:port` (the Flight SQL listener).
    pub server: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A bearer token (a JWT) instead of user and password; it wins when
    /// both are given.
    pub token: Option<String>,
    /// PEM file of the CA that signed the gateway's certificate.
    pub ca_cert: Option<PathBuf>,
}

/// A client of the admin services, signed in as its target says.
pub struct AdminClient {
    inner: pb::policy_admin_client::PolicyAdminClient<Channel>,
    products: pb::product_admin_client::ProductAdminClient<Channel>,
    catalogs: pb::catalog_admin_client::CatalogAdminClient<Channel>,
    authorization: MetadataValue<Ascii>,
}

impl AdminClient {
    /// Connect to `target.server`; the credentials go with every call.
    pub async fn connect(target: &AdminTarget) -> Result<Self, AdminClientError> {
        let authorization = match (&target.token, &target.user, &target.password) {
            (Some(token), _, _) => format!("Bearer {token}"),
            (None, Some(user), Some(password)) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            _ => return Err(AdminClientError::NoCredentials),
        };
        let mut endpoint = Channel::from_shared(target.server.clone()).map_err(|source| {
            AdminClientError::NotAUrl {
                server: target.server.clone(),
                source,
            }
        })?;
        if let Some(ca) = &target.ca_cert {
            let pem = std::fs::read(ca).map_err(|source| AdminClientError::CaCertificate {
                path: ca.clone(),
                source,
            })?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(AdminClientError::Tls)?;
        } else if target.server.starts_with("https://") {
            return Err(AdminClientError::CaCertificateNeeded);
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| AdminClientError::Connect {
                server: target.server.clone(),
                source,
            })?;
        Ok(Self {
            products: pb::product_admin_client::ProductAdminClient::new(channel.clone()),
            catalogs: pb::catalog_admin_client::CatalogAdminClient::new(channel.clone()),
            inner: pb::policy_admin_client::PolicyAdminClient::new(channel),
            authorization: authorization
                .parse()
                .map_err(AdminClientError::CredentialsNotAscii)?,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// The policy in force, as TOML with its version.
    pub async fn get(&mut self) -> Result<pb::PolicyDocument, Status> {
        let r = self.request(pb::GetPolicyRequest {});
        Ok(self.inner.get_policy(r).await?.into_inner())
    }

    /// The rules in force, one summary each.
    pub async fn list(&mut self) -> Result<pb::ListRulesResponse, Status> {
        let r = self.request(pb::ListRulesRequest {});
        Ok(self.inner.list_rules(r).await?.into_inner())
    }

    /// What replacing the policy with `toml` would change, and the problems
    /// that would refuse it.
    pub async fn diff(&mut self, toml: String) -> Result<pb::DiffPolicyResponse, Status> {
        let r = self.request(pb::DiffPolicyRequest { toml });
        Ok(self.inner.diff_policy(r).await?.into_inner())
    }

    /// Replace the policy with `toml` if the version in force is
    /// `expected_version`; returns the new version.
    pub async fn apply(&mut self, toml: String, expected_version: u64) -> Result<u64, Status> {
        let r = self.request(pb::ApplyPolicyRequest {
            toml,
            expected_version,
        });
        Ok(self.inner.apply_policy(r).await?.into_inner().version)
    }

    /// The descriptor of product `name` as YAML, with the products' version.
    pub async fn get_product(&mut self, name: &str) -> Result<pb::ProductDescriptor, Status> {
        let r = self.request(pb::GetProductRequest {
            name: name.to_owned(),
        });
        Ok(self.products.get_product(r).await?.into_inner())
    }

    /// Replace product `name`'s descriptor with `yaml` if the products'
    /// version in force is `expected_version` (0: whatever it is); returns
    /// the new version.
    pub async fn apply_product(
        &mut self,
        name: &str,
        yaml: String,
        expected_version: u64,
    ) -> Result<u64, Status> {
        let r = self.request(pb::ApplyProductRequest {
            name: name.to_owned(),
            yaml,
            expected_version,
        });
        Ok(self.products.apply_product(r).await?.into_inner().version)
    }

    /// Reload the gateway's catalogs from its configuration file.
    pub async fn reload_catalogs(&mut self) -> Result<pb::ReloadCatalogsResponse, Status> {
        let r = self.request(pb::ReloadCatalogsRequest {});
        Ok(self.catalogs.reload_catalogs(r).await?.into_inner())
    }
}
