-- Coordinator configuration with change history (Go schema §8.2, without its DROP TABLE preamble).
-- gen_random_uuid() is built into PostgreSQL 13 and later.

CREATE TABLE IF NOT EXISTS coordinator_config (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    coordinator_name VARCHAR(255) NOT NULL,
    config_key       VARCHAR(255) NOT NULL,
    config_value     JSONB NOT NULL,
    config_type      VARCHAR(50) NOT NULL
        CHECK (config_type IN ('string', 'int', 'bool', 'float', 'duration', 'object')),
    description      TEXT,
    is_secret        BOOLEAN NOT NULL DEFAULT false,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by       UUID,
    CONSTRAINT unique_coordinator_config UNIQUE (coordinator_name, config_key)
);
CREATE INDEX IF NOT EXISTS idx_coordinator_config_name ON coordinator_config (coordinator_name);
CREATE INDEX IF NOT EXISTS idx_coordinator_config_key ON coordinator_config (config_key);
CREATE INDEX IF NOT EXISTS idx_coordinator_config_updated_at ON coordinator_config (updated_at);

CREATE TABLE IF NOT EXISTS coordinator_config_history (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    config_id        UUID NOT NULL REFERENCES coordinator_config (id) ON DELETE CASCADE,
    coordinator_name VARCHAR(255) NOT NULL,
    config_key       VARCHAR(255) NOT NULL,
    old_value        JSONB,
    new_value        JSONB NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    changed_by       UUID
);
CREATE INDEX IF NOT EXISTS idx_config_history_config_id ON coordinator_config_history (config_id);
CREATE INDEX IF NOT EXISTS idx_config_history_changed_at ON coordinator_config_history (changed_at);

-- History on insert too (old_value NULL), so a key's whole life is kept; updated_at kept by the
-- database rather than trusted to every writer.
CREATE OR REPLACE FUNCTION track_coordinator_config_changes() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO coordinator_config_history (config_id, coordinator_name, config_key, old_value, new_value, changed_by)
        VALUES (NEW.id, NEW.coordinator_name, NEW.config_key, NULL, NEW.config_value, NEW.updated_by);
    ELSIF NEW.config_value IS DISTINCT FROM OLD.config_value THEN
        INSERT INTO coordinator_config_history (config_id, coordinator_name, config_key, old_value, new_value, changed_by)
        VALUES (NEW.id, NEW.coordinator_name, NEW.config_key, OLD.config_value, NEW.config_value, NEW.updated_by);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION touch_coordinator_config() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS coordinator_config_change_trigger ON coordinator_config;
CREATE TRIGGER coordinator_config_change_trigger
    AFTER INSERT OR UPDATE ON coordinator_config
    FOR EACH ROW EXECUTE FUNCTION track_coordinator_config_changes();

DROP TRIGGER IF EXISTS coordinator_config_touch_trigger ON coordinator_config;
CREATE TRIGGER coordinator_config_touch_trigger
    BEFORE UPDATE ON coordinator_config
    FOR EACH ROW EXECUTE FUNCTION touch_coordinator_config();

-- Seed rows of the Go framework (§9.1), minus the secrets it stored in plain text (database URLs
-- and the JWT secret come from the environment or .pgpass, never from this table).
INSERT INTO coordinator_config (coordinator_name, config_key, config_value, config_type, description) VALUES
    ('message-coordinator', 'monitor_interval', '30', 'duration', 'Seconds between health publications'),
    ('message-coordinator', 'max_queue_size', '1000', 'int', 'Bounded queue size'),
    ('message-coordinator', 'validation_timeout', '30', 'duration', 'Seconds to wait for a validation'),
    ('application-coordinator', 'registry_check_interval', '60', 'duration', 'Seconds between registry sweeps'),
    ('application-coordinator', 'service_timeout', '180', 'duration', 'Seconds without heartbeat before a service is unhealthy'),
    ('security-coordinator', 'token_duration', '3600', 'duration', 'JWT lifetime in seconds'),
    ('telescope-coordinator', 'discovery_port', '32227', 'int', 'Alpaca UDP discovery port'),
    ('telescope-coordinator', 'health_check_interval', '30', 'duration', 'Seconds between device health checks'),
    ('plugin-coordinator', 'plugin_dir', '"/var/lib/bigskies/plugins"', 'string', 'Plugin directory'),
    ('plugin-coordinator', 'scan_interval', '300', 'duration', 'Seconds between plugin directory scans'),
    ('datastore-coordinator', 'max_connections', '20', 'int', 'Pool maximum'),
    ('datastore-coordinator', 'min_connections', '5', 'int', 'Pool minimum'),
    ('uielement-coordinator', 'scan_interval', '600', 'duration', 'Seconds between UI element scans')
ON CONFLICT (coordinator_name, config_key) DO NOTHING;
