-- Schema version 1 on Postgres: what SQLite's migrations 1 to 13 built, in Postgres's own types
-- (uuid, timestamptz, bytea). Bodies stay text: a document's canonical JSON is compared byte for
-- byte, and a bundle is resent byte for byte.

CREATE TABLE token_sets (
    id                uuid PRIMARY KEY,
    provider          text NOT NULL,
    -- AEAD ciphertext of the token set; names its key id; bound to this row's id.
    ciphertext        bytea NOT NULL,
    access_expires_at timestamptz NOT NULL,
    last_refresh_at   timestamptz,
    created_at        timestamptz NOT NULL,
    -- Bumped on every write: writers compare-and-swap on it.
    version           bigint NOT NULL DEFAULT 1
);

CREATE TABLE connections (
    id                 uuid PRIMARY KEY,
    provider           text NOT NULL,
    tenant_id          text NOT NULL,
    tenant_name        text NOT NULL,
    xero_connection_id uuid,
    token_set_id       uuid REFERENCES token_sets(id) ON DELETE SET NULL,
    status             text NOT NULL CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    status_reason      text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    UNIQUE (provider, tenant_id)
);
CREATE INDEX connections_token_set ON connections(token_set_id);

CREATE TABLE devices (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    client_id     text NOT NULL,
    connection_id uuid NOT NULL REFERENCES connections(id),
    paired_at     timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_seen_at  timestamptz
);
CREATE INDEX devices_connection ON devices(connection_id);

CREATE TABLE device_tokens (
    hash       bytea PRIMARY KEY,
    device_id  uuid NOT NULL REFERENCES devices(id),
    kind       text NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    rotated_at timestamptz,
    -- For a rotated refresh token: the pair that replaced it, encrypted.
    successor  bytea,
    revoked_at timestamptz
);
CREATE INDEX device_tokens_device ON device_tokens(device_id);

CREATE TABLE pairings (
    id               uuid PRIMARY KEY,
    device_code_hash bytea NOT NULL UNIQUE,
    user_code        text NOT NULL,
    client_id        text NOT NULL,
    device_id        uuid NOT NULL,
    device_name      text NOT NULL,
    provider         text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    connection_id    uuid REFERENCES connections(id),
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    interval_secs    bigint NOT NULL,
    last_poll_at     timestamptz,
    moves_from       uuid
);
CREATE INDEX pairings_user_code ON pairings(user_code);

CREATE TABLE oauth_states (
    state_hash   bytea PRIMARY KEY,
    pairing_id   uuid NOT NULL REFERENCES pairings(id),
    browser_hash bytea NOT NULL,
    verifier     bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

CREATE TABLE pending_choices (
    id_hash      bytea PRIMARY KEY,
    pairing_id   uuid NOT NULL REFERENCES pairings(id),
    browser_hash bytea NOT NULL,
    token_set_id uuid NOT NULL REFERENCES token_sets(id),
    tenants      text NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX pending_choices_browser ON pending_choices(browser_hash, expires_at);

CREATE TABLE documents (
    id              uuid PRIMARY KEY,
    device_id       uuid NOT NULL REFERENCES devices(id),
    connection_id   uuid NOT NULL REFERENCES connections(id),
    kind            text NOT NULL CHECK (kind IN ('invoice', 'payment', 'shift', 'credit_note', 'order')),
    client_ref      text NOT NULL,
    -- The document as accepted (canonical JSON of the wire type).
    body            text NOT NULL,
    state           text NOT NULL,
    -- Any provider's id and number for it (named when Xero was the only provider).
    xero_id         text,
    xero_number     text,
    message         text,
    attempts        bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    unknown_since   timestamptz,
    bundle_key      text,
    waits_for       text,
    version         bigint NOT NULL DEFAULT 1,
    resends         bigint NOT NULL DEFAULT 0,
    discard_reason  text,
    provider_status text,
    UNIQUE (device_id, client_ref)
);
CREATE INDEX documents_outbox ON documents(connection_id, state, kind, created_at);
CREATE INDEX documents_bundle ON documents(bundle_key) WHERE bundle_key IS NOT NULL;

CREATE TABLE document_versions (
    document_id uuid NOT NULL REFERENCES documents(id),
    version     bigint NOT NULL,
    body        text NOT NULL,
    state       text NOT NULL,
    message     text,
    created_at  timestamptz NOT NULL,
    replaced_at timestamptz NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE TABLE events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id uuid NOT NULL,
    device_id     uuid,
    document_id   uuid,
    body          text NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX events_device ON events(device_id, seq);

CREATE TABLE mappings (
    connection_id uuid PRIMARY KEY REFERENCES connections(id),
    body          text NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE contact_ids (
    connection_id uuid NOT NULL REFERENCES connections(id),
    name_key      text NOT NULL,
    contact_id    uuid NOT NULL,
    PRIMARY KEY (connection_id, name_key)
);

CREATE TABLE contact_generations (
    connection_id uuid NOT NULL REFERENCES connections(id),
    name_key      text NOT NULL,
    generation    bigint NOT NULL,
    PRIMARY KEY (connection_id, name_key)
);

CREATE TABLE bundles (
    idempotency_key text PRIMARY KEY,
    connection_id   uuid NOT NULL,
    path            text NOT NULL,
    collection      text NOT NULL,
    body            text NOT NULL,
    -- The document ids, in the order of the bundle's elements.
    members         uuid[] NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE TABLE key_check (
    id         integer PRIMARY KEY CHECK (id = 1),
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE organisations (
    connection_id uuid PRIMARY KEY REFERENCES connections(id),
    timezone      text NOT NULL,
    xero_timezone text NOT NULL,
    short_code    text,
    currency      text,
    updated_at    timestamptz NOT NULL
);
