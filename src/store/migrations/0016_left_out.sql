-- The connector files the daemon leaves out (they do not validate), as of its
-- last start or reload: the administrators' digest tells each once, and again
-- only when its reason changes. A file fixed since has no row.
CREATE TABLE left_out_connectors (
    file      TEXT    PRIMARY KEY,
    connector TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    since     TEXT    NOT NULL,             -- when it was left out for this reason
    reported  INTEGER NOT NULL DEFAULT 0    -- told by a digest
);
