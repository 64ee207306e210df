//! Operators: the vendor's staff who run the proxy. They sign in with the vendor's identity
//! provider (any OpenID provider; Okta in the seed back end), whose issuer `[operators] issuer`
//! names. The operator API takes the provider's access tokens (`tokens`); a configured static
//! `admin_token` still works for scripts. What an operator may do follows from their groups (or,
//! for a script's token, its scopes): `[operators] viewer_groups` may read, `operator_groups` may
//! also change things.

pub mod console;
pub mod tokens;

use std::sync::Arc;

use crate::settings::OperatorSettings;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads connections, devices and documents.
    Viewer,
    /// Also unpairs devices, disconnects organisations, retries and discards documents.
    Operator,
}

/// Who is calling the operator API, and how they proved it.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The token's `sub` (a person's, or a script client's), or `admin-token`.
    pub subject: String,
    pub role: Role,
}

/// The identity provider's side of the proxy: the issuer's token verifier, the console's client
/// (discovered when first needed) and the role rules.
pub struct Operators {
    pub settings: OperatorSettings,
    pub verifier: tokens::Verifier,
    console: tokio::sync::OnceCell<console::Provider>,
    /// For the provider's documents, keys and token endpoint: redirects are not followed (an
    /// OAuth client must not be redirected into sending its secrets elsewhere).
    http: reqwest::Client,
}

impl Operators {
    /// `None` when no issuer is configured (operators then use the admin token only).
    pub fn new(settings: &OperatorSettings) -> Option<Arc<Self>> {
        let issuer = settings.issuer.as_ref()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .expect("an HTTP client builds");
        Some(Arc::new(Self {
            settings: settings.clone(),
            verifier: tokens::Verifier::new(
                issuer.as_str().trim_end_matches('/'),
                &settings.audience,
                http.clone(),
            ),
            console: tokio::sync::OnceCell::new(),
            http,
        }))
    }

    /// The role a verified token gives: its groups, or (a script's token has none) its scopes,
    /// against the configured lists. The higher role wins; `None` when neither list matches.
    pub fn role_of(&self, claims: &tokens::Claims) -> Option<Role> {
        if claims.groups.is_empty() {
            self.role_of_names(&claims.scp)
        } else {
            self.role_of_names(&claims.groups)
        }
    }

    /// The role these group (or scope) names give.
    pub fn role_of_names(&self, names: &[String]) -> Option<Role> {
        let member = |list: &[String]| names.iter().any(|n| list.contains(n));
        if member(&self.settings.operator_groups) {
            Some(Role::Operator)
        } else if member(&self.settings.viewer_groups) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}
