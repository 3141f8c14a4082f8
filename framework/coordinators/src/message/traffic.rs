//! Message-rate diagnostics per coordinator and topic class.
//!
//! Anyone may publish under `<root>/coordinator/`, so the counters are bounded: the known
//! coordinators get counters of their own, at most [`MAX_OTHER_NAMES`] other names (cut to
//! [`MAX_NAME_LEN`] bytes) get theirs, and everything beyond is counted together under
//! [`OVERFLOW`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use bigskies_core::topics::Topics;

/// What a topic under `<root>/coordinator/` is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicClass {
    Health,
    Request,
    Response,
    Event,
    Config,
    Bootstrap,
    Other,
}

impl TopicClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Request => "request",
            Self::Response => "response",
            Self::Event => "event",
            Self::Config => "config",
            Self::Bootstrap => "bootstrap",
            Self::Other => "other",
        }
    }
}

/// `(coordinator, class)` of a topic, or `None` outside the coordinator space.
pub fn classify<'t>(topics: &Topics, topic: &'t str) -> Option<(&'t str, TopicClass)> {
    let mut seg = topics.coordinator_segments(topic)?;
    let name = seg.next().filter(|n| !n.is_empty())?;
    let action = seg.next();
    let rest: Vec<&str> = seg.collect();
    if name == "config" {
        // <root>/coordinator/config/update/<name>-coordinator
        let target = rest
            .first()
            .map(|t| t.strip_suffix("-coordinator").unwrap_or(t))
            .unwrap_or(name);
        return Some((target, TopicClass::Config));
    }
    let class = match (action, rest.len()) {
        // Health first: the bootstrap coordinator reports its health like every other.
        (Some("health"), 1) if rest[0] == "status" => TopicClass::Health,
        _ if name == "bootstrap" => TopicClass::Bootstrap,
        (Some("response"), _) => TopicClass::Response,
        (Some("event"), _) => TopicClass::Event,
        (Some(_), 1) => TopicClass::Request,
        _ => TopicClass::Other,
    };
    Some((name, class))
}

/// Names outside the known coordinators that get counters of their own.
pub const MAX_OTHER_NAMES: usize = 64;
/// Longer names are cut to this many bytes (on a character boundary) before counting.
pub const MAX_NAME_LEN: usize = 64;
/// The one key traffic to further unknown names is counted under.
pub const OVERFLOW: &str = "(overflow)";

/// `name` cut to at most [`MAX_NAME_LEN`] bytes.
fn bounded(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[derive(Clone, Debug, Default)]
struct Counter {
    messages: u64,
    bytes: u64,
    /// Messages at the last tick, and the rate measured over the last tick period.
    at_tick: u64,
    rate: f64,
}

/// Counters and per-second rates, updated by the ingest path and ticked by the sweeper.
#[derive(Debug, Default)]
pub struct Traffic {
    counters: BTreeMap<String, BTreeMap<TopicClass, Counter>>,
    /// Names that always get counters of their own.
    known: BTreeSet<String>,
    /// Keys of `counters` that are neither known nor [`OVERFLOW`].
    others: usize,
    /// Messages counted under [`OVERFLOW`].
    overflow: u64,
    last_tick: Option<Instant>,
    total: u64,
    total_at_tick: u64,
    total_rate: f64,
}

impl Traffic {
    /// Counters for the `known` coordinators, and bounded ones for any other name.
    pub fn new(known: BTreeSet<String>) -> Self {
        Self {
            known,
            ..Self::default()
        }
    }

    /// Change the known names (counters already kept stay).
    pub fn configure(&mut self, known: &BTreeSet<String>) {
        if &self.known != known {
            self.known.clone_from(known);
            self.others = self
                .counters
                .keys()
                .filter(|k| !self.known.contains(*k) && k.as_str() != OVERFLOW)
                .count();
        }
    }

    pub fn count(&mut self, coordinator: &str, class: TopicClass, bytes: usize) {
        self.total += 1;
        let name = bounded(coordinator);
        // Look up without allocating on the hot path; allocate only for a new name, and only
        // while there is room for it.
        let classes = if let Some(c) = self.counters.get_mut(name) {
            c
        } else if self.known.contains(name) {
            self.counters.entry(name.to_owned()).or_default()
        } else if self.others < MAX_OTHER_NAMES {
            self.others += 1;
            self.counters.entry(name.to_owned()).or_default()
        } else {
            self.overflow += 1;
            self.counters.entry(OVERFLOW.to_owned()).or_default()
        };
        let c = classes.entry(class).or_default();
        c.messages += 1;
        c.bytes += bytes as u64;
    }

    /// Recompute rates over the time since the previous tick.
    pub fn tick(&mut self, now: Instant) {
        if let Some(prev) = self.last_tick {
            let dt = now.saturating_duration_since(prev).as_secs_f64();
            if dt > 0.0 {
                for c in self.counters.values_mut().flat_map(|m| m.values_mut()) {
                    c.rate = (c.messages - c.at_tick) as f64 / dt;
                    c.at_tick = c.messages;
                }
                self.total_rate = (self.total - self.total_at_tick) as f64 / dt;
                self.total_at_tick = self.total;
            }
        } else {
            for c in self.counters.values_mut().flat_map(|m| m.values_mut()) {
                c.at_tick = c.messages;
            }
            self.total_at_tick = self.total;
        }
        self.last_tick = Some(now);
    }

    /// Names with counters (at most the known ones, [`MAX_OTHER_NAMES`] and [`OVERFLOW`]).
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Every counter: [`Traffic::page`] from the start without a limit.
    pub fn report(&self) -> Value {
        self.page(0, usize::MAX)
    }

    /// `{total_messages, rate_per_second, coordinators: {name: {class: {messages, bytes,
    /// rate_per_second}}}, coordinators_total, other_names, overflow_messages}` with at most
    /// `limit` names from the `offset`-th on (in name order).
    pub fn page(&self, offset: usize, limit: usize) -> Value {
        let by: Map<String, Value> = self
            .counters
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(name, classes)| {
                let m: Map<String, Value> = classes
                    .iter()
                    .map(|(class, c)| {
                        (
                            class.as_str().to_owned(),
                            json!({"messages": c.messages, "bytes": c.bytes, "rate_per_second": c.rate}),
                        )
                    })
                    .collect();
                (name.clone(), Value::Object(m))
            })
            .collect();
        json!({
            "total_messages": self.total,
            "rate_per_second": self.total_rate,
            "coordinators": by,
            "coordinators_total": self.counters.len(),
            "other_names": self.others,
            "overflow_messages": self.overflow,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn topics_are_classified() {
        let t = Topics::new("r");
        let c = |topic| classify(&t, topic);
        assert_eq!(
            c("r/coordinator/telescope/health/status"),
            Some(("telescope", TopicClass::Health))
        );
        assert_eq!(
            c("r/coordinator/security/auth/login"),
            Some(("security", TopicClass::Request))
        );
        assert_eq!(
            c("r/coordinator/security/response/auth/login/response"),
            Some(("security", TopicClass::Response))
        );
        assert_eq!(
            c("r/coordinator/config/update/plugin-coordinator"),
            Some(("plugin", TopicClass::Config))
        );
        assert_eq!(
            c("r/coordinator/message/event/system/health"),
            Some(("message", TopicClass::Event))
        );
        assert_eq!(
            c("r/coordinator/bootstrap/credentials"),
            Some(("bootstrap", TopicClass::Bootstrap))
        );
        assert_eq!(
            c("r/coordinator/bootstrap/health/status"),
            Some(("bootstrap", TopicClass::Health))
        );
        assert_eq!(
            c("r/coordinator/security/health"),
            Some(("security", TopicClass::Other))
        );
        assert_eq!(c("other/coordinator/a/b/c"), None);
    }

    #[test]
    fn unknown_names_are_bounded_and_cut() {
        let known: BTreeSet<String> = ["security".to_owned()].into();
        let mut t = Traffic::new(known);
        for i in 0..1000 {
            t.count(&format!("fake-{i}"), TopicClass::Request, 1);
        }
        t.count("security", TopicClass::Request, 1);
        let long = "é".repeat(100);
        t.count(&long, TopicClass::Other, 1);
        assert_eq!(
            t.len(),
            MAX_OTHER_NAMES + 2,
            "others, overflow and security"
        );
        let r = t.report();
        assert_eq!(r["other_names"], MAX_OTHER_NAMES);
        assert_eq!(r["overflow_messages"], 1000 - MAX_OTHER_NAMES as u64 + 1);
        assert_eq!(r["coordinators"]["security"]["request"]["messages"], 1);
        assert_eq!(r["total_messages"], 1002);
        assert!(bounded(&long).len() <= MAX_NAME_LEN);
        let page = t.page(10, 5);
        assert_eq!(page["coordinators"].as_object().unwrap().len(), 5);
        assert_eq!(page["coordinators_total"], MAX_OTHER_NAMES + 2);
    }

    #[tokio::test(start_paused = true)]
    async fn rates_are_per_second_over_the_tick() {
        let mut t = Traffic::default();
        t.tick(Instant::now());
        for _ in 0..50 {
            t.count("a", TopicClass::Health, 10);
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        t.tick(Instant::now());
        let r = t.report();
        assert_eq!(r["coordinators"]["a"]["health"]["messages"], 50);
        assert_eq!(r["coordinators"]["a"]["health"]["bytes"], 500);
        assert_eq!(r["coordinators"]["a"]["health"]["rate_per_second"], 100.0);
        assert_eq!(r["rate_per_second"], 100.0);
    }
}
