//! `framework/list`: the supported UI frameworks and element types.

use serde_json::{Value, json};

use super::model::{ELEMENT_TYPES, FRAMEWORKS};

pub(super) fn list() -> Value {
    json!({"success": true, "frameworks": FRAMEWORKS, "element_types": ELEMENT_TYPES})
}
