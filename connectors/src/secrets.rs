//! Keeping source secrets out of everything meshgate prints.
//!
//! Each connector names the option keys that hold secrets
//! ([`Connector::secret_keys`](crate::Connector::secret_keys)). Two things
//! follow from that list:
//! - [`redact_options`] copies a catalog's options with those values
//!   replaced, for every `Debug` of a configuration;
//! - the values themselves are remembered, process-wide, when a catalog is
//!   validated or built ([`remember_options`], done by
//!   [`ConnectorRegistry`](crate::ConnectorRegistry) for every connector),
//!   so that [`redact`] can remove them from any text that leaves the
//!   process — error messages, EXPLAIN output, log lines, audit records —
//!   whatever path the text took (a driver that echoes a connection
//!   string, a plan that prints an option). It is process-wide because log
//!   lines are: the log writer has no session to ask.
//!
//! Secrets are matched as exact substrings; values shorter than
//! [`MIN_SECRET_LEN`] are not remembered (redacting every `a` would make
//! messages unreadable and protects nothing).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::RwLock;

/// What a secret is replaced by.
pub const REDACTED: &str = "<redacted>";

/// Shorter values are not treated as secrets in free text.
pub const MIN_SECRET_LEN: usize = 4;

static KNOWN: RwLock<BTreeSet<String>> = RwLock::new(BTreeSet::new());

/// The value at a dotted `key` (`password`, `s3.secret_access_key`).
fn lookup<'a>(options: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = options.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// `options` with the value of every secret key replaced by [`REDACTED`].
pub fn redact_options<K: AsRef<str>>(options: &toml::Table, secret_keys: &[K]) -> toml::Table {
    let mut out = options.clone();
    for key in secret_keys {
        let mut parts: Vec<&str> = key.as_ref().split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let mut table = Some(&mut out);
        for part in parts {
            table = table
                .and_then(|t| t.get_mut(part))
                .and_then(|v| v.as_table_mut());
        }
        if let Some(value) = table.and_then(|t| t.get_mut(last)) {
            *value = toml::Value::String(REDACTED.into());
        }
    }
    out
}

/// Remember the values of `secret_keys` in `options` for [`redact`].
pub fn remember_options<K: AsRef<str>>(options: &toml::Table, secret_keys: &[K]) {
    for key in secret_keys {
        if let Some(toml::Value::String(value)) = lookup(options, key.as_ref()) {
            remember(value);
        }
    }
}

/// Remember one secret value for [`redact`].
pub fn remember(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !known.contains(value) {
        known.insert(value.to_owned());
    }
}

/// `text` with every remembered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    // Longest first, so a secret containing another is removed whole.
    let mut secrets: Vec<&String> = known.iter().filter(|s| out.contains(s.as_str())).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// A secret option value: deserialised like a string, shown by `Debug` as
/// [`REDACTED`], and remembered for [`redact`] when read.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that must use it (a driver's config).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        remember(&value);
        Ok(Self(value))
    }
}

/// A `Debug` of a catalog's options that shows no secret: the values of
/// the connector's secret keys are replaced (every value when the
/// connector `kind` is unknown), and remembered secrets are removed.
pub struct RedactedOptions<'a> {
    kind: &'a str,
    options: &'a toml::Table,
}

impl<'a> RedactedOptions<'a> {
    pub fn new(kind: &'a str, options: &'a toml::Table) -> Self {
        Self { kind, options }
    }
}

impl std::fmt::Debug for RedactedOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = match crate::ConnectorRegistry::builtin().get(self.kind) {
            Some(connector) => connector
                .secret_keys()
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            None => self.options.keys().cloned().collect(),
        };
        let redacted = redact_options(self.options, &keys);
        f.write_str(&redact(&format!("{redacted:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> toml::Table {
        toml::from_str(
            "host = 'db'\npassword = 'Sw0rdfish-7731'\n[s3]\nsecret_access_key = 'AKsecret-99'\nregion = 'eu'",
        )
        .unwrap()
    }

    #[test]
    fn secret_keys_are_redacted_in_options() {
        let out = redact_options(
            &options(),
            &["password", "s3.secret_access_key", "s3.absent"],
        );
        let text = format!("{out:?}");
        assert!(!text.contains("Sw0rdfish"), "{text}");
        assert!(!text.contains("AKsecret"), "{text}");
        assert!(text.contains("db") && text.contains("eu"), "{text}");
    }

    #[test]
    fn remembered_secrets_are_removed_from_any_text() {
        remember_options(&options(), &["password", "s3.secret_access_key"]);
        remember("ab");
        let text = "connect to postgres://u:Sw0rdfish-7731@db failed (key AKsecret-99), ab";
        let out = redact(text);
        assert_eq!(
            out,
            "connect to postgres://u:<redacted>@db failed (key <redacted>), ab"
        );
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn secret_values_debug_as_redacted() {
        #[derive(Debug, serde::Deserialize)]
        struct Options {
            #[allow(dead_code)]
            password: Option<Secret>,
        }
        let options: Options = toml::from_str("password = 'hunter2-xyz'").unwrap();
        assert_eq!(options.password.as_ref().unwrap().expose(), "hunter2-xyz");
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(redact("pw hunter2-xyz"), "pw <redacted>");
    }

    #[test]
    fn debug_of_options_hides_secrets() {
        let options = options();
        for kind in ["postgres", "no-such-connector"] {
            let shown = format!("{:?}", RedactedOptions::new(kind, &options));
            assert!(!shown.contains("Sw0rdfish"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }
}
