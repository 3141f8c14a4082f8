//! Every coordinator's operation table in one place, for the access matrix, the generated
//! reference (`docs/authorization.md`) and the check that no operation lacks a row.

use bigskies_core::auth::Operation;

/// `(coordinator name, its operations)` for every coordinator.
pub fn all() -> [(&'static str, &'static [Operation]); 8] {
    [
        (crate::security::NAME, crate::security::OPERATIONS),
        (crate::telescope::NAME, crate::telescope::OPERATIONS),
        (crate::plugin::NAME, crate::plugin::OPERATIONS),
        (crate::uielement::NAME, crate::uielement::OPERATIONS),
        (crate::application::NAME, crate::application::OPERATIONS),
        (crate::message::NAME, crate::message::OPERATIONS),
        (crate::datastore::NAME, crate::datastore::OPERATIONS),
        (crate::bootstrap::NAME, crate::bootstrap::OPERATIONS),
    ]
}

/// The operation names a serde-tagged request enum accepts (names and aliases), read from the
/// error serde gives for an unknown variant, which lists every name the enum accepts (aliases
/// included).
pub fn accepted_names<R: serde::de::DeserializeOwned>() -> Vec<String> {
    let probe = serde_json::json!({"op": "\u{1}no such operation", "body": {}});
    let Err(e) = serde_json::from_value::<R>(probe) else {
        return Vec::new();
    };
    // "unknown variant `x`, expected `a`", "... expected `a` or `b`", "... expected one of `a`, `b`"
    let text = e.to_string();
    let Some((_, list)) = text.split_once("expected ") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn check<R: serde::de::DeserializeOwned>(name: &str, table: &[Operation]) {
        let accepted: BTreeSet<String> = accepted_names::<R>().into_iter().collect();
        assert!(!accepted.is_empty(), "{name}: no operation names found");
        let rows: BTreeSet<String> = table.iter().map(|o| o.op.to_owned()).collect();
        assert_eq!(rows.len(), table.len(), "{name}: an operation has two rows");
        let missing: Vec<_> = accepted.difference(&rows).collect();
        assert!(
            missing.is_empty(),
            "{name}: operations without a row: {missing:?}"
        );
        let unknown: Vec<_> = rows.difference(&accepted).collect();
        assert!(
            unknown.is_empty(),
            "{name}: rows for no operation: {unknown:?}"
        );
    }

    #[test]
    fn every_operation_has_exactly_one_row() {
        check::<crate::security::SecurityRequest>("security", crate::security::OPERATIONS);
        check::<crate::telescope::TelescopeRequest>("telescope", crate::telescope::OPERATIONS);
        check::<crate::plugin::PluginRequest>("plugin", crate::plugin::OPERATIONS);
        check::<crate::uielement::UiElementRequest>("uielement", crate::uielement::OPERATIONS);
        check::<crate::application::ApplicationRequest>(
            "application",
            crate::application::OPERATIONS,
        );
        check::<crate::message::MessageRequest>("message", crate::message::OPERATIONS);
        check::<crate::datastore::DatastoreRequest>("datastore", crate::datastore::OPERATIONS);
        check::<crate::bootstrap::BootstrapRequest>("bootstrap", crate::bootstrap::OPERATIONS);
    }
}
