//! The protocol matrix of PROTOCOL.md §1 and §11, driven by the member tables: bad URLs and
//! verbs, every GET member (canonical, extra parameter, lower-case ids, malformed ids), the
//! parameterised GETs (name casing, unparseable and missing values), and every PUT member
//! with parameters that is safe to call (canonical, extra parameter, unparseable values,
//! inverted-case names, lower-case ids, malformed ids).

use bigskies_alpaca::types::{DeviceType, Verb};
use bigskies_alpaca::wire::{MemberInfo, ValueKind};
use reqwest::Method;

use super::device::{DeviceRun, Reject};
use super::envelope::{self, Envelope, Expect, ValueRule};
use super::http::{CLIENT_ID, Pairs, Request, pair};
use super::report::Outcome;
use super::values::{
    BAD_IDS, Safety, Source, as_param, garbage, invert_case, kind_default, put_safety, source,
};

/// A GET-only member of each type, to ask another type for (must be refused).
const FOREIGN: [(&str, &str); 6] = [
    ("telescope", "canslew"),
    ("camera", "imageready"),
    ("dome", "shutterstatus"),
    ("focuser", "tempcompavailable"),
    ("filterwheel", "focusoffsets"),
    ("rotator", "canreverse"),
];

/// An extra parameter no member has.
const EXTRA: (&str, &str) = ("ExtraParameter", "42");

impl DeviceRun<'_> {
    /// §1.1, §1.7, §11.2: bad URLs are 4xx; optional ones and other verbs are reported.
    pub(super) async fn bad_paths(&mut self) {
        let strict = self.strict();
        let (t, n) = (self.t.type_path.clone(), self.t.number);
        let (_, ids) = self.ids();
        let capitalised = {
            let mut c = t.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        let foreign = FOREIGN
            .iter()
            .find(|(owner, _)| *owner != t)
            .map_or("canslew", |(_, m)| *m);
        let mut always = vec![
            (
                format!("/api/v1/{}/{n}/description", t.to_ascii_uppercase()),
                "upper-case device type",
            ),
            (
                format!("/api/v1/{capitalised}/{n}/description"),
                "capitalised device type",
            ),
            (
                format!("/api/v1/notadevicetype/{n}/description"),
                "unknown device type",
            ),
            (format!("/api/v1/{t}/-1/description"), "device number -1"),
            (format!("/api/v1/{t}/A/description"), "device number A"),
            (format!("/api/v1/{t}/{n}/descrip"), "unknown member"),
            (
                format!("/api/v1/{t}/{n}/{foreign}"),
                "a member of another device type",
            ),
        ];
        if n != 99_999 {
            always.push((
                format!("/api/v1/{t}/99999/description"),
                "device number 99999 (not configured)",
            ));
        }
        for (path, what) in always {
            let req = Request::get(path, &ids);
            let check = (
                "bad-path",
                "§1.7 §11.2",
                "bad device URLs are answered with a 4xx status",
            );
            let expected = format!("a 4xx status ({what})");
            self.expect_refused(&req, check, Outcome::Issue, &expected)
                .await;
        }
        // Member names are lower case only (§1.1).
        let req = Request::get(format!("/api/v1/{t}/{n}/DESCRIPTION"), &ids);
        let check = (
            "bad-path-case",
            "§1.1",
            "paths are lower case only (an upper-case member is refused)",
        );
        self.expect_refused(&req, check, Outcome::strict(strict), "a 4xx status")
            .await;
        // The optional set: any status is allowed, a success is worth knowing.
        for root in ["/apx/v1", "/api/1", "/api/v", "/api/V1", "/api/v2"] {
            let req = Request::get(format!("{root}/{t}/{n}/description"), &ids);
            let check = (
                "optional-bad-path",
                "§11.2",
                "other API roots and versions are refused (optional)",
            );
            self.expect_refused(&req, check, Outcome::Information, "a 4xx status")
                .await;
        }
        let description = self.path("description");
        for method in [Method::POST, Method::DELETE] {
            let req = Request::other(method, &description);
            let check = (
                "other-verbs",
                "§1.2",
                "verbs other than GET and PUT are refused (400 or 405)",
            );
            self.expect_refused(&req, check, Outcome::Information, "HTTP 400 or 405")
                .await;
        }
        // A GET-only member asked with PUT is not a member for that verb.
        let req = Request::put(&description, &ids);
        let check = (
            "wrong-verb",
            "§1.7",
            "PUT to a GET-only member is refused with a 4xx status",
        );
        self.expect_refused(&req, check, Outcome::strict(strict), "a 4xx status")
            .await;
    }

    /// Send `req`: a 4xx reply passes check `(id, reference, title)`; any other reply is
    /// recorded as `otherwise`, expecting `expected`. No reply is the transport's issue.
    async fn expect_refused(
        &mut self,
        req: &Request,
        (id, reference, title): (&str, &'static str, &str),
        otherwise: Outcome,
        expected: &str,
    ) {
        let Some(reply) = self.send(req).await else {
            return;
        };
        let check = self.sec.check(id, reference, title);
        if reply.is_client_error() {
            check.pass();
        } else {
            check.record(otherwise, Some(req.to_string()), expected, reply.summary());
        }
    }

    /// §2: every device has a setup page.
    pub(super) async fn setup_page(&mut self) {
        let req = Request::get(
            format!("/setup/v1/{}/{}/setup", self.t.type_path, self.t.number),
            &[],
        );
        let Some(reply) = self.send(&req).await else {
            return;
        };
        let html = reply
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/html"));
        let strict = self.strict();
        let check = self.sec.check(
            "setup-page",
            "§2",
            "the device setup page /setup/v1/{type}/{number}/setup exists",
        );
        if reply.status == 200 && html {
            check.pass();
        } else {
            check.record(
                Outcome::strict(strict),
                Some(req.to_string()),
                "HTTP 200 text/html",
                reply.summary(),
            );
        }
    }

    /// Sends a variant that must succeed with HTTP 200 and echo `ctid`.
    async fn variant_200(
        &mut self,
        req: &Request,
        ctid: u32,
        (id, reference, title): (&str, &'static str, &str),
        value: ValueRule,
        image: bool,
    ) -> Option<Envelope> {
        let reply = self.send(req).await?;
        if reply.status != 200 {
            self.sec.check(id, reference, title).issue(
                Some(req.to_string()),
                format!("HTTP 200 echoing ClientTransactionID {ctid}"),
                reply.summary(),
            );
            return None;
        }
        let strict = self.strict();
        let env = envelope::inspect(
            &mut self.sec,
            strict,
            req,
            &reply,
            Expect {
                ctid: None,
                value,
                image,
            },
        )?;
        let check = self.sec.check(id, reference, title);
        match env.client_transaction_id() {
            Some(got) if got == i64::from(ctid) => check.pass(),
            got => check.issue(
                Some(req.to_string()),
                format!("HTTP 200 echoing ClientTransactionID {ctid}"),
                got.map_or_else(
                    || "no ClientTransactionID".to_owned(),
                    |n| format!("ClientTransactionID {n}"),
                ),
            ),
        }
        Some(env)
    }

    /// Sends a request that must be refused the `reject` way, under the check `id`. True when
    /// the server accepted it (HTTP 200, ErrorNumber 0).
    async fn refused(
        &mut self,
        req: &Request,
        reject: Reject,
        id: &str,
        reference: &'static str,
        title: &str,
    ) -> bool {
        let Some(reply) = self.send(req).await else {
            return false;
        };
        let strict = self.strict();
        let outcome = reject.judge(strict, &reply);
        self.sec.check(id, reference, title).record(
            outcome,
            Some(req.to_string()),
            reject.expected(strict),
            reply.summary(),
        );
        reply.status == 200
            && reply
                .json()
                .ok()
                .and_then(|v| v.as_object().cloned())
                .is_some_and(|obj| Envelope { obj }.ok())
    }

    /// The GET variants every member gets: extra parameter, lower-case ids, malformed ids.
    async fn get_variants(&mut self, m: &MemberInfo, params: &Pairs) {
        let path = self.path(&m.path());
        let image = m.returns == ValueKind::Image;
        let rule = ValueRule::Get(m.returns);
        let (ctid, mut pairs) = self.ids();
        pairs.extend(params.iter().cloned());
        pairs.push(pair(EXTRA.0, EXTRA.1));
        self.variant_200(
            &Request::get(&path, &pairs),
            ctid,
            (
                "extra-parameter",
                "§1.2 §11.4",
                "unknown extra parameters are ignored",
            ),
            rule,
            image,
        )
        .await;
        let ctid = self.probe.next_ctid();
        let mut pairs = vec![
            pair("clientid", CLIENT_ID.to_string()),
            pair("clienttransactionid", ctid.to_string()),
        ];
        pairs.extend(params.iter().cloned());
        self.variant_200(
            &Request::get(&path, &pairs),
            ctid,
            (
                "get-name-casing",
                "§1.3 §11.4",
                "GET parameter names are case-insensitive (lower-case ids are used)",
            ),
            rule,
            image,
        )
        .await;
        for (name, bad) in BAD_IDS {
            let mut pairs = params.clone();
            pairs.push(pair(name, bad));
            self.refused(
                &Request::get(&path, &pairs),
                Reject::Id,
                "bad-transaction-id",
                "§1.5 §11.4",
                "malformed ClientID / ClientTransactionID values are refused with HTTP 400",
            )
            .await;
        }
    }

    /// §11.4: every parameterless GET member.
    pub(super) async fn get_matrix(&mut self) {
        let members: Vec<&'static MemberInfo> = self
            .members()
            .into_iter()
            .filter(|m| m.verb == Verb::Get && m.params.is_empty())
            .collect();
        // Fetching a ready image several times could move a lot of data; the image members
        // are only probed while no image is ready (an error reply), and by `motion` with a
        // small subframe of its own.
        let image_ready = if self.t.known == Some(DeviceType::Camera) {
            self.read_bool("ImageReady").await
        } else {
            None
        };
        for m in members {
            if m.returns == ValueKind::Image && image_ready != Some(false) {
                self.sec
                    .check(
                        "image-skipped",
                        "§6",
                        "image members are probed while no image is ready",
                    )
                    .info(
                        None,
                        "ImageReady false",
                        format!("{} skipped: an image is ready (it could be large)", m.name),
                    );
                continue;
            }
            if self.read_env(m.name).await.is_none() {
                continue;
            }
            self.get_variants(m, &Vec::new()).await;
        }
    }

    /// §11.5: GET members with parameters.
    pub(super) async fn parameterised_gets(&mut self) {
        let members: Vec<&'static MemberInfo> = self
            .members()
            .into_iter()
            .filter(|m| m.verb == Verb::Get && !m.params.is_empty())
            .collect();
        for m in members {
            let arg_sets: Vec<Pairs> = match m.name {
                "AxisRates" | "CanMoveAxis" => {
                    (0..3).map(|a| vec![pair("Axis", a.to_string())]).collect()
                }
                _ => {
                    let mut args = Vec::new();
                    for p in m.params {
                        let text = match self.reads.get(p.name).and_then(|v| as_param(v, p.kind)) {
                            Some(t) => t,
                            None => kind_default(p.kind).to_owned(),
                        };
                        args.push(pair(p.name, text));
                    }
                    vec![args]
                }
            };
            let mut canonical = None;
            for args in &arg_sets {
                let Some((_, env)) = self.call(m, args.clone()).await else {
                    continue;
                };
                let key = format!(
                    "{}:{}",
                    m.name,
                    args.iter()
                        .map(|(_, v)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                if env.ok()
                    && let Some(v) = env.value()
                {
                    self.reads.insert(key, v.clone());
                }
                if canonical.is_none() {
                    canonical = Some(env.error_number());
                }
            }
            let Some(canonical) = canonical else {
                continue;
            };
            let args = arg_sets.first().cloned().unwrap_or_default();
            let path = self.path(&m.path());
            for i in 0..args.len() {
                // Inverted-case name: same answer (§1.3).
                if let Some(inverted) = invert_case(&args[i].0) {
                    let (ctid, mut pairs) = self.ids();
                    for (j, (k, v)) in args.iter().enumerate() {
                        pairs.push(pair(
                            if i == j { inverted.clone() } else { k.clone() },
                            v.clone(),
                        ));
                    }
                    let req = Request::get(&path, &pairs);
                    let title =
                        "GET parameter names are case-insensitive (lower-case ids are used)";
                    if let Some(env) = self
                        .variant_200(
                            &req,
                            ctid,
                            ("get-name-casing", "§1.3 §11.5", title),
                            ValueRule::Get(m.returns),
                            false,
                        )
                        .await
                        && env.error_number() != canonical
                    {
                        self.sec
                            .check("get-name-casing", "§1.3 §11.5", title)
                            .issue(
                                Some(req.to_string()),
                                format!(
                                    "the same answer as with {} (ErrorNumber {canonical:#x})",
                                    args[i].0
                                ),
                                env.error_text(),
                            );
                    }
                }
                // Unparseable value (§1.4).
                if let Some(bad) = garbage(m.params[i].kind) {
                    let (_, mut pairs) = self.ids();
                    for (j, (k, v)) in args.iter().enumerate() {
                        pairs.push(pair(
                            k.clone(),
                            if i == j { bad.to_owned() } else { v.clone() },
                        ));
                    }
                    self.refused(
                        &Request::get(&path, &pairs),
                        Reject::Value,
                        "unparseable-value",
                        "§1.4 §11.5",
                        "unparseable values are refused with HTTP 400 (or 200 + 0x401)",
                    )
                    .await;
                }
                // Missing required parameter (§1.7).
                let (_, mut pairs) = self.ids();
                pairs.extend(
                    args.iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, p)| p.clone()),
                );
                self.refused(
                    &Request::get(&path, &pairs),
                    Reject::Name,
                    "missing-parameter",
                    "§1.7",
                    "a missing required parameter is refused with HTTP 400",
                )
                .await;
            }
            self.get_variants(m, &args).await;
        }
    }

    /// The values for a PUT member that change nothing (or move as little as possible);
    /// `None` when there is no such value right now.
    async fn safe_values(&mut self, m: &MemberInfo) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for p in m.params {
            let text = match source(&self.t.type_path, m, p.name) {
                Source::Fixed(s) => s.to_owned(),
                Source::FocuserMove => {
                    if self.read_bool("Absolute").await == Some(false) {
                        "0".to_owned()
                    } else {
                        let v = self.read("Position").await?;
                        as_param(&v, p.kind)?
                    }
                }
                Source::Read(names, fallback) => {
                    let mut found = None;
                    for n in names {
                        if let Some(v) = self.read(n).await
                            && let Some(t) = as_param(&v, p.kind)
                        {
                            found = Some(t);
                            break;
                        }
                    }
                    match found {
                        Some(t) => t,
                        None => match p.kind {
                            bigskies_alpaca::wire::ParamKind::Date => return None,
                            bigskies_alpaca::wire::ParamKind::Double
                            | bigskies_alpaca::wire::ParamKind::Int
                            | bigskies_alpaca::wire::ParamKind::Enum(_) => fallback.to_owned(),
                            kind => kind_default(kind).to_owned(),
                        },
                    }
                }
            };
            out.push(text);
        }
        // A filter wheel reading −1 is moving: there is no slot to stay at.
        if m.name == "Position"
            && self.t.known == Some(DeviceType::FilterWheel)
            && out.first().map(String::as_str) == Some("-1")
        {
            return None;
        }
        Some(out)
    }

    /// §11.6: every PUT member with parameters that may be called (and P7 `connect`).
    pub(super) async fn put_matrix(&mut self) {
        let members: Vec<&'static MemberInfo> = self
            .members()
            .into_iter()
            .filter(|m| m.verb == Verb::Put && (!m.params.is_empty() || m.name == "Connect"))
            .collect();
        for m in members {
            let motion = put_safety(&self.t.type_path, m.name) == Safety::Motion;
            if motion && !self.opts.allow_motion {
                continue;
            }
            let Some(values) = self.safe_values(m).await else {
                self.sec
                    .check(
                        "put-skipped",
                        "§11.6",
                        "PUT members skipped for lack of a harmless value",
                    )
                    .info(
                        None,
                        format!("a harmless value for {}", m.name),
                        "none right now; not called",
                    );
                continue;
            };
            self.put_member(m, &values).await;
            if motion {
                self.wait_idle().await;
            }
        }
    }

    async fn put_member(&mut self, m: &MemberInfo, values: &[String]) {
        let path = self.path(&m.path());
        let base: Pairs = m
            .params
            .iter()
            .zip(values)
            .map(|(p, v)| pair(p.name, v.clone()))
            .collect();
        let rule = ValueRule::Put(m.returns);
        let Some((req, env)) = self.call(m, base.clone()).await else {
            return;
        };
        self.put_errors
            .insert(m.name.to_owned(), env.error_number());
        if !env.ok() && m.name != "Action" {
            self.note_error(&req, m, &env);
        }
        let mut dirty = false;
        // Extra parameter.
        let (ctid, ids) = self.ids();
        let mut pairs = base.clone();
        pairs.push(pair(EXTRA.0, EXTRA.1));
        pairs.extend(ids);
        self.variant_200(
            &Request::put(&path, &pairs),
            ctid,
            (
                "extra-parameter",
                "§1.2 §11.6",
                "unknown extra parameters are ignored",
            ),
            rule,
            false,
        )
        .await;
        for (i, p) in m.params.iter().enumerate() {
            // Unparseable value.
            if let Some(bad) = garbage(p.kind) {
                let (_, ids) = self.ids();
                let mut pairs = base.clone();
                pairs[i].1 = bad.to_owned();
                pairs.extend(ids);
                dirty |= self
                    .refused(
                        &Request::put(&path, &pairs),
                        Reject::Value,
                        "unparseable-value",
                        "§1.4 §11.6",
                        "unparseable values are refused with HTTP 400 (or 200 + 0x401)",
                    )
                    .await;
            }
            // Inverted-case name = missing (§1.3).
            if let Some(inverted) = invert_case(p.name) {
                let (_, ids) = self.ids();
                let mut pairs = base.clone();
                pairs[i].0 = inverted;
                pairs.extend(ids);
                self.refused(
                    &Request::put(&path, &pairs),
                    Reject::Name,
                    "put-name-casing",
                    "§1.3 §11.6",
                    "PUT parameter names are case-sensitive (an inverted-case name is missing: HTTP 400)",
                )
                .await;
            }
        }
        // Lower-case ClientID: ignored, the request still succeeds.
        let ctid = self.probe.next_ctid();
        let mut pairs = base.clone();
        pairs.push(pair("clientid", CLIENT_ID.to_string()));
        pairs.push(pair("ClientTransactionID", ctid.to_string()));
        self.variant_200(
            &Request::put(&path, &pairs),
            ctid,
            (
                "put-lowercase-ids",
                "§1.3 §11.6",
                "a lower-case PUT clientid is ignored, the request still succeeds",
            ),
            rule,
            false,
        )
        .await;
        // Lower-case ClientTransactionID: not supplied, so ClientTransactionID 0 comes back.
        let ctid = self.probe.next_ctid();
        let mut pairs = base.clone();
        pairs.push(pair("ClientID", CLIENT_ID.to_string()));
        pairs.push(pair("clienttransactionid", ctid.to_string()));
        let req = Request::put(&path, &pairs);
        if let Some(reply) = self.send(&req).await {
            let strict = self.strict();
            let id = "put-lowercase-ctid";
            let title =
                "a lower-case PUT clienttransactionid is not the ClientTransactionID (0 is echoed)";
            if reply.status != 200 {
                self.sec.check(id, "§1.3 §11.6", title).issue(
                    Some(req.to_string()),
                    "HTTP 200 with ClientTransactionID 0",
                    reply.summary(),
                );
            } else if let Some(env) = envelope::inspect(
                &mut self.sec,
                strict,
                &req,
                &reply,
                Expect {
                    ctid: None,
                    value: rule,
                    image: false,
                },
            ) {
                let got = env.client_transaction_id();
                let check = self.sec.check(id, "§1.3 §11.6", title);
                match got {
                    Some(0) => check.pass(),
                    Some(n) if n == i64::from(ctid) => check.record(
                        Outcome::strict(strict),
                        Some(req.to_string()),
                        "ClientTransactionID 0 (the wrongly cased name counts as absent)",
                        format!("ClientTransactionID {n} (echoed)"),
                    ),
                    other => check.issue(
                        Some(req.to_string()),
                        "ClientTransactionID 0",
                        other.map_or_else(
                            || "no ClientTransactionID".to_owned(),
                            |n| format!("ClientTransactionID {n}"),
                        ),
                    ),
                }
            }
        }
        // Malformed ids.
        for (name, bad) in BAD_IDS {
            let mut pairs = base.clone();
            pairs.push(pair(name, bad));
            self.refused(
                &Request::put(&path, &pairs),
                Reject::Id,
                "bad-transaction-id",
                "§1.5 §11.6",
                "malformed ClientID / ClientTransactionID values are refused with HTTP 400",
            )
            .await;
        }
        if dirty {
            // A faulty server took an unparseable value: put the original back.
            let _ = self.call(m, base).await;
        }
    }
}
