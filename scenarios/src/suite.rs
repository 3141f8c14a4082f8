//! The shipped suite: the scenario files under `scenarios/scenarios/` and the scenarios
//! written in Rust (for checks a data file cannot state).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use futures::future::BoxFuture;
use serde_json::json;

use crate::runner::{Entry, RustScenario};
use crate::scenario::{self, Context};

/// `scenarios/scenarios` of this source tree (where `cargo run` finds it), else `./scenarios`.
pub fn default_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("scenarios")
    }
}

/// The files of `dir` (broken ones included, to be reported) and the Rust scenarios.
pub fn entries(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut out: Vec<Entry> = scenario::load_dir(dir)?
        .into_iter()
        .map(|r| match r {
            Ok(s) => Entry::File(Box::new(s)),
            Err((file, error)) => Entry::Broken { file, error },
        })
        .collect();
    out.extend(rust_scenarios());
    let mut seen = HashMap::new();
    for e in &out {
        if let Some(prev) = seen.insert(e.name(), e.kind()) {
            bail!(
                "two scenarios are named {:?} ({prev} and {})",
                e.name(),
                e.kind()
            );
        }
    }
    Ok(out)
}

pub fn rust_scenarios() -> Vec<Entry> {
    vec![Entry::Rust(Arc::new(NoRepublish))]
}

/// The Go message coordinator republished every message in an endless loop. Here: with all
/// eight coordinators up and requests flowing, no message is ever seen twice and the traffic
/// stays at the rate the health intervals explain.
struct NoRepublish;

impl RustScenario for NoRepublish {
    fn name(&self) -> &str {
        "message-never-republishes"
    }
    fn description(&self) -> &str {
        "all coordinators up, requests flowing: no message appears twice, traffic stays bounded"
    }
    fn tags(&self) -> Vec<String> {
        vec!["message".into(), "rust".into()]
    }
    fn run<'a>(&'a self, cx: &'a mut Context) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let password = cx
                .var("admin_password")
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| anyhow::anyhow!("no admin password"))?;
            cx.login("admin", &password, "admin").await?;
            let from = cx.client().mark();
            for op in [
                "message/summary/get",
                "application/service/list",
                "uielement/framework/list",
                "telescope/config/list",
                "datastore/pool/stats",
            ] {
                let r = cx.request(op, json!({}), Some("admin")).await?;
                if r.get("success") == Some(&json!(false)) {
                    bail!("{op} failed: {r}");
                }
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let seen = cx.client().since(from, "#");
            let mut ids: HashMap<(String, String), usize> = HashMap::new();
            for s in &seen {
                // Envelopes carry a unique id; bare replies carry their correlation id.
                let id = s
                    .json
                    .as_ref()
                    .and_then(|j| j.get("id").or_else(|| j.get("correlation_id")))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                if let Some(id) = id {
                    *ids.entry((s.topic.clone(), id)).or_default() += 1;
                }
            }
            if let Some(((topic, id), n)) = ids.iter().find(|(_, n)| **n > 1) {
                bail!("message {id} on {topic} seen {n} times");
            }
            if seen.len() > 400 {
                bail!("{} messages in about 4 s: something is looping", seen.len());
            }
            Ok(())
        })
    }
}
