-- Telescope coordinator schema: observatory sites, telescope configurations, per-telescope
-- permission grants (with expiry) and observing sessions. Go schema §8.4 without its DROP TABLE
-- preamble, and with what Go lacked: group ownership that the schema can represent, sessions
-- that are exclusive per telescope. Idempotent: safe to run again.
-- Device roles live in `telescope_pools` (ASCOM engine migration), keyed by the Alpaca UniqueID.

CREATE TABLE IF NOT EXISTS observatory_sites (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(255) NOT NULL UNIQUE,
    description TEXT,
    latitude    DOUBLE PRECISION NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   DOUBLE PRECISION NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    elevation   DOUBLE PRECISION NOT NULL DEFAULT 0,
    timezone    VARCHAR(100) NOT NULL DEFAULT 'UTC',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The Go seed row, same fixed UUID.
INSERT INTO observatory_sites (id, name, description, latitude, longitude, elevation, timezone)
VALUES ('40000000-0000-0000-0000-000000000001', 'Default Observatory', 'Default observatory site',
        34.0522, -118.2437, 100, 'America/Los_Angeles')
ON CONFLICT DO NOTHING;

-- `owner_id` names a user or a group according to `owner_type`, so it cannot be a foreign key
-- to `users` (the Go schema's FK made group ownership impossible); the coordinator checks it.
CREATE TABLE IF NOT EXISTS telescope_configurations (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(255) NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner_id    UUID NOT NULL,
    owner_type  VARCHAR(50) NOT NULL CHECK (owner_type IN ('user', 'group')),
    site_id     UUID REFERENCES observatory_sites (id) ON DELETE SET NULL,
    mount_type  VARCHAR(50) NOT NULL CHECK (mount_type IN ('altaz', 'equatorial', 'dobsonian')),
    enabled     BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (name, owner_id)
);
CREATE INDEX IF NOT EXISTS idx_telescope_configurations_owner ON telescope_configurations (owner_id, owner_type);
CREATE INDEX IF NOT EXISTS idx_telescope_configurations_site ON telescope_configurations (site_id);

CREATE TABLE IF NOT EXISTS telescope_permissions (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    telescope_id   UUID NOT NULL REFERENCES telescope_configurations (id) ON DELETE CASCADE,
    principal_id   UUID NOT NULL,
    principal_type VARCHAR(50) NOT NULL CHECK (principal_type IN ('user', 'group')),
    permission     VARCHAR(50) NOT NULL CHECK (permission IN ('read', 'write', 'control')),
    granted_by     UUID REFERENCES users (id) ON DELETE SET NULL,
    granted_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ,
    UNIQUE (telescope_id, principal_id, principal_type, permission)
);
CREATE INDEX IF NOT EXISTS idx_telescope_permissions_principal ON telescope_permissions (principal_id, principal_type);
CREATE INDEX IF NOT EXISTS idx_telescope_permissions_expires ON telescope_permissions (expires_at);

CREATE TABLE IF NOT EXISTS telescope_sessions (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    telescope_id UUID NOT NULL REFERENCES telescope_configurations (id) ON DELETE CASCADE,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at     TIMESTAMPTZ,
    status       VARCHAR(50) NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'completed', 'aborted', 'error')),
    session_type VARCHAR(50) NOT NULL DEFAULT 'manual'
        CHECK (session_type IN ('manual', 'automated', 'maintenance')),
    notes        TEXT,
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    CHECK ((status = 'active') = (ended_at IS NULL))
);
-- One active session per telescope: the database, not a race in the coordinator, decides.
CREATE UNIQUE INDEX IF NOT EXISTS idx_telescope_sessions_one_active
    ON telescope_sessions (telescope_id) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS idx_telescope_sessions_user ON telescope_sessions (user_id);
