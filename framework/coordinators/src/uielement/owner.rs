//! Who owns an element and its mappings, and who may change them (`docs/authorization.md`,
//! "UI elements").
//!
//! An owner is `user:<uuid>` (the principal that registered it, from its credential) or
//! `plugin:<id>` (an element an administrator's credential registered for a plugin: what the
//! plugin coordinator does when it installs, updates or adopts a plugin). No owner (rows from
//! before ownership was recorded) means administrators only.
//!
//! The rule: an administrator changes anything; anyone else changes an element (re-register,
//! unregister, add, replace or remove a mapping) only when they own the element and every
//! mapping the change replaces or removes.

use serde_json::{Map, Value, json};

use bigskies_core::auth::Principal;
use bigskies_core::error::HandlerError;

use super::UiElement;

/// An owner as recorded: its id (`user:<uuid>` or `plugin:<id>`) and a name to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub name: Option<String>,
}

impl Owner {
    /// The principal itself.
    pub fn user(p: &Principal) -> Self {
        Self {
            id: user_id(p),
            name: Some(p.username.clone()),
        }
    }

    /// A plugin, by the id its elements carry as `plugin_guid`.
    pub fn plugin(id: &str) -> Self {
        Self {
            id: format!("plugin:{id}"),
            name: None,
        }
    }

    /// The entry of `mapping_owners` for one mapping.
    pub fn to_json(&self) -> Value {
        json!({"owner": self.id, "owner_name": self.name})
    }

    /// What a new element (and its mappings) registered by `p` for `plugin_guid` is owned by.
    /// Only an administrator's credential may register for a plugin: the plugin coordinator
    /// acts with the credential of the administrator who manages the plugin.
    pub fn for_registration(
        p: &Principal,
        plugin_guid: Option<&str>,
    ) -> Result<Self, HandlerError> {
        match plugin_guid {
            None => Ok(Self::user(p)),
            Some(g) if p.is_admin() => Ok(Self::plugin(g)),
            Some(_) => Err(HandlerError::forbidden(
                "only an administrator (the plugin coordinator) registers elements for a plugin",
            )),
        }
    }
}

fn user_id(p: &Principal) -> String {
    format!("user:{}", p.user_id)
}

/// How an owner is named in a refusal.
fn describe(owner: Option<&str>, name: Option<&str>) -> String {
    match (owner, name) {
        (None, _) => "no recorded owner (it predates ownership)".to_owned(),
        (Some(_), Some(n)) => format!("owner {n:?}"),
        (Some(o), None) => format!("owner {o}"),
    }
}

/// The owner of `e`'s mapping for `framework`, if one is recorded.
fn mapping_owner<'a>(e: &'a UiElement, framework: &str) -> (Option<&'a str>, Option<&'a str>) {
    let entry = e.mapping_owners.get(framework);
    let field = |k| entry.and_then(|v| v.get(k)).and_then(Value::as_str);
    (field("owner"), field("owner_name"))
}

/// May `p` change `e` in a way that replaces or removes its mappings for `frameworks`?
/// Frameworks `e` has no mapping for are free to add.
pub fn check_change<'f>(
    p: &Principal,
    e: &UiElement,
    frameworks: impl IntoIterator<Item = &'f str>,
) -> Result<(), HandlerError> {
    if p.is_admin() {
        return Ok(());
    }
    let me = user_id(p);
    if e.owner.as_deref() != Some(me.as_str()) {
        return Err(HandlerError::forbidden(format!(
            "UI element {:?} has {}; only its owner or an administrator may change it",
            e.id,
            describe(e.owner.as_deref(), e.owner_name.as_deref())
        )));
    }
    for f in frameworks {
        if e.framework_mappings.get(f).is_none() {
            continue;
        }
        let (owner, name) = mapping_owner(e, f);
        if owner != Some(me.as_str()) {
            return Err(HandlerError::forbidden(format!(
                "the {f} mapping of UI element {:?} has {}; only its owner or an administrator may change it",
                e.id,
                describe(owner, name)
            )));
        }
    }
    Ok(())
}

/// Every framework `e` has a mapping for.
pub fn frameworks(e: &UiElement) -> Vec<String> {
    e.framework_mappings
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `mapping_owners` for a registration whose mappings are all `owner`'s.
pub fn mapping_owners<'f>(
    owner: &Owner,
    frameworks: impl IntoIterator<Item = &'f String>,
) -> Value {
    let m: Map<String, Value> = frameworks
        .into_iter()
        .map(|f| (f.clone(), owner.to_json()))
        .collect();
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bigskies_core::auth::CredentialKind;
    use chrono::Utc;

    fn principal(n: u128, admin: bool) -> Principal {
        Principal {
            user_id: uuid::Uuid::from_u128(n),
            username: format!("u{n}"),
            roles: if admin { vec!["admin".into()] } else { vec![] },
            credential_id: "c".into(),
            kind: CredentialKind::Token,
            scopes: vec![],
        }
    }

    fn element(owner: Option<&Owner>, mappings: Value, mapping_owners: Value) -> UiElement {
        UiElement {
            id: "e".into(),
            plugin_guid: None,
            element_type: "panel".into(),
            title: "E".into(),
            api_endpoint: String::new(),
            sort_order: 0,
            enabled: true,
            metadata: json!({}),
            framework_mappings: mappings,
            registered_at: Utc::now(),
            owner: owner.map(|o| o.id.clone()),
            owner_name: owner.and_then(|o| o.name.clone()),
            mapping_owners,
        }
    }

    #[test]
    fn owners_change_what_is_all_theirs_and_administrators_everything() {
        let (alice, bob, admin) = (principal(3, false), principal(4, false), principal(1, true));
        let a = Owner::user(&alice);
        let gtk = json!({"gtk": {"widget_type": "Gtk.Box"}});
        let hers = element(Some(&a), gtk.clone(), json!({"gtk": a.to_json()}));
        assert!(check_change(&alice, &hers, ["gtk", "qt"]).is_ok());
        assert!(check_change(&bob, &hers, []).is_err());
        assert!(check_change(&admin, &hers, ["gtk"]).is_ok());

        // A mapping an administrator added to her element is not hers.
        let mixed = element(
            Some(&a),
            gtk.clone(),
            json!({"gtk": Owner::user(&admin).to_json()}),
        );
        assert!(check_change(&alice, &mixed, ["qt"]).is_ok());
        let e = check_change(&alice, &mixed, ["gtk"]).unwrap_err();
        assert_eq!(e.kind.as_str(), "forbidden");

        // No owner recorded: administrators only, mappings included.
        let legacy = element(None, gtk.clone(), json!({}));
        assert!(check_change(&alice, &legacy, []).is_err());
        assert!(check_change(&admin, &legacy, ["gtk"]).is_ok());
        let unowned_mapping = element(Some(&a), gtk, json!({}));
        assert!(check_change(&alice, &unowned_mapping, ["gtk"]).is_err());

        let plugin = element(Some(&Owner::plugin("p")), json!({}), json!({}));
        assert!(check_change(&alice, &plugin, []).is_err());
    }

    #[test]
    fn only_administrators_register_for_a_plugin() {
        let (alice, admin) = (principal(3, false), principal(1, true));
        assert_eq!(
            Owner::for_registration(&admin, Some("p")).unwrap().id,
            "plugin:p"
        );
        assert!(Owner::for_registration(&alice, Some("p")).is_err());
        assert_eq!(
            Owner::for_registration(&alice, None).unwrap(),
            Owner {
                id: "user:00000000-0000-0000-0000-000000000003".into(),
                name: Some("u3".into())
            }
        );
    }
}
