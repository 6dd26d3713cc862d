//! The server side of the product admin API: owners read and replace
//! their data products' descriptors. Any signed-in caller may call it; who
//! may edit which product is the planner's decision (`ProductAdmin`, from
//! the policy's `edit_product` grants and `admins`), not this file's. Every
//! call of a signed-in caller is audited, with the product it concerns.

use std::sync::Arc;

use meshgate_planner::QueryService;
use meshgate_proto::admin::v1 as pb;
use pb::product_admin_server::{ProductAdmin, ProductAdminServer};
use tonic::{Request, Response, Status};

use super::service::signed_in;
use crate::auth::{TokenSigner, UserStore};

/// Serves the product admin API over the planner's [`QueryService`].
pub struct ProductAdminService {
    service: Arc<QueryService>,
    users: Arc<UserStore>,
    signer: Arc<TokenSigner>,
}

impl ProductAdminService {
    /// The service, signing callers in like the policy admin API.
    pub fn new(
        service: Arc<QueryService>,
        users: Arc<UserStore>,
        signer: Arc<TokenSigner>,
    ) -> ProductAdminServer<Self> {
        ProductAdminServer::new(Self {
            service,
            users,
            signer,
        })
    }
}

#[tonic::async_trait]
impl ProductAdmin for ProductAdminService {
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::ProductDescriptor>, Status> {
        let name = request.get_ref().name.clone();
        let what = format!("admin GetProduct {name}");
        let (identity, mut call) = signed_in(&request, &self.users, &self.signer, what)?;
        call.record.objects = vec![name.clone()];
        let result = self
            .service
            .product_admin()
            .descriptor(&identity, &name)
            .map(|(yaml, version)| pb::ProductDescriptor { yaml, version });
        call.finish(&self.service, result)
    }

    async fn apply_product(
        &self,
        request: Request<pb::ApplyProductRequest>,
    ) -> Result<Response<pb::ApplyProductResponse>, Status> {
        let pb::ApplyProductRequest {
            name,
            yaml,
            expected_version,
        } = request.get_ref().clone();
        let what = format!("admin ApplyProduct {name} (expected version {expected_version})");
        let (identity, mut call) = signed_in(&request, &self.users, &self.signer, what)?;
        call.record.objects = vec![name.clone()];
        let expected = (expected_version != 0).then_some(expected_version);
        let result = self
            .service
            .product_admin()
            .replace(&identity, &name, &yaml, expected)
            .await
            .map(|version| pb::ApplyProductResponse { version });
        call.finish(&self.service, result)
    }
}
