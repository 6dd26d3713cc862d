//! The data products in force. Owners edit descriptors while the gateway
//! serves (`access::product_admin`); an edit builds a whole new
//! [`DataProducts`] and swaps it in, so a lookup sees either the products
//! before the edit or after it, never half of one. Statements take the
//! products in force when they start, as they take the policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{DataProducts, DescriptorFile, Product, ProductDescriptor, ProductsError};

/// Where a catalog's descriptors are kept: the descriptors declared in its
/// `products_file` follow the `inline` ones of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorSource {
    pub file: PathBuf,
    pub inline: usize,
}

/// The products in force, replaceable whole.
#[derive(Debug, Default)]
pub struct LiveProducts {
    current: RwLock<Arc<DataProducts>>,
    /// Each catalog's descriptor file, where edits are written.
    files: RwLock<BTreeMap<String, DescriptorSource>>,
    /// 1 at start, one more for each edit.
    version: AtomicU64,
}

impl LiveProducts {
    pub fn new(products: DataProducts, files: BTreeMap<String, DescriptorSource>) -> Self {
        Self {
            current: RwLock::new(Arc::new(products)),
            files: RwLock::new(files),
            version: AtomicU64::new(1),
        }
    }

    /// The products in force.
    pub fn current(&self) -> Arc<DataProducts> {
        self.current.read().expect("products lock").clone()
    }

    /// How many times the products were set (1: as loaded).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The descriptor file of `catalog`, if its products may be edited.
    pub fn source(&self, catalog: &str) -> Option<DescriptorSource> {
        self.files
            .read()
            .expect("products lock")
            .get(catalog)
            .cloned()
    }

    /// Put `products` in force; returns the new version.
    pub(crate) fn replace(&self, products: DataProducts) -> u64 {
        *self.current.write().expect("products lock") = Arc::new(products);
        self.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Put `products` and their descriptor files in force (the catalogs
    /// were reloaded); returns the new version.
    pub(crate) fn replace_all(
        &self,
        products: DataProducts,
        files: BTreeMap<String, DescriptorSource>,
    ) -> u64 {
        *self.files.write().expect("products lock") = files;
        self.replace(products)
    }
}

impl DataProducts {
    /// These products with `descriptor` in place of the product of the
    /// same name (which must exist), checked like the products loaded at
    /// start (names unique, a table in one product at most).
    pub fn with_replaced(&self, descriptor: ProductDescriptor) -> Result<Self, ProductsError> {
        let mut catalogs: Vec<(String, Vec<ProductDescriptor>)> = Vec::new();
        for product in self.products() {
            let d = if product.name() == descriptor.name {
                descriptor.clone()
            } else {
                product.descriptor.clone()
            };
            match catalogs.last_mut() {
                Some((catalog, list)) if *catalog == product.catalog => list.push(d),
                _ => catalogs.push((product.catalog.clone(), vec![d])),
            }
        }
        Self::new(catalogs)
    }

    /// The descriptor file `source` of `catalog` as these products would write it.
    pub fn file_of(&self, catalog: &str, source: &DescriptorSource) -> DescriptorFile {
        DescriptorFile {
            products: self
                .products()
                .iter()
                .filter(|p| p.catalog == catalog)
                .skip(source.inline)
                .map(|p: &Product| p.descriptor.clone())
                .collect(),
        }
    }
}

/// Write `text` to `path` atomically: a temporary file beside it, renamed over it.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str, table: &str) -> ProductDescriptor {
        yaml_serde::from_str(&format!(
            "name: {name}\nowner: {{ team: t }}\ntables:\n  - name: {table}\n"
        ))
        .unwrap()
    }

    #[test]
    fn an_edit_replaces_one_product_and_keeps_the_checks() {
        let products = DataProducts::new([
            (
                "a".to_owned(),
                vec![product("inline", "s.i"), product("p", "s.t")],
            ),
            ("b".to_owned(), vec![product("q", "s.u")]),
        ])
        .unwrap();
        let edited = products.with_replaced(product("p", "s.v")).unwrap();
        assert_eq!(
            edited.product("p").unwrap().descriptor.tables[0].name,
            "s.v"
        );
        assert_eq!(edited.products().len(), 3);
        let source = DescriptorSource {
            file: "a.yaml".into(),
            inline: 1,
        };
        let file = edited.file_of("a", &source);
        assert_eq!(file.products.len(), 1);
        assert_eq!(file.products[0].name, "p");
        // A table of another product cannot be taken.
        assert!(products.with_replaced(product("p", "s.i")).is_err());
        let live = LiveProducts::new(products, BTreeMap::new());
        assert_eq!(live.replace(edited), 2);
        assert_eq!(live.version(), 2);
    }
}
