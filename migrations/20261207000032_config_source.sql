-- Seeded or operator-set: which coordinator_config rows are defaults written by the migrations.
--
-- A setting resolves as: operator-set row > a value given explicitly at start (the command line,
-- e.g. --plugin-dir) > seeded row > built-in default. Without this column a seeded default beat
-- the command line, so every deployment on a host shared the seeded plugin_dir.
--
-- Every write counts as operator-set (an operator's SQL, ConfigStore::set, the config/update
-- path, the scenario harness), unless the writing transaction declares it is seeding:
--     SET LOCAL bigskies.config_seeding = 'on';
-- which is what a later migration that seeds rows does before its INSERT.

ALTER TABLE coordinator_config ADD COLUMN IF NOT EXISTS seeded BOOLEAN NOT NULL DEFAULT false;

-- The rows the earlier migrations seeded, when they still hold their seeded value and were
-- never changed (only the insert in their history). The touch trigger is held off so
-- updated_at keeps saying when the row was last really written.
ALTER TABLE coordinator_config DISABLE TRIGGER coordinator_config_touch_trigger;
UPDATE coordinator_config c SET seeded = true
  FROM (VALUES
    ('message-coordinator', 'monitor_interval', '30'::jsonb),
    ('message-coordinator', 'max_queue_size', '1000'),
    ('message-coordinator', 'validation_timeout', '30'),
    ('application-coordinator', 'registry_check_interval', '60'),
    ('application-coordinator', 'service_timeout', '180'),
    ('security-coordinator', 'token_duration', '3600'),
    ('telescope-coordinator', 'discovery_port', '32227'),
    ('telescope-coordinator', 'health_check_interval', '30'),
    ('plugin-coordinator', 'plugin_dir', '"/var/lib/bigskies/plugins"'),
    ('plugin-coordinator', 'scan_interval', '300'),
    ('datastore-coordinator', 'max_connections', '20'),
    ('datastore-coordinator', 'min_connections', '5'),
    ('uielement-coordinator', 'scan_interval', '600'),
    ('security-coordinator', 'max_failed_logins', '5'),
    ('security-coordinator', 'lockout_duration', '900'),
    ('security-coordinator', 'password_min_length', '12'),
    ('security-coordinator', 'argon2_memory_kib', '19456'),
    ('security-coordinator', 'argon2_iterations', '2'),
    ('security-coordinator', 'argon2_parallelism', '1'),
    ('message-coordinator', 'history_retention', '604800'),
    ('message-coordinator', 'history_sample_interval', '60'),
    ('application-coordinator', 'service_drop_after', '900'),
    ('datastore-coordinator', 'max_lifetime', '3600'),
    ('datastore-coordinator', 'idle_timeout', '1800'),
    ('datastore-coordinator', 'stats_interval', '10')
  ) AS s (coordinator_name, config_key, config_value)
 WHERE c.coordinator_name = s.coordinator_name
   AND c.config_key = s.config_key
   AND c.config_value = s.config_value
   AND (SELECT count(*) FROM coordinator_config_history h WHERE h.config_id = c.id) <= 1;
ALTER TABLE coordinator_config ENABLE TRIGGER coordinator_config_touch_trigger;

-- From now on the database marks every write, whatever path it takes.
CREATE OR REPLACE FUNCTION mark_coordinator_config_source() RETURNS trigger AS $$
BEGIN
    NEW.seeded := coalesce(current_setting('bigskies.config_seeding', true), '') = 'on';
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS coordinator_config_source_trigger ON coordinator_config;
CREATE TRIGGER coordinator_config_source_trigger
    BEFORE INSERT OR UPDATE ON coordinator_config
    FOR EACH ROW EXECUTE FUNCTION mark_coordinator_config_source();
