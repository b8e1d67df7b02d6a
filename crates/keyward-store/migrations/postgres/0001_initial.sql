-- Keyward's PostgreSQL schema, the same tables as SQLite's 0001 and 0002 in one step.
-- Times are Unix seconds (UTC); lists are JSON text, so both backends share their row types.
-- Identifiers and names sort bytewise (COLLATE "C"), as SQLite sorts them, whatever the database's locale.

-- Deployment metadata: the master key check value, later the token signing keys.
CREATE TABLE meta (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    name                 TEXT NOT NULL,
    max_keys_per_user    BIGINT NOT NULL CHECK (max_keys_per_user BETWEEN 1 AND 100000),
    default_expiry_days  BIGINT,
    allow_direct_secret  BOOLEAN NOT NULL,
    audit_retention_days BIGINT,
    hawk_require_payload_hash BOOLEAN NOT NULL DEFAULT FALSE,
    created_at           BIGINT NOT NULL
);

CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    email       TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('human', 'service')),
    status      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at  BIGINT NOT NULL,
    -- Deleted users keep their row so their keys' history still names them.
    deleted_at  BIGINT,
    -- Bumped by a disable: access tokens bought before it never work again.
    token_epoch BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_org ON users(org_id);

-- Custom roles; the built-in ones live in code and are referenced by name.
CREATE TABLE roles (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    max_keys    BIGINT,
    CONSTRAINT roles_name_unique UNIQUE (org_id, name)
);

CREATE TABLE user_roles (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, role_id)
);

-- Scopes an org declares for its own APIs.
CREATE TABLE scopes (
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL,
    resources   TEXT NOT NULL,
    CONSTRAINT scopes_pkey PRIMARY KEY (org_id, name)
);

-- Deleted keys keep their row (secret material wiped) so their id is never reused.
CREATE TABLE keys (
    id                     TEXT COLLATE "C" NOT NULL,
    org_id                 TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    owner_id               TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    name                   TEXT COLLATE "C" NOT NULL,
    description            TEXT NOT NULL,
    comment                TEXT NOT NULL,
    scopes                 TEXT NOT NULL,
    expires_at             BIGINT,
    locked                 BOOLEAN NOT NULL,
    network_restrictions   TEXT NOT NULL,
    reauth_timeout_s       BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    created_by             TEXT NOT NULL,
    updated_at             BIGINT NOT NULL,
    rolled_at              BIGINT,
    last_used_at           BIGINT,
    last_used_ip           TEXT,
    imported               BOOLEAN NOT NULL,
    secret_digest          BYTEA,
    secret_ciphertext      BYTEA,
    prev_secret_digest     BYTEA,
    prev_secret_ciphertext BYTEA,
    prev_valid_until       BIGINT,
    deleted_at             BIGINT,
    -- Bumped by every update: an update made from an older read is refused.
    version                BIGINT NOT NULL DEFAULT 0,
    -- A key created with neither roles nor scopes acts with its owner's permissions
    -- as they are at each request.
    inherits_owner         BOOLEAN NOT NULL DEFAULT FALSE,
    -- Bumped by a lock: access tokens bought before it never work again.
    token_epoch            BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT keys_pkey PRIMARY KEY (id),
    -- NULLs (deleted keys) never collide, so a deleted key frees its secret.
    CONSTRAINT keys_secret_digest_unique UNIQUE (secret_digest)
);
CREATE INDEX keys_owner ON keys(owner_id) WHERE deleted_at IS NULL;
CREATE INDEX keys_org_created ON keys(org_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE key_roles (
    key_id  TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    role_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (key_id, role_id)
);
CREATE INDEX key_roles_role ON key_roles(role_id);

-- The audit log: one hash chain per org over a global sequence. The sequence is
-- drawn by the store before it hashes the entry; it never goes back, even when
-- retention deletes the newest entries.
CREATE SEQUENCE audit_seq AS BIGINT;
CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    org_id       TEXT COLLATE "C" NOT NULL,
    at           BIGINT NOT NULL,
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
    org_id TEXT COLLATE "C" PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);
