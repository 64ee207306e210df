-- Which proxy delivers each connection's documents (see LeaseStore): one at a time, until
-- `expires_at` on the database's clock unless renewed. `epoch` moves on at each take; delivery
-- writes check it. `pacing` is the pacer's state as its last holder left it (JSON).
CREATE TABLE delivery_leases (
    connection_id uuid PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    holder uuid NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    released boolean NOT NULL DEFAULT false,
    pacing text
);

-- Attempts counted per kind and key (a client's address, a browser session) in numbered
-- windows: the pairing and operator throttles, one budget across proxies.
CREATE TABLE throttles (
    kind text NOT NULL,
    key bytea NOT NULL,
    win bigint NOT NULL,
    n bigint NOT NULL,
    prev bigint NOT NULL DEFAULT 0,   -- the count of the window before `win`
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Calls counted in slices of a window (a 64th each), for a budget every proxy shares: a
-- provider's app-wide allowance (Xero: 10,000 calls a minute across all organisations).
CREATE TABLE call_slices (
    kind text NOT NULL,
    key text NOT NULL,
    slice bigint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (kind, key, slice)
);

-- Which proxy is refreshing a token set (one refresh at a time across proxies: a rotating
-- refresh token is spent by its first use). The others wait for the new row.
CREATE TABLE refresh_leases (
    token_set_id uuid PRIMARY KEY REFERENCES token_sets (id) ON DELETE CASCADE,
    holder uuid NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
