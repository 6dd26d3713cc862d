//! meshgate's own gRPC service definitions, generated from `proto/meshgate`.
//!
//! - [`admin::v1`]: `PolicyAdmin`, to read, diff and replace the access
//!   policy (served by the gateway, called by `meshgate policy ...`);
//!   `ProductAdmin`, for owners to read and replace their data products'
//!   descriptors; `CatalogAdmin`, to reload the served catalogs.

/// Arrow Flight's session messages (SetSessionOptions, GetSessionOptions,
/// CloseSession), which the arrow-flight crate does not generate.
pub mod flight_session {
    tonic::include_proto!("arrow.flight.protocol");
}

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("meshgate.admin.v1");
    }
}
