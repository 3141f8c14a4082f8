-- Security schema: accounts, RBAC, API keys, token revocations, audit log, TLS certificates.
-- Go schema §8.3 without its DROP TABLE preamble, plus what Go lacked (soft delete, lockout,
-- API keys, persisted revocations, audit). Idempotent: safe to run again.
-- No user and no password is seeded: the first administrator is created at start-up from a
-- secret given to the security coordinator (BIGSKIES_ADMIN_PASSWORD or a file).

CREATE TABLE IF NOT EXISTS users (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username            VARCHAR(255) NOT NULL UNIQUE,
    email               VARCHAR(255) NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL DEFAULT true,
    failed_attempts     INTEGER NOT NULL DEFAULT 0,
    locked_until        TIMESTAMPTZ,
    last_login_at       TIMESTAMPTZ,
    password_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at          TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_users_username ON users (username);
CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);
CREATE INDEX IF NOT EXISTS idx_users_enabled ON users (enabled);

CREATE TABLE IF NOT EXISTS groups (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(255) NOT NULL UNIQUE,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS roles (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(255) NOT NULL UNIQUE,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- `*` in resource or action matches any value (used by the seeded administrator grant).
CREATE TABLE IF NOT EXISTS permissions (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    resource    VARCHAR(255) NOT NULL,
    action      VARCHAR(255) NOT NULL,
    effect      VARCHAR(50) NOT NULL CHECK (effect IN ('allow', 'deny')),
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_permissions_unique ON permissions (resource, action, effect);

CREATE TABLE IF NOT EXISTS user_groups (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id   UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX IF NOT EXISTS idx_user_groups_group ON user_groups (group_id);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id    UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX IF NOT EXISTS idx_user_roles_role ON user_roles (role_id);

CREATE TABLE IF NOT EXISTS role_permissions (
    role_id       UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_id UUID NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, permission_id)
);
CREATE INDEX IF NOT EXISTS idx_role_permissions_permission ON role_permissions (permission_id);

CREATE TABLE IF NOT EXISTS group_permissions (
    group_id      UUID NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    permission_id UUID NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, permission_id)
);
CREATE INDEX IF NOT EXISTS idx_group_permissions_permission ON group_permissions (permission_id);

-- API keys: only the SHA-256 of the key is kept; the prefix identifies a key in listings.
CREATE TABLE IF NOT EXISTS api_keys (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         VARCHAR(255) NOT NULL,
    key_prefix   VARCHAR(32) NOT NULL,
    key_hash     CHAR(64) NOT NULL UNIQUE,
    scopes       TEXT[] NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_api_keys_user ON api_keys (user_id);

-- Revoked credentials (token jti or `apikey:<id>`), kept until the credential would have expired.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        VARCHAR(255) PRIMARY KEY,
    user_id    UUID,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason     TEXT
);
CREATE INDEX IF NOT EXISTS idx_revoked_tokens_expires ON revoked_tokens (expires_at);

CREATE TABLE IF NOT EXISTS audit_log (
    id          BIGSERIAL PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    event       VARCHAR(64) NOT NULL,
    outcome     VARCHAR(16) NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    user_id     UUID,
    username    VARCHAR(255),
    target      TEXT,
    detail      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS idx_audit_log_occurred ON audit_log (occurred_at);
CREATE INDEX IF NOT EXISTS idx_audit_log_user ON audit_log (user_id);
CREATE INDEX IF NOT EXISTS idx_audit_log_event ON audit_log (event);

CREATE TABLE IF NOT EXISTS tls_certificates (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain          VARCHAR(255) NOT NULL UNIQUE,
    certificate_pem TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    sans            TEXT[] NOT NULL DEFAULT '{}',
    not_before      TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ NOT NULL,
    issuer          VARCHAR(100) NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_tls_certificates_expires ON tls_certificates (expires_at);
CREATE INDEX IF NOT EXISTS idx_tls_certificates_issuer ON tls_certificates (issuer);

-- Seeds of the Go framework (§5.4), same fixed UUIDs, minus its admin user and password.
INSERT INTO roles (id, name, description) VALUES
    ('10000000-0000-0000-0000-000000000001', 'admin', 'Full system administrator'),
    ('10000000-0000-0000-0000-000000000002', 'operator', 'Telescope operator'),
    ('10000000-0000-0000-0000-000000000003', 'observer', 'Read-only observer'),
    ('10000000-0000-0000-0000-000000000004', 'developer', 'Plugin developer')
ON CONFLICT DO NOTHING;

INSERT INTO groups (id, name, description) VALUES
    ('20000000-0000-0000-0000-000000000001', 'administrators', 'System administrators'),
    ('20000000-0000-0000-0000-000000000002', 'operators', 'Telescope operators'),
    ('20000000-0000-0000-0000-000000000003', 'observers', 'Observers')
ON CONFLICT DO NOTHING;

INSERT INTO permissions (id, resource, action, effect, description) VALUES
    ('30000000-0000-0000-0000-000000000001', 'user', 'read', 'allow', 'Read users'),
    ('30000000-0000-0000-0000-000000000002', 'user', 'write', 'allow', 'Create and change users'),
    ('30000000-0000-0000-0000-000000000003', 'user', 'delete', 'allow', 'Delete users'),
    ('30000000-0000-0000-0000-000000000004', 'telescope', 'read', 'allow', 'Read telescopes'),
    ('30000000-0000-0000-0000-000000000005', 'telescope', 'write', 'allow', 'Configure telescopes'),
    ('30000000-0000-0000-0000-000000000006', 'telescope', 'control', 'allow', 'Control telescopes'),
    ('30000000-0000-0000-0000-000000000007', 'plugin', 'read', 'allow', 'Read plugins'),
    ('30000000-0000-0000-0000-000000000008', 'plugin', 'write', 'allow', 'Change plugins'),
    ('30000000-0000-0000-0000-000000000009', 'plugin', 'install', 'allow', 'Install plugins'),
    ('30000000-0000-0000-0000-00000000000a', 'plugin', 'delete', 'allow', 'Delete plugins'),
    ('30000000-0000-0000-0000-00000000000b', 'security', 'read', 'allow', 'Read roles, groups and grants'),
    ('30000000-0000-0000-0000-00000000000c', 'security', 'write', 'allow', 'Change roles, groups and grants'),
    ('30000000-0000-0000-0000-00000000000d', 'certificate', 'read', 'allow', 'Read certificates'),
    ('30000000-0000-0000-0000-00000000000e', 'certificate', 'write', 'allow', 'Issue and renew certificates'),
    ('30000000-0000-0000-0000-000000000100', '*', '*', 'allow', 'Everything, including resources added later')
ON CONFLICT DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT '10000000-0000-0000-0000-000000000001'::uuid, id FROM permissions
 WHERE id IN ('30000000-0000-0000-0000-000000000001', '30000000-0000-0000-0000-000000000002',
              '30000000-0000-0000-0000-000000000003', '30000000-0000-0000-0000-000000000004',
              '30000000-0000-0000-0000-000000000005', '30000000-0000-0000-0000-000000000006',
              '30000000-0000-0000-0000-000000000007', '30000000-0000-0000-0000-000000000008',
              '30000000-0000-0000-0000-000000000009', '30000000-0000-0000-0000-00000000000a',
              '30000000-0000-0000-0000-00000000000b', '30000000-0000-0000-0000-00000000000c',
              '30000000-0000-0000-0000-00000000000d', '30000000-0000-0000-0000-00000000000e',
              '30000000-0000-0000-0000-000000000100')
ON CONFLICT DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id) VALUES
    ('10000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000004'),
    ('10000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000005'),
    ('10000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000006'),
    ('10000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000007'),
    ('10000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000008'),
    ('10000000-0000-0000-0000-000000000003', '30000000-0000-0000-0000-000000000001'),
    ('10000000-0000-0000-0000-000000000003', '30000000-0000-0000-0000-000000000004'),
    ('10000000-0000-0000-0000-000000000003', '30000000-0000-0000-0000-000000000007'),
    ('10000000-0000-0000-0000-000000000004', '30000000-0000-0000-0000-000000000007'),
    ('10000000-0000-0000-0000-000000000004', '30000000-0000-0000-0000-000000000008'),
    ('10000000-0000-0000-0000-000000000004', '30000000-0000-0000-0000-000000000009'),
    ('10000000-0000-0000-0000-000000000004', '30000000-0000-0000-0000-00000000000a')
ON CONFLICT DO NOTHING;

-- Unlike Go, the seeded groups grant what their names promise.
INSERT INTO group_permissions (group_id, permission_id) VALUES
    ('20000000-0000-0000-0000-000000000001', '30000000-0000-0000-0000-000000000100'),
    ('20000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000004'),
    ('20000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000005'),
    ('20000000-0000-0000-0000-000000000002', '30000000-0000-0000-0000-000000000006'),
    ('20000000-0000-0000-0000-000000000003', '30000000-0000-0000-0000-000000000004')
ON CONFLICT DO NOTHING;

INSERT INTO coordinator_config (coordinator_name, config_key, config_value, config_type, description) VALUES
    ('security-coordinator', 'max_failed_logins', '5', 'int', 'Failed logins before the account is locked'),
    ('security-coordinator', 'lockout_duration', '900', 'duration', 'Seconds an account stays locked'),
    ('security-coordinator', 'password_min_length', '12', 'int', 'Minimum password length'),
    ('security-coordinator', 'argon2_memory_kib', '19456', 'int', 'argon2id memory cost (KiB)'),
    ('security-coordinator', 'argon2_iterations', '2', 'int', 'argon2id time cost'),
    ('security-coordinator', 'argon2_parallelism', '1', 'int', 'argon2id lanes')
ON CONFLICT DO NOTHING;
