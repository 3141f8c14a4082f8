//! The provisioning error type and the record of what each rung of the ladder did.

use std::fmt;
use std::path::PathBuf;

use super::options::Rung;

/// Which of the two services a ladder attempt was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// PostgreSQL.
    Database,
    /// The MQTT broker (Mosquitto).
    Mqtt,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Database => "PostgreSQL",
            Self::Mqtt => "MQTT broker",
        })
    }
}

/// What happened on one rung of the ladder that did not supply the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The rung does not apply here (not configured, not installed, no Docker engine, nothing
    /// listening); the text says why.
    Skipped(String),
    /// The rung applied but failed; the text is the error.
    Failed(String),
}

/// One rung that was tried for one service and did not supply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The service the rung was tried for.
    pub service: Service,
    /// The rung.
    pub rung: Rung,
    /// Why it did not supply the service.
    pub outcome: AttemptOutcome,
}

impl Attempt {
    /// True when the rung was skipped as not applicable (rather than failing).
    pub fn is_skipped(&self) -> bool {
        matches!(self.outcome, AttemptOutcome::Skipped(_))
    }

    /// The reason text, whether skipped or failed.
    pub fn reason(&self) -> &str {
        match &self.outcome {
            AttemptOutcome::Skipped(reason) | AttemptOutcome::Failed(reason) => reason,
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            AttemptOutcome::Skipped(reason) => write!(f, "{}: skipped ({reason})", self.rung),
            AttemptOutcome::Failed(reason) => write!(f, "{}: failed ({reason})", self.rung),
        }
    }
}

/// What to do when no rung could supply a service.
pub const INSTALL_HINT: &str = "install PostgreSQL and Mosquitto (`apt-get install postgresql-15 mosquitto`), \
     or run a Docker engine and build with `--features containers`, \
     or set BIGSKIES_DATABASE_URL / BIGSKIES_MQTT_URL to services that are already running";

fn nothing_answered(service: Service, attempts: &[Attempt]) -> String {
    let mut text = format!("no provisioning rung could supply {service}; tried:");
    if attempts.is_empty() {
        text.push_str("\n  - nothing (BIGSKIES_PROVISION selected no rung)");
    }
    for attempt in attempts {
        text.push_str("\n  - ");
        text.push_str(&attempt.to_string());
    }
    text.push_str("\nTo fix: ");
    text.push_str(INSTALL_HINT);
    text
}

/// Everything that can go wrong while provisioning or using provisioned services.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An environment variable or option has a value we cannot use.
    #[error("{var}={value:?} is not valid: {reason}")]
    InvalidSetting {
        /// The variable (or option) name.
        var: &'static str,
        /// Its value, with any password redacted.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An explicitly configured service does not answer. The ladder stops here on purpose: a
    /// URL someone set by hand should never be silently replaced by another service.
    #[error("{service} at {url} (from {var}) does not answer: {reason}")]
    ExplicitUnreachable {
        /// The service.
        service: Service,
        /// The variable the URL came from.
        var: &'static str,
        /// The URL, with any password redacted.
        url: String,
        /// The connection error.
        reason: String,
    },

    /// Every rung was tried and none supplied the service.
    #[error("{}", nothing_answered(*service, attempts))]
    NothingAnswered {
        /// The service that could not be provisioned.
        service: Service,
        /// What each rung did.
        attempts: Vec<Attempt>,
    },

    /// A program needed by the local-process rung is not installed.
    #[error("{program} not found (looked in {}); {hint}", display_paths(searched))]
    BinaryNotFound {
        /// The program name.
        program: &'static str,
        /// Where we looked.
        searched: Vec<PathBuf>,
        /// What to install.
        hint: &'static str,
    },

    /// We run as root, PostgreSQL refuses to, and there is no unprivileged user to run it as.
    #[error(
        "PostgreSQL refuses to run as root and there is no `{user}` user in /etc/passwd to run it as; \
         create one (`useradd --system --create-home {user}`, which the postgresql package does) \
         or run the tests as an unprivileged user"
    )]
    NoUnprivilegedUser {
        /// The user we looked for.
        user: &'static str,
    },

    /// A local server process could not be started or did not become ready.
    #[error("{what}: {reason}")]
    Process {
        /// Which process and step, e.g. "postgres on port 40123".
        what: String,
        /// What went wrong, including the tail of the process log when there is one.
        reason: String,
    },

    /// An I/O operation failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A database operation failed.
    #[error("{context}")]
    Database {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
}

impl ProvisionError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn database(context: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source,
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_answered_lists_every_attempt_and_what_to_install() {
        let error = ProvisionError::NothingAnswered {
            service: Service::Database,
            attempts: vec![
                Attempt {
                    service: Service::Database,
                    rung: Rung::Explicit,
                    outcome: AttemptOutcome::Skipped("BIGSKIES_DATABASE_URL is not set".into()),
                },
                Attempt {
                    service: Service::Database,
                    rung: Rung::LocalProcesses,
                    outcome: AttemptOutcome::Failed("initdb exited with 1".into()),
                },
            ],
        };
        let text = error.to_string();
        assert!(text.contains("PostgreSQL"), "{text}");
        assert!(
            text.contains("explicit: skipped (BIGSKIES_DATABASE_URL is not set)"),
            "{text}"
        );
        assert!(
            text.contains("process: failed (initdb exited with 1)"),
            "{text}"
        );
        assert!(
            text.contains("apt-get install postgresql-15 mosquitto"),
            "{text}"
        );
    }
}
