-- Unsubscribing from informational messages (issue 17, item 25). New tables
-- only: `alerts` is left as it is, with the triggers of 0017 on it.

-- One row per address an informational message was written to: the random
-- token of its unsubscribe link (the link never shows the address). Created the
-- first time such a message is made for the address, reused after.
CREATE TABLE recipients (
    address    TEXT NOT NULL PRIMARY KEY,   -- lowercase
    token      TEXT NOT NULL UNIQUE,        -- 192 random bits, hex
    created_at TEXT NOT NULL
) WITHOUT ROWID;

-- The classes of messages an address no longer wants, since when and how it
-- said so. Only "informational" can be left: mandatory messages always go.
CREATE TABLE opt_outs (
    address TEXT NOT NULL,                  -- lowercase, as in recipients
    class   TEXT NOT NULL CHECK (class IN ('informational')),
    since   TEXT NOT NULL,
    how     TEXT NOT NULL CHECK (how IN ('one-click', 'page')),
    PRIMARY KEY (address, class)
) WITHOUT ROWID;
