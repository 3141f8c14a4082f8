//! The scenario runner: each scenario in its own stack (database, topic root, simulator,
//! coordinators), several at once, with progress, a summary and JUnit XML.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use bigskies_core::bus::BusConfig;
use bigskies_core::topics::Topics;

use crate::provision::Provisioned;
use crate::scenario::{Context, Scenario, Setup, Target};
use crate::stack::{Stack, StackOptions};

/// A scenario written in Rust, run with the same harness as the files.
pub trait RustScenario: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
    fn setup(&self) -> Setup {
        Setup::default()
    }
    /// True when it changes the deployment itself (skipped with `--external`).
    fn needs_owned_stack(&self) -> bool {
        false
    }
    fn run<'a>(&'a self, cx: &'a mut Context) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// One entry of a suite.
#[derive(Clone)]
pub enum Entry {
    File(Box<Scenario>),
    Rust(Arc<dyn RustScenario>),
    /// A file that did not parse: reported as a failure.
    Broken {
        file: PathBuf,
        error: String,
    },
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Entry {
    pub fn name(&self) -> String {
        match self {
            Entry::File(s) => s.name.clone(),
            Entry::Rust(r) => r.name().to_owned(),
            Entry::Broken { file, .. } => file.file_stem().map_or_else(
                || file.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            ),
        }
    }

    pub fn description(&self) -> String {
        match self {
            Entry::File(s) => s.description.clone(),
            Entry::Rust(r) => r.description().to_owned(),
            Entry::Broken { error, .. } => format!("does not parse: {error}"),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Entry::File(_) | Entry::Broken { .. } => "file",
            Entry::Rust(_) => "rust",
        }
    }

    pub fn matches(&self, filter: &str) -> bool {
        match self {
            Entry::File(s) => s.matches(filter),
            Entry::Rust(r) => {
                let f = filter.to_lowercase();
                r.name().to_lowercase().contains(&f)
                    || r.tags().iter().any(|t| t.to_lowercase() == f)
            }
            Entry::Broken { .. } => self.name().to_lowercase().contains(&filter.to_lowercase()),
        }
    }

    fn needs_owned_stack(&self) -> bool {
        match self {
            Entry::File(s) => s.needs_owned_stack(),
            Entry::Rust(r) => r.needs_owned_stack(),
            Entry::Broken { .. } => false,
        }
    }

    fn setup(&self) -> Setup {
        match self {
            Entry::File(s) => s.setup.clone(),
            Entry::Rust(r) => r.setup(),
            Entry::Broken { .. } => Setup::default(),
        }
    }

    fn timeout(&self) -> Duration {
        match self {
            Entry::File(s) => s.timeout,
            _ => crate::scenario::DEFAULT_TIMEOUT,
        }
    }
}

/// Run against a deployment someone else started.
#[derive(Clone, Debug)]
pub struct External {
    /// The broker, credentials included (`mqtt://user:pass@host:port`).
    pub bus: BusConfig,
    pub topic_root: String,
    pub simulator_url: Option<String>,
    pub admin_password: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Scenarios at once.
    pub jobs: usize,
    /// Run everything even after a failure.
    pub keep_going: bool,
    pub external: Option<External>,
    /// Executable that hosts coordinators run as processes (`<exe> host ...`).
    pub host_exe: Option<PathBuf>,
    /// Print a line per scenario as it ends.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            keep_going: true,
            external: None,
            host_exe: None,
            progress: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Passed,
    Failed {
        /// 1-based step number, `None` for set-up and tear-down problems.
        step: Option<usize>,
        label: String,
        message: String,
    },
    Skipped(String),
}

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub name: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    pub duration: Duration,
    pub steps_run: usize,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub results: Vec<ScenarioResult>,
    pub wall: Duration,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }
    pub fn success(&self) -> bool {
        self.failed() == 0
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let failed: Vec<&ScenarioResult> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .collect();
        if !failed.is_empty() {
            out.push_str("\nFailures:\n");
            for r in failed {
                if let Outcome::Failed {
                    step,
                    label,
                    message,
                } = &r.outcome
                {
                    let at = step.map_or_else(|| label.clone(), |n| format!("step {n} ({label})"));
                    out.push_str(&format!("  {} — {at}:\n      {message}\n", r.name));
                }
            }
        }
        out.push_str(&format!(
            "\n{} scenarios: {} passed, {} failed, {} skipped in {:.1} s\n",
            self.results.len(),
            self.passed(),
            self.failed(),
            self.skipped(),
            self.wall.as_secs_f64()
        ));
        out
    }
}

/// Run `entries`, at most `options.jobs` at once (one at a time when external). `provisioned`
/// is needed unless external.
pub async fn run(
    entries: Vec<Entry>,
    provisioned: Option<&'static Provisioned>,
    options: RunOptions,
) -> Report {
    let started = Instant::now();
    let total = entries.len();
    // Against an external deployment the scenarios share its simulator's devices and its
    // telescopes' sessions: one at a time.
    let jobs = if options.external.is_some() {
        1
    } else {
        options.jobs.max(1)
    };
    let permits = Arc::new(Semaphore::new(jobs));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let (permits, stop, done, options) =
            (permits.clone(), stop.clone(), done.clone(), options.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = if stop.load(Ordering::SeqCst) {
                ScenarioResult {
                    name: entry.name(),
                    kind: entry.kind(),
                    outcome: Outcome::Skipped(
                        "not run after an earlier failure (use --keep-going)".into(),
                    ),
                    duration: Duration::ZERO,
                    steps_run: 0,
                }
            } else {
                run_one(&entry, provisioned, &options).await
            };
            if matches!(result.outcome, Outcome::Failed { .. }) && !options.keep_going {
                stop.store(true, Ordering::SeqCst);
            }
            let n = done.fetch_add(1, Ordering::SeqCst) + 1;
            if options.progress {
                eprintln!("{}", progress_line(n, total, &result));
            }
            (i, result)
        }));
    }
    let mut results: Vec<(usize, ScenarioResult)> = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => results.push(r),
            Err(e) => results.push((
                usize::MAX,
                ScenarioResult {
                    name: "<runner>".into(),
                    kind: "rust",
                    outcome: Outcome::Failed {
                        step: None,
                        label: "runner".into(),
                        message: format!("a scenario task panicked: {e}"),
                    },
                    duration: Duration::ZERO,
                    steps_run: 0,
                },
            )),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    Report {
        results: results.into_iter().map(|(_, r)| r).collect(),
        wall: started.elapsed(),
    }
}

fn progress_line(n: usize, total: usize, r: &ScenarioResult) -> String {
    let width = total.to_string().len();
    let (tag, extra) = match &r.outcome {
        Outcome::Passed => ("PASS", String::new()),
        Outcome::Failed {
            step,
            label,
            message,
        } => (
            "FAIL",
            format!(
                "\n         {}: {message}",
                step.map_or_else(|| label.clone(), |s| format!("step {s} ({label})"))
            ),
        ),
        Outcome::Skipped(why) => ("SKIP", format!(" — {why}")),
    };
    format!(
        "[{n:>width$}/{total}] {tag} {} ({:.1} s){extra}",
        r.name,
        r.duration.as_secs_f64()
    )
}

fn failed(step: Option<usize>, label: &str, message: String) -> Outcome {
    Outcome::Failed {
        step,
        label: label.to_owned(),
        message,
    }
}

/// Run one scenario in a stack of its own (or against the external deployment).
pub async fn run_one(
    entry: &Entry,
    provisioned: Option<&'static Provisioned>,
    options: &RunOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let mut steps_run = 0;
    let outcome = match entry {
        Entry::Broken { error, .. } => failed(None, "parse", error.clone()),
        _ if options.external.is_some() && entry.needs_owned_stack() => Outcome::Skipped(
            "changes the deployment (restarts, outages, configuration); not run with --external"
                .into(),
        ),
        _ => match tokio::time::timeout(
            entry.timeout() + Duration::from_secs(30),
            execute(entry, provisioned, options, &mut steps_run),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => failed(
                None,
                "timeout",
                format!("the scenario did not end within {:?}", entry.timeout()),
            ),
        },
    };
    ScenarioResult {
        name: entry.name(),
        kind: entry.kind(),
        outcome,
        duration: started.elapsed(),
        steps_run,
    }
}

async fn execute(
    entry: &Entry,
    provisioned: Option<&'static Provisioned>,
    options: &RunOptions,
    steps_run: &mut usize,
) -> Outcome {
    let setup = entry.setup();
    let mut cx = match connect(entry, &setup, provisioned, options).await {
        Ok(cx) => cx,
        Err(e) => return failed(None, "set-up", format!("{e:#}")),
    };
    let deadline = entry.timeout();
    let outcome = match entry {
        Entry::File(s) => {
            let run = async {
                for (i, step) in s.steps.iter().enumerate() {
                    *steps_run = i + 1;
                    if let Err(e) = cx.run(step).await {
                        return failed(Some(i + 1), &step.label, format!("{e:#}"));
                    }
                }
                Outcome::Passed
            };
            tokio::time::timeout(deadline, run)
                .await
                .unwrap_or_else(|_| {
                    failed(
                        Some(*steps_run),
                        "timeout",
                        format!("scenario timeout {deadline:?} reached"),
                    )
                })
        }
        Entry::Rust(r) => match tokio::time::timeout(deadline, r.run(&mut cx)).await {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(e)) => failed(None, "rust", format!("{e:#}")),
            Err(_) => failed(
                None,
                "timeout",
                format!("scenario timeout {deadline:?} reached"),
            ),
        },
        Entry::Broken { .. } => unreachable!("handled by run_one"),
    };
    let problems = cx.finish().await;
    match outcome {
        Outcome::Passed if !problems.is_empty() => failed(None, "tear-down", problems.join("; ")),
        o => o,
    }
}

async fn connect(
    entry: &Entry,
    setup: &Setup,
    provisioned: Option<&'static Provisioned>,
    options: &RunOptions,
) -> anyhow::Result<Context> {
    if let Some(ext) = &options.external {
        let target = Target {
            topics: Topics::checked(ext.topic_root.clone())?,
            bus: ext.bus.clone(),
            simulator_url: ext.simulator_url.clone(),
            admin_password: ext.admin_password.clone(),
        };
        return Context::connect(target, None).await;
    }
    let p = provisioned.ok_or_else(|| anyhow::anyhow!("nothing provisioned"))?;
    let stack = Stack::prepare(
        p,
        &entry.name(),
        StackOptions {
            simulator: setup.simulator.clone(),
            private_broker: setup.private_broker,
            without: setup.without.clone(),
            processes: setup.processes.clone(),
            config: setup.config.clone(),
            host_exe: options.host_exe.clone(),
        },
    )
    .await?;
    let target = Target {
        topics: stack.topics.clone(),
        bus: stack.bus_config(),
        simulator_url: Some(stack.simulator_url()),
        admin_password: Some(stack.admin_password.clone()),
    };
    let names = stack.coordinators(&setup.without);
    let mut cx = Context::connect(target, Some(stack)).await?;
    if let Some(s) = cx.stack() {
        s.start_all(&names).await?;
    }
    cx.wait_started(&names, Duration::from_secs(30)).await?;
    Ok(cx)
}

/// JUnit XML of a report (one test suite, one test case per scenario).
pub fn junit(report: &Report, suite: &str) -> String {
    fn esc(s: &str) -> String {
        s.chars()
            .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        esc(suite),
        report.results.len(),
        report.failed(),
        report.skipped(),
        report.wall.as_secs_f64()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">\n",
        esc(suite),
        report.results.len(),
        report.failed(),
        report.skipped(),
        report.wall.as_secs_f64()
    ));
    for r in &report.results {
        x.push_str(&format!(
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
            esc(suite),
            r.kind,
            esc(&r.name),
            r.duration.as_secs_f64()
        ));
        match &r.outcome {
            Outcome::Passed => x.push_str("/>\n"),
            Outcome::Skipped(why) => {
                x.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    esc(why)
                ));
            }
            Outcome::Failed {
                step,
                label,
                message,
            } => {
                let at = step.map_or_else(|| label.clone(), |n| format!("step {n} ({label})"));
                x.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                    esc(&format!("{at}: {message}")),
                    esc(label),
                    esc(message)
                ));
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
