//! Each catalog's data products, from its descriptor file (`products_file`,
//! YAML, relative to the configuration file) and from the configuration
//! itself (`[[catalogs.NAME.products]]`). Every problem names the file it
//! is in, the key and what is wrong: `claims.products.yaml:
//! products[0].slo.freshness: ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use meshgate_planner::{DescriptorFile, DescriptorSource, ProductDescriptor, ProductsError};

use super::{Config, ConfigError};

/// Where a catalog's products come from: the inline ones first, then the
/// descriptor file's, in order.
pub(super) struct CatalogProducts {
    pub(super) products: Vec<ProductDescriptor>,
    inline: usize,
    file: Option<PathBuf>,
}

impl CatalogProducts {
    /// The descriptor file, where owners' edits are written.
    pub(super) fn source(&self) -> Option<DescriptorSource> {
        self.file.clone().map(|file| DescriptorSource {
            file,
            inline: self.inline,
        })
    }
}

impl Config {
    /// Read and check every catalog's products.
    pub(super) fn load_products(&self) -> Result<BTreeMap<String, CatalogProducts>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, catalog) in &self.catalogs {
            for (i, product) in catalog.products.iter().enumerate() {
                if let Some(p) = product.problems().into_iter().next() {
                    return Err(self.invalid(
                        format!("catalogs.{name}.products[{i}].{}", p.key),
                        p.problem,
                    ));
                }
            }
            let mut products = catalog.products.clone();
            let file = catalog.products_file.as_ref().map(|f| self.resolve_path(f));
            if let Some(path) = &file {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    file: shown.clone(),
                    source,
                })?;
                let invalid = |key: String, problem: String| ConfigError::Invalid {
                    file: shown.clone(),
                    key: if key.is_empty() {
                        "(top level)".into()
                    } else {
                        key
                    },
                    problem,
                };
                let parsed =
                    DescriptorFile::from_yaml(&text).map_err(|p| invalid(p.key, p.problem))?;
                for (i, product) in parsed.products.iter().enumerate() {
                    if let Some(p) = product.problems().into_iter().next() {
                        return Err(invalid(format!("products[{i}].{}", p.key), p.problem));
                    }
                }
                products.extend(parsed.products);
            }
            out.insert(
                name.clone(),
                CatalogProducts {
                    inline: catalog.products.len(),
                    products,
                    file,
                },
            );
        }
        Ok(out)
    }

    /// A problem across products (a name or a table declared twice), named
    /// where the product that repeats it is declared.
    pub(super) fn products_error(
        &self,
        products: &BTreeMap<String, CatalogProducts>,
        err: ProductsError,
    ) -> ConfigError {
        let ProductsError::Invalid {
            catalog,
            index,
            key,
            problem,
        } = err;
        match products.get(&catalog) {
            Some(p) if index >= p.inline => ConfigError::Invalid {
                file: p
                    .file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| self.file.clone()),
                key: format!("products[{}].{key}", index - p.inline),
                problem,
            },
            _ => self.invalid(
                format!("catalogs.{catalog}.products[{index}].{key}"),
                problem,
            ),
        }
    }
}
