//! Domain teams edit their own data products' descriptors while meshgate
//! serves, as the policy allows: policy admins may edit any product, and
//! anyone else the products whose every table (before and after the edit)
//! an `edit_product` grant covers (see the policy crate's
//! `product_editing`).
//!
//! An edit replaces one product's descriptor whole. It is checked like a
//! descriptor file at start (keys, types, durations; names unique, a table
//! in one product at most), its promised schema is checked against the
//! sources (an edit cannot make a product fail its own contract), it is
//! written to the catalog's descriptor file atomically, and only then put
//! in force. Statements that start afterwards see it: the products' tags
//! (which masks match) are evaluated again, and prepared statements are
//! planned again, as after a policy change. Edits are serialised; one that
//! names a stale version is refused. Renaming a product, moving it to
//! another catalog, and editing products declared inline in the
//! configuration are refused. Comments in a descriptor file do not survive
//! an edit made here.

use std::sync::Arc;

use meshgate_policy::{Policy, TableName};

use super::PolicySource;
use crate::catalogs::CatalogRegistry;
use crate::products::live::write_atomically;
use crate::products::{Product, ProductDescriptor};
use crate::{Identity, QueryError, QueryResult};

/// Validates, persists and applies descriptor edits.
#[derive(Debug)]
pub struct ProductAdmin {
    policy: PolicySource,
    registry: Arc<CatalogRegistry>,
    lock: tokio::sync::Mutex<()>,
}

impl ProductAdmin {
    pub(crate) fn new(policy: PolicySource, registry: Arc<CatalogRegistry>) -> Self {
        Self {
            policy,
            registry,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.read().expect("policy lock").clone()
    }

    /// The descriptor of `name` as YAML, and the products' version, for a
    /// caller who may edit it.
    pub fn descriptor(&self, identity: &Identity, name: &str) -> QueryResult<(String, u64)> {
        let products = self.registry.products();
        let version = self.registry.live_products().version();
        let product = self.editable(identity, name, &products)?;
        Ok((product.descriptor.to_yaml(), version))
    }

    /// Replace the descriptor of `name` with `yaml` (one product, as in a
    /// descriptor file's `products` list). `expected_version`, when given,
    /// must be the products' version in force. Returns the new version.
    pub async fn replace(
        &self,
        identity: &Identity,
        name: &str,
        yaml: &str,
        expected_version: Option<u64>,
    ) -> QueryResult<u64> {
        let _serial = self.lock.lock().await;
        let live = self.registry.live_products();
        let products = live.current();
        let product = self.editable(identity, name, &products)?;
        let catalog = product.catalog.clone();
        let version = live.version();
        if let Some(expected) = expected_version {
            if expected != version {
                return Err(QueryError::Conflict(format!(
                    "the data products are at version {version}, not {expected}: fetch the descriptor again and reapply your change"
                )));
            }
        }
        let descriptor = ProductDescriptor::from_yaml(yaml).map_err(|p| {
            QueryError::InvalidParameter(format!("descriptor: {}: {}", key(&p.key), p.problem))
        })?;
        if descriptor.name != name {
            return Err(QueryError::InvalidParameter(format!(
                "descriptor: name: `{}` is not `{name}` (a product is not renamed by an edit)",
                descriptor.name
            )));
        }
        if let Some(p) = descriptor.problems().into_iter().next() {
            return Err(QueryError::InvalidParameter(format!(
                "descriptor: {}: {}",
                key(&p.key),
                p.problem
            )));
        }
        // The tables the edit gives the product must be the caller's to edit too.
        let proposed = Product {
            catalog: catalog.clone(),
            descriptor: descriptor.clone(),
        };
        self.check_may_edit(identity, &proposed)?;
        let source = live.source(&catalog).ok_or_else(|| {
            QueryError::FeatureNotSupported(format!(
                "the products of catalog `{catalog}` are declared in the configuration, not in a descriptor file (products_file), so they cannot be edited at run time"
            ))
        })?;
        if product_index(&products, name) < source.inline {
            return Err(QueryError::FeatureNotSupported(format!(
                "product `{name}` is declared in the configuration, not in {}, so it cannot be edited at run time",
                source.file.display()
            )));
        }
        let edited = products.with_replaced(descriptor.clone()).map_err(|e| {
            QueryError::InvalidParameter(format!("the edited products are invalid: {e}"))
        })?;
        let problems = self.registry.check_descriptor(&catalog, &descriptor).await;
        if !problems.is_empty() {
            return Err(QueryError::InvalidParameter(format!(
                "the sources do not keep the edited promise: {}",
                problems.join("; ")
            )));
        }
        let text = edited.file_of(&catalog, &source).to_yaml();
        write_atomically(&source.file, &text)
            .map_err(|e| QueryError::Internal(format!("writing {}: {e}", source.file.display())))?;
        let version = live.replace(edited);
        // Sessions take the policy anew at their next statement, evaluating
        // the new tags and planning prepared statements again.
        let republished = self.policy().map(|p| Arc::new(p.as_ref().clone()));
        if let Some(policy) = republished {
            *self.policy.write().expect("policy lock") = Some(policy);
        }
        tracing::info!(product = name, version, user = %identity.user, file = %source.file.display(), "data product descriptor changed");
        Ok(version)
    }

    /// The product `name`, if `identity` may edit it. A product the caller
    /// may not even read is answered as if it did not exist.
    fn editable<'a>(
        &self,
        identity: &Identity,
        name: &str,
        products: &'a crate::products::DataProducts,
    ) -> QueryResult<&'a Product> {
        let missing = || QueryError::UndefinedObject(format!("no data product named `{name}`"));
        let product = products.product(name).ok_or_else(missing)?;
        match self.check_may_edit(identity, product) {
            Ok(()) => Ok(product),
            Err(denied) => {
                let readable = self.policy().is_none_or(|policy| {
                    let principal = identity.principal(&policy);
                    product.tables().any(|(table, _)| {
                        let tags = products.tags(&table);
                        policy.evaluate_tagged(&principal, &table, &tags).allowed
                    })
                });
                Err(if readable { denied } else { missing() })
            }
        }
    }

    /// Whether the policy lets `identity` edit `product` (admins may edit
    /// any; without a policy, nobody may).
    fn check_may_edit(&self, identity: &Identity, product: &Product) -> QueryResult<()> {
        let Some(policy) = self.policy() else {
            return Err(QueryError::PermissionDenied(
                "no policy is configured, so nobody may edit data products".into(),
            ));
        };
        if super::is_admin(&policy, identity) {
            return Ok(());
        }
        let tables: Vec<TableName> = product.tables().map(|(t, _)| t).collect();
        let decision = policy.may_edit_product(&identity.principal(&policy), &tables);
        if decision.allowed {
            Ok(())
        } else {
            Err(QueryError::PermissionDenied(format!(
                "{} may not edit data product `{}`: {}",
                identity.user,
                product.name(),
                decision.explanation
            )))
        }
    }
}

fn product_index(products: &crate::products::DataProducts, name: &str) -> usize {
    let Some(product) = products.product(name) else {
        return 0;
    };
    products
        .products()
        .iter()
        .filter(|p| p.catalog == product.catalog)
        .position(|p| p.name() == name)
        .unwrap_or(0)
}

/// A problem's key, or `(top level)`.
fn key(key: &str) -> &str {
    if key.is_empty() {
        "(top level)"
    } else {
        key
    }
}
