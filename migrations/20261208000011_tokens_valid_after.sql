-- Issue 20, item 6: a password change or reset ends every session made before it. Tokens issued
-- at or before this instant (millisecond precision, see docs/authorization.md) are refused.
ALTER TABLE users ADD COLUMN IF NOT EXISTS tokens_valid_after TIMESTAMPTZ;
