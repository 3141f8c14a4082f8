//! The security coordinator: the Go topics (`auth/login|logout|validate`, `user/create|update|
//! delete`, `role/assign`, `permission/check`, `cert/request|renew`) with their reply shapes,
//! plus token refresh, user and role listing, role, group and grant management, API keys and
//! certificate listing.
//!
//! Access: `auth/login`, `auth/validate` and `auth/logout` are public (logout proves itself by
//! holding the token it revokes); everything else needs a credential, and each operation names
//! the permission it needs. The caller is always the principal the runtime established from
//! the credential, never an id in the payload.
//!
//! Changes that affect other coordinators' authenticators (revocations, user and grant changes)
//! are broadcast as signed [`SecurityEvent`]s.

mod apikeys;
mod auth;
mod certs;
mod groups;
mod permissions;
mod roles;
mod users;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use bigskies_core::auth::{Access, Authenticator, Operation, Principal, Rights};
use bigskies_core::config::CoordinatorConfig;
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};
use bigskies_security::ratelimit::LoginLimiter;
use bigskies_security::settings::SecuritySettings;
use bigskies_security::{
    Secret, SecurityAuthenticator, SecurityEngines, SecurityEvent, SecurityResult,
};

pub use apikeys::{CreateKey, ListKeys, RevokeKey};
pub use auth::{LoginRequest, TokenRequest};
pub use certs::{CertRenew, CertRequest};
pub use groups::Membership;
pub use permissions::PermissionCheck;
pub use roles::{Assignment, CreateNamed, GrantRequest};
pub use users::{CreateUser, DeleteUser, GetUser, ListUsers, UnlockUser, UpdateUser};

/// The coordinator's short name.
pub const NAME: &str = "security";

/// A request without fields (extra fields such as `token` are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "auth/login",
        Access::Public,
        "Log in with username and password; returns a token",
    ),
    Operation::new(
        "auth/logout",
        Access::Public,
        "Revoke the token presented (the token proves itself)",
    ),
    Operation::new(
        "auth/validate",
        Access::Public,
        "Check a token and return its user",
    ),
    Operation::new(
        "auth/refresh",
        Access::object("account", "write"),
        "A new token for the caller (tokens only; API keys cannot mint tokens)",
    ),
    Operation::new(
        "user/create",
        Access::role("user", "write"),
        "Create a user",
    ),
    Operation::new(
        "user/update",
        Access::object("user", "write"),
        "Change the caller, or any user with RBAC user:write",
    ),
    Operation::new(
        "user/delete",
        Access::role("user", "delete"),
        "Delete a user",
    ),
    Operation::new(
        "user/get",
        Access::object("user", "read"),
        "Read the caller, or any user with RBAC user:read",
    ),
    Operation::new("user/list", Access::role("user", "read"), "List users"),
    Operation::new(
        "user/unlock",
        Access::role("user", "write"),
        "Lift a user's login lock (failed-password lockout); no password needed",
    ),
    Operation::new(
        "role/assign",
        Access::role("security", "write"),
        "Give a user a role",
    ),
    Operation::new(
        "role/unassign",
        Access::role("security", "write"),
        "Take a role from a user",
    ),
    Operation::new(
        "role/create",
        Access::role("security", "write"),
        "Create a role",
    ),
    Operation::new("role/list", Access::role("security", "read"), "List roles"),
    Operation::new(
        "role/grant",
        Access::role("security", "write"),
        "Add a permission to a role",
    ),
    Operation::new(
        "role/ungrant",
        Access::role("security", "write"),
        "Remove a permission from a role",
    ),
    Operation::new(
        "group/create",
        Access::role("security", "write"),
        "Create a group",
    ),
    Operation::new(
        "group/list",
        Access::role("security", "read"),
        "List groups",
    ),
    Operation::new(
        "group/add",
        Access::role("security", "write"),
        "Add a member to a group",
    ),
    Operation::new(
        "group/remove",
        Access::role("security", "write"),
        "Remove a member from a group",
    ),
    Operation::new(
        "group/grant",
        Access::role("security", "write"),
        "Add a permission to a group",
    ),
    Operation::new(
        "group/ungrant",
        Access::role("security", "write"),
        "Remove a permission from a group",
    ),
    Operation::new(
        "permission/check",
        Access::object("account", "read"),
        "Whether the caller (or, with security:read, another user) holds a permission",
    ),
    Operation::new(
        "permission/list",
        Access::role("security", "read"),
        "List permissions",
    ),
    Operation::new(
        "apikey/create",
        Access::object("account", "write"),
        "Create an API key for the caller, scopes within the caller's own",
    ),
    Operation::new(
        "apikey/list",
        Access::object("account", "read"),
        "List the caller's API keys",
    ),
    Operation::new(
        "apikey/revoke",
        Access::object("account", "write"),
        "Revoke one of the caller's API keys",
    ),
    Operation::new(
        "cert/request",
        Access::role("certificate", "write"),
        "Issue a certificate",
    ),
    Operation::new(
        "cert/renew",
        Access::role("certificate", "write"),
        "Renew a certificate",
    ),
    Operation::new(
        "cert/list",
        Access::role("certificate", "read"),
        "List certificates",
    ),
];

/// Every security operation, decoded from `<action>/<resource>`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum SecurityRequest {
    #[serde(rename = "auth/login")]
    Login(LoginRequest),
    #[serde(rename = "auth/logout")]
    Logout(TokenRequest),
    #[serde(rename = "auth/validate")]
    Validate(TokenRequest),
    #[serde(rename = "auth/refresh")]
    Refresh(Empty),
    #[serde(rename = "user/create")]
    CreateUser(CreateUser),
    #[serde(rename = "user/update")]
    UpdateUser(UpdateUser),
    #[serde(rename = "user/delete")]
    DeleteUser(DeleteUser),
    #[serde(rename = "user/get")]
    GetUser(GetUser),
    #[serde(rename = "user/list")]
    ListUsers(ListUsers),
    #[serde(rename = "user/unlock")]
    UnlockUser(UnlockUser),
    #[serde(rename = "role/assign")]
    AssignRole(Assignment),
    #[serde(rename = "role/unassign")]
    UnassignRole(Assignment),
    #[serde(rename = "role/create")]
    CreateRole(CreateNamed),
    #[serde(rename = "role/list")]
    ListRoles(Empty),
    #[serde(rename = "role/grant")]
    GrantRole(GrantRequest),
    #[serde(rename = "role/ungrant")]
    UngrantRole(GrantRequest),
    #[serde(rename = "group/create")]
    CreateGroup(CreateNamed),
    #[serde(rename = "group/list")]
    ListGroups(Empty),
    #[serde(rename = "group/add")]
    AddMember(Membership),
    #[serde(rename = "group/remove")]
    RemoveMember(Membership),
    #[serde(rename = "group/grant")]
    GrantGroup(GrantRequest),
    #[serde(rename = "group/ungrant")]
    UngrantGroup(GrantRequest),
    #[serde(rename = "permission/check")]
    CheckPermission(PermissionCheck),
    #[serde(rename = "permission/list")]
    ListPermissions(Empty),
    #[serde(rename = "apikey/create")]
    CreateKey(CreateKey),
    #[serde(rename = "apikey/list")]
    ListKeys(ListKeys),
    #[serde(rename = "apikey/revoke")]
    RevokeKey(RevokeKey),
    #[serde(rename = "cert/request")]
    RequestCert(CertRequest),
    #[serde(rename = "cert/renew")]
    RenewCert(CertRenew),
    #[serde(rename = "cert/list")]
    ListCerts(Empty),
}

/// The security coordinator. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SecurityCoordinator {
    engines: SecurityEngines,
    auth: SecurityAuthenticator,
    /// Token buckets in front of `auth/login`.
    login_limits: LoginLimiter,
}

impl SecurityCoordinator {
    /// A coordinator over `engines`. Creates the first administrator from `admin_password`
    /// when no administrator exists yet.
    pub async fn build(
        engines: SecurityEngines,
        admin_password: Option<&Secret>,
    ) -> SecurityResult<Self> {
        engines.accounts.ensure_admin(admin_password).await?;
        engines.tokens.load_revocations().await?;
        let auth = engines.authenticator();
        Ok(Self {
            engines,
            auth,
            login_limits: LoginLimiter::new(),
        })
    }

    /// The production wiring: settings from the `security-coordinator` rows, the JWT secret and
    /// the first administrator's password from `lookup` (`|k| std::env::var(k).ok()` in a
    /// binary; see [`bigskies_security::settings`] for the variable names).
    pub async fn from_database(
        pool: sqlx::PgPool,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> SecurityResult<Self> {
        let engines = SecurityEngines::from_database(pool, lookup).await?;
        let admin = bigskies_security::settings::admin_password(lookup)?;
        Self::build(engines, admin.as_ref()).await
    }

    pub fn engines(&self) -> &SecurityEngines {
        &self.engines
    }

    /// The authenticator to launch this coordinator with (it shares this coordinator's
    /// engines, so its own revocations and changes apply without a bus round trip).
    pub fn authenticator(&self) -> Arc<dyn Authenticator> {
        Arc::new(self.auth.clone())
    }

    /// Periodic work until `shutdown`: drop expired revocations (database and memory) and renew
    /// certificates inside the renewal window.
    pub async fn maintenance(&self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.engines.tokens.purge_expired(true).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired revocations removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "revocation cleanup failed"),
            }
            for (domain, result) in self.engines.tls.renew_due().await {
                match result {
                    Ok(until) => tracing::info!(%domain, %until, "certificate renewed"),
                    Err(e) => tracing::warn!(%domain, error = %e, "certificate renewal failed"),
                }
            }
        }
    }

    /// The caller, which the runtime established for every non-public operation.
    fn caller(ctx: &Context) -> Result<&Principal, HandlerError> {
        ctx.principal
            .as_ref()
            .ok_or_else(|| HandlerError::unauthenticated("authentication required"))
    }

    /// An extra permission check inside a handler (refusals are audited by the runtime).
    async fn require(
        &self,
        who: &Principal,
        resource: &str,
        action: &str,
    ) -> Result<(), HandlerError> {
        self.auth
            .permits(who, resource, action, Rights::Role)
            .await
            .map_err(HandlerError::from)
    }

    /// Does `who` hold the permission (no audit record; for choosing between behaviours)?
    async fn holds(&self, who: &Principal, resource: &str, action: &str) -> bool {
        self.auth
            .permits(who, resource, action, Rights::Role)
            .await
            .is_ok()
    }

    /// Tell every authenticator. A failed publish is logged: the change is already persisted
    /// and caches expire on their own, and authenticators reload revocations on reconnect.
    async fn broadcast(&self, ctx: &Context, event: SecurityEvent) {
        if let Err(e) = self.engines.broadcast(&ctx.bus, &ctx.topics, &event).await {
            tracing::warn!(error = %e, ?event, "security event not broadcast");
        }
    }
}

impl Coordinator for SecurityCoordinator {
    type Request = SecurityRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(&self, ctx: Context, request: SecurityRequest) -> Result<Value, HandlerError> {
        use SecurityRequest as R;
        match request {
            R::Login(r) => self.login(&ctx, r).await,
            R::Logout(r) => self.logout(&ctx, r).await,
            R::Validate(r) => self.validate(r).await,
            R::Refresh(_) => self.refresh(&ctx).await,
            R::CreateUser(r) => self.create_user(&ctx, r).await,
            R::UpdateUser(r) => self.update_user(&ctx, r).await,
            R::DeleteUser(r) => self.delete_user(&ctx, r).await,
            R::GetUser(r) => self.get_user(&ctx, r).await,
            R::ListUsers(r) => self.list_users(r).await,
            R::UnlockUser(r) => self.unlock_user(&ctx, r).await,
            R::AssignRole(r) => self.assign_role(&ctx, r, true).await,
            R::UnassignRole(r) => self.assign_role(&ctx, r, false).await,
            R::CreateRole(r) => self.create_role(&ctx, r).await,
            R::ListRoles(_) => self.list_roles().await,
            R::GrantRole(r) => self.grant(&ctx, r, roles::Target::Role, true).await,
            R::UngrantRole(r) => self.grant(&ctx, r, roles::Target::Role, false).await,
            R::CreateGroup(r) => self.create_group(&ctx, r).await,
            R::ListGroups(_) => self.list_groups().await,
            R::AddMember(r) => self.membership(&ctx, r, true).await,
            R::RemoveMember(r) => self.membership(&ctx, r, false).await,
            R::GrantGroup(r) => self.grant(&ctx, r, roles::Target::Group, true).await,
            R::UngrantGroup(r) => self.grant(&ctx, r, roles::Target::Group, false).await,
            R::CheckPermission(r) => self.check_permission(&ctx, r).await,
            R::ListPermissions(_) => self.list_permissions().await,
            R::CreateKey(r) => self.create_key(&ctx, r).await,
            R::ListKeys(r) => self.list_keys(&ctx, r).await,
            R::RevokeKey(r) => self.revoke_key(&ctx, r).await,
            R::RequestCert(r) => self.request_cert(r).await,
            R::RenewCert(r) => self.renew_cert(r).await,
            R::ListCerts(_) => self.list_certs().await,
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let store = match sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(self.engines.accounts.pool())
            .await
        {
            Ok(_) => HealthReport::healthy("accounts", "database reachable"),
            Err(e) => HealthReport::unhealthy("accounts", format!("database unreachable: {e}")),
        };
        let tokens = HealthReport::healthy("tokens", "signing key loaded").with_detail(
            "revoked_in_memory",
            self.engines.tokens.revoked_count() as u64,
        );
        vec![store, tokens, self.engines.tls.health().await]
    }

    fn apply_config(&self, config: &CoordinatorConfig) -> Result<(), HandlerError> {
        let s = SecuritySettings::from_config(config)
            .map_err(|e| HandlerError::invalid(e.to_string()))?;
        self.engines.settings.replace(s);
        Ok(())
    }
}

/// Serialise a reply value (our own types always serialise).
fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, HandlerError> {
    serde_json::to_value(v).map_err(|e| {
        tracing::error!(error = %e, "reply not serialisable");
        HandlerError::internal()
    })
}
