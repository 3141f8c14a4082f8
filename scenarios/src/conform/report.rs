//! The report: sections (the management API, then one per device), each a list of checks.
//!
//! A check is one rule (e.g. "ClientTransactionID is echoed") applied to one or more probes;
//! it passes when every probe passed, and otherwise keeps the first failing probes with the
//! request, what was expected and what came back. Outcomes follow ConformU: an **issue** is a
//! protocol fault (the run fails), **information** is worth knowing but allowed.

use std::fmt::Write as _;

use serde::Serialize;

/// How a check (or one failing probe) came out; ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Information,
    Issue,
}

impl Outcome {
    /// An issue in strict mode, information otherwise (ConformU's tolerant mode).
    pub fn strict(strict: bool) -> Self {
        if strict {
            Outcome::Issue
        } else {
            Outcome::Information
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass ",
            Outcome::Information => "INFO ",
            Outcome::Issue => "ISSUE",
        }
    }
}

/// One probe that did not pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failure {
    pub outcome: Outcome,
    /// The request as sent (`None` for checks that compare several replies).
    pub request: Option<String>,
    pub expected: String,
    pub got: String,
}

/// Failing probes kept per check; the rest are only counted.
pub const KEPT_FAILURES: usize = 12;

/// One rule and how the probes against it went.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `client-transaction-id` or `range.RightAscension`.
    pub id: String,
    /// Where the rule comes from in PROTOCOL.md, e.g. `§1.5`.
    pub reference: &'static str,
    pub title: String,
    pub outcome: Outcome,
    pub probes: u32,
    /// Failing probes (issues and information), all counted.
    pub failed: u32,
    /// The first [`KEPT_FAILURES`] failing probes.
    pub failures: Vec<Failure>,
}

impl Check {
    fn new(id: String, reference: &'static str, title: String) -> Self {
        Self {
            id,
            reference,
            title,
            outcome: Outcome::Pass,
            probes: 0,
            failed: 0,
            failures: Vec::new(),
        }
    }

    /// One probe passed.
    pub fn pass(&mut self) {
        self.probes += 1;
    }

    /// One probe came out as `outcome` (`Pass` counts as a pass).
    pub fn record(
        &mut self,
        outcome: Outcome,
        request: Option<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) {
        self.probes += 1;
        if outcome == Outcome::Pass {
            return;
        }
        self.failed += 1;
        self.outcome = self.outcome.max(outcome);
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(Failure {
                outcome,
                request,
                expected: expected.into(),
                got: got.into(),
            });
        }
    }

    pub fn issue(
        &mut self,
        request: Option<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) {
        self.record(Outcome::Issue, request, expected, got);
    }

    pub fn info(
        &mut self,
        request: Option<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) {
        self.record(Outcome::Information, request, expected, got);
    }
}

/// Which device a section is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceId {
    /// Lower-case URL segment (`telescope`).
    pub device_type: String,
    pub number: u32,
    pub name: String,
}

/// Counts of a section or a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub checks: usize,
    pub passed: usize,
    pub issues: usize,
    pub information: usize,
    pub probes: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.checks += other.checks;
        self.passed += other.passed;
        self.issues += other.issues;
        self.information += other.information;
        self.probes += other.probes;
    }
}

/// The management API, or one device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    pub title: String,
    pub device: Option<DeviceId>,
    pub checks: Vec<Check>,
}

impl Section {
    pub fn new(title: impl Into<String>, device: Option<DeviceId>) -> Self {
        Self {
            title: title.into(),
            device,
            checks: Vec::new(),
        }
    }

    /// The check `id`, created with `reference` and `title` on first use.
    pub fn check(&mut self, id: &str, reference: &'static str, title: &str) -> &mut Check {
        let at = match self.checks.iter().position(|c| c.id == id) {
            Some(at) => at,
            None => {
                self.checks
                    .push(Check::new(id.to_owned(), reference, title.to_owned()));
                self.checks.len() - 1
            }
        };
        &mut self.checks[at]
    }

    /// The check with this id, if any probe ran against it.
    pub fn find(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for check in &self.checks {
            c.checks += 1;
            c.probes += u64::from(check.probes);
            match check.outcome {
                Outcome::Pass => c.passed += 1,
                Outcome::Information => c.information += 1,
                Outcome::Issue => c.issues += 1,
            }
        }
        c
    }
}

/// The whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub url: String,
    pub strict: bool,
    pub allow_motion: bool,
    pub sections: Vec<Section>,
    /// HTTP requests sent.
    pub requests: u32,
    pub summary: Counts,
    /// False when any check is an issue.
    pub passed: bool,
}

impl Report {
    pub fn new(
        url: String,
        strict: bool,
        allow_motion: bool,
        sections: Vec<Section>,
        requests: u32,
    ) -> Self {
        let mut summary = Counts::default();
        for s in &sections {
            summary.add(s.counts());
        }
        Self {
            url,
            strict,
            allow_motion,
            passed: summary.issues == 0,
            sections,
            requests,
            summary,
        }
    }

    /// Every check that is an issue, with its section title.
    pub fn issues(&self) -> impl Iterator<Item = (&Section, &Check)> {
        self.sections.iter().flat_map(|s| {
            s.checks
                .iter()
                .filter(|c| c.outcome == Outcome::Issue)
                .map(move |c| (s, c))
        })
    }

    /// The report as text. `verbose` lists every kept failing probe (not just three) of each
    /// check that did not pass.
    pub fn render_text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Alpaca conformance check of {} ({} mode, {})",
            self.url,
            if self.strict { "strict" } else { "tolerant" },
            if self.allow_motion {
                "motion allowed"
            } else {
                "no motion: read-only and restorable checks only"
            }
        );
        for section in &self.sections {
            let _ = writeln!(out, "\n== {} ==", section.title);
            for check in &section.checks {
                render_check(&mut out, check, verbose);
            }
            let c = section.counts();
            let _ = writeln!(
                out,
                "   -> {} checks: {} passed, {} issues, {} information ({} probes)",
                c.checks, c.passed, c.issues, c.information, c.probes
            );
        }
        let s = self.summary;
        let _ = writeln!(
            out,
            "\nResult: {} - {} issues, {} information, {} of {} checks passed; {} sections, {} HTTP requests",
            if self.passed { "PASS" } else { "FAIL" },
            s.issues,
            s.information,
            s.passed,
            s.checks,
            self.sections.len(),
            self.requests
        );
        out
    }
}

fn render_check(out: &mut String, check: &Check, verbose: bool) {
    let scope = if check.probes == 1 {
        String::new()
    } else if check.failed == 0 {
        format!(" ({} probes)", check.probes)
    } else {
        format!(" ({} of {} probes)", check.failed, check.probes)
    };
    let _ = writeln!(
        out,
        "  {} {:<6} {}{scope}  [{}]",
        check.outcome.label(),
        check.reference,
        check.title,
        check.id
    );
    let shown = if verbose { check.failures.len() } else { 3 };
    for f in check.failures.iter().take(shown) {
        if let Some(request) = &f.request {
            let _ = writeln!(out, "        request:  {request}");
        }
        let _ = writeln!(out, "        expected: {}", f.expected);
        let marker = if f.outcome == Outcome::Information && check.outcome == Outcome::Issue {
            " (information)"
        } else {
            ""
        };
        let _ = writeln!(out, "        got:      {}{marker}", f.got);
    }
    let hidden = check.failed as usize - shown.min(check.failures.len());
    if hidden > 0 {
        let _ = writeln!(out, "        … and {hidden} more");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_takes_the_worst_outcome_and_keeps_the_first_failures() {
        let mut s = Section::new("x", None);
        let c = s.check("a", "§1", "rule a");
        c.pass();
        c.info(Some("GET /".into()), "e", "g");
        assert_eq!(c.outcome, Outcome::Information);
        for _ in 0..20 {
            c.issue(None, "e", "g");
        }
        assert_eq!(c.outcome, Outcome::Issue);
        assert_eq!((c.probes, c.failed), (22, 21));
        assert_eq!(c.failures.len(), KEPT_FAILURES);
        s.check("b", "§2", "rule b").pass();
        let counts = s.counts();
        assert_eq!((counts.checks, counts.passed, counts.issues), (2, 1, 1));
        let report = Report::new("http://h".into(), true, false, vec![s], 23);
        assert!(!report.passed);
        let text = report.render_text(false);
        assert!(text.contains("ISSUE"), "{text}");
        assert!(text.contains("… and 18 more"), "{text}");
        assert!(text.contains("Result: FAIL"), "{text}");
    }
}
