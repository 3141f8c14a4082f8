//! The UI element coordinator: a persisted registry of UI elements (menu, panel, widget,
//! tool, dialog) with widget mappings for GTK, Flutter, Unity, Qt, WPF, MFC and Blazor, data
//! bindings to MQTT topics and actions.
//!
//! Operations, each with a reply:
//! * `event/register` and `event/unregister` (the Go topics) and their synonyms
//!   `element/register` and `element/unregister`; unregistering by `plugin_guid` removes all
//!   elements of a plugin;
//! * `element/get`, `element/query` (alias `element/list`, `element/filter`): by `framework`,
//!   `plugin_guid` and/or `type`;
//! * `mapping/add`, `mapping/remove`;
//! * `framework/list`.
//!
//! Field aliases of the Go integration tests are accepted (`element_id`, `plugin_id`, `name`).
//!
//! Elements and mappings are owned ([`owner`]): by the principal that registered them, or by
//! the plugin they were registered for. Only the owner or an administrator changes them;
//! replies show `owner`, `owner_name` and `mapping_owners`.

mod frameworks;
mod mapping;
pub mod model;
pub mod owner;
mod query;
mod register;
mod unregister;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use bigskies_core::auth::{Access, Operation, Principal};
use bigskies_core::error::HandlerError;
use bigskies_core::health::HealthReport;
use bigskies_core::runtime::{Context, Coordinator};

pub use mapping::{AddMapping, RemoveMapping};
pub use query::{GetElement, QueryElements};
pub use register::RegisterElement;
pub use unregister::UnregisterElement;

/// The coordinator's short name.
pub const NAME: &str = "uielement";

/// A request without fields.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

/// Every operation and what it requires (see `docs/authorization.md`).
pub const OPERATIONS: &[Operation] = &[
    Operation::new(
        "event/register",
        Access::object("uielement", "write"),
        "Register or change an element (new, or its owner, or admin)",
    ),
    Operation::new(
        "element/register",
        Access::object("uielement", "write"),
        "Another name of event/register",
    ),
    Operation::new(
        "event/unregister",
        Access::object("uielement", "write"),
        "Remove an element (its owner or admin)",
    ),
    Operation::new(
        "element/unregister",
        Access::object("uielement", "write"),
        "Another name of event/unregister",
    ),
    Operation::new(
        "element/get",
        Access::object("uielement", "read"),
        "Read one element",
    ),
    Operation::new(
        "element/query",
        Access::object("uielement", "read"),
        "Query elements",
    ),
    Operation::new(
        "element/list",
        Access::object("uielement", "read"),
        "Another name of element/query",
    ),
    Operation::new(
        "element/filter",
        Access::object("uielement", "read"),
        "Another name of element/query",
    ),
    Operation::new(
        "mapping/add",
        Access::object("uielement", "write"),
        "Map an element to a UI framework (its owner or admin)",
    ),
    Operation::new(
        "mapping/remove",
        Access::object("uielement", "write"),
        "Remove a mapping (its owner or admin)",
    ),
    Operation::new(
        "framework/list",
        Access::Public,
        "The UI frameworks mappings may name (a constant vocabulary)",
    ),
];

#[derive(Debug, Deserialize)]
#[serde(tag = "op", content = "body")]
pub enum UiElementRequest {
    #[serde(rename = "event/register", alias = "element/register")]
    Register(RegisterElement),
    #[serde(rename = "event/unregister", alias = "element/unregister")]
    Unregister(UnregisterElement),
    #[serde(rename = "element/get")]
    Get(GetElement),
    #[serde(
        rename = "element/query",
        alias = "element/list",
        alias = "element/filter"
    )]
    Query(QueryElements),
    #[serde(rename = "mapping/add")]
    AddMapping(AddMapping),
    #[serde(rename = "mapping/remove")]
    RemoveMapping(RemoveMapping),
    #[serde(rename = "framework/list")]
    Frameworks(Empty),
}

/// One stored element.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct UiElement {
    pub id: String,
    pub plugin_guid: Option<String>,
    pub element_type: String,
    pub title: String,
    pub api_endpoint: String,
    pub sort_order: i32,
    pub enabled: bool,
    pub metadata: Value,
    pub framework_mappings: Value,
    pub registered_at: DateTime<Utc>,
    /// `user:<uuid>` or `plugin:<id>`; `None` (rows older than ownership): administrators only.
    pub owner: Option<String>,
    pub owner_name: Option<String>,
    /// Per framework: `{"owner": .., "owner_name": ..}` of that mapping.
    pub mapping_owners: Value,
}

macro_rules! element_columns {
    () => {
        "id, plugin_guid, element_type, title, api_endpoint, sort_order, enabled, metadata, framework_mappings, registered_at, owner, owner_name, mapping_owners"
    };
}
pub(crate) use element_columns;

impl UiElement {
    /// The Go JSON shape (`type`, `order`, ...).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "plugin_guid": self.plugin_guid,
            "type": self.element_type,
            "title": self.title,
            "api_endpoint": self.api_endpoint,
            "order": self.sort_order,
            "enabled": self.enabled,
            "metadata": self.metadata,
            "framework_mappings": self.framework_mappings,
            "registered_at": self.registered_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "owner": self.owner,
            "owner_name": self.owner_name,
            "mapping_owners": self.mapping_owners,
        })
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> HandlerError {
    tracing::warn!(coordinator = NAME, error = %e, "UI element database error");
    HandlerError::from_database(&e, "UI element registry")
}

/// The UI element coordinator.
#[derive(Debug)]
pub struct UiElementCoordinator {
    pool: PgPool,
}

impl UiElementCoordinator {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) async fn fetch(&self, id: &str) -> Result<Option<UiElement>, HandlerError> {
        sqlx::query_as::<_, UiElement>(concat!(
            "SELECT ",
            element_columns!(),
            " FROM ui_elements WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    /// The element, locked until `tx` ends: an ownership check and the change it allows see
    /// the same row.
    pub(crate) async fn fetch_locked(
        tx: &mut sqlx::PgConnection,
        id: &str,
    ) -> Result<Option<UiElement>, HandlerError> {
        sqlx::query_as::<_, UiElement>(concat!(
            "SELECT ",
            element_columns!(),
            " FROM ui_elements WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(tx)
        .await
        .map_err(db_error)
    }
}

/// Who asks: every operation but `framework/list` requires a credential, so the runtime has
/// established the principal before the handler runs.
fn principal(ctx: &Context) -> Result<&Principal, HandlerError> {
    ctx.principal
        .as_ref()
        .ok_or_else(|| HandlerError::unauthenticated("authentication required"))
}

impl Coordinator for UiElementCoordinator {
    type Request = UiElementRequest;

    fn name(&self) -> &'static str {
        NAME
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    async fn handle(&self, ctx: Context, request: UiElementRequest) -> Result<Value, HandlerError> {
        match request {
            UiElementRequest::Register(r) => self.register(principal(&ctx)?, r).await,
            UiElementRequest::Unregister(r) => self.unregister(principal(&ctx)?, r).await,
            UiElementRequest::Get(r) => self.get(r).await,
            UiElementRequest::Query(r) => self.query(r).await,
            UiElementRequest::AddMapping(r) => self.add_mapping(principal(&ctx)?, r).await,
            UiElementRequest::RemoveMapping(r) => self.remove_mapping(principal(&ctx)?, r).await,
            UiElementRequest::Frameworks(_) => Ok(frameworks::list()),
        }
    }

    async fn health(&self) -> Vec<HealthReport> {
        let counts: Result<(i64, i64), _> =
            sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE enabled) FROM ui_elements")
                .fetch_one(&self.pool)
                .await;
        vec![match counts {
            Ok((total, enabled)) => {
                HealthReport::healthy("registry", format!("{total} UI element(s)"))
                    .with_detail("total_elements", total)
                    .with_detail("enabled_elements", enabled)
            }
            Err(e) => {
                HealthReport::unhealthy("registry", format!("UI element registry unavailable: {e}"))
            }
        }]
    }
}
