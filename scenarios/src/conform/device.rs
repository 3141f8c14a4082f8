//! One device's run: what it is, the request helpers every area uses, the connection phase
//! (PROTOCOL.md §4 and §11.1), and the order of the areas.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bigskies_alpaca::devices::{COMMON_MEMBERS, members_of};
use bigskies_alpaca::types::{DeviceType, Verb};
use bigskies_alpaca::wire::{MemberInfo, ValueKind};
use serde_json::Value;

use super::Options;
use super::envelope::{self, Envelope, Expect, ValueRule};
use super::http::{CLIENT_ID, FORM, Pairs, Probe, Reply, Request, pair};
use super::report::{DeviceId, Outcome, Section};
use super::values::{P7_MEMBERS, p7_version};

/// A device to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Lower-case URL segment.
    pub type_path: String,
    /// The type name as the server listed it.
    pub type_name: String,
    pub number: u32,
    pub name: String,
    /// The device type when this crate has its member table.
    pub known: Option<DeviceType>,
    /// Listed by `configureddevices`.
    pub listed: bool,
}

impl Target {
    pub fn listed(type_name: &str, number: u32, name: &str) -> Self {
        let type_path = type_name.to_ascii_lowercase();
        Self {
            known: DeviceType::from_path(&type_path),
            type_path,
            type_name: type_name.to_owned(),
            number,
            name: name.to_owned(),
            listed: true,
        }
    }

    /// A device named on the command line but not listed by the server.
    pub fn unlisted(type_path: &str, number: u32) -> Self {
        let known = DeviceType::from_path(type_path);
        Self {
            type_path: type_path.to_owned(),
            type_name: known.map_or_else(|| type_path.to_owned(), |t| t.name().to_owned()),
            number,
            name: String::new(),
            known,
            listed: false,
        }
    }
}

/// How a request that must be refused was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// An unparseable value: HTTP 400, or 200 + InvalidValue (0x401).
    Value,
    /// A missing (or, for PUT, wrongly cased) required parameter: HTTP 400.
    Name,
    /// A malformed ClientID / ClientTransactionID: 400 (strict) or 200/400 (tolerant).
    Id,
}

impl Reject {
    pub fn expected(self, strict: bool) -> &'static str {
        match (self, strict) {
            (Reject::Value, _) => "HTTP 400 (or HTTP 200 with ErrorNumber 0x401)",
            (Reject::Name, _) => "HTTP 400 (a required parameter is missing)",
            (Reject::Id, true) => "HTTP 400",
            (Reject::Id, false) => "HTTP 400 or 200",
        }
    }

    /// The outcome of `reply` for a request that had to be refused this way.
    pub fn judge(self, strict: bool, reply: &Reply) -> Outcome {
        match reply.status {
            400 => return Outcome::Pass,
            200 => {}
            s if (400..500).contains(&s) => {
                return if self == Reject::Id {
                    Outcome::Information
                } else {
                    Outcome::strict(strict)
                };
            }
            _ => return Outcome::Issue,
        }
        let number = reply
            .json()
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|obj| Envelope { obj }.error_number());
        match (self, number) {
            (_, None) => Outcome::Issue,
            (Reject::Id, Some(_)) => {
                if strict {
                    Outcome::Issue
                } else {
                    Outcome::Pass
                }
            }
            (_, Some(0)) => Outcome::Issue,
            (Reject::Value, Some(0x401)) => Outcome::Pass,
            // ConformU tolerant mode accepts 200 + NotImplemented where 400 was expected.
            (_, Some(0x400)) => Outcome::strict(strict),
            (_, Some(_)) => Outcome::strict(strict),
        }
    }
}

/// One device's run; the areas are `impl` blocks in `protocol`, `semantics` and `motion`.
pub struct DeviceRun<'a> {
    pub probe: &'a Probe,
    pub opts: &'a Options,
    pub t: Target,
    pub sec: Section,
    /// InterfaceVersion, once read.
    pub iv: Option<i32>,
    /// Successful canonical reads: member name (or `Name:arg`) → Value.
    pub reads: BTreeMap<String, Value>,
    /// Canonical reads answered with an ASCOM error: member name → ErrorNumber.
    pub read_errors: BTreeMap<String, i64>,
    /// ErrorNumber of the canonical ("correct") PUT of each member the matrix called.
    pub put_errors: BTreeMap<String, i64>,
    /// The device believes it is connected (NotConnected is then an issue).
    pub connected: bool,
    /// Connected state before the run, restored at the end.
    was_connected: Option<bool>,
    /// Members whose ASCOM error was already reported (`GET Name`).
    noted: BTreeSet<String>,
}

impl<'a> DeviceRun<'a> {
    pub fn new(probe: &'a Probe, opts: &'a Options, t: Target) -> Self {
        let title = match (t.name.is_empty(), t.listed) {
            (false, _) => format!("{} {} \"{}\"", t.type_name, t.number, t.name),
            (true, true) => format!("{} {}", t.type_name, t.number),
            (true, false) => format!(
                "{} {} (not listed by configureddevices)",
                t.type_name, t.number
            ),
        };
        let sec = Section::new(
            title,
            Some(DeviceId {
                device_type: t.type_path.clone(),
                number: t.number,
                name: t.name.clone(),
            }),
        );
        Self {
            probe,
            opts,
            t,
            sec,
            iv: None,
            reads: BTreeMap::new(),
            read_errors: BTreeMap::new(),
            put_errors: BTreeMap::new(),
            connected: false,
            was_connected: None,
            noted: BTreeSet::new(),
        }
    }

    pub fn strict(&self) -> bool {
        self.opts.strict
    }

    /// `/api/v1/{type}/{number}/{member}`.
    pub fn path(&self, member: &str) -> String {
        format!("/api/v1/{}/{}/{}", self.t.type_path, self.t.number, member)
    }

    /// A fresh ClientTransactionID and the canonical id pair.
    pub fn ids(&self) -> (u32, Pairs) {
        let ctid = self.probe.next_ctid();
        (
            ctid,
            vec![
                pair("ClientID", CLIENT_ID.to_string()),
                pair("ClientTransactionID", ctid.to_string()),
            ],
        )
    }

    /// Whether the device's interface version has the Platform 7 members.
    pub fn is_p7(&self) -> bool {
        match (self.iv, p7_version(&self.t.type_path)) {
            (Some(iv), Some(p7)) => iv >= p7,
            _ => false,
        }
    }

    /// Whether the interface version is at least the latest this crate models.
    pub fn is_latest(&self) -> bool {
        match (self.iv, self.t.known) {
            (Some(iv), Some(t)) => iv >= t.latest_interface_version(),
            _ => false,
        }
    }

    /// The members of this device's interface (Platform 7 ones only for P7 versions).
    pub fn members(&self) -> Vec<&'static MemberInfo> {
        let specific: &'static [MemberInfo] = self.t.known.map_or(&[], members_of);
        let p7 = self.is_p7();
        COMMON_MEMBERS
            .iter()
            .chain(specific)
            .filter(|m| p7 || !P7_MEMBERS.contains(&m.name))
            .collect()
    }

    /// The member `name` with `verb` of this type (or the common members).
    pub fn member(&self, verb: Verb, name: &str) -> Option<&'static MemberInfo> {
        let specific: &'static [MemberInfo] = self.t.known.map_or(&[], members_of);
        COMMON_MEMBERS
            .iter()
            .chain(specific)
            .find(|m| m.verb == verb && m.name == name)
    }

    /// Sends a request; a transport failure is an issue.
    pub async fn send(&mut self, req: &Request) -> Option<Reply> {
        match self.probe.send(req).await {
            Ok(reply) => {
                self.sec
                    .check("transport", "§1", "every request gets an HTTP reply")
                    .pass();
                Some(reply)
            }
            Err(e) => {
                self.sec
                    .check("transport", "§1", "every request gets an HTTP reply")
                    .issue(Some(req.to_string()), "an HTTP reply", e);
                None
            }
        }
    }

    /// Sends `req` that must be answered with HTTP 200, and inspects the envelope.
    pub async fn expect_200(
        &mut self,
        req: &Request,
        ctid: Option<u32>,
        value: ValueRule,
        image: bool,
    ) -> Option<Envelope> {
        let reply = self.send(req).await?;
        // An older interface version may not have every member of the latest one.
        let older = self.t.known.is_some() && !self.is_latest();
        let check = self.sec.check(
            "http-status",
            "§1.7",
            "well-formed requests to declared members are answered with HTTP 200",
        );
        if reply.status != 200 {
            let outcome = if older {
                Outcome::Information
            } else {
                Outcome::Issue
            };
            check.record(outcome, Some(req.to_string()), "HTTP 200", reply.summary());
            return None;
        }
        check.pass();
        envelope::inspect(
            &mut self.sec,
            self.opts.strict,
            req,
            &reply,
            Expect { ctid, value, image },
        )
    }

    /// A canonical request to `m` (ids first, then `params`), checked as a whole.
    pub async fn call(&mut self, m: &MemberInfo, params: Pairs) -> Option<(Request, Envelope)> {
        let (ctid, mut pairs) = self.ids();
        let path = self.path(&m.path());
        let (req, rule) = match m.verb {
            Verb::Get => {
                pairs.extend(params);
                (Request::get(path, &pairs), ValueRule::Get(m.returns))
            }
            Verb::Put => {
                let mut all = params;
                all.extend(pairs);
                (Request::put(path, &all), ValueRule::Put(m.returns))
            }
        };
        let image = m.returns == ValueKind::Image;
        let env = self.expect_200(&req, Some(ctid), rule, image).await?;
        if m.verb == Verb::Get && !env.ok() {
            self.note_error(&req, m, &env);
        }
        Some((req, env))
    }

    /// Tallies an ASCOM error from a GET (information, §11.8; NotConnected while connected is
    /// an issue).
    pub fn note_error(&mut self, req: &Request, m: &MemberInfo, env: &Envelope) {
        if !self.noted.insert(format!("{} {}", m.verb, m.name)) {
            return;
        }
        if env.error_number() == 0x407 && self.connected {
            self.sec
                .check(
                    "not-connected",
                    "§4",
                    "a connected device never answers NotConnected (0x407)",
                )
                .issue(
                    Some(req.to_string()),
                    "ErrorNumber 0 or a specific error",
                    env.error_text(),
                );
        } else {
            self.sec
                .check(
                    "ascom-errors",
                    "§11.8",
                    "members answered with an ASCOM error (information)",
                )
                .info(
                    Some(req.to_string()),
                    format!("{} {} without an error", m.verb, m.name),
                    env.error_text(),
                );
        }
    }

    /// Canonical GET of the parameterless member `name`; records the read; the Value on success.
    pub async fn read(&mut self, name: &str) -> Option<Value> {
        let env = self.read_env(name).await?;
        if env.ok() { env.value().cloned() } else { None }
    }

    /// Canonical GET of the parameterless member `name`, the whole envelope.
    pub async fn read_env(&mut self, name: &str) -> Option<Envelope> {
        let m = self.member(Verb::Get, name)?;
        let (_, env) = self.call(m, Vec::new()).await?;
        if env.ok() {
            if let Some(v) = env.value() {
                self.reads.insert(name.to_owned(), v.clone());
            }
            self.read_errors.remove(name);
        } else {
            self.read_errors.insert(name.to_owned(), env.error_number());
        }
        Some(env)
    }

    /// A fresh bool read.
    pub async fn read_bool(&mut self, name: &str) -> Option<bool> {
        self.read(name).await.and_then(|v| v.as_bool())
    }

    /// A fresh number read.
    pub async fn read_f64(&mut self, name: &str) -> Option<f64> {
        self.read(name).await.and_then(|v| v.as_f64())
    }

    /// The last successful read of `name` as a number.
    pub fn num(&self, name: &str) -> Option<f64> {
        self.reads.get(name).and_then(Value::as_f64)
    }

    /// The last successful read of `name` as a bool.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.reads.get(name).and_then(Value::as_bool)
    }

    /// Canonical PUT of `name` with `params`; the envelope (ErrorNumber included).
    pub async fn write(&mut self, name: &str, params: Pairs) -> Option<(Request, Envelope)> {
        let m = self.member(Verb::Put, name)?;
        self.call(m, params).await
    }

    /// Polls `done` every 100 ms until it is true or `limit` passes; true when done.
    pub async fn wait_until<F>(&mut self, limit: Duration, mut done: F) -> bool
    where
        F: AsyncFnMut(&mut Self) -> bool,
    {
        let start = Instant::now();
        loop {
            if done(self).await {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs every area in order and returns the section.
    pub async fn run(mut self) -> Section {
        if self.t.known.is_none() {
            let known = p7_version(&self.t.type_path).is_some();
            self.sec
                .check(
                    "device-type",
                    "§1.1",
                    "the device type is one this checker has a member table for",
                )
                .record(
                    if known {
                        Outcome::Information
                    } else {
                        Outcome::Issue
                    },
                    None,
                    "camera, dome, filterwheel, focuser, rotator or telescope (others get the common members only)",
                    if known {
                        format!("{}: only the common members are checked", self.t.type_name)
                    } else {
                        format!("{:?} is not an Alpaca device type", self.t.type_name)
                    },
                );
        }
        if !self.t.listed {
            self.sec
                .check(
                    "listed",
                    "§2",
                    "the device is listed by /management/v1/configureddevices",
                )
                .issue(
                    None,
                    "listed",
                    "not listed; checked because it was asked for",
                );
        }
        if !self.connection().await {
            return self.sec;
        }
        self.bad_paths().await;
        self.setup_page().await;
        self.get_matrix().await;
        self.parameterised_gets().await;
        self.put_matrix().await;
        self.semantics().await;
        if self.opts.allow_motion {
            self.motion().await;
        }
        self.restore_connection().await;
        self.sec
    }

    /// PROTOCOL.md §4 and §11.1: the members that must work disconnected, the connected
    /// writes in different parameter orders, bool casing, the form content type with a
    /// charset, unparseable values, and the Platform 7 connect/disconnect cycle. Ends
    /// connected; false when the device could not be connected at all.
    async fn connection(&mut self) -> bool {
        let strict = self.strict();
        // InterfaceVersion first: it decides which members exist.
        let iv_env = self.read_env("InterfaceVersion").await;
        self.iv = iv_env
            .as_ref()
            .filter(|e| e.ok())
            .and_then(|e| e.value())
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok());
        self.interface_version_rule();
        let before = self.read_bool("Connected").await;
        self.was_connected = before;
        if before == Some(false) {
            self.works_disconnected(
                iv_env.as_ref().map(Envelope::error_number),
                "before connecting",
            )
            .await;
        }
        let path = self.path("connected");
        // §11.1: True, False, True with the parameters in different orders.
        for (step, value) in [("A", "True"), ("B", "False"), ("C", "True")] {
            let (ctid, ids) = self.ids();
            let c = pair("Connected", value);
            let pairs = match step {
                "A" => vec![c, ids[0].clone(), ids[1].clone()],
                "B" => vec![ids[1].clone(), c, ids[0].clone()],
                _ => vec![ids[0].clone(), ids[1].clone(), c],
            };
            let req = Request::put(&path, &pairs);
            let env = self
                .expect_200(&req, Some(ctid), ValueRule::Put(ValueKind::Nothing), false)
                .await;
            self.connected_write_rule(&req, env.as_ref(), value);
            let want = value == "True";
            self.connected = want;
            let got = self.read_bool("Connected").await;
            let check = self.sec.check(
                "connected-reads-back",
                "§4",
                "Connected reads back what was written",
            );
            match got {
                Some(g) if g == want => check.pass(),
                other => check.issue(
                    Some(req.to_string()),
                    format!("GET connected → {want}"),
                    format!("{other:?}"),
                ),
            }
            if !want {
                self.works_disconnected(None, "after PUT Connected=False")
                    .await;
            }
        }
        // §1.4: bools in any casing; §1.2: the .NET client's form content type with a charset.
        for (value, content_type, id, title) in [
            (
                "true",
                FORM,
                "bool-casing",
                "bool parameters are accepted in any casing",
            ),
            (
                "TRUE",
                FORM,
                "bool-casing",
                "bool parameters are accepted in any casing",
            ),
            (
                "True",
                "application/x-www-form-urlencoded; charset=utf-8",
                "form-charset",
                "PUT bodies with `; charset=utf-8` in the content type are accepted",
            ),
        ] {
            let (ctid, mut pairs) = self.ids();
            pairs.insert(0, pair("Connected", value));
            let req = Request::put(&path, &pairs).with_content_type(content_type);
            let reference = if id == "bool-casing" {
                "§1.4"
            } else {
                "§1.2"
            };
            match self
                .expect_200(&req, Some(ctid), ValueRule::Put(ValueKind::Nothing), false)
                .await
            {
                Some(env) if env.ok() => self.sec.check(id, reference, title).pass(),
                Some(env) => self.sec.check(id, reference, title).issue(
                    Some(req.to_string()),
                    "ErrorNumber 0",
                    env.error_text(),
                ),
                None => self.sec.check(id, reference, title).issue(
                    Some(req.to_string()),
                    "HTTP 200 with ErrorNumber 0",
                    "see http-status",
                ),
            }
        }
        // §11.3: unparseable Connected values.
        for bad in ["", "123456", "asdqwe"] {
            let (_, mut pairs) = self.ids();
            pairs.insert(0, pair("Connected", bad));
            let req = Request::put(&path, &pairs);
            if let Some(reply) = self.send(&req).await {
                let outcome = Reject::Value.judge(strict, &reply);
                self.sec
                    .check(
                        "unparseable-value",
                        "§1.4 §11.3",
                        "unparseable values are refused with HTTP 400 (or 200 + 0x401)",
                    )
                    .record(
                        outcome,
                        Some(req.to_string()),
                        Reject::Value.expected(strict),
                        reply.summary(),
                    );
            }
        }
        if self.is_p7() {
            self.p7_cycle().await;
        }
        // Whatever happened above, end connected.
        if self.read_bool("Connected").await != Some(true) {
            let _ = self
                .write("Connected", vec![pair("Connected", "True")])
                .await;
        }
        let ok = self.read_bool("Connected").await == Some(true);
        self.connected = ok;
        if !ok {
            self.sec
                .check("connect", "§4", "the device can be connected")
                .issue(
                    Some(format!("PUT {} body [Connected=True]", path)),
                    "GET connected → true",
                    "still not connected; the remaining checks were skipped",
                );
        }
        ok
    }

    fn interface_version_rule(&mut self) {
        let latest = self.t.known.map(DeviceType::latest_interface_version);
        let p7 = p7_version(&self.t.type_path);
        let check = self.sec.check(
            "interface-version",
            "§4",
            "InterfaceVersion is a valid version of the type",
        );
        match (self.iv, latest.or(p7)) {
            (None, _) => check.issue(
                None,
                "an integer ≥ 1 (it decides which members exist)",
                "InterfaceVersion could not be read",
            ),
            (Some(iv), _) if iv < 1 => check.issue(None, "an integer ≥ 1", iv.to_string()),
            (Some(iv), Some(top)) if iv > top => check.info(
                None,
                format!("at most {top}, the latest version known"),
                iv.to_string(),
            ),
            (Some(iv), _) if p7.is_some_and(|p| iv < p) => check.info(
                None,
                format!(
                    "the Platform 7 version {} (older versions are checked without connect, disconnect, connecting, devicestate)",
                    p7.unwrap_or(0)
                ),
                iv.to_string(),
            ),
            _ => check.pass(),
        }
    }

    fn connected_write_rule(&mut self, req: &Request, env: Option<&Envelope>, value: &str) {
        let check = self.sec.check(
            "connected-write",
            "§11.1",
            "PUT Connected True, False, True (parameters in any order) succeeds",
        );
        match env {
            Some(e) if e.ok() => check.pass(),
            Some(e) => check.issue(
                Some(req.to_string()),
                format!("Connected={value} accepted (ErrorNumber 0)"),
                e.error_text(),
            ),
            None => check.issue(
                Some(req.to_string()),
                format!("HTTP 200 for Connected={value}"),
                "see http-status",
            ),
        }
    }

    /// §4: InterfaceVersion, Connected and (P7) Connecting must work while disconnected.
    async fn works_disconnected(&mut self, iv_error: Option<i64>, when: &str) {
        let mut names = vec!["InterfaceVersion", "Connected"];
        if self.is_p7() {
            names.push("Connecting");
        }
        for name in names {
            let number = if name == "InterfaceVersion" && iv_error.is_some() {
                iv_error
            } else {
                self.read_env(name).await.map(|e| e.error_number())
            };
            let shown = format!("GET {}", self.path(&name.to_ascii_lowercase()));
            let check = self.sec.check(
                "works-disconnected",
                "§4",
                "InterfaceVersion, Connected and Connecting work while disconnected",
            );
            match number {
                Some(0) => check.pass(),
                Some(n) => check.issue(
                    Some(shown),
                    format!("{name} readable {when}"),
                    envelope::describe_error(n, ""),
                ),
                None => {}
            }
        }
    }

    /// §4 P7: disconnect then connect, each completing through Connecting.
    async fn p7_cycle(&mut self) {
        let limit = self.opts.motion_timeout.min(Duration::from_secs(60));
        for (member, want) in [("Disconnect", false), ("Connect", true)] {
            let started = Instant::now();
            let Some((req, env)) = self.write(member, Vec::new()).await else {
                continue;
            };
            let took = started.elapsed();
            let title = "Connect/Disconnect start quickly and complete through Connecting";
            if !env.ok() {
                self.sec.check("p7-connect", "§4", title).issue(
                    Some(req.to_string()),
                    "ErrorNumber 0",
                    env.error_text(),
                );
                continue;
            }
            let finished = self
                .wait_until(limit, async |run: &mut Self| {
                    run.read_bool("Connecting").await == Some(false)
                })
                .await;
            let connected = self.read_bool("Connected").await;
            let check = self.sec.check("p7-connect", "§4", title);
            if !finished {
                check.issue(
                    Some(req.to_string()),
                    format!("Connecting false within {} s", limit.as_secs()),
                    "still connecting",
                );
            } else if connected != Some(want) {
                check.issue(
                    Some(req.to_string()),
                    format!("Connected {want} once Connecting is false"),
                    format!("Connected {connected:?}"),
                );
            } else if took > Duration::from_secs(1) {
                check.info(
                    Some(req.to_string()),
                    "the call returns within 1 s (asynchronous)",
                    format!("returned after {:.1} s", took.as_secs_f64()),
                );
            } else {
                check.pass();
            }
            self.connected = connected == Some(true);
        }
    }

    /// Leaves the device as it was found: disconnected again if it was disconnected.
    async fn restore_connection(&mut self) {
        if self.was_connected == Some(false) {
            let _ = self
                .write("Connected", vec![pair("Connected", "False")])
                .await;
            self.connected = false;
        }
    }
}
