-- Operators signing in to the console: a sign-in under way (its state's hash, the browser it is
-- bound to, and its nonce and PKCE verifier sealed under the master key), and the sessions of
-- those signed in (the cookie's hash; the ID token, kept for signing out at the provider, sealed).
CREATE TABLE operator_logins (
    state_hash BLOB PRIMARY KEY,
    browser_hash BLOB NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL -- unix milliseconds
) WITHOUT ROWID;

CREATE TABLE operator_sessions (
    id_hash BLOB PRIMARY KEY,
    subject TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    sealed_id_token BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
