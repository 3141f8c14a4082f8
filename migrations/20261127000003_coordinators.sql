-- Tables the Go framework never had (§8.7, §12.3 #19): the application service registry,
-- health history kept by the message coordinator, installed plugins and UI elements.
-- Idempotent: safe to apply on a database that already has them.

CREATE TABLE IF NOT EXISTS service_registry (
    id             VARCHAR(255) PRIMARY KEY,
    name           VARCHAR(255) NOT NULL,
    endpoint       TEXT NOT NULL DEFAULT '',
    status         VARCHAR(20) NOT NULL DEFAULT 'healthy'
        CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
    metadata       JSONB NOT NULL DEFAULT '{}',
    registered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    registered_by  UUID
);
CREATE INDEX IF NOT EXISTS idx_service_registry_last_heartbeat ON service_registry (last_heartbeat);
CREATE INDEX IF NOT EXISTS idx_service_registry_name ON service_registry (name);

CREATE TABLE IF NOT EXISTS health_history (
    id          BIGSERIAL PRIMARY KEY,
    coordinator VARCHAR(255) NOT NULL,
    status      VARCHAR(20) NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    -- Why the row was written: a status change, a periodic sample, a missed deadline.
    reason      VARCHAR(20) NOT NULL DEFAULT 'sample',
    details     JSONB NOT NULL DEFAULT '{}',
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_health_history_coordinator_time ON health_history (coordinator, recorded_at);
CREATE INDEX IF NOT EXISTS idx_health_history_recorded_at ON health_history (recorded_at);

CREATE TABLE IF NOT EXISTS plugins (
    guid          UUID PRIMARY KEY,
    name          VARCHAR(255) NOT NULL,
    version       VARCHAR(100) NOT NULL,
    status        VARCHAR(20) NOT NULL
        CHECK (status IN ('installed', 'running', 'stopped', 'failed', 'updating')),
    -- What the operator asked for; a restart of the coordinator brings running plugins back.
    desired       VARCHAR(20) NOT NULL DEFAULT 'stopped' CHECK (desired IN ('running', 'stopped')),
    source        TEXT NOT NULL DEFAULT '',
    sha256        CHAR(64) NOT NULL,
    install_dir   TEXT NOT NULL,
    manifest      JSONB NOT NULL,
    runtime       VARCHAR(50) NOT NULL DEFAULT '',
    container_id  TEXT,
    last_error    TEXT,
    installed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_verified TIMESTAMPTZ,
    installed_by  UUID
);

CREATE TABLE IF NOT EXISTS ui_elements (
    id                 VARCHAR(255) PRIMARY KEY,
    plugin_guid        VARCHAR(255),
    element_type       VARCHAR(20) NOT NULL
        CHECK (element_type IN ('menu', 'panel', 'widget', 'tool', 'dialog')),
    title              VARCHAR(255) NOT NULL,
    api_endpoint       TEXT NOT NULL DEFAULT '',
    sort_order         INTEGER NOT NULL DEFAULT 0,
    enabled            BOOLEAN NOT NULL DEFAULT true,
    metadata           JSONB NOT NULL DEFAULT '{}',
    framework_mappings JSONB NOT NULL DEFAULT '{}',
    registered_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    registered_by      UUID
);
CREATE INDEX IF NOT EXISTS idx_ui_elements_plugin ON ui_elements (plugin_guid);
CREATE INDEX IF NOT EXISTS idx_ui_elements_type ON ui_elements (element_type);

INSERT INTO coordinator_config (coordinator_name, config_key, config_value, config_type, description) VALUES
    ('message-coordinator', 'history_retention', '604800', 'duration', 'Seconds of health history kept'),
    ('message-coordinator', 'history_sample_interval', '60', 'duration', 'Seconds between stored health samples per coordinator'),
    ('application-coordinator', 'service_drop_after', '900', 'duration', 'Seconds without heartbeat before a service is dropped'),
    ('datastore-coordinator', 'max_lifetime', '3600', 'duration', 'Seconds a pooled connection lives'),
    ('datastore-coordinator', 'idle_timeout', '1800', 'duration', 'Seconds an idle pooled connection is kept'),
    ('datastore-coordinator', 'stats_interval', '10', 'duration', 'Seconds between pool statistics publications')
ON CONFLICT (coordinator_name, config_key) DO NOTHING;
