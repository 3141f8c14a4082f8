//! Running steps: the state one scenario carries (sessions, variables, the message cursor)
//! and one method per kind of step. Scenarios written in Rust use the same methods.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use bigskies_core::bus::{BusConfig, BusTask};
use bigskies_core::config::{ConfigStore, ConfigType};
use bigskies_core::envelope::{Envelope, MessageType};
use bigskies_core::topics::{Topics, filter_matches};

use super::client::{Client, Seen};
use super::matcher::{Expect, Matchers, lookup};
use super::step::{Action, Credential, InfraAction, Payload, Step};
use crate::stack::Stack;

/// What a scenario runs against.
#[derive(Clone, Debug)]
pub struct Target {
    pub topics: Topics,
    pub bus: BusConfig,
    /// The simulator's base URL (Alpaca and `/simulator/v1`).
    pub simulator_url: Option<String>,
    pub admin_password: Option<String>,
}

/// One running scenario.
pub struct Context {
    client: Client,
    client_task: Option<BusTask>,
    stack: Option<Stack>,
    target: Target,
    http: reqwest::Client,
    vars: BTreeMap<String, Value>,
    sessions: BTreeMap<String, String>,
    /// Expectations look at messages from here on (set when an action starts).
    cursor: usize,
    consumed: HashSet<usize>,
    /// Health reports from before this index belong to an earlier life of the deployment
    /// (before a restart, a kill or an outage) and do not satisfy `expect_health`.
    health_since: usize,
    next_id: u64,
    work: tempfile::TempDir,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("root", &self.target.topics.root())
            .finish_non_exhaustive()
    }
}

fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 400 {
        format!("{}…", &s[..s.floor_char_boundary(400)])
    } else {
        s
    }
}

impl Context {
    /// Connect the recording client to `target`; with a stack, the caller starts the
    /// coordinators after this so their first health messages are recorded.
    pub async fn connect(target: Target, stack: Option<Stack>) -> anyhow::Result<Self> {
        let (client, task) = Client::connect(target.bus.clone(), target.topics.clone())
            .await
            .context("connecting the scenario client")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("HTTP client")?;
        let mut vars = BTreeMap::new();
        vars.insert("root".into(), json!(target.topics.root()));
        // Names a scenario creates carry it, so runs against one shared deployment (external
        // mode, again and again) never collide.
        vars.insert(
            "run".into(),
            json!(uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()),
        );
        if let Some(u) = &target.simulator_url {
            vars.insert("sim_url".into(), json!(u));
        }
        if let Some(p) = &target.admin_password {
            vars.insert("admin_password".into(), json!(p));
        }
        Ok(Self {
            client,
            client_task: Some(task),
            stack,
            target,
            http,
            vars,
            sessions: BTreeMap::new(),
            cursor: 0,
            consumed: HashSet::new(),
            health_since: 0,
            next_id: 0,
            work: tempfile::tempdir().context("a work directory")?,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    fn owned(&self) -> anyhow::Result<&Stack> {
        self.stack
            .as_ref()
            .ok_or_else(|| anyhow!("this step needs a deployment the harness started"))
    }

    pub fn var(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    pub fn set_var(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_owned(), value);
    }

    /// Wait until every named coordinator has published a health status other than
    /// `offline`/`stopping`.
    pub async fn wait_started(&mut self, names: &[&str], within: Duration) -> anyhow::Result<()> {
        for n in names {
            self.expect_health(n, &["healthy", "degraded", "unhealthy"], within)
                .await
                .with_context(|| format!("{n} did not start"))?;
        }
        Ok(())
    }

    /// Stop the stack and disconnect; returns problems found while stopping (a coordinator
    /// that crashed or did not stop in time).
    pub async fn finish(mut self) -> Vec<String> {
        let problems = match self.stack.take() {
            Some(s) => {
                let mut problems = s.crashed();
                problems.extend(s.shutdown().await);
                // The deployment is gone: leave nothing retained under its root.
                self.client.clear_retained().await;
                problems
            }
            None => Vec::new(),
        };
        self.client.close().await;
        if let Some(t) = self.client_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        problems
    }

    // ----- variables -----

    fn builtin(&self, name: &str) -> Option<Value> {
        if name == "uuid" {
            return Some(json!(uuid::Uuid::new_v4().to_string()));
        }
        let offset = name.strip_prefix("now")?;
        let secs = if offset.is_empty() {
            0.0
        } else {
            let (sign, rest) = offset.split_at(1);
            let d = super::step::parse_duration(&json!(rest))
                .ok()?
                .as_secs_f64();
            match sign {
                "+" => d,
                "-" => -d,
                _ => return None,
            }
        };
        let t = chrono::Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64);
        Some(json!(
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ))
    }

    fn lookup_var(&self, name: &str) -> anyhow::Result<Value> {
        self.vars
            .get(name)
            .cloned()
            .or_else(|| self.builtin(name))
            .ok_or_else(|| anyhow!("unknown variable ${{{name}}}"))
    }

    /// Replace `${name}` in a string; a string that is exactly one `${name}` becomes the
    /// variable's value with its JSON type.
    pub fn subst_str(&self, s: &str) -> anyhow::Result<Value> {
        if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
            && !name.contains("${")
            && !name.contains('}')
        {
            return self.lookup_var(name);
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("unterminated ${{ in {s:?}"))?;
            match self.lookup_var(&after[..end])? {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }

    fn subst_text(&self, s: &str) -> anyhow::Result<String> {
        Ok(match self.subst_str(s)? {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    pub fn subst(&self, v: &Value) -> anyhow::Result<Value> {
        Ok(match v {
            Value::String(s) => self.subst_str(s)?,
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.subst(x)).collect::<Result<_, _>>()?)
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.subst(x)?)))
                    .collect::<anyhow::Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    fn subst_matchers(&self, m: &Matchers) -> anyhow::Result<Matchers> {
        m.map(&|p| self.subst_text(p).map_err(|e| e.to_string()), &|v| {
            self.subst(v).map_err(|e| e.to_string())
        })
        .map_err(|e| anyhow!(e))
    }

    fn save(&mut self, from: &Value, save: &BTreeMap<String, String>) -> anyhow::Result<()> {
        for (var, path) in save {
            let path = self.subst_text(path)?;
            let v = lookup(from, &path).ok_or_else(|| {
                anyhow!("cannot save ${{{var}}}: no `{path}` in {}", shorten(from))
            })?;
            self.vars.insert(var.clone(), v.clone());
        }
        Ok(())
    }

    // ----- steps -----

    /// Run one parsed step.
    pub async fn run(&mut self, step: &Step) -> anyhow::Result<()> {
        self.run_action(&step.action).await
    }

    async fn run_action(&mut self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::Let(vars) => {
                for (k, v) in vars {
                    let v = self.subst(v)?;
                    self.vars.insert(k.clone(), v);
                }
                Ok(())
            }
            Action::Login {
                user,
                password,
                session,
                expect_fail,
            } => {
                let user = self.subst_text(user)?;
                let password = match password {
                    Some(p) => self.subst_text(p)?,
                    None if user == "admin" => {
                        self.target.admin_password.clone().ok_or_else(|| {
                            anyhow!("the admin password is unknown; give `password`")
                        })?
                    }
                    None => bail!("`login = {user:?}` needs `password`"),
                };
                if *expect_fail {
                    let r = self.login_reply(&user, &password).await?;
                    if r["success"] == true {
                        bail!("login of {user} succeeded but was expected to fail");
                    }
                    return Ok(());
                }
                self.login(&user, &password, session).await.map(|_| ())
            }
            Action::Request {
                op,
                payload,
                credential,
                expect,
                save,
                timeout,
                retry_within,
            } => {
                self.cursor = self.client.mark();
                let expect = self.subst_matchers(expect)?;
                let deadline = retry_within.map(|w| tokio::time::Instant::now() + w);
                loop {
                    let attempt = match deadline {
                        Some(_) => (*timeout).min(Duration::from_secs(2)),
                        None => *timeout,
                    };
                    let outcome = match self.send(op, payload, credential, attempt).await {
                        Ok(reply) => match expect.check(&reply) {
                            Ok(()) => return self.save(&reply, save),
                            Err(e) => anyhow!("reply {}: {e}", shorten(&reply)),
                        },
                        Err(e) => e,
                    };
                    match deadline {
                        Some(d) if tokio::time::Instant::now() < d => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Some(_) => {
                            return Err(outcome.context(format!(
                                "still failing after {:?} of retries",
                                retry_within.unwrap_or_default()
                            )));
                        }
                        None => return Err(outcome),
                    }
                }
            }
            Action::Race {
                requests,
                winners,
                losers,
            } => {
                self.cursor = self.client.mark();
                let mut sends = Vec::new();
                for r in requests {
                    let Action::Request {
                        op,
                        payload,
                        credential,
                        timeout,
                        ..
                    } = r
                    else {
                        bail!("a race holds requests only");
                    };
                    sends.push(
                        self.prepare(op, payload, credential)?
                            .with_timeout(*timeout),
                    );
                }
                let client = self.client.clone();
                let replies = futures::future::join_all(sends.into_iter().map(|s| {
                    let client = client.clone();
                    async move { client.request(&s.op, s.bytes, &s.cid, s.timeout).await }
                }))
                .await;
                let replies: Vec<Value> = replies.into_iter().collect::<Result<_, _>>()?;
                let won = replies.iter().filter(|r| r["success"] == true).count();
                let all: Vec<String> = replies.iter().map(shorten).collect();
                if won != *winners {
                    bail!(
                        "{won} of {} succeeded, expected {winners}: {}",
                        replies.len(),
                        all.join(" | ")
                    );
                }
                let losers = self.subst_matchers(losers)?;
                for r in replies.iter().filter(|r| r["success"] != true) {
                    losers
                        .check(r)
                        .map_err(|e| anyhow!("a losing reply {}: {e}", shorten(r)))?;
                }
                Ok(())
            }
            Action::Publish {
                topic,
                payload,
                credential,
                retain,
            } => {
                self.cursor = self.client.mark();
                let topic = self.subst_text(topic)?;
                let token = self.credential(credential)?;
                let bytes = match payload {
                    Payload::Body(b) => {
                        let mut env = Envelope::new(MessageType::Event, "scenario", self.subst(b)?);
                        if let Some(t) = token {
                            env = env.with_token(t);
                        }
                        env.to_bytes()
                    }
                    Payload::Raw(r) => self.subst_text(r)?.into_bytes(),
                    Payload::Oversize(n) => oversize(*n),
                };
                self.client.publish(&topic, bytes, *retain).await
            }
            Action::ExpectMessage {
                topic,
                matchers,
                within,
                save,
            } => {
                let topic = self.subst_text(topic)?;
                let seen = self.expect_message(&topic, matchers, *within).await?;
                self.save(&seen.body, save)
            }
            Action::ExpectNoMessage {
                topic,
                matchers,
                during,
            } => {
                let filter = format!("{}/{}", self.target.topics.root(), self.subst_text(topic)?);
                let matchers = self.subst_matchers(matchers)?;
                let from = self.cursor;
                if let Some(s) = self
                    .client
                    .wait_for(from, *during, |s| {
                        filter_matches(&filter, &s.topic) && matchers.check(&s.body).is_ok()
                    })
                    .await
                {
                    bail!("unexpected message on {}: {}", s.topic, shorten(&s.body));
                }
                Ok(())
            }
            Action::ExpectHealth {
                coordinator,
                status,
                within,
            } => {
                let want: Vec<&str> = status.iter().map(String::as_str).collect();
                self.expect_health(coordinator, &want, *within)
                    .await
                    .map(|_| ())
            }
            Action::Device {
                device,
                property,
                params,
                expect,
                within,
                save,
            } => {
                let expect = match expect {
                    Expect::Equals(v) => Expect::Equals(self.subst(v)?),
                    other => other.clone(),
                };
                let v = self
                    .device(device, property, params, &expect, *within)
                    .await?;
                if let Some(var) = save {
                    self.vars.insert(var.clone(), v);
                }
                Ok(())
            }
            Action::Alpaca {
                device,
                method,
                params,
                error,
            } => {
                self.cursor = self.client.mark();
                let mut resolved = BTreeMap::new();
                for (k, v) in params {
                    resolved.insert(k.clone(), self.subst_text(v)?);
                }
                self.alpaca_put(device, method, &resolved, *error).await
            }
            Action::Fault { device, spec } => {
                self.cursor = self.client.mark();
                let spec = spec.as_ref().map(|s| self.subst(s)).transpose()?;
                self.fault(device, spec).await
            }
            Action::Clock { change } => {
                self.cursor = self.client.mark();
                let change = self.subst(change)?;
                self.simulator_put("/simulator/v1/clock", &change).await
            }
            Action::StepClock { seconds } => {
                self.cursor = self.client.mark();
                self.step_clock(*seconds).await
            }
            Action::Sleep(d) => {
                self.cursor = self.client.mark();
                tokio::time::sleep(*d).await;
                Ok(())
            }
            Action::SetConfig {
                coordinator,
                key,
                value,
                kind,
            } => {
                self.cursor = self.client.mark();
                let value = self.subst(value)?;
                self.set_config(coordinator, key, value, kind).await
            }
            Action::Broker(a) => {
                self.cursor = self.client.mark();
                self.health_since = self.cursor;
                let stack = self.stack.as_mut().ok_or_else(|| {
                    anyhow!("broker restarts need a deployment the harness started")
                })?;
                match a {
                    InfraAction::Kill => stack.restart_broker(true).await,
                    _ => stack.restart_broker(false).await,
                }?;
                self.client
                    .bus()
                    .wait_connected(Duration::from_secs(15))
                    .await
                    .context("the scenario client did not reconnect")?;
                Ok(())
            }
            Action::Database(a) => {
                self.cursor = self.client.mark();
                self.health_since = self.cursor;
                self.owned()?.database(*a == InfraAction::Start).await
            }
            Action::Coordinator { name, what } => {
                self.cursor = self.client.mark();
                self.health_since = self.cursor;
                let stack = self.owned()?;
                match what {
                    InfraAction::Stop => stack.stop(name).await?,
                    InfraAction::Kill => stack.kill(name).await?,
                    InfraAction::Start => stack.start(name).await?,
                    InfraAction::Restart => {
                        stack.stop(name).await?;
                        self.gone(name).await?;
                        // The old instance's last words are history now.
                        self.health_since += 1;
                        self.owned()?.start(name).await?;
                    }
                }
                match what {
                    InfraAction::Stop | InfraAction::Kill => self.gone(name).await,
                    InfraAction::Start | InfraAction::Restart => self.serving(name).await,
                }
            }
            Action::PluginFixture { name, manifest } => {
                let manifest = self.subst(manifest)?;
                self.plugin_fixture(name, &manifest)
            }
        }
    }

    /// Wait for the last report of a coordinator that stopped (`stopping`, or `offline` from
    /// its will); it and later reports count for `expect_health`, earlier ones do not.
    async fn gone(&mut self, name: &str) -> anyhow::Result<()> {
        let topic = self.target.topics.health(name);
        let seen = self
            .client
            .wait_for(self.health_since, Duration::from_secs(20), |s| {
                s.topic == topic
                    && matches!(s.body["status"].as_str(), Some("stopping" | "offline"))
            })
            .await
            .ok_or_else(|| anyhow!("{name} never reported stopping or offline"))?;
        self.health_since = seen.index;
        Ok(())
    }

    /// Wait until a (re)started coordinator's first report: it subscribes to its requests
    /// before it reports, so requests sent after this reach it.
    async fn serving(&mut self, name: &str) -> anyhow::Result<()> {
        let topic = self.target.topics.health(name);
        self.client
            .wait_for(self.health_since, Duration::from_secs(30), |s| {
                s.topic == topic
                    && !matches!(
                        s.body["status"].as_str(),
                        Some("stopping" | "offline") | None
                    )
            })
            .await
            .ok_or_else(|| anyhow!("{name} did not report after starting"))?;
        Ok(())
    }

    // ----- the operations, public for Rust scenarios -----

    fn credential(&self, c: &Credential) -> anyhow::Result<Option<String>> {
        Ok(match c {
            Credential::None => None,
            Credential::Session(s) => Some(
                self.sessions
                    .get(s)
                    .cloned()
                    .ok_or_else(|| anyhow!("no session {s:?}: log in first"))?,
            ),
            Credential::Token(t) => Some(self.subst_text(t)?),
        })
    }

    fn prepare(&mut self, op: &str, payload: &Payload, c: &Credential) -> anyhow::Result<Prepared> {
        self.next_id += 1;
        let cid = format!("scenario-{}", self.next_id);
        let token = self.credential(c)?;
        let bytes = match payload {
            Payload::Body(b) => self.client.envelope(self.subst(b)?, &cid, token.as_deref()),
            Payload::Raw(r) => self.subst_text(r)?.into_bytes(),
            Payload::Oversize(n) => oversize(*n),
        };
        Ok(Prepared {
            op: self.subst_text(op)?,
            bytes,
            cid,
            timeout: super::step::REQUEST_TIMEOUT,
        })
    }

    async fn send(
        &mut self,
        op: &str,
        payload: &Payload,
        c: &Credential,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let p = self.prepare(op, payload, c)?;
        self.client.request(&p.op, p.bytes, &p.cid, timeout).await
    }

    /// Send a request with a JSON body as session `session` (or none) and return the reply.
    pub async fn request(
        &mut self,
        op: &str,
        body: Value,
        session: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.cursor = self.client.mark();
        let c = session.map_or(Credential::None, |s| Credential::Session(s.to_owned()));
        self.send(op, &Payload::Body(body), &c, super::step::REQUEST_TIMEOUT)
            .await
    }

    /// The login reply. A refusal to protect the server (login rate limits, a full hashing
    /// pool: `unavailable`, "too many logins ...") is waited out and retried, for up to a minute:
    /// a suite logs in far more often than a person would.
    async fn login_reply(&mut self, user: &str, password: &str) -> anyhow::Result<Value> {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let r = self
                .send(
                    "security/auth/login",
                    &Payload::Body(json!({"username": user, "password": password})),
                    &Credential::None,
                    super::step::REQUEST_TIMEOUT,
                )
                .await?;
            let held_back = r["error_code"] == "unavailable"
                && r["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("too many logins"));
            if !held_back || std::time::Instant::now() >= give_up {
                return Ok(r);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Log in and keep the token as session `session`; also sets `${<session>_token}` and
    /// `${<session>_user_id}`.
    pub async fn login(
        &mut self,
        user: &str,
        password: &str,
        session: &str,
    ) -> anyhow::Result<String> {
        let r = self.login_reply(user, password).await?;
        let token = r["token"]
            .as_str()
            .filter(|_| r["success"] == true)
            .ok_or_else(|| anyhow!("login of {user} failed: {}", shorten(&r)))?
            .to_owned();
        self.sessions.insert(session.to_owned(), token.clone());
        self.vars.insert(format!("{session}_token"), json!(token));
        if let Some(id) = r["user"].get("id") {
            self.vars.insert(format!("{session}_user_id"), id.clone());
        }
        Ok(token)
    }

    /// Wait for a message on `topic` (relative to the root, filters allowed) received since
    /// the last action and not matched by an earlier expectation.
    pub async fn expect_message(
        &mut self,
        topic: &str,
        matchers: &Matchers,
        within: Duration,
    ) -> anyhow::Result<Seen> {
        let filter = format!("{}/{topic}", self.target.topics.root());
        let matchers = self.subst_matchers(matchers)?;
        let consumed = &self.consumed;
        let found = self
            .client
            .wait_for(self.cursor, within, |s| {
                !consumed.contains(&s.index)
                    && filter_matches(&filter, &s.topic)
                    && matchers.check(&s.body).is_ok()
            })
            .await;
        match found {
            Some(s) => {
                self.consumed.insert(s.index);
                Ok(s)
            }
            None => {
                let seen = self.client.since(self.cursor, &filter);
                let detail = seen
                    .iter()
                    .rev()
                    .take(3)
                    .map(|s| {
                        format!(
                            "{} {} ({})",
                            s.topic,
                            shorten(&s.body),
                            matchers.check(&s.body).err().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>();
                bail!(
                    "no matching message on {filter} within {within:?}; {} seen there{}",
                    seen.len(),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(", latest: {}", detail.join(" | "))
                    }
                )
            }
        }
    }

    /// Wait until coordinator `name`'s latest health status is one of `want`.
    pub async fn expect_health(
        &mut self,
        name: &str,
        want: &[&str],
        within: Duration,
    ) -> anyhow::Result<Value> {
        let topic = self.target.topics.health(name);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let from = self.client.mark();
            let latest = self
                .client
                .latest(&topic)
                .filter(|s| s.index >= self.health_since);
            if let Some(s) = &latest
                && let Some(st) = s.body["status"].as_str()
                && want.contains(&st)
            {
                return Ok(s.body.clone());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero()
                || self
                    .client
                    .wait_for(from, left, |s| s.topic == topic)
                    .await
                    .is_none()
            {
                let last = latest.map_or("nothing".to_owned(), |s| {
                    format!("{} ({})", s.body["status"], s.body["message"])
                });
                bail!(
                    "{name} health not {} within {within:?}; last: {last}",
                    want.join("|")
                );
            }
        }
    }

    fn simulator(&self) -> anyhow::Result<&str> {
        self.target
            .simulator_url
            .as_deref()
            .ok_or_else(|| anyhow!("no simulator URL (give --simulator-url)"))
    }

    /// Read an Alpaca property of a simulated device until it satisfies `expect` (or once,
    /// when `within` is zero).
    pub async fn device(
        &mut self,
        device: &str,
        property: &str,
        params: &BTreeMap<String, String>,
        expect: &Expect,
        within: Duration,
    ) -> anyhow::Result<Value> {
        let url = format!(
            "{}/api/v1/{device}/{}",
            self.simulator()?,
            property.to_lowercase()
        );
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.next_id += 1;
            let mut query: Vec<(String, String)> = vec![
                ("ClientID".into(), "7".into()),
                (
                    "ClientTransactionID".into(),
                    (self.next_id % 4_000_000_000).to_string(),
                ),
            ];
            query.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
            let full = format!(
                "{url}?{}",
                serde_urlencoded::to_string(&query).unwrap_or_default()
            );
            let last = match self.http.get(&full).send().await {
                Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                    Ok(v) if v["ErrorNumber"] == 0 => {
                        let value = v.get("Value").cloned().unwrap_or(Value::Null);
                        match expect.check(Some(&value)) {
                            Ok(()) => return Ok(value),
                            Err(e) => e,
                        }
                    }
                    Ok(v) => format!("ASCOM error {}: {}", v["ErrorNumber"], v["ErrorMessage"]),
                    Err(e) => format!("bad JSON: {e}"),
                },
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => format!("{e}"),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!("{device} {property}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An Alpaca PUT; `error` is the ASCOM error number expected (0 for success).
    pub async fn alpaca_put(
        &mut self,
        device: &str,
        method: &str,
        params: &BTreeMap<String, String>,
        error: i64,
    ) -> anyhow::Result<()> {
        let url = format!(
            "{}/api/v1/{device}/{}",
            self.simulator()?,
            method.to_lowercase()
        );
        self.next_id += 1;
        let mut form: Vec<(String, String)> = vec![
            ("ClientID".into(), "7".into()),
            (
                "ClientTransactionID".into(),
                (self.next_id % 4_000_000_000).to_string(),
            ),
        ];
        form.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        let body = serde_urlencoded::to_string(&form)?;
        let r = self
            .http
            .put(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "PUT {device}/{method}: HTTP {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        let v: Value = r.json().await.context("Alpaca reply")?;
        let got = v["ErrorNumber"].as_i64().unwrap_or(-1);
        if got != error {
            bail!(
                "PUT {device}/{method}: ErrorNumber {got} ({}), expected {error}",
                v["ErrorMessage"]
            );
        }
        Ok(())
    }

    async fn simulator_put(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.simulator()?);
        let r = self.http.put(&url).json(body).send().await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!(
                "PUT {path}: {status} {}",
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Set (`Some`) or clear (`None`) a device's fault through the simulator's control API.
    pub async fn fault(&self, device: &str, spec: Option<Value>) -> anyhow::Result<()> {
        let path = format!("/simulator/v1/faults/{device}");
        match spec {
            Some(s) => self.simulator_put(&path, &s).await,
            None => {
                let url = format!("{}{path}", self.simulator()?);
                let r = self.http.delete(&url).send().await?;
                if !r.status().is_success() {
                    bail!("DELETE {path}: {}", r.status());
                }
                Ok(())
            }
        }
    }

    /// Advance the simulator's clock.
    pub async fn step_clock(&self, seconds: f64) -> anyhow::Result<()> {
        self.simulator_put("/simulator/v1/clock/step", &json!({"seconds": seconds}))
            .await
    }

    /// Change one configuration value and tell the coordinator to reload.
    pub async fn set_config(
        &self,
        coordinator: &str,
        key: &str,
        value: Value,
        kind: &str,
    ) -> anyhow::Result<()> {
        let pool = self
            .owned()?
            .pool()
            .ok_or_else(|| anyhow!("the stack has no database"))?;
        let kind = ConfigType::parse(kind).ok_or_else(|| anyhow!("bad type {kind:?}"))?;
        ConfigStore::new(pool.clone())
            .set(coordinator, key, value, kind, false, None)
            .await?;
        let note = Envelope::new(
            MessageType::Event,
            "scenario",
            json!({"coordinator": coordinator, "key": key}),
        );
        self.client
            .bus()
            .publish(
                &self.target.topics.config_update(coordinator),
                note.to_bytes(),
                false,
            )
            .await?;
        Ok(())
    }

    fn plugin_fixture(&mut self, name: &str, manifest: &Value) -> anyhow::Result<()> {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(dir.join("bin"))?;
        std::fs::write(
            dir.join("plugin.json"),
            serde_json::to_vec_pretty(manifest)?,
        )?;
        std::fs::write(dir.join("bin/README"), format!("fixture {name}\n"))?;
        let digest = bigskies_coordinators::plugin::archive::digest(&dir)
            .map_err(|e| anyhow!("digest of {}: {e}", dir.display()))?;
        self.vars
            .insert(format!("{name}_path"), json!(dir.display().to_string()));
        self.vars.insert(format!("{name}_sha256"), json!(digest));
        Ok(())
    }
}

struct Prepared {
    op: String,
    bytes: Vec<u8>,
    cid: String,
    timeout: Duration,
}

impl Prepared {
    fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// A JSON object of exactly `n` bytes.
fn oversize(n: usize) -> Vec<u8> {
    let pad = n.saturating_sub(10);
    let mut v = Vec::with_capacity(n);
    v.extend_from_slice(b"{\"pad\":\"");
    v.resize(8 + pad, b'x');
    v.extend_from_slice(b"\"}");
    v
}
