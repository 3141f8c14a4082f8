-- UI elements and their framework mappings are owned (issue 11).
--
-- `owner` is `user:<uuid>` for the principal that registered the element (from its credential,
-- never from the payload) or `plugin:<id>` for an element the plugin coordinator registered for
-- a plugin; `owner_name` is the username at registration (NULL for plugins). Rows from before
-- this migration have no owner: only administrators may change them (fail closed).
--
-- `mapping_owners` holds, per framework of `framework_mappings`, the owner of that mapping:
-- `{"gtk": {"owner": "user:<uuid>", "owner_name": "alice"}}`. A mapping without an entry
-- (every mapping from before this migration) is likewise administrators only.
ALTER TABLE ui_elements ADD COLUMN IF NOT EXISTS owner VARCHAR(300)
    CONSTRAINT ui_elements_owner_kind CHECK (owner LIKE 'user:%' OR owner LIKE 'plugin:%');
ALTER TABLE ui_elements ADD COLUMN IF NOT EXISTS owner_name VARCHAR(255);
ALTER TABLE ui_elements ADD COLUMN IF NOT EXISTS mapping_owners JSONB NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS idx_ui_elements_owner ON ui_elements (owner);
