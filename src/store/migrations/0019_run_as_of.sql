-- Issue 19: the instant an import's export was taken (`import --as-of`, a
-- connector's `[as_of]`, or the wall clock when it ran). History is read in
-- date order: an import dated before the last applied snapshot's is refused.
-- Runs recorded before this column have none: their start stands for it.
ALTER TABLE runs ADD COLUMN as_of TEXT;
