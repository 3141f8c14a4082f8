//! Permission evaluation, kept free of I/O so it can be property-tested.
//!
//! A user's grants are the permissions reachable through their roles and their groups. Deny
//! wins: if any matching grant denies, the answer is no; otherwise any matching allow says yes;
//! no match says no. `*` in a grant's resource or action matches any value (the seeded
//! administrator grant uses it, so resources added later need no new rows).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

/// One permission reachable by a user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub resource: String,
    pub action: String,
    pub effect: Effect,
}

impl Grant {
    pub fn new(resource: impl Into<String>, action: impl Into<String>, effect: Effect) -> Self {
        Self {
            resource: resource.into(),
            action: action.into(),
            effect,
        }
    }

    pub fn matches(&self, resource: &str, action: &str) -> bool {
        pattern_matches(&self.resource, resource) && pattern_matches(&self.action, action)
    }
}

fn pattern_matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

/// The outcome of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// A matching grant denies.
    DeniedExplicitly,
    /// Nothing grants it.
    NotGranted,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Self::Allowed
    }

    /// The reason given to clients (Go: `Permission denied`).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Self::Allowed => None,
            Self::DeniedExplicitly | Self::NotGranted => Some("Permission denied"),
        }
    }
}

/// Deny-first evaluation of `grants` for `action` on `resource`.
pub fn evaluate<'g>(
    grants: impl IntoIterator<Item = &'g Grant>,
    resource: &str,
    action: &str,
) -> Decision {
    let mut allowed = false;
    for g in grants {
        if g.matches(resource, action) {
            match g.effect {
                Effect::Deny => return Decision::DeniedExplicitly,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotGranted
    }
}

/// Does an API key's scope list admit `action` on `resource`? Scopes are `*`, `resource:*` or
/// `resource:action`. A key never grants more than its owner has; scopes only narrow.
pub fn scopes_allow(scopes: &[String], resource: &str, action: &str) -> bool {
    scopes.iter().any(|s| {
        if s == "*" {
            return true;
        }
        match s.split_once(':') {
            Some((r, a)) => pattern_matches(r, resource) && pattern_matches(a, action),
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deny_wins_and_nothing_means_no() {
        let allow = Grant::new("telescope", "control", Effect::Allow);
        let deny = Grant::new("telescope", "control", Effect::Deny);
        assert_eq!(
            evaluate([&allow], "telescope", "control"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate([&allow, &deny], "telescope", "control"),
            Decision::DeniedExplicitly
        );
        assert_eq!(
            evaluate([&deny, &allow], "telescope", "control"),
            Decision::DeniedExplicitly
        );
        assert_eq!(
            evaluate([&allow], "telescope", "read"),
            Decision::NotGranted,
            "write does not imply read"
        );
        assert_eq!(evaluate([], "x", "y"), Decision::NotGranted);
        let all = Grant::new("*", "*", Effect::Allow);
        assert!(evaluate([&all], "anything", "new").is_allowed());
        assert_eq!(
            evaluate([&all, &deny], "telescope", "control"),
            Decision::DeniedExplicitly
        );
    }

    #[test]
    fn scopes_narrow() {
        let s = vec!["telescope:read".to_owned(), "plugin:*".to_owned()];
        assert!(scopes_allow(&s, "telescope", "read"));
        assert!(!scopes_allow(&s, "telescope", "control"));
        assert!(scopes_allow(&s, "plugin", "install"));
        assert!(!scopes_allow(&[], "plugin", "install"));
        assert!(scopes_allow(&["*".to_owned()], "a", "b"));
        assert!(
            !scopes_allow(&["telescope".to_owned()], "telescope", "read"),
            "malformed scopes grant nothing"
        );
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![Just("*".to_owned()), "[a-c]{1,2}"]
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (
            name(),
            name(),
            prop_oneof![Just(Effect::Allow), Just(Effect::Deny)],
        )
            .prop_map(|(r, a, e)| Grant::new(r, a, e))
    }

    proptest! {
        /// The decision is exactly: some matching deny ⇒ denied; else some matching allow ⇒
        /// allowed; else not granted — whatever the order of the grants.
        #[test]
        fn evaluation_is_deny_first_and_order_free(mut grants in prop::collection::vec(grant(), 0..12),
                                                   resource in "[a-c]{1,2}", action in "[a-c]{1,2}",
                                                   seed in any::<u64>()) {
            let any_deny = grants.iter().any(|g| g.effect == Effect::Deny && g.matches(&resource, &action));
            let any_allow = grants.iter().any(|g| g.effect == Effect::Allow && g.matches(&resource, &action));
            let expected = if any_deny { Decision::DeniedExplicitly } else if any_allow { Decision::Allowed } else { Decision::NotGranted };
            prop_assert_eq!(evaluate(&grants, &resource, &action), expected);
            // Any permutation gives the same answer.
            let n = grants.len();
            if n > 1 {
                let k = (seed % n as u64) as usize;
                grants.rotate_left(k);
                grants.swap(0, n - 1);
            }
            prop_assert_eq!(evaluate(&grants, &resource, &action), expected);
        }

        /// Adding a deny for the request can only remove access; adding a grant that does not
        /// match changes nothing.
        #[test]
        fn adding_grants_is_monotone(grants in prop::collection::vec(grant(), 0..12),
                                     resource in "[a-c]{1,2}", action in "[a-c]{1,2}") {
            let before = evaluate(&grants, &resource, &action);
            let mut with_deny = grants.clone();
            with_deny.push(Grant::new(resource.clone(), action.clone(), Effect::Deny));
            prop_assert_eq!(evaluate(&with_deny, &resource, &action), Decision::DeniedExplicitly);
            let mut unrelated = grants.clone();
            unrelated.push(Grant::new("zz", "zz", Effect::Allow));
            unrelated.push(Grant::new("zz", "zz", Effect::Deny));
            prop_assert_eq!(evaluate(&unrelated, &resource, &action), before);
        }

        /// A user with no deny never loses access by gaining an allow.
        #[test]
        fn allows_only_add(grants in prop::collection::vec(grant(), 0..12), g in grant(),
                           resource in "[a-c]{1,2}", action in "[a-c]{1,2}") {
            prop_assume!(g.effect == Effect::Allow);
            let before = evaluate(&grants, &resource, &action);
            let mut more = grants.clone();
            more.push(g);
            let after = evaluate(&more, &resource, &action);
            if before.is_allowed() { prop_assert!(after.is_allowed()); }
            if before == Decision::DeniedExplicitly { prop_assert_eq!(after, Decision::DeniedExplicitly); }
        }
    }
}
