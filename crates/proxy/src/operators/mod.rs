//! Operators: the vendor's staff who run the proxy. They sign in with the vendor's identity
//! provider (any OpenID provider; Okta in the seed back end), whose issuer `[operators] issuer`
//! names. The operator API takes the provider's access tokens (`tokens`); a configured static
//! `admin_token` still works for scripts. What an operator may do follows from their groups (or,
//! for a script's token, its scopes): `[operators] viewer_groups` may read, `operator_groups` may
//! also change things.

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

/// The identity provider's side of the proxy: the issuer's token verifier and the role rules.
pub struct Operators {
    pub settings: OperatorSettings,
    pub verifier: tokens::Verifier,
}

impl Operators {
    /// `None` when no issuer is configured (operators then use the admin token only).
    pub fn new(settings: &OperatorSettings, http: reqwest::Client) -> Option<Arc<Self>> {
        let issuer = settings.issuer.as_ref()?;
        Some(Arc::new(Self {
            settings: settings.clone(),
            verifier: tokens::Verifier::new(
                issuer.as_str().trim_end_matches('/'),
                &settings.audience,
                http,
            ),
        }))
    }

    /// The role a verified token gives: its groups, or (a script's token has none) its scopes,
    /// against the configured lists. The higher role wins; `None` when neither list matches.
    pub fn role_of(&self, claims: &tokens::Claims) -> Option<Role> {
        let names: Vec<&String> = if claims.groups.is_empty() {
            claims.scp.iter().collect()
        } else {
            claims.groups.iter().collect()
        };
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
