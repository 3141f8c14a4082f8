//! Scenarios: data files (TOML) of steps, plus scenarios written in Rust against the same
//! [`Context`]. The file format is documented in `scenarios/README.md`.
//!
//! * [`step`]: parsing of `[[step]]` tables into actions.
//! * [`matcher`]: field matching of replies, events and device values.
//! * [`client`]: the recording MQTT client.
//! * [`context`]: running steps.

pub mod client;
pub mod context;
pub mod matcher;
pub mod step;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

pub use context::{Context, Target};
pub use step::{Action, Step};

use crate::stack::ConfigSeed;

/// What a scenario needs from the deployment.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Simulator configuration (its own TOML format).
    pub simulator: toml::Table,
    /// A broker of its own.
    pub private_broker: bool,
    pub without: Vec<String>,
    /// Coordinators run as child processes (so they can be killed).
    pub processes: Vec<String>,
    pub config: Vec<ConfigSeed>,
}

/// A parsed scenario file.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub file: Option<PathBuf>,
    pub timeout: Duration,
    pub setup: Setup,
    pub steps: Vec<Step>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

impl Scenario {
    /// True when a step changes the deployment itself (skipped with `--external`).
    pub fn needs_owned_stack(&self) -> bool {
        self.setup.private_broker
            || !self.setup.processes.is_empty()
            || !self.setup.config.is_empty()
            || self.steps.iter().any(|s| s.action.needs_owned_stack())
    }

    pub fn matches(&self, filter: &str) -> bool {
        let f = filter.to_lowercase();
        self.name.to_lowercase().contains(&f) || self.tags.iter().any(|t| t.to_lowercase() == f)
    }

    /// Parse the TOML text of a scenario file.
    pub fn parse(text: &str, file: Option<&Path>) -> anyhow::Result<Self> {
        let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
        let json: Value = serde_json::to_value(&table)?;
        let Value::Object(mut top) = json else {
            bail!("a scenario file is a table");
        };
        let mut text_field = |k: &str| -> anyhow::Result<Option<String>> {
            match top.remove(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => bail!("`{k}` must be a string, got {other}"),
            }
        };
        let name = text_field("name")?
            .or_else(|| {
                file.and_then(|f| f.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .ok_or_else(|| anyhow!("`name` is missing"))?;
        let description = text_field("description")?.unwrap_or_default();
        let timeout = match top.remove("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => step::parse_duration(&v).map_err(|e| anyhow!("`timeout`: {e}"))?,
        };
        let tags = match top.remove("tags") {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v).context("`tags` must be a list of strings")?,
        };
        let setup = match top.remove("setup") {
            None => Setup::default(),
            Some(v) => parse_setup(v).context("[setup]")?,
        };
        let steps = match top.remove("step") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let t = s
                        .as_object()
                        .ok_or_else(|| anyhow!("step {}: not a table", i + 1))?;
                    step::parse_step(t).map_err(|e| anyhow!("step {}: {e}", i + 1))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => bail!("no steps: add [[step]] tables"),
            Some(_) => bail!("`step` must be an array of tables ([[step]])"),
        };
        if let Some(k) = top.keys().next() {
            bail!("unknown top-level key `{k}` (name, description, tags, timeout, setup, step)");
        }
        Ok(Self {
            name,
            description,
            tags,
            file: file.map(Path::to_path_buf),
            timeout,
            setup,
            steps,
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, Some(path)).with_context(|| format!("{}", path.display()))
    }
}

fn parse_setup(v: Value) -> anyhow::Result<Setup> {
    let Value::Object(mut m) = v else {
        bail!("must be a table");
    };
    let mut setup = Setup::default();
    if let Some(sim) = m.remove("simulator") {
        setup.simulator = serde_json::from_value(sim).context("`simulator` must be a table")?;
    }
    match m.remove("broker") {
        None => {}
        Some(Value::String(s)) if s == "shared" => {}
        Some(Value::String(s)) if s == "private" => setup.private_broker = true,
        Some(other) => bail!("`broker` is \"shared\" or \"private\", got {other}"),
    }
    for (key, list) in [
        ("without", &mut setup.without),
        ("processes", &mut setup.processes),
    ] {
        if let Some(v) = m.remove(key) {
            *list = serde_json::from_value(v)
                .with_context(|| format!("`{key}` must be a list of coordinator names"))?;
        }
    }
    if let Some(Value::Array(seeds)) = m.remove("config") {
        for (i, s) in seeds.into_iter().enumerate() {
            let parsed: SeedFile = serde_json::from_value(s).with_context(|| {
                format!("config[{i}]: expected {{coordinator, key, value, type}}")
            })?;
            let kind = bigskies_core::config::ConfigType::parse(&parsed.kind)
                .ok_or_else(|| anyhow!("config[{i}]: unknown type {:?}", parsed.kind))?;
            if !kind.admits(&parsed.value) {
                bail!("config[{i}]: {} is not a {}", parsed.value, parsed.kind);
            }
            setup.config.push(ConfigSeed {
                coordinator: parsed.coordinator,
                key: parsed.key,
                value: parsed.value,
                kind,
            });
        }
    }
    if let Some(k) = m.keys().next() {
        bail!("unknown key `{k}` (simulator, broker, without, processes, config)");
    }
    Ok(setup)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    coordinator: String,
    key: String,
    value: Value,
    #[serde(rename = "type")]
    kind: String,
}

/// Every `*.toml` file of `dir`, sorted by file name, parsed; parse errors are returned per
/// file so the runner can report them as failures.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Result<Scenario, (PathBuf, String)>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the scenario directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|f| Scenario::load(&f).map_err(|e| (f, format!("{e:#}"))))
        .collect())
}
