//! `keyward login` (check a key, save it as a profile) and `keyward token`.

use crate::Common;
use crate::client::Client;
use crate::failure::Failure;
use crate::output::outln;
use crate::{output, profile};
use keyward_core::secret::Secret;
use std::io::{BufRead, IsTerminal};

/// The secret from standard input when it is not a terminal, else a prompt without echo:
/// never a flag, so it stays out of shell history and `ps`.
fn read_secret(key_id: &str) -> Result<Secret, Failure> {
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Secret for {key_id}: "))?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(Failure::Usage("no secret given (expected on standard input or at the prompt)".into()));
    }
    Ok(Secret::from_presented(secret))
}

pub async fn login(url: &str, key_id: &str, name: &str, json: bool) -> Result<(), Failure> {
    // Refuse a bad profile name before asking for anything.
    profile::path(name)?;
    let url = url.trim_end_matches('/').to_owned();
    let secret = read_secret(key_id)?;
    let client = Client::new(&url, key_id, Secret::from_presented(secret.expose()))?;
    let me = client.get("/v1/me", &[]).await?;
    let path = profile::save(name, &profile::Profile { url, key_id: key_id.to_owned(), secret })?;
    if json {
        output::json(&me);
    } else {
        outln!(
            "logged in to {} as {} ({}), org {}; profile `{name}` saved to {}",
            client.base(),
            output::cell(&me["user"]["name"]),
            output::cell(&me["user"]["id"]),
            output::cell(&me["org_id"]),
            path.display()
        );
    }
    Ok(())
}

pub async fn token(common: &Common, scopes: &[String]) -> Result<(), Failure> {
    let client = super::client(common)?;
    let scope = (!scopes.is_empty()).then(|| scopes.join(" "));
    let reply = client.token(scope.as_deref()).await?;
    if common.json {
        output::json(&reply);
    } else {
        outln!("{}", output::cell(&reply["access_token"]));
    }
    Ok(())
}
