-- People sign in to the web console with an email and a password. The column
-- holds an argon2id PHC string (never the password); NULL means no password.
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- A one-time password (the bootstrap admin's) must be changed at first sign-in.
ALTER TABLE users ADD COLUMN password_must_change INTEGER NOT NULL DEFAULT 0;
