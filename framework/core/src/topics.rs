//! Every MQTT topic the framework uses, built in one place from a configurable root.
//!
//! Layout (wire-compatible with the Go framework when the root is `bigskies`):
//! * requests: `<root>/coordinator/<name>/<action>/<resource>`
//! * compatible shared replies: `<root>/coordinator/<name>/response/<action>/<resource>/response`
//! * health: `<root>/coordinator/<name>/health/status`
//! * configuration updates: `<root>/coordinator/config/update/<name>-coordinator`
//! * events: `<root>/coordinator/<name>/event/<kind...>`
//! * bootstrap credentials: `<root>/coordinator/bootstrap/credentials` and `.../bootstrap/request`

/// The default topic root.
pub const DEFAULT_ROOT: &str = "bigskies";

/// Actions a coordinator never treats as requests even though they share the request layout.
pub const RESERVED_ACTIONS: [&str; 2] = ["health", "response"];

/// Topic builder bound to one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

/// Why a topic root was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid topic root {root:?}: {why}")]
pub struct TopicRootError {
    pub root: String,
    pub why: &'static str,
}

impl Topics {
    /// A builder for `root`. Use [`Topics::checked`] for roots that come from users.
    pub fn new(root: impl Into<String>) -> Self {
        Self { root: root.into() }
    }

    /// A builder for a user-supplied root: non-empty, no wildcards, no leading/trailing `/`.
    pub fn checked(root: impl Into<String>) -> Result<Self, TopicRootError> {
        let root = root.into();
        let why = if root.is_empty() {
            Some("it is empty")
        } else if root.contains(['+', '#', '\0']) {
            Some("it contains an MQTT wildcard or NUL")
        } else if root.starts_with('/') || root.ends_with('/') {
            Some("it starts or ends with '/'")
        } else if root.starts_with('$') {
            Some("topics starting with '$' are reserved by brokers")
        } else {
            None
        };
        match why {
            Some(why) => Err(TopicRootError { root, why }),
            None => Ok(Self { root }),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn coordinator(&self, name: &str) -> String {
        format!("{}/coordinator/{name}", self.root)
    }

    /// `<root>/coordinator/<name>/<action>/<resource>`
    pub fn request(&self, name: &str, action: &str, resource: &str) -> String {
        format!("{}/{action}/{resource}", self.coordinator(name))
    }

    /// Subscription filter covering every request of a coordinator.
    pub fn request_filter(&self, name: &str) -> String {
        format!("{}/+/+", self.coordinator(name))
    }

    /// The shared Go-compatible response topic of an operation.
    pub fn response(&self, name: &str, action: &str, resource: &str) -> String {
        format!(
            "{}/response/{action}/{resource}/response",
            self.coordinator(name)
        )
    }

    /// Whether `topic` is a Go shared response topic of some coordinator
    /// (`<root>/coordinator/<name>/response/...`): readable by every client that reads replies.
    pub fn is_shared_response(&self, topic: &str) -> bool {
        let prefix = format!("{}/coordinator/", self.root);
        topic
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('/').nth(1))
            == Some("response")
    }

    /// `<root>/coordinator/<name>/health/status`
    pub fn health(&self, name: &str) -> String {
        format!("{}/health/status", self.coordinator(name))
    }

    /// Filter matching every coordinator's health topic.
    pub fn health_filter(&self) -> String {
        format!("{}/coordinator/+/health/status", self.root)
    }

    /// Filter matching every topic under `<root>/coordinator/` (traffic diagnostics).
    pub fn coordinator_traffic_filter(&self) -> String {
        format!("{}/coordinator/#", self.root)
    }

    /// Split a topic under `<root>/coordinator/` into its segments after that prefix, or `None`
    /// for topics outside the coordinator space of this root.
    pub fn coordinator_segments<'t>(&self, topic: &'t str) -> Option<std::str::Split<'t, char>> {
        let rest = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/coordinator/")?;
        Some(rest.split('/'))
    }

    /// `<root>/coordinator/config/update/<name>-coordinator`
    pub fn config_update(&self, name: &str) -> String {
        format!("{}/coordinator/config/update/{name}-coordinator", self.root)
    }

    /// `<root>/coordinator/<name>/event/<kind>` where `kind` may hold several segments.
    pub fn event(&self, name: &str, kind: &str) -> String {
        format!("{}/event/{kind}", self.coordinator(name))
    }

    /// A private reply topic for client `client` (allowed as a `reply_to`, as it is outside
    /// the coordinator request space): `<root>/client/<client>/reply`.
    pub fn client_reply(&self, client: &str) -> String {
        format!("{}/client/{client}/reply", self.root)
    }

    /// Whether `topic` is a private reply topic `<root>/client/<client>/...`: the broker lets
    /// only client `<client>` read it (see deploy/mosquitto/acl).
    pub fn is_client_reply(&self, topic: &str) -> bool {
        topic
            .strip_prefix(self.root.as_str())
            .and_then(|t| t.strip_prefix("/client/"))
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|client| !client.is_empty())
    }

    /// Whether coordinator `name` may publish a reply on `topic`, a topic a requester named
    /// (MQTT 5 response topic or `reply_to`): a private reply topic under `<root>/client/`, or
    /// one of `name`'s own Go shared response topics. Anything else (another coordinator's
    /// requests or responses, health, events, another root, `$` topics, wildcards) would let a
    /// requester publish, through the coordinator, where it may not publish itself.
    pub fn reply_allowed(&self, name: &str, topic: &str) -> bool {
        if topic.starts_with('$') || topic.contains(['+', '#', '\0']) {
            return false;
        }
        let own_responses = format!("{}/response/", self.coordinator(name));
        self.is_client_reply(topic)
            || topic
                .strip_prefix(&own_responses)
                .is_some_and(|rest| !rest.is_empty())
    }

    pub fn bootstrap_credentials(&self) -> String {
        format!("{}/credentials", self.coordinator("bootstrap"))
    }

    pub fn bootstrap_request(&self) -> String {
        format!("{}/request", self.coordinator("bootstrap"))
    }

    /// Split a request topic of coordinator `name` into `(action, resource)`, or `None` when the
    /// topic is not one of its requests (other root, other coordinator, wrong depth, reserved action).
    pub fn parse_request<'t>(&self, name: &str, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/coordinator/")?
            .strip_prefix(name)?
            .strip_prefix('/')?;
        let (action, resource) = rest.split_once('/')?;
        if action.is_empty()
            || resource.is_empty()
            || resource.contains('/')
            || RESERVED_ACTIONS.contains(&action)
        {
            return None;
        }
        Some((action, resource))
    }

    /// `<root>/plugin/<plugin>/health`: where a plugin publishes its health (Go SDK).
    pub fn plugin_health(&self, plugin: &str) -> String {
        format!("{}/plugin/{plugin}/health", self.root)
    }

    /// Filter matching every plugin's health topic.
    pub fn plugin_health_filter(&self) -> String {
        self.plugin_health("+")
    }

    /// The plugin id in a plugin health topic, if `topic` is one.
    pub fn parse_plugin_health<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/plugin/")?
            .strip_suffix("/health")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }

    /// The coordinator name in a health topic, if `topic` is one.
    pub fn parse_health<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/coordinator/")?
            .strip_suffix("/health/status")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }
}

/// Does MQTT filter `filter` match `topic`? (`+` one level, `#` the rest, `$`-topics excluded
/// from leading wildcards, `$share/<group>/` prefixes stripped.)
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, f)) => f,
            None => return false,
        },
        None => filter,
    };
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_health_topics_round_trip() {
        let t = Topics::default();
        let id = "f7e8d9c6-b5a4-3210-9876-543210fedcba";
        assert_eq!(
            t.plugin_health(id),
            "bigskies/plugin/f7e8d9c6-b5a4-3210-9876-543210fedcba/health"
        );
        assert_eq!(t.parse_plugin_health(&t.plugin_health(id)), Some(id));
        assert!(filter_matches(
            &t.plugin_health_filter(),
            &t.plugin_health(id)
        ));
        assert_eq!(t.parse_plugin_health("bigskies/plugin//health"), None);
        assert_eq!(t.parse_plugin_health("bigskies/plugin/a/b/health"), None);
        assert_eq!(t.parse_plugin_health("other/plugin/a/health"), None);
    }

    #[test]
    fn go_compatible_topics_with_the_default_root() {
        let t = Topics::default();
        assert_eq!(
            t.request("security", "auth", "login"),
            "bigskies/coordinator/security/auth/login"
        );
        assert_eq!(
            t.response("security", "auth", "login"),
            "bigskies/coordinator/security/response/auth/login/response"
        );
        assert_eq!(
            t.health("telescope"),
            "bigskies/coordinator/telescope/health/status"
        );
        assert_eq!(
            t.config_update("message"),
            "bigskies/coordinator/config/update/message-coordinator"
        );
        assert_eq!(
            t.bootstrap_credentials(),
            "bigskies/coordinator/bootstrap/credentials"
        );
        assert_eq!(
            t.event("telescope", "slew/completed"),
            "bigskies/coordinator/telescope/event/slew/completed"
        );
    }

    #[test]
    fn request_topics_parse_back() {
        let t = Topics::new("bst-1");
        assert_eq!(
            t.parse_request("security", "bst-1/coordinator/security/auth/login"),
            Some(("auth", "login"))
        );
        assert_eq!(
            t.parse_request("security", "bigskies/coordinator/security/auth/login"),
            None
        );
        assert_eq!(
            t.parse_request("security", "bst-1/coordinator/securityx/auth/login"),
            None
        );
        assert_eq!(
            t.parse_request("security", "bst-1/coordinator/security/health/status"),
            None
        );
        assert_eq!(
            t.parse_request("security", "bst-1/coordinator/security/auth/login/x"),
            None
        );
        assert_eq!(
            t.parse_health("bst-1/coordinator/telescope/health/status"),
            Some("telescope")
        );
        assert_eq!(t.parse_health("bst-1/coordinator/a/b/health/status"), None);
    }

    #[test]
    fn replies_go_only_to_client_topics_and_own_shared_responses() {
        let t = Topics::new("r");
        assert!(t.reply_allowed("telescope", "r/client/abc/reply"));
        assert!(t.reply_allowed("telescope", "r/client/abc"));
        assert!(t.reply_allowed(
            "telescope",
            "r/coordinator/telescope/response/control/slew/response"
        ));
        for bad in [
            "r/coordinator/security/response/auth/login/response",
            "r/coordinator/security/user/delete",
            "r/coordinator/telescope/health/status",
            "r/coordinator/telescope/event/slew/completed",
            "r/coordinator/config/update/telescope-coordinator",
            "r/coordinator/telescope/response/",
            "r/client/",
            "r/client//x",
            "r/plugin/p/health",
            "other/client/abc/reply",
            "r/client/+/reply",
            "$SYS/x",
            "",
        ] {
            assert!(!t.reply_allowed("telescope", bad), "{bad:?}");
        }
    }

    #[test]
    fn user_roots_are_checked() {
        assert!(Topics::checked("obs-2").is_ok());
        for bad in ["", "a/+", "#", "/a", "a/", "$SYS"] {
            assert!(Topics::checked(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_match_like_a_broker() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(!filter_matches("a/+/c", "a/b/d/c"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$share/g/a/+", "a/b"));
        assert!(filter_matches("a/b", "a/b"));
        assert!(!filter_matches("a/b", "a/b/c"));
    }
}
