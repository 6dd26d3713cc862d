//! The server side of the catalog admin API: policy admins reload the
//! served catalogs from the configuration file (see `crate::catalog_reload`).
//! Every call of a signed-in caller is audited, refusals included.

use std::path::PathBuf;
use std::sync::Arc;

use meshgate_planner::{QueryError, QueryService};
use meshgate_proto::admin::v1 as pb;
use pb::catalog_admin_server::{CatalogAdmin, CatalogAdminServer};
use tonic::{Request, Response, Status};

use super::service::signed_in;
use crate::auth::{TokenSigner, UserStore};

/// Serves the catalog admin API over the planner's [`QueryService`].
pub struct CatalogAdminService {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
    /// The configuration file the gateway was started with.
    config_file: PathBuf,
}

impl CatalogAdminService {
    /// The service, signing callers in like the policy admin API.
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        signer: Arc<TokenSigner>,
        config_file: PathBuf,
    ) -> CatalogAdminServer<Self> {
        CatalogAdminServer::new(Self {
            service,
            users,
            signer,
            config_file,
        })
    }
}

#[tonic::async_trait]
impl CatalogAdmin for CatalogAdminService {
    async fn reload_catalogs(
        &self,
        request: Request<pb::ReloadCatalogsRequest>,
    ) -> Result<Response<pb::ReloadCatalogsResponse>, Status> {
        let (identity, mut call) =
            signed_in(&request, &self.users, &self.signer, "admin ReloadCatalogs")?;
        if !self.service.policy_admin().is_admin(&identity) {
            let denied =
                QueryError::PermissionDenied(format!("{} is not a policy admin", identity.user));
            return call.finish(&self.service, Err(denied));
        }
        let result = crate::catalog_reload::reload_catalogs(&self.service, &self.config_file)
            .await
            .map_err(|e| QueryError::InvalidParameter(e.to_string()));
        if let Ok(changes) = &result {
            call.record.objects = changes
                .added
                .iter()
                .chain(&changes.removed)
                .chain(&changes.changed)
                .cloned()
                .collect();
        }
        let answer = result.map(|changes| pb::ReloadCatalogsResponse {
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
            generation: changes.generation,
        });
        call.finish(&self.service, answer)
    }
}
