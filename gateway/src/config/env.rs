//! `${VAR}` in configuration values: replaced by the environment variable
//! before the file is read into types, so secrets can stay out of the file.
//!
//! Every string value is substituted, at any depth (tables and arrays); an
//! unset variable is an error that names the key holding it, never a value
//! left empty.

/// Replace `${VAR}` in every string value of `table`, looking variables up
/// with `lookup`. Errors are `(key, problem)`, the key a dotted path below
/// `prefix`.
pub(super) fn substitute_env(
    table: &mut toml::Table,
    prefix: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        substitute_value(value, &path, lookup)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut toml::Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand(s, lookup).map_err(|problem| (path.to_owned(), problem))?;
        }
        toml::Value::Table(t) => substitute_env(t, path, lookup)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value".to_owned())?;
        let var = &after[..end];
        if var.is_empty() {
            return Err("empty `${}` in value".to_owned());
        }
        let value =
            lookup(var).ok_or_else(|| format!("environment variable `{var}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_are_substituted_with_key_in_errors() {
        let lookup = |v: &str| (v == "SECRET").then(|| "s3cr3t".to_string());
        let mut t: toml::Table = "[a]\nb = 'x-${SECRET}-y'\nc = ['${SECRET}']"
            .parse()
            .unwrap();
        substitute_env(&mut t, "", &lookup).unwrap();
        assert_eq!(t["a"]["b"].as_str(), Some("x-s3cr3t-y"));
        assert_eq!(t["a"]["c"][0].as_str(), Some("s3cr3t"));
        let mut t: toml::Table = "[a]\nb = '${MISSING}'".parse().unwrap();
        let (key, problem) = substitute_env(&mut t, "", &lookup).unwrap_err();
        assert_eq!(key, "a.b");
        assert!(problem.contains("MISSING"));
    }
}
