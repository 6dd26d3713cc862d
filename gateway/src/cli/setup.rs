//! Commands that help write a configuration: `check-config` and
//! `hash-password`.

use std::io::BufRead;
use std::path::Path;

use meshgate_gateway::auth::PasswordHash;
use meshgate_gateway::Config;

use super::CliError;

/// Load `file` as the gateway would, and summarise it.
pub(super) fn check_config(file: &Path) -> Result<(), CliError> {
    let config = Config::load(file)?;
    println!(
        "{}: OK ({} catalog(s): {}; {} user(s))",
        file.display(),
        config.catalogs.len(),
        config
            .catalogs
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        config.users.len()
    );
    Ok(())
}

/// Print the hash of `password`, or of one line read from standard input.
pub(super) fn hash_password(password: Option<String>) -> Result<(), CliError> {
    let password = match password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(CliError::Stdin)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    println!("{}", PasswordHash::generate(&password));
    Ok(())
}
