//! `/_sandbox/idp/...`: the identity provider's control calls. Rotate the signing keys, manage the
//! people and their groups, and point the console's client at where a test's proxy listens.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use super::model::{user_id, User};
use super::world;
use crate::harness::control::{body, fail, Answer};
use crate::{Secret, Shared};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/keys/rotate", post(rotate))
        .route("/users", post(create_user).get(list_users))
        .route("/users/{email}", put(update_user).delete(remove_user))
        .route("/clients/{client_id}", put(update_client))
}

/// `POST /_sandbox/idp/keys/rotate`: a new signing key from now on; the old one stays published.
async fn rotate(State(shared): State<Arc<Shared>>) -> Answer {
    let kid = shared.rotate_keys("idp");
    let _ = shared.persist();
    Ok(Json(json!({ "kid": kid })).into_response())
}

fn view(u: &User) -> serde_json::Value {
    json!({"id": u.id, "email": u.email, "name": u.name, "groups": u.groups, "active": u.active})
}

async fn list_users(State(shared): State<Arc<Shared>>) -> Answer {
    let users: Vec<_> = world(&shared).users.values().map(view).collect();
    Ok(Json(json!({ "users": users })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// `POST /_sandbox/idp/users`: a person who can sign in.
async fn create_user(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Answer {
    let req: NewUser = body(&bytes)?;
    let email = req.email.trim().to_ascii_lowercase();
    if !email.contains('@') || req.password.is_empty() {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "email must be an address and password must not be empty",
        ));
    }
    let mut world = world(&shared);
    if world.users.contains_key(&email) {
        return Err(fail(
            StatusCode::CONFLICT,
            format!("a user '{email}' exists"),
        ));
    }
    let user = User {
        id: user_id(&email),
        email: email.clone(),
        password: Secret::new(req.password),
        name: req.name.unwrap_or_else(|| email.clone()),
        groups: req.groups,
        active: true,
    };
    let answer = view(&user);
    world.users.insert(email, user);
    drop(world);
    let _ = shared.persist();
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    password: Option<String>,
    groups: Option<Vec<String>>,
    active: Option<bool>,
}

/// `PUT /_sandbox/idp/users/{email}`: another password, other groups, or deactivated.
async fn update_user(
    State(shared): State<Arc<Shared>>,
    Path(email): Path<String>,
    bytes: Bytes,
) -> Answer {
    let patch: UserPatch = body(&bytes)?;
    let mut world = world(&shared);
    let Some(user) = world.users.get_mut(&email.to_ascii_lowercase()) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no user '{email}'")));
    };
    if let Some(p) = patch.password {
        user.password = Secret::new(p);
    }
    if let Some(g) = patch.groups {
        user.groups = g;
    }
    if let Some(a) = patch.active {
        user.active = a;
    }
    let answer = view(user);
    drop(world);
    let _ = shared.persist();
    Ok(Json(answer).into_response())
}

async fn remove_user(State(shared): State<Arc<Shared>>, Path(email): Path<String>) -> Answer {
    let removed = world(&shared).users.remove(&email.to_ascii_lowercase());
    match removed {
        Some(_) => {
            let _ = shared.persist();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        None => Err(fail(StatusCode::NOT_FOUND, format!("no user '{email}'"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientPatch {
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

/// `PUT /_sandbox/idp/clients/{client_id}`: where its sign-ins and sign-outs may return.
async fn update_client(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Answer {
    let patch: ClientPatch = body(&bytes)?;
    if let Some(bad) = patch
        .redirect_uris
        .iter()
        .chain(patch.post_logout_redirect_uris.iter())
        .flatten()
        .find(|u| url::Url::parse(u).is_err())
    {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("'{bad}' is not an absolute URL"),
        ));
    }
    let mut world = world(&shared);
    let Some(client) = world.clients.get_mut(&client_id) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no client '{client_id}'"),
        ));
    };
    if let Some(u) = patch.redirect_uris {
        client.redirect_uris = u;
    }
    if let Some(u) = patch.post_logout_redirect_uris {
        client.post_logout_redirect_uris = u;
    }
    let answer = json!({"client_id": client.client_id, "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris});
    drop(world);
    let _ = shared.persist();
    Ok(Json(answer).into_response())
}
