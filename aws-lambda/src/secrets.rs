//! Provider secrets from SSM Parameter Store, read once at cold start.
//!
//! With `GATEWAY_SSM_PREFIX=/ai-gateway/prod/`, every parameter directly
//! under that path (SecureString decrypted with the function's KMS grant) is
//! available to the config as `${env:<last path segment>}`:
//! `/ai-gateway/prod/OPENAI_API_KEY` → `${env:OPENAI_API_KEY}`. Secrets so
//! never sit in the function's plain environment variables. Parameters win
//! over environment variables of the same name.

use std::collections::HashMap;

/// Loads the parameters under `prefix` (one level, paginated).
pub async fn load_parameters(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
) -> Result<HashMap<String, String>, String> {
    let client = aws_sdk_ssm::Client::new(sdk);
    let path = if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let mut secrets = HashMap::new();
    let mut next_token = None;
    loop {
        let page = client
            .get_parameters_by_path()
            .path(path.trim_end_matches('/'))
            .recursive(false)
            .with_decryption(true)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SSM GetParametersByPath {path}: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(e)
                )
            })?;
        for parameter in page.parameters() {
            if let (Some(name), Some(value)) = (parameter.name(), parameter.value()) {
                let key = name.rsplit('/').next().unwrap_or(name);
                secrets.insert(key.to_owned(), value.to_owned());
            }
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok(secrets)
}
