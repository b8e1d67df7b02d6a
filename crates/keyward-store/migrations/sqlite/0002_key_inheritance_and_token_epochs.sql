-- A key created with neither roles nor scopes acts with its owner's permissions
-- as they are at each request (earlier keys copied the owner's roles instead).
ALTER TABLE keys ADD COLUMN inherits_owner INTEGER NOT NULL DEFAULT 0;
-- Access tokens carry the epochs they were bought under: a key lock or a user
-- disable bumps them, so those tokens never work again.
ALTER TABLE keys ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
