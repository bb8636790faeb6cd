//! The CLI's side of the API client: the one client (`keptn-client`) built from the stored
//! credentials.

use super::config::{self, Credentials};
pub use keptn_client::Client;

pub fn from_credentials(creds: &Credentials) -> Client {
    Client::new(creds.endpoint.clone(), creds.api_token.clone())
}

pub fn from_config() -> anyhow::Result<Client> {
    Ok(from_credentials(&config::load()?))
}
