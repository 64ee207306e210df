//! HubRise's world: its registered client, users, accounts and locations, the codes and tokens of
//! its OAuth server, each location's orders, and (not kept in the state file) the calls counted
//! against each connection's limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

use crate::harness::secret::Secret;
use crate::settings::{HubRiseLimits, Settings};

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Secret,
    pub name: String,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub password: Secret,
    /// The accounts whose locations the user may connect.
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub currency: String,
    /// IANA zone: order times are given with its offset.
    pub timezone: String,
}

/// What a token may do: an access level and the permissions in it (`location[orders.write]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// `location` or `account`.
    pub level: String,
    /// `orders.write`, `catalog.read`, ...
    pub permissions: Vec<String>,
    /// `profile` or `profile_with_email`, if asked.
    pub profile: Option<String>,
}

impl Scope {
    /// Whether the scope lets a call of `resource` (`orders`) read, or write too (the sandbox takes
    /// `.write` as including read; unconfirmed).
    pub fn allows(&self, resource: &str, write: bool) -> bool {
        self.permissions.iter().any(|p| {
            p == &format!("{resource}.write") || (!write && p == &format!("{resource}.read"))
        })
    }
}

/// A code handed back to the client's redirect URI: single use, ten minutes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub location_id: String,
    pub scope: Scope,
    pub issued: DateTime<Utc>,
    pub used: bool,
}

/// An access token: it never expires; revoked, it answers 401.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub client_id: String,
    pub location_id: String,
    pub scope: Scope,
    pub revoked: bool,
}

/// An order as HubRise keeps it: the answer it gives for it (ids, total and times included).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub location_id: String,
    pub private_ref: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub body: Value,
}

/// A connection's callback: where HubRise posts the events it asked for, or nowhere (passive:
/// the client polls `GET /callback/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Callback {
    pub client_id: String,
    pub location_id: String,
    pub url: Option<String>,
    /// Resource type → event types (`{"order": ["create", "update"]}`).
    pub events: BTreeMap<String, Vec<String>>,
}

/// An event HubRise holds for a connection until it is acknowledged (a 200 to 499 answer to its
/// post, or `DELETE /callback/events/:id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub client_id: String,
    pub location_id: String,
    /// What is posted and what `GET /callback/events/:id` answers.
    pub body: Value,
}

/// One post of an event to a callback URL, as `GET /_sandbox/hubrise/callbacks` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallbackAttempt {
    pub event_id: String,
    pub url: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub acknowledged: bool,
}

/// Calls counted in the windows that are open now, per connection (client and location).
#[derive(Debug, Default)]
pub struct Counts {
    pub windows: HashMap<(String, String), Windows>,
}

/// A connection's calls in its current minute, hour and day (by window number), and its heavy
/// reads in the current minute.
#[derive(Debug, Default, Clone, Copy)]
pub struct Windows {
    pub minute: (i64, u32),
    pub hour: (i64, u32),
    pub day: (i64, u32),
    pub heavy: (i64, u32),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct World {
    /// Configuration (from the settings at each start), never written to the state file.
    #[serde(skip)]
    pub clients: BTreeMap<String, Client>,
    #[serde(skip)]
    pub users: Vec<User>,
    pub accounts: Vec<Account>,
    pub locations: Vec<Location>,
    pub codes: HashMap<String, Code>,
    pub tokens: HashMap<String, Token>,
    /// Browser sessions (cookie → user's email) and single-use consent tickets.
    pub sessions: HashMap<String, String>,
    pub tickets: HashMap<String, (String, DateTime<Utc>)>,
    pub orders: Vec<Order>,
    #[serde(default)]
    pub callbacks: Vec<Callback>,
    /// Events not yet acknowledged, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(skip)]
    pub callback_attempts: Vec<CallbackAttempt>,
    /// The limits in force (from the settings at each start; changed by the control API).
    #[serde(skip)]
    pub limits: HubRiseLimits,
    #[serde(skip)]
    pub counts: Counts,
}

impl Default for World {
    fn default() -> Self {
        World::seed(&Settings::default())
    }
}

impl World {
    /// The demo: one user, the account "Demo Bistro" (EUR) with locations in Paris and Lyon, and
    /// the registered client.
    pub fn seed(settings: &Settings) -> Self {
        let h = &settings.hubrise;
        let client = Client {
            id: h.client_id.clone(),
            secret: h.client_secret.clone(),
            name: "Ledgerlink".into(),
            redirect_uris: h.redirect_uris.clone(),
        };
        let location = |id: &str, name: &str| Location {
            id: id.into(),
            account_id: "b7m3k".into(),
            name: name.into(),
            currency: "EUR".into(),
            timezone: "Europe/Paris".into(),
        };
        World {
            clients: BTreeMap::from([(client.id.clone(), client)]),
            users: vec![User {
                email: "demo@ledgerlink.test".into(),
                password: Secret::new("demo"),
                accounts: vec!["b7m3k".into()],
            }],
            accounts: vec![Account {
                id: "b7m3k".into(),
                name: "Demo Bistro".into(),
                currency: "EUR".into(),
            }],
            locations: vec![location("b7m3k-0", "Paris"), location("b7m3k-1", "Lyon")],
            codes: HashMap::new(),
            tokens: HashMap::new(),
            sessions: HashMap::new(),
            tickets: HashMap::new(),
            orders: Vec::new(),
            callbacks: Vec::new(),
            events: Vec::new(),
            callback_attempts: Vec::new(),
            limits: h.limits,
            counts: Counts::default(),
        }
    }

    pub fn location(&self, id: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.id == id)
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The locations `email` may connect.
    pub fn locations_of(&self, email: &str) -> Vec<&Location> {
        let Some(user) = self.users.iter().find(|u| u.email == email) else {
            return Vec::new();
        };
        self.locations
            .iter()
            .filter(|l| user.accounts.contains(&l.account_id))
            .collect()
    }
}

/// A HubRise-looking id: five characters of lower-case letters and digits.
pub fn short_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..5)
        .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
        .collect()
}
