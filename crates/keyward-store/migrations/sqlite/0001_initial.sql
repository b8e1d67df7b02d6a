-- Keyward's SQLite schema. Times are Unix seconds (UTC); lists are JSON text.

-- Deployment metadata: the master key check value, later the token signing keys.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    max_keys_per_user   INTEGER NOT NULL CHECK (max_keys_per_user BETWEEN 1 AND 100000),
    default_expiry_days INTEGER,
    allow_direct_secret INTEGER NOT NULL,
    audit_retention_days INTEGER,
    hawk_require_payload_hash INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    name       TEXT NOT NULL,
    email      TEXT,
    kind       TEXT NOT NULL CHECK (kind IN ('human', 'service')),
    status     TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at INTEGER NOT NULL,
    -- Deleted users keep their row so their keys' history still names them.
    deleted_at INTEGER
);
CREATE INDEX users_org ON users(org_id);

-- Custom roles; the built-in ones live in code and are referenced by name.
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    max_keys    INTEGER,
    CONSTRAINT roles_name_unique UNIQUE (org_id, name)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL,
    PRIMARY KEY (user_id, role_id)
);

-- Scopes an org declares for its own APIs.
CREATE TABLE scopes (
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    resources   TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);

-- Deleted keys keep their row (secret material wiped) so their id is never reused.
CREATE TABLE keys (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs(id),
    owner_id               TEXT NOT NULL REFERENCES users(id),
    name                   TEXT NOT NULL,
    description            TEXT NOT NULL,
    comment                TEXT NOT NULL,
    scopes                 TEXT NOT NULL,
    expires_at             INTEGER,
    locked                 INTEGER NOT NULL,
    network_restrictions   TEXT NOT NULL,
    reauth_timeout_s       INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    created_by             TEXT NOT NULL,
    updated_at             INTEGER NOT NULL,
    rolled_at              INTEGER,
    last_used_at           INTEGER,
    last_used_ip           TEXT,
    imported               INTEGER NOT NULL,
    secret_digest          BLOB,
    secret_ciphertext      BLOB,
    prev_secret_digest     BLOB,
    prev_secret_ciphertext BLOB,
    prev_valid_until       INTEGER,
    deleted_at             INTEGER,
    -- Bumped by every update: an update made from an older read is refused.
    version                INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT keys_secret_digest_unique UNIQUE (secret_digest)
);
CREATE INDEX keys_owner ON keys(owner_id) WHERE deleted_at IS NULL;
CREATE INDEX keys_org_created ON keys(org_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE key_roles (
    key_id  TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL,
    PRIMARY KEY (key_id, role_id)
);
CREATE INDEX key_roles_role ON key_roles(role_id);

-- The audit log: one hash chain per org over a global sequence.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL,
    at           INTEGER NOT NULL,
    actor_id     TEXT NOT NULL,
    actor_key_id TEXT,
    source_ip    TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_org_seq ON audit(org_id, seq);

-- Where retention cut an org's chain: the hash the remaining entries continue from.
CREATE TABLE audit_anchors (
    org_id TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   TEXT NOT NULL
);
