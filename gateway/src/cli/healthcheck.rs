//! `meshgate healthcheck`: one GET of a running gateway's `/readyz`, for a
//! container's `HEALTHCHECK` (the runtime image has no curl). Success is a
//! 200 answer within a few seconds; anything else is an error whose message
//! says what happened.

use std::time::Duration;

use super::CliError;

pub async fn run(url: &str) -> Result<(), CliError> {
    let not_ready = |problem: String| CliError::NotReady {
        url: url.to_owned(),
        problem,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| not_ready(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| not_ready(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(not_ready(format!("answered {}", response.status())))
    }
}
