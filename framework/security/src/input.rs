//! Validation of everything that arrives from the network, done before any query runs.
//!
//! Queries are always parameterised; these checks exist so that injection-shaped, oversized or
//! control-character input is refused with a clear error instead of reaching the database.

use crate::error::{SecurityError, SecurityResult};

/// Longest accepted free-text field (descriptions, key names).
pub const MAX_TEXT: usize = 1024;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Usernames: 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn username(s: &str) -> SecurityResult<&str> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(s)
    } else {
        Err(SecurityError::invalid(
            "username must be 1-64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// A plain e-mail check: one `@`, no spaces or control characters, at most 254 bytes.
pub fn email(s: &str) -> SecurityResult<&str> {
    let ok = (3..=254).contains(&s.len())
        && !has_control(s)
        && !s.contains(char::is_whitespace)
        && !s.contains(['\'', '"', ';', '\\', '<', '>'])
        && s.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && !d.is_empty() && !d.contains('@') && d.contains('.')
        });
    if ok {
        Ok(s)
    } else {
        Err(SecurityError::invalid("email is not a valid address"))
    }
}

/// Role, group, resource and action names: 1–64 of `a-z 0-9 . _ -` (lower case).
pub fn name<'a>(what: &str, s: &'a str) -> SecurityResult<&'a str> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(s)
    } else {
        Err(SecurityError::invalid(format!(
            "{what} must be 1-64 of a-z, 0-9, '.', '_' or '-'"
        )))
    }
}

/// Like [`name`] but `*` (any) is also accepted: for permission resources and actions.
pub fn pattern<'a>(what: &str, s: &'a str) -> SecurityResult<&'a str> {
    if s == "*" { Ok(s) } else { name(what, s) }
}

/// Free text: bounded, no control characters.
pub fn text<'a>(what: &str, s: &'a str) -> SecurityResult<&'a str> {
    if s.len() > MAX_TEXT || has_control(s) {
        return Err(SecurityError::invalid(format!(
            "{what} must be at most {MAX_TEXT} bytes without control characters"
        )));
    }
    Ok(s)
}

/// A DNS name for a certificate: labels of `a-z 0-9 -`, optional leading `*.`, at most 253 bytes.
pub fn domain(s: &str) -> SecurityResult<String> {
    let lower = s.to_ascii_lowercase();
    let body = lower.strip_prefix("*.").unwrap_or(&lower);
    let ok = !body.is_empty()
        && lower.len() <= 253
        && body.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(lower)
    } else {
        Err(SecurityError::invalid("domain is not a valid DNS name"))
    }
}

/// An API key scope: `*`, `resource:*` or `resource:action`.
pub fn scope(s: &str) -> SecurityResult<&str> {
    if s == "*" {
        return Ok(s);
    }
    match s.split_once(':') {
        Some((r, a))
            if pattern("scope resource", r).is_ok() && pattern("scope action", a).is_ok() =>
        {
            Ok(s)
        }
        _ => Err(SecurityError::invalid(
            "scopes must be '*', 'resource:*' or 'resource:action'",
        )),
    }
}

/// Parse a UUID field.
pub fn uuid(what: &str, s: &str) -> SecurityResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| SecurityError::invalid(format!("{what} must be a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn injection_shapes_are_refused() {
        for bad in [
            "admin' OR '1'='1",
            "a;DROP TABLE users;--",
            "",
            " admin",
            "ad\u{0}min",
            &"a".repeat(65),
            "-x",
        ] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
        assert!(username("alice.b_c-1").is_ok());
        assert!(email("a@b.c").is_ok());
        for bad in ["a'@b.c", "a@b", "@b.c", "a b@c.d", "a@b@c.d", "x@y.z\n"] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(name("role", "Admin").is_err());
        assert!(pattern("resource", "*").is_ok());
        assert_eq!(domain("WWW.Example.org").unwrap(), "www.example.org");
        for bad in ["", "a..b", "-a.b", "a_b.c", "a.b/../c", "x'; --"] {
            assert!(domain(bad).is_err(), "{bad:?}");
        }
        assert!(scope("telescope:read").is_ok());
        assert!(scope("telescope").is_err());
    }

    proptest! {
        #[test]
        fn validators_never_panic_and_accepted_names_are_plain(s in ".{0,80}") {
            if let Ok(v) = username(&s) { prop_assert!(v.bytes().all(|b| b.is_ascii_graphic())); }
            if let Ok(v) = name("n", &s) { prop_assert!(!v.contains('\'')); }
            let _ = email(&s);
            let _ = domain(&s);
            let _ = text("t", &s);
            let _ = scope(&s);
        }
    }
}
