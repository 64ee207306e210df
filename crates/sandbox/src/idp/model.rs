//! The identity provider's world: its people, their groups, its registered clients, and the
//! sessions and codes in flight (not kept in the state file: a restart signs everyone out, as a
//! provider's own restart would not, but nothing of the proxy's depends on it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use crate::settings::IdpSettings;
use crate::Secret;

/// The operators' group and the viewers', as the seeded people are in them.
pub const OPERATORS_GROUP: &str = "ledgerlink-operators";
pub const VIEWERS_GROUP: &str = "ledgerlink-viewers";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Okta-shaped (`00u...`): the `sub` of ID tokens and `uid` of access tokens.
    pub id: String,
    pub email: String,
    #[serde(with = "crate::harness::secret::stored")]
    pub password: Secret,
    pub name: String,
    pub groups: Vec<String>,
    /// A deactivated person cannot sign in.
    pub active: bool,
}

/// A registered application.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(with = "crate::harness::secret::stored")]
    pub client_secret: Secret,
    /// Where a code may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where sign-out may return to, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// `authorization_code`, `client_credentials`.
    pub grant_types: Vec<String>,
    /// The custom scopes it may ask for with client credentials.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub email: String,
    pub authenticated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub email: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub issued: DateTime<Utc>,
    pub used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// By email, lower case.
    pub users: BTreeMap<String, User>,
    pub clients: BTreeMap<String, Client>,
    #[serde(skip)]
    pub sessions: HashMap<String, Session>,
    #[serde(skip)]
    pub codes: HashMap<String, Code>,
}

impl World {
    /// The seeded people (`ops` and `viewer`) and clients (the console, and a client for scripts
    /// that asks with client credentials).
    pub fn seed(settings: &IdpSettings) -> Self {
        let mut users = BTreeMap::new();
        for (email, password, name, group) in [
            (
                "ops@ledgerlink.test",
                "ops",
                "Olive Operator",
                OPERATORS_GROUP,
            ),
            (
                "viewer@ledgerlink.test",
                "viewer",
                "Victor Viewer",
                VIEWERS_GROUP,
            ),
        ] {
            users.insert(
                email.to_string(),
                User {
                    id: user_id(email),
                    email: email.into(),
                    password: Secret::new(password),
                    name: name.into(),
                    groups: vec![group.into(), "Everyone".into()],
                    active: true,
                },
            );
        }
        let mut clients = BTreeMap::new();
        clients.insert(
            settings.client_id.clone(),
            Client {
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                redirect_uris: settings.redirect_uris.clone(),
                post_logout_redirect_uris: settings.post_logout_redirect_uris.clone(),
                grant_types: vec!["authorization_code".into()],
                scopes: Vec::new(),
            },
        );
        clients.insert(
            settings.scripts_client_id.clone(),
            Client {
                client_id: settings.scripts_client_id.clone(),
                client_secret: settings.scripts_client_secret.clone(),
                redirect_uris: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                grant_types: vec!["client_credentials".into()],
                scopes: vec![OPERATORS_GROUP.into(), VIEWERS_GROUP.into()],
            },
        );
        Self {
            users,
            clients,
            sessions: HashMap::new(),
            codes: HashMap::new(),
        }
    }
}

/// A stable Okta-shaped user id (`00u` and 17 characters) from the email.
pub fn user_id(email: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.to_ascii_lowercase().as_bytes());
    format!("00u{}", &hex::encode(digest)[..17])
}
