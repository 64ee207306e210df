-- Schema version 9: what the proxy keeps of each connected organisation from Xero's
-- `GET /Organisation`: its time zone (IANA, mapped from Xero's Windows name; the organisation's
-- local dates are the dates a person sees) and its short code (for links into Xero).
CREATE TABLE organisations (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id),
    timezone      TEXT NOT NULL,
    xero_timezone TEXT NOT NULL,
    short_code    TEXT,
    updated_at    INTEGER NOT NULL
);
