-- Operators signing in to the console: a sign-in under way (its state's hash, the browser it is
-- bound to, and its nonce and PKCE verifier sealed under the master key), and the sessions of
-- those signed in (the cookie's hash; the ID token, kept for signing out at the provider, sealed).
-- In the database, so any replica serves any step.
CREATE TABLE operator_logins (
    state_hash bytea PRIMARY KEY,
    browser_hash bytea NOT NULL,
    sealed bytea NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE operator_sessions (
    id_hash bytea PRIMARY KEY,
    subject text NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    csrf text NOT NULL,
    sealed_id_token bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
