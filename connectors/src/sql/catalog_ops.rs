//! What the rest of meshgate asks of a catalog that may be a SQL catalog:
//! probes, keys, comments, refresh, and its view for one end user. Each
//! answers for SQL catalogs and has a neutral answer for other kinds.

use std::sync::Arc;

use datafusion::catalog::CatalogProvider;

use super::{KeyColumn, SqlCatalog};
use crate::{ConnectorError, EndUser};

/// Probe `catalog`'s source if it is a SQL catalog (see
/// [`SqlCatalog::probe`]); other kinds read local or object-store data that
/// is checked when a query reads it, and count as up.
pub async fn probe_catalog(catalog: &Arc<dyn CatalogProvider>) -> Result<(), ConnectorError> {
    match catalog.as_ref().downcast_ref::<SqlCatalog>() {
        Some(sql) => sql.probe().await,
        None => Ok(()),
    }
}

/// The keys `catalog`'s source declares: a SQL catalog's primary and
/// foreign keys (cached like its listing); none for other kinds.
pub async fn catalog_keys(
    catalog: &Arc<dyn CatalogProvider>,
) -> Result<Arc<Vec<KeyColumn>>, ConnectorError> {
    let Some(sql) = catalog.as_ref().downcast_ref::<SqlCatalog>() else {
        return Ok(Arc::default());
    };
    let inner = &sql.inner;
    inner
        .keys
        .try_get_with((), async {
            let pool = inner.pool().await?;
            let timeout = inner.options.connect_timeout() * 2;
            match tokio::time::timeout(timeout, pool.keys()).await {
                Ok(Ok(keys)) => Ok(Arc::new(keys)),
                Ok(Err(err)) => Err(inner.unavailable(&err)),
                Err(_) => Err(ConnectorError::Source {
                    catalog: inner.catalog.clone(),
                    message: format!("no keys within {} s", timeout.as_secs()),
                }),
            }
        })
        .await
        .map_err(|e: Arc<ConnectorError>| ConnectorError::Source {
            catalog: inner.catalog.clone(),
            message: e.to_string(),
        })
}

/// The comments `catalog`'s source keeps on tables and columns (cached
/// like its listing); none for other kinds.
pub async fn catalog_comments(
    catalog: &Arc<dyn CatalogProvider>,
) -> Result<Arc<Vec<crate::Description>>, ConnectorError> {
    let Some(sql) = catalog.as_ref().downcast_ref::<SqlCatalog>() else {
        return Ok(Arc::default());
    };
    let inner = &sql.inner;
    inner
        .comments
        .try_get_with((), async {
            let pool = inner.pool().await?;
            let timeout = inner.options.connect_timeout() * 2;
            match tokio::time::timeout(timeout, pool.comments()).await {
                Ok(Ok(comments)) => Ok(Arc::new(comments)),
                Ok(Err(err)) => Err(inner.unavailable(&err)),
                Err(_) => Err(ConnectorError::Source {
                    catalog: inner.catalog.clone(),
                    message: format!("no comments within {} s", timeout.as_secs()),
                }),
            }
        })
        .await
        .map_err(|e: Arc<ConnectorError>| ConnectorError::Source {
            catalog: inner.catalog.clone(),
            message: e.to_string(),
        })
}

/// Whether `catalog` runs queries at its source as the end user (see
/// [`SqlCatalog::as_end_user`]).
pub fn forwards_identity(catalog: &Arc<dyn CatalogProvider>) -> bool {
    catalog
        .as_ref()
        .downcast_ref::<SqlCatalog>()
        .is_some_and(|sql| sql.inner.kind.forwards_identity())
}

/// `catalog` as `user`'s queries see it, when it forwards identity; `None`
/// otherwise (the shared catalog serves every user).
pub fn catalog_as_end_user(
    catalog: &Arc<dyn CatalogProvider>,
    user: &EndUser,
) -> Option<Arc<dyn CatalogProvider>> {
    let sql = catalog.as_ref().downcast_ref::<SqlCatalog>()?;
    Some(Arc::new(sql.as_end_user(user.clone())?))
}

/// Refresh `catalog` if it is a SQL catalog; `None` for other kinds, whose
/// tables and schemas are fixed when the catalog is built.
pub async fn refresh_catalog(
    catalog: &Arc<dyn CatalogProvider>,
) -> Option<Result<(), ConnectorError>> {
    let sql = catalog.as_ref().downcast_ref::<SqlCatalog>()?;
    Some(sql.refresh().await)
}
