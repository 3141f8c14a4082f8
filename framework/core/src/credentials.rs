//! Database credentials: `.pgpass` parsing, the bootstrap credentials message, and the
//! `DATABASE_URL` development override.
//!
//! The `.pgpass` format follows libpq: `host:port:database:username:password`, `#` comments,
//! `*` matches anything in the first four fields, `\:` and `\\` escape a colon or backslash,
//! first match wins. Like libpq we refuse a file that group or others can read.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::postgres::PgConnectOptions;

use crate::bus::Bus;
use crate::topics::Topics;

/// One `.pgpass` line. `None` fields are `*`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgPassEntry {
    pub host: Option<String>,
    pub port: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for PgPassEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPassEntry")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Split one line into its fields, honouring `\:` and `\\`. `None` if it has not exactly five.
fn split_fields(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => fields.last_mut()?.push(n),
                None => fields.last_mut()?.push('\\'),
            },
            ':' if fields.len() < 5 => fields.push(String::new()),
            other => fields.last_mut()?.push(other),
        }
    }
    fields.try_into().ok()
}

/// Parse `.pgpass` text. Malformed lines are skipped, as libpq does.
pub fn parse_pgpass(text: &str) -> Vec<PgPassEntry> {
    let wild = |s: String| if s == "*" { None } else { Some(s) };
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(split_fields)
        .map(|[host, port, database, user, password]| PgPassEntry {
            host: wild(host),
            port: wild(port),
            database: wild(database),
            user: wild(user),
            password,
        })
        .collect()
}

/// What we want to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl Default for DbTarget {
    fn default() -> Self {
        Self {
            host: "postgres".into(),
            port: 5432,
            database: "bigskies".into(),
            user: "bigskies".into(),
        }
    }
}

/// First entry matching `target`; `*` fields match anything.
pub fn lookup<'a>(entries: &'a [PgPassEntry], target: &DbTarget) -> Option<&'a PgPassEntry> {
    let port = target.port.to_string();
    let ok = |field: &Option<String>, want: &str| field.as_deref().is_none_or(|f| f == want);
    entries.iter().find(|e| {
        ok(&e.host, &target.host)
            && ok(&e.port, &port)
            && ok(&e.database, &target.database)
            && ok(&e.user, &target.user)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is readable by group or others (mode {mode:o}); chmod 0600 it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} has no entry for {user}@{host}:{port}/{database}")]
    NoEntry {
        path: PathBuf,
        host: String,
        port: u16,
        database: String,
        user: String,
    },
    #[error("credentials message is malformed: {0}")]
    BadMessage(String),
    #[error(
        "no credentials from bootstrap within {0:?}; is the bootstrap coordinator running? (set DATABASE_URL to bypass it)"
    )]
    Timeout(Duration),
    #[error("DATABASE_URL is invalid: {0}")]
    BadUrl(String),
    #[error("bus: {0}")]
    Bus(#[from] crate::bus::BusError),
}

/// Read and parse a `.pgpass` file, refusing one that others can read.
pub fn read_pgpass(path: &Path) -> Result<Vec<PgPassEntry>, CredentialsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| CredentialsError::Read {
        path: path.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::Permissions {
            path: path.into(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: path.into(),
        source,
    })?;
    Ok(parse_pgpass(&text))
}

/// Connection options for `target` from the `.pgpass` at `path`.
pub fn options_from_pgpass(
    path: &Path,
    target: &DbTarget,
) -> Result<PgConnectOptions, CredentialsError> {
    let entries = read_pgpass(path)?;
    let e = lookup(&entries, target).ok_or_else(|| CredentialsError::NoEntry {
        path: path.into(),
        host: target.host.clone(),
        port: target.port,
        database: target.database.clone(),
        user: target.user.clone(),
    })?;
    Ok(PgConnectOptions::new()
        .host(&target.host)
        .port(target.port)
        .database(&target.database)
        .username(&target.user)
        .password(&e.password))
}

/// The bootstrap credentials message: `{"pgpass_path": <base64 path>, "version": "1.0"}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CredentialsMessage {
    pub pgpass_path: String,
    pub version: String,
}

impl CredentialsMessage {
    pub fn for_path(path: &Path) -> Self {
        Self {
            pgpass_path: B64.encode(path.as_os_str().as_encoded_bytes()),
            version: "1.0".into(),
        }
    }

    /// Decode and check the advertised path: absolute, no `..`, not under /proc or /sys.
    pub fn path(&self) -> Result<PathBuf, CredentialsError> {
        let bytes = B64
            .decode(self.pgpass_path.trim())
            .map_err(|e| CredentialsError::BadMessage(format!("pgpass_path is not base64: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| CredentialsError::BadMessage("path is not UTF-8".into()))?;
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(CredentialsError::BadMessage(format!(
                "{} is not absolute",
                path.display()
            )));
        }
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(CredentialsError::BadMessage(format!(
                "{} contains '..'",
                path.display()
            )));
        }
        if path.starts_with("/proc") || path.starts_with("/sys") {
            return Err(CredentialsError::BadMessage(format!(
                "{} is not a credentials file",
                path.display()
            )));
        }
        Ok(path)
    }
}

/// Where the database credentials come from: `DATABASE_URL` when set (development), otherwise
/// the bootstrap coordinator's credentials message and the `.pgpass` it names.
pub async fn resolve_database(
    database_url: Option<&str>,
    bus: &Bus,
    topics: &Topics,
    requester: &str,
    target: &DbTarget,
    timeout: Duration,
) -> Result<PgConnectOptions, CredentialsError> {
    if let Some(url) = database_url.filter(|u| !u.is_empty()) {
        return url
            .parse::<PgConnectOptions>()
            .map_err(|e| CredentialsError::BadUrl(e.to_string()));
    }
    let msg = wait_for_credentials(bus, topics, requester, timeout).await?;
    options_from_pgpass(&msg.path()?, target)
}

/// Subscribe to the (retained) credentials topic, ask bootstrap to publish, and wait.
pub async fn wait_for_credentials(
    bus: &Bus,
    topics: &Topics,
    requester: &str,
    timeout: Duration,
) -> Result<CredentialsMessage, CredentialsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = bus.subscribe(&topics.bootstrap_credentials(), 4).await?;
    bus.publish(
        &topics.bootstrap_request(),
        requester.as_bytes().to_vec(),
        false,
    )
    .await?;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| CredentialsError::Timeout(timeout))?
            .ok_or(CredentialsError::Bus(crate::bus::BusError::Closed))?;
        match serde_json::from_slice::<CredentialsMessage>(&msg.payload) {
            Ok(m) => return Ok(m),
            Err(e) => tracing::warn!(error = %e, "ignoring malformed credentials message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target() -> DbTarget {
        DbTarget {
            host: "db".into(),
            port: 5432,
            database: "bigskies".into(),
            user: "app".into(),
        }
    }

    #[test]
    fn parses_escapes_wildcards_and_comments() {
        let text = "# comment\n\
                    db:5432:other:app:nope\n\
                    db:*:bigskies:app:pa\\:ss\\\\word\n\
                    bad line\n\
                    *:*:*:*:fallback\n";
        let entries = parse_pgpass(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(lookup(&entries, &target()).unwrap().password, "pa:ss\\word");
        let other = DbTarget {
            user: "someone".into(),
            ..target()
        };
        assert_eq!(lookup(&entries, &other).unwrap().password, "fallback");
    }

    #[test]
    fn password_may_contain_unescaped_colons_after_the_fourth_field() {
        let e = parse_pgpass("h:1:d:u:a:b:c");
        assert_eq!(e[0].password, "a:b:c");
    }

    #[test]
    fn file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".pgpass");
        std::fs::write(&p, "db:5432:bigskies:app:secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_pgpass(&p),
            Err(CredentialsError::Permissions { .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let opts = options_from_pgpass(&p, &target()).unwrap();
        assert_eq!(opts.get_database(), Some("bigskies"));
        assert!(!format!("{:?}", read_pgpass(&p).unwrap()).contains("secret"));
    }

    #[test]
    fn credentials_message_round_trips_and_rejects_bad_paths() {
        let m = CredentialsMessage::for_path(Path::new("/shared/secrets/.pgpass"));
        assert_eq!(m.pgpass_path, "L3NoYXJlZC9zZWNyZXRzLy5wZ3Bhc3M=");
        assert_eq!(m.path().unwrap(), PathBuf::from("/shared/secrets/.pgpass"));
        for bad in ["relative/.pgpass", "/a/../etc/shadow", "/proc/self/environ"] {
            assert!(
                CredentialsMessage::for_path(Path::new(bad)).path().is_err(),
                "{bad}"
            );
        }
        let junk = CredentialsMessage {
            pgpass_path: "%%%".into(),
            version: "1.0".into(),
        };
        assert!(junk.path().is_err());
    }

    fn escape(s: &str) -> String {
        s.replace('\\', "\\\\").replace(':', "\\:")
    }

    proptest! {
        #[test]
        fn any_escaped_entry_parses_back(
            host in "[^\n\r*]{1,12}", db in "[^\n\r*]{1,12}", user in "[^\n\r*]{1,12}", pw in "[^\n\r]{0,24}", port in 1u16..,
        ) {
            prop_assume!(!host.trim_start().starts_with('#') && !host.trim().is_empty());
            let line = format!("{}:{}:{}:{}:{}", escape(&host), port, escape(&db), escape(&user), escape(&pw));
            let entries = parse_pgpass(&line);
            prop_assert_eq!(entries.len(), 1);
            let t = DbTarget { host: host.clone(), port, database: db.clone(), user: user.clone() };
            prop_assert_eq!(&lookup(&entries, &t).unwrap().password, &pw);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_pgpass(&text);
        }
    }
}
