-- The ASCOM engine's device registry, keyed by the stable Alpaca UniqueID (a device that comes
-- back at a new address keeps its identity), and the telescope pools: role -> device.
CREATE TABLE IF NOT EXISTS ascom_registry (
    unique_id      TEXT PRIMARY KEY,
    device_type    TEXT NOT NULL
        CHECK (device_type IN ('Telescope', 'Camera', 'Dome', 'Focuser', 'FilterWheel', 'Rotator')),
    device_number  INTEGER NOT NULL CHECK (device_number >= 0),
    name           TEXT NOT NULL,
    server_url     TEXT NOT NULL,
    first_seen     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_connected TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_ascom_registry_server ON ascom_registry (server_url);

CREATE TABLE IF NOT EXISTS telescope_pools (
    telescope_id UUID NOT NULL,
    role         TEXT NOT NULL
        CHECK (role IN ('telescope', 'camera', 'dome', 'focuser', 'filterwheel', 'rotator')),
    unique_id    TEXT NOT NULL REFERENCES ascom_registry (unique_id) ON DELETE CASCADE,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (telescope_id, role)
);
CREATE INDEX IF NOT EXISTS idx_telescope_pools_device ON telescope_pools (unique_id);
