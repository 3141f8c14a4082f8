//! Field matching for replies, events and device values.
//!
//! A matcher table maps a path to an expectation. Paths are dotted (`plugin.status`,
//! `elements.0.id`); the empty path `""` is the whole value. An expectation is either a
//! literal (equal as JSON, numbers compared as numbers) or an operator table:
//!
//! | operator | meaning |
//! |---|---|
//! | `equals = v` | equal as JSON (same as a literal, for values that look like operator tables) |
//! | `not = v` | not equal |
//! | `approx = x, tol = t` | a number within `t` (default 1e-6) of `x` |
//! | `gt`, `ge`, `lt`, `le` | number comparisons |
//! | `contains = "s"` | a string containing `s`, or an array containing `s` |
//! | `one_of = [..]` | equal to one of the values |
//! | `exists = bool` | the path is (not) present (`null` counts as present) |
//! | `len = n` | an array, object or string of that length |
//! | `type = "string"` | JSON type: null, bool, number, string, array, object |

use serde_json::Value;

const OPERATORS: [&str; 13] = [
    "equals", "not", "approx", "tol", "gt", "ge", "lt", "le", "contains", "one_of", "exists",
    "len", "type",
];

/// One expectation on one value.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    Equals(Value),
    Not(Value),
    Approx {
        value: f64,
        tol: f64,
    },
    Compare {
        op: &'static str,
        value: f64,
    },
    Contains(Value),
    OneOf(Vec<Value>),
    Exists(bool),
    Len(usize),
    Type(String),
    /// Several operators in one table: all must hold.
    All(Vec<Expect>),
}

/// A list of (path, expectation) pairs; all must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matchers(pub Vec<(String, Expect)>);

impl Matchers {
    /// From a TOML/JSON table of `path = expectation`.
    pub fn from_table(table: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let mut out = Vec::new();
        for (path, spec) in table {
            out.push((
                path.clone(),
                Expect::parse(spec).map_err(|e| format!("{path}: {e}"))?,
            ));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when every expectation holds, else every failure, one per line.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let failures: Vec<String> = self
            .0
            .iter()
            .filter_map(|(path, e)| {
                let found = lookup(value, path);
                e.check(found)
                    .err()
                    .map(|why| format!("`{}`: {why}", if path.is_empty() { "." } else { path }))
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Apply `path` to every path and `value` to every literal value (variable substitution:
    /// `"users[username=alice-${run}].id"` names the scenario's own user).
    pub fn map(
        &self,
        path: &dyn Fn(&str) -> Result<String, String>,
        value: &dyn Fn(&Value) -> Result<Value, String>,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for (p, e) in &self.0 {
            out.push((path(p)?, e.map_values(value)?));
        }
        Ok(Self(out))
    }
}

/// The segments of a dotted path; dots inside an array filter belong to the filter
/// (`users[email=a.b@example.org].id` is two segments).
fn segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

/// The value at a dotted path; array elements by index (`devices.0`) or by the first
/// element whose field has a value (`devices[device_type=Telescope].uuid`).
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    let mut cur = value;
    for seg in segments(path) {
        let (name, filter) = match seg.split_once('[') {
            Some((n, f)) => (n, Some(f.strip_suffix(']')?.split_once('=')?)),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = match cur {
                Value::Object(m) => m.get(name)?,
                Value::Array(a) => a.get(name.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        if let Some((key, want)) = filter {
            cur = cur.as_array()?.iter().find(|e| match e.get(key) {
                Some(Value::String(s)) => s == want,
                Some(Value::Number(n)) => want.parse::<f64>().ok() == n.as_f64(),
                Some(Value::Bool(b)) => want.parse::<bool>().ok() == Some(*b),
                Some(Value::Null) => want == "null",
                Some(_) => false,
                None => false,
            })?;
        }
    }
    Some(cur)
}

fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("`{what}` needs a number, got {v}"))
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "nothing (absent)".to_owned(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 200 {
                format!("{}…", &s[..s.floor_char_boundary(200)])
            } else {
                s
            }
        }
    }
}

impl Expect {
    pub fn parse(spec: &Value) -> Result<Self, String> {
        let Value::Object(m) = spec else {
            return Ok(Expect::Equals(spec.clone()));
        };
        if m.is_empty() || !m.keys().all(|k| OPERATORS.contains(&k.as_str())) {
            return Ok(Expect::Equals(spec.clone()));
        }
        let mut all = Vec::new();
        if let Some(t) = m.get("tol")
            && !m.contains_key("approx")
        {
            return Err(format!("`tol = {t}` without `approx`"));
        }
        for (k, v) in m {
            let e = match k.as_str() {
                "equals" => Expect::Equals(v.clone()),
                "not" => Expect::Not(v.clone()),
                "approx" => Expect::Approx {
                    value: number(v, "approx")?,
                    tol: m
                        .get("tol")
                        .map(|t| number(t, "tol"))
                        .transpose()?
                        .unwrap_or(1e-6),
                },
                "tol" => continue,
                "gt" | "ge" | "lt" | "le" => Expect::Compare {
                    op: match k.as_str() {
                        "gt" => "gt",
                        "ge" => "ge",
                        "lt" => "lt",
                        _ => "le",
                    },
                    value: number(v, k)?,
                },
                "contains" => Expect::Contains(v.clone()),
                "one_of" => Expect::OneOf(
                    v.as_array()
                        .ok_or_else(|| format!("`one_of` needs an array, got {v}"))?
                        .clone(),
                ),
                "exists" => Expect::Exists(
                    v.as_bool()
                        .ok_or_else(|| format!("`exists` needs true or false, got {v}"))?,
                ),
                "len" => Expect::Len(
                    v.as_u64()
                        .ok_or_else(|| format!("`len` needs a count, got {v}"))?
                        as usize,
                ),
                "type" => {
                    let t = v.as_str().unwrap_or_default();
                    if !["null", "bool", "number", "string", "array", "object"].contains(&t) {
                        return Err(format!("`type = {v}`: not a JSON type name"));
                    }
                    Expect::Type(t.to_owned())
                }
                _ => unreachable!("filtered by OPERATORS"),
            };
            all.push(e);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expect::All(all)
        })
    }

    pub fn check(&self, found: Option<&Value>) -> Result<(), String> {
        let fail = |want: String| Err(format!("expected {want}, got {}", show(found)));
        match self {
            Expect::Exists(want) => {
                if found.is_some() == *want {
                    Ok(())
                } else {
                    fail(if *want {
                        "a value".into()
                    } else {
                        "no value".into()
                    })
                }
            }
            Expect::All(all) => all.iter().try_for_each(|e| e.check(found)),
            Expect::Not(v) => match found {
                Some(f) if json_eq(f, v) => fail(format!("anything but {v}")),
                _ => Ok(()),
            },
            _ => {
                let Some(f) = found else {
                    return fail(self.describe());
                };
                let ok = match self {
                    Expect::Equals(v) => json_eq(f, v),
                    Expect::Approx { value, tol } => {
                        f.as_f64().is_some_and(|x| (x - value).abs() <= *tol)
                    }
                    Expect::Compare { op, value } => f.as_f64().is_some_and(|x| match *op {
                        "gt" => x > *value,
                        "ge" => x >= *value,
                        "lt" => x < *value,
                        _ => x <= *value,
                    }),
                    Expect::Contains(v) => match (f, v) {
                        (Value::String(s), Value::String(part)) => s.contains(part.as_str()),
                        (Value::Array(a), v) => a.iter().any(|x| json_eq(x, v)),
                        _ => false,
                    },
                    Expect::OneOf(vs) => vs.iter().any(|v| json_eq(f, v)),
                    Expect::Len(n) => match f {
                        Value::Array(a) => a.len() == *n,
                        Value::Object(o) => o.len() == *n,
                        Value::String(s) => s.chars().count() == *n,
                        _ => false,
                    },
                    Expect::Type(t) => type_name(f) == t,
                    Expect::Exists(_) | Expect::All(_) | Expect::Not(_) => true,
                };
                if ok { Ok(()) } else { fail(self.describe()) }
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::Equals(v) => v.to_string(),
            Expect::Not(v) => format!("not {v}"),
            Expect::Approx { value, tol } => format!("{value} ± {tol}"),
            Expect::Compare { op, value } => format!("{op} {value}"),
            Expect::Contains(v) => format!("something containing {v}"),
            Expect::OneOf(vs) => format!("one of {}", Value::Array(vs.clone())),
            Expect::Exists(b) => format!("exists = {b}"),
            Expect::Len(n) => format!("length {n}"),
            Expect::Type(t) => format!("a {t}"),
            Expect::All(all) => all
                .iter()
                .map(Expect::describe)
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }

    fn map_values(&self, f: &dyn Fn(&Value) -> Result<Value, String>) -> Result<Self, String> {
        Ok(match self {
            Expect::Equals(v) => Expect::Equals(f(v)?),
            Expect::Not(v) => Expect::Not(f(v)?),
            Expect::Contains(v) => Expect::Contains(f(v)?),
            Expect::OneOf(vs) => Expect::OneOf(vs.iter().map(f).collect::<Result<_, _>>()?),
            Expect::All(all) => Expect::All(
                all.iter()
                    .map(|e| e.map_values(f))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn m(spec: Value) -> Matchers {
        Matchers::from_table(spec.as_object().unwrap()).unwrap()
    }

    #[test]
    fn literals_operators_and_paths() {
        let v = json!({"success": true, "plugin": {"status": "running", "n": 3},
                       "list": [{"id": "a"}, {"id": "b"}], "ra": 5.4999, "msg": "checksum mismatch"});
        assert!(
            m(json!({"success": true, "plugin.status": "running", "list.1.id": "b"}))
                .check(&v)
                .is_ok()
        );
        assert!(
            m(json!({"plugin.n": 3.0, "ra": {"approx": 5.5, "tol": 0.001}}))
                .check(&v)
                .is_ok()
        );
        assert!(m(json!({"list": {"len": 2}, "msg": {"contains": "mismatch"}, "nope": {"exists": false}})).check(&v).is_ok());
        assert!(m(json!({"plugin.n": {"gt": 2, "lt": 4}, "plugin.status": {"one_of": ["x", "running"]}})).check(&v).is_ok());
        let e = m(json!({"success": false, "plugin.status": {"not": "running"}, "missing": 1}))
            .check(&v)
            .unwrap_err();
        assert!(e.contains("`success`: expected false, got true"), "{e}");
        assert!(e.contains("`plugin.status`"), "{e}");
        assert!(e.contains("`missing`: expected 1, got nothing"), "{e}");
    }

    #[test]
    fn array_filters_in_paths() {
        let v = json!({"devices": [{"device_type": "Camera", "uuid": "c"}, {"device_type": "Telescope", "uuid": "t", "n": 2}]});
        assert_eq!(
            lookup(&v, "devices[device_type=Telescope].uuid"),
            Some(&json!("t"))
        );
        assert_eq!(lookup(&v, "devices[n=2].uuid"), Some(&json!("t")));
        let users =
            json!({"users": [{"email": "a@x.org", "id": 1}, {"email": "b.c@x.org", "id": 2}]});
        assert_eq!(lookup(&users, "users[email=b.c@x.org].id"), Some(&json!(2)));
        assert_eq!(
            lookup(&users, "users[email=b.c@x.org]"),
            users.pointer("/users/1")
        );
        assert_eq!(lookup(&users, "users[email=c@x.org].id"), None);
        assert_eq!(lookup(&v, "devices[device_type=Dome].uuid"), None);
        assert_eq!(lookup(&v, "devices[oops"), None);
    }

    #[test]
    fn bad_operator_tables_are_refused() {
        assert!(Expect::parse(&json!({"approx": "x"})).is_err());
        assert!(Expect::parse(&json!({"tol": 1})).is_err());
        assert!(Expect::parse(&json!({"type": "float"})).is_err());
        // Not all operator keys: a literal object.
        assert_eq!(
            Expect::parse(&json!({"len": 1, "name": "x"})).unwrap(),
            Expect::Equals(json!({"len": 1, "name": "x"}))
        );
    }
}
