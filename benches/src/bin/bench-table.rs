//! `bench-table`: one table of the criterion results under `<target>/criterion`.
//!
//! For every benchmark that has a `new/estimates.json` (written by the last run of it) it prints
//! the median with its confidence interval, the mean, the throughput at the median when the bench
//! declares one, and, when a baseline exists, the baseline's median, the change of the median in
//! percent and a verdict (faster, slower, no change).
//!
//! Baselines are criterion's: `--save-baseline NAME` and `--baseline NAME` on the bench command
//! line, or `base`, which every plain run overwrites with its own results. The verdict comes from
//! criterion's own change estimate (`change/estimates.json`, the bootstrapped confidence interval
//! of the relative change of the median) when that file belongs to this comparison: it must be at
//! least as new as `new/estimates.json` and, when the baseline differs from the run, agree with the
//! two medians. A change estimate is "faster" or "slower" only when its whole interval lies beyond
//! criterion's default noise threshold of 1 %. Otherwise the verdict compares the two medians'
//! confidence intervals (marked `*`). When the baseline is the run itself (a plain run, or
//! `--save-baseline NAME`, copies its results into that baseline), the baseline median shown is
//! the previous one, recovered from criterion's change estimate (marked `†`).
//!
//! ```text
//! bench-table [--baseline NAME] [--target-dir DIR] [--filter TEXT] [--markdown]
//! ```
//!
//! Exits 1 with a message when there are no results (or none match the filter, or the named
//! baseline exists for no benchmark), 64 on bad arguments. `ci/bench` runs the benches and then
//! this tool.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Criterion's default noise threshold: changes whose interval stays within ±1 % are noise.
const NOISE: f64 = 0.01;

/// Directories of a benchmark that are not baselines.
const NOT_BASELINES: [&str; 3] = ["new", "change", "report"];

const USAGE: &str = "\
usage: bench-table [--baseline NAME] [--target-dir DIR] [--filter TEXT] [--markdown]

Prints one table of the criterion results under DIR/criterion: median with its confidence
interval, mean, throughput, and the change against a baseline.

  --baseline NAME    compare with criterion baseline NAME (default: `base`, when present)
  --target-dir DIR   cargo target directory holding criterion/ (default: $CRITERION_HOME,
                     else $CARGO_TARGET_DIR/criterion, else ./target/criterion)
  --filter TEXT      only benchmarks whose id contains TEXT (case-insensitive)
  --markdown         print a Markdown table
  -h, --help         this text";

#[derive(Debug, Clone, PartialEq)]
struct Options {
    /// `None`: compare with `base` where it exists.
    baseline: Option<String>,
    criterion_dir: PathBuf,
    filter: Option<String>,
    markdown: bool,
}

#[derive(Debug, PartialEq)]
enum Command {
    Table(Options),
    Help,
}

/// The environment the defaults come from, passed in so tests need not touch the process's own.
#[derive(Debug, Default)]
struct Env {
    criterion_home: Option<OsString>,
    cargo_target_dir: Option<OsString>,
}

fn parse_args(args: impl IntoIterator<Item = String>, env: &Env) -> Result<Command, String> {
    let mut baseline = None;
    let mut target_dir: Option<PathBuf> = None;
    let mut filter = None;
    let mut markdown = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            let v = match inline.clone() {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
            };
            if v.is_empty() {
                return Err(format!("{name} needs a non-empty value"));
            }
            Ok(v)
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--markdown" if inline.is_none() => markdown = true,
            "--baseline" => {
                let name = value("--baseline")?;
                if NOT_BASELINES.contains(&name.as_str())
                    || name.contains(['/', '\\'])
                    || name == ".."
                {
                    return Err(format!("--baseline {name:?} is not a baseline name"));
                }
                baseline = Some(name);
            }
            "--target-dir" => target_dir = Some(PathBuf::from(value("--target-dir")?)),
            "--filter" => filter = Some(value("--filter")?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let criterion_dir = match target_dir {
        // A directory that is itself criterion's output is taken as it is.
        Some(dir)
            if dir.file_name().is_some_and(|n| n == "criterion")
                && !dir.join("criterion").is_dir() =>
        {
            dir
        }
        Some(dir) => dir.join("criterion"),
        None => match (&env.criterion_home, &env.cargo_target_dir) {
            (Some(home), _) => PathBuf::from(home),
            (None, Some(target)) => PathBuf::from(target).join("criterion"),
            (None, None) => PathBuf::from("target").join("criterion"),
        },
    };
    Ok(Command::Table(Options {
        baseline,
        criterion_dir,
        filter,
        markdown,
    }))
}

/// A point estimate and its confidence interval (seconds are nanoseconds, changes are fractions).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    point: f64,
    lower: f64,
    upper: f64,
    /// 0.95 for a 95 % interval.
    level: f64,
}

/// The part of an `estimates.json` (absolute, nanoseconds) or `change/estimates.json`
/// (relative, fractions) the table uses.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimates {
    mean: Estimate,
    median: Estimate,
}

fn parse_estimate(v: &Value, what: &str) -> anyhow::Result<Estimate> {
    let field = |path: &[&str]| -> anyhow::Result<f64> {
        let mut cur = v;
        for key in path {
            cur = cur
                .get(key)
                .with_context(|| format!("{what}: no field {}", path.join(".")))?;
        }
        let x = cur
            .as_f64()
            .with_context(|| format!("{what}: {} is not a number", path.join(".")))?;
        if !x.is_finite() {
            bail!("{what}: {} is not finite", path.join("."));
        }
        Ok(x)
    };
    Ok(Estimate {
        point: field(&["point_estimate"])?,
        lower: field(&["confidence_interval", "lower_bound"])?,
        upper: field(&["confidence_interval", "upper_bound"])?,
        level: field(&["confidence_interval", "confidence_level"])?,
    })
}

fn parse_estimates(text: &str) -> anyhow::Result<Estimates> {
    let v: Value = serde_json::from_str(text).context("not JSON")?;
    let stat = |name: &str| -> anyhow::Result<Estimate> {
        parse_estimate(
            v.get(name).with_context(|| format!("no {name} estimate"))?,
            name,
        )
    };
    Ok(Estimates {
        mean: stat("mean")?,
        median: stat("median")?,
    })
}

/// What one iteration processes (criterion's `Throughput`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Throughput {
    Elements(u64),
    Bytes(u64),
    BytesDecimal(u64),
    Bits(u64),
}

/// The id and throughput of a `benchmark.json`.
fn parse_benchmark(text: &str) -> anyhow::Result<(String, Option<Throughput>)> {
    let v: Value = serde_json::from_str(text).context("not JSON")?;
    let id = v
        .get("full_id")
        .and_then(Value::as_str)
        .context("no full_id")?
        .to_owned();
    let throughput = match v.get("throughput") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) => {
            let count = |key: &str| t.get(key).and_then(Value::as_u64);
            if let Some(n) = count("Elements") {
                Some(Throughput::Elements(n))
            } else if let Some(n) = t
                .get("ElementsAndBytes")
                .and_then(|e| e.get("elements"))
                .and_then(Value::as_u64)
            {
                Some(Throughput::Elements(n))
            } else if let Some(n) = count("Bytes") {
                Some(Throughput::Bytes(n))
            } else if let Some(n) = count("BytesDecimal") {
                Some(Throughput::BytesDecimal(n))
            } else {
                count("Bits").map(Throughput::Bits)
            }
        }
        Some(_) => None,
    };
    Ok((id, throughput))
}

/// One benchmark directory with a `new/` result.
#[derive(Debug, Clone)]
struct Bench {
    id: String,
    dir: PathBuf,
    new: Estimates,
    throughput: Option<Throughput>,
}

/// Every benchmark under `root` (criterion nests `group/function[/value]`), sorted by id.
fn find_benches(root: &Path) -> anyhow::Result<Vec<Bench>> {
    fn walk(dir: &Path, out: &mut Vec<Bench>) -> anyhow::Result<()> {
        let new = dir.join("new");
        let estimates = new.join("estimates.json");
        if estimates.is_file() {
            let text = fs::read_to_string(&estimates)
                .with_context(|| format!("reading {}", estimates.display()))?;
            let parsed =
                parse_estimates(&text).with_context(|| format!("in {}", estimates.display()))?;
            let bench_file = new.join("benchmark.json");
            let (id, throughput) = match fs::read_to_string(&bench_file) {
                Ok(text) => parse_benchmark(&text)
                    .with_context(|| format!("in {}", bench_file.display()))?,
                // benchmark.json is written last; without it the directory names the bench.
                Err(_) => (dir.to_string_lossy().into_owned(), None),
            };
            out.push(Bench {
                id,
                dir: dir.to_owned(),
                new: parsed,
                throughput,
            });
            return Ok(());
        }
        let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name();
            if name == "report" || !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            walk(&entry.path(), out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    // Ids missing their benchmark.json fell back to the path: make those relative to the root.
    for b in &mut out {
        if let Ok(rel) = b.dir.strip_prefix(root)
            && b.id == b.dir.to_string_lossy()
        {
            b.id = rel.to_string_lossy().into_owned();
        }
    }
    out.sort_by(|a, b| natural_cmp(&a.id, &b.id));
    Ok(out)
}

/// Orders ids with their numbers compared as numbers: `cycle_10_devices` before `cycle_100_devices`
/// before `cycle_1000_devices`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut digits = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if digits.is_some_and(|prev| prev != d) {
                out.push((digits == Some(true), &s[start..i]));
                start = i;
            }
            digits = Some(d);
        }
        if start < s.len() {
            out.push((digits == Some(true), &s[start..]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Baselines (directories with an `estimates.json`, other than `new` and `change`) of a bench.
fn baselines_of(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("estimates.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !NOT_BASELINES.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Faster,
    Slower,
    NoChange,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoChange => "no change",
        }
    }

    /// Criterion's rule: a change counts when its whole interval is beyond the noise threshold.
    fn of_change(change: &Estimate) -> Verdict {
        if change.upper < -NOISE {
            Verdict::Faster
        } else if change.lower > NOISE {
            Verdict::Slower
        } else {
            Verdict::NoChange
        }
    }

    /// Without a change estimate: the medians' intervals must not overlap.
    fn of_intervals(new: &Estimate, base: &Estimate) -> Verdict {
        if new.upper < base.lower {
            Verdict::Faster
        } else if new.lower > base.upper {
            Verdict::Slower
        } else {
            Verdict::NoChange
        }
    }
}

/// Where a comparison's verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Criterion's change estimate for exactly this run and this baseline.
    Criterion,
    /// The baseline was overwritten by this run; the previous median is recovered from
    /// criterion's change estimate (`new / (1 + change)`).
    CriterionPrevious,
    /// No matching change estimate: the medians' confidence intervals were compared.
    Intervals,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Comparison {
    base_median: f64,
    /// Relative change of the median (0.05 = 5 % slower).
    change: f64,
    verdict: Verdict,
    source: Source,
}

/// The baseline column of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BaselineCell {
    /// The bench has no such baseline.
    Missing,
    /// The baseline holds this very run and the run compared with nothing.
    SameRun,
    Compared(Comparison),
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Compares a bench's `new` result with its baseline `name`.
fn compare(bench: &Bench, name: &str) -> anyhow::Result<BaselineCell> {
    let base_file = bench.dir.join(name).join("estimates.json");
    if !base_file.is_file() {
        return Ok(BaselineCell::Missing);
    }
    let new_file = bench.dir.join("new").join("estimates.json");
    let base_text = fs::read_to_string(&base_file)
        .with_context(|| format!("reading {}", base_file.display()))?;
    let new_text =
        fs::read_to_string(&new_file).with_context(|| format!("reading {}", new_file.display()))?;

    // Criterion writes change/estimates.json right after new/estimates.json when the run compared
    // with a baseline; an older one belongs to an earlier run.
    let change_file = bench.dir.join("change").join("estimates.json");
    let change = match (modified(&change_file), modified(&new_file)) {
        (Some(change_time), Some(new_time)) if change_time >= new_time => {
            let text = fs::read_to_string(&change_file)
                .with_context(|| format!("reading {}", change_file.display()))?;
            Some(parse_estimates(&text).with_context(|| format!("in {}", change_file.display()))?)
        }
        _ => None,
    };
    let new_median = bench.new.median;

    if base_text == new_text {
        // The run saved itself as this baseline (a plain run into `base`, or --save-baseline).
        return Ok(match change {
            Some(c) if c.median.point > -1.0 => BaselineCell::Compared(Comparison {
                base_median: new_median.point / (1.0 + c.median.point),
                change: c.median.point,
                verdict: Verdict::of_change(&c.median),
                source: Source::CriterionPrevious,
            }),
            _ => BaselineCell::SameRun,
        });
    }

    let base =
        parse_estimates(&base_text).with_context(|| format!("in {}", base_file.display()))?;
    if base.median.point <= 0.0 {
        bail!("{}: median is not positive", base_file.display());
    }
    let ratio = new_median.point / base.median.point - 1.0;
    let comparison = match change {
        // Criterion computes the point change as new median / base median - 1 from the same
        // numbers it saved, so a change estimate of this comparison matches to rounding.
        Some(c) if (c.median.point - ratio).abs() <= 1e-9 * ratio.abs().max(1.0) => Comparison {
            base_median: base.median.point,
            change: c.median.point,
            verdict: Verdict::of_change(&c.median),
            source: Source::Criterion,
        },
        _ => Comparison {
            base_median: base.median.point,
            change: ratio,
            verdict: Verdict::of_intervals(&new_median, &base.median),
            source: Source::Intervals,
        },
    };
    Ok(BaselineCell::Compared(comparison))
}

#[derive(Debug, Clone)]
struct Row {
    id: String,
    new: Estimates,
    throughput: Option<Throughput>,
    baseline: BaselineCell,
}

#[derive(Debug)]
struct Table {
    criterion_dir: PathBuf,
    /// The baseline compared with; `None` when there is nothing to compare.
    baseline: Option<String>,
    rows: Vec<Row>,
}

/// Reads the results and builds the table, or says why there is none.
fn build(options: &Options) -> anyhow::Result<Table> {
    let dir = &options.criterion_dir;
    if !dir.is_dir() {
        bail!(
            "no criterion results: {} does not exist; run the benches first (ci/bench, or cargo bench -p bigskies-benches), or pass --target-dir",
            dir.display()
        );
    }
    let all = find_benches(dir)?;
    if all.is_empty() {
        bail!(
            "no criterion results under {}: no benchmark has a new/estimates.json",
            dir.display()
        );
    }
    let benches: Vec<Bench> = match &options.filter {
        Some(f) => {
            let f = f.to_lowercase();
            all.iter()
                .filter(|b| b.id.to_lowercase().contains(&f))
                .cloned()
                .collect()
        }
        None => all.clone(),
    };
    if benches.is_empty() {
        let ids: Vec<&str> = all.iter().map(|b| b.id.as_str()).collect();
        bail!(
            "no benchmark id contains {:?} (under {}: {})",
            options.filter.as_deref().unwrap_or_default(),
            dir.display(),
            ids.join(", ")
        );
    }

    let name = options.baseline.as_deref().unwrap_or("base");
    let mut rows = Vec::with_capacity(benches.len());
    for b in &benches {
        rows.push(Row {
            id: b.id.clone(),
            new: b.new,
            throughput: b.throughput,
            baseline: compare(b, name)?,
        });
    }
    let any_present = rows.iter().any(|r| r.baseline != BaselineCell::Missing);
    let any_compared = rows
        .iter()
        .any(|r| matches!(r.baseline, BaselineCell::Compared(_)));
    let baseline = match &options.baseline {
        Some(name) if !any_present => {
            let mut found: Vec<String> =
                benches.iter().flat_map(|b| baselines_of(&b.dir)).collect();
            found.sort();
            found.dedup();
            let found = if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            };
            bail!(
                "no benchmark{} has a baseline named {name:?} (baselines present: {found}); save one with ci/bench --save {name}",
                if options.filter.is_some() {
                    " matching the filter"
                } else {
                    ""
                }
            );
        }
        Some(name) => Some(name.clone()),
        // The automatic `base` only earns columns when it compares something.
        None if any_compared => Some(name.to_owned()),
        None => None,
    };
    Ok(Table {
        criterion_dir: dir.clone(),
        baseline,
        rows,
    })
}

/// Criterion's number style: four significant digits, at most.
fn short(n: f64) -> String {
    let a = n.abs();
    if a < 10.0 {
        format!("{n:.4}")
    } else if a < 100.0 {
        format!("{n:.3}")
    } else if a < 1000.0 {
        format!("{n:.2}")
    } else if a < 10000.0 {
        format!("{n:.1}")
    } else {
        format!("{n:.0}")
    }
}

/// The unit and scale criterion would print `ns` nanoseconds in.
fn time_unit(ns: f64) -> (&'static str, f64) {
    if ns < 1.0 {
        ("ps", 1e-3)
    } else if ns < 1e3 {
        ("ns", 1.0)
    } else if ns < 1e6 {
        ("µs", 1e3)
    } else if ns < 1e9 {
        ("ms", 1e6)
    } else {
        ("s", 1e9)
    }
}

fn time(ns: f64) -> String {
    let (unit, scale) = time_unit(ns);
    format!("{} {unit}", short(ns / scale))
}

/// An interval in the unit of its point estimate: `2.0100–2.1500 ms`.
fn interval(e: &Estimate) -> String {
    let (unit, scale) = time_unit(e.point);
    format!(
        "{}–{} {unit}",
        short(e.lower / scale),
        short(e.upper / scale)
    )
}

fn percent(change: f64) -> String {
    let sign = if change >= 0.0 { "+" } else { "−" };
    format!("{sign}{}%", short(change.abs() * 100.0))
}

/// Throughput at the median time per iteration.
fn throughput(t: Throughput, median_ns: f64) -> String {
    let per_second = |n: u64| n as f64 * 1e9 / median_ns;
    let decimal = |x: f64, unit: &str| {
        if x < 1e3 {
            format!("{} {unit}/s", short(x))
        } else if x < 1e6 {
            format!("{} K{unit}/s", short(x / 1e3))
        } else if x < 1e9 {
            format!("{} M{unit}/s", short(x / 1e6))
        } else {
            format!("{} G{unit}/s", short(x / 1e9))
        }
    };
    match t {
        Throughput::Elements(n) => decimal(per_second(n), "elem"),
        Throughput::BytesDecimal(n) => decimal(per_second(n), "B"),
        Throughput::Bits(n) => decimal(per_second(n), "bit"),
        Throughput::Bytes(n) => {
            let x = per_second(n);
            if x < 1024.0 {
                format!("{} B/s", short(x))
            } else if x < 1024.0 * 1024.0 {
                format!("{} KiB/s", short(x / 1024.0))
            } else if x < 1024.0 * 1024.0 * 1024.0 {
                format!("{} MiB/s", short(x / (1024.0 * 1024.0)))
            } else {
                format!("{} GiB/s", short(x / (1024.0 * 1024.0 * 1024.0)))
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

/// The cells of the table, header first.
fn cells(table: &Table) -> (Vec<(String, Align)>, Vec<Vec<String>>) {
    let level = table.rows.first().map_or(0.95, |r| r.new.median.level);
    let mut header = vec![
        ("benchmark".to_owned(), Align::Left),
        ("median".to_owned(), Align::Right),
        (
            format!(
                "{}% CI",
                short(level * 100.0)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
            ),
            Align::Right,
        ),
        ("mean".to_owned(), Align::Right),
    ];
    let with_throughput = table.rows.iter().any(|r| r.throughput.is_some());
    if with_throughput {
        header.push(("throughput".to_owned(), Align::Right));
    }
    if let Some(name) = &table.baseline {
        header.push((format!("{name} median"), Align::Right));
        header.push(("change".to_owned(), Align::Right));
        header.push(("verdict".to_owned(), Align::Left));
    }
    let rows = table
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.id.clone(),
                time(r.new.median.point),
                interval(&r.new.median),
                time(r.new.mean.point),
            ];
            if with_throughput {
                row.push(
                    r.throughput
                        .map_or_else(|| "—".to_owned(), |t| throughput(t, r.new.median.point)),
                );
            }
            if table.baseline.is_some() {
                match r.baseline {
                    BaselineCell::Missing => {
                        row.extend(["(none)".to_owned(), "—".to_owned(), "—".to_owned()])
                    }
                    BaselineCell::SameRun => {
                        row.extend(["(this run)".to_owned(), "—".to_owned(), "—".to_owned()])
                    }
                    BaselineCell::Compared(c) => {
                        let mark = match c.source {
                            Source::Criterion => "",
                            Source::CriterionPrevious => " †",
                            Source::Intervals => " *",
                        };
                        row.push(time(c.base_median));
                        row.push(percent(c.change));
                        row.push(format!("{}{mark}", c.verdict.as_str()));
                    }
                }
            }
            row
        })
        .collect();
    (header, rows)
}

fn notes(table: &Table) -> Vec<String> {
    let sources: Vec<Source> = table
        .rows
        .iter()
        .filter_map(|r| match r.baseline {
            BaselineCell::Compared(c) => Some(c.source),
            _ => None,
        })
        .collect();
    let mut notes = Vec::new();
    if sources.contains(&Source::Criterion) || sources.contains(&Source::CriterionPrevious) {
        notes.push(format!(
            "verdict: criterion's change estimate of the median, a change only when its whole interval is beyond ±{}%",
            NOISE * 100.0
        ));
    }
    if sources.contains(&Source::CriterionPrevious) {
        notes.push(
            "† this run overwrote the baseline; the baseline median is its previous value, recovered from criterion's change estimate"
                .to_owned(),
        );
    }
    if table.baseline.is_some()
        && table
            .rows
            .iter()
            .any(|r| r.baseline == BaselineCell::SameRun)
    {
        notes.push("(this run): the run saved itself as the baseline and had no earlier one to compare with".to_owned());
    }
    if sources.contains(&Source::Intervals) {
        notes.push(
            "* no change estimate of criterion for this comparison (run the bench with --baseline NAME for one): verdict from the medians' confidence intervals"
                .to_owned(),
        );
    }
    notes
}

fn render_text(table: &Table) -> String {
    let (header, rows) = cells(table);
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].0.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            match header[i].1 {
                Align::Left => {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "criterion results in {}",
        table.criterion_dir.display()
    );
    let titles: Vec<String> = header.iter().map(|h| h.0.clone()).collect();
    let _ = writeln!(out, "{}", line(&titles));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", line(&rule));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    for note in notes(table) {
        let _ = writeln!(out, "{note}");
    }
    out
}

fn render_markdown(table: &Table) -> String {
    let (header, rows) = cells(table);
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    let titles: Vec<String> = header.iter().map(|h| escape(&h.0)).collect();
    let _ = writeln!(out, "| {} |", titles.join(" | "));
    let rule: Vec<&str> = header
        .iter()
        .map(|h| if h.1 == Align::Left { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("`{}`", c.replace('`', "'"))
                } else {
                    escape(c)
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let notes = notes(table);
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "{}", escape(&note));
        }
    }
    out
}

fn main() -> ExitCode {
    let env = Env {
        criterion_home: std::env::var_os("CRITERION_HOME"),
        cargo_target_dir: std::env::var_os("CARGO_TARGET_DIR"),
    };
    let options = match parse_args(std::env::args().skip(1), &env) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Table(options)) => options,
        Err(e) => {
            eprintln!("bench-table: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    match build(&options) {
        Ok(table) => {
            let out = if options.markdown {
                render_markdown(&table)
            } else {
                render_text(&table)
            };
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-table: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A scratch criterion directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "bench-table-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }

        fn options(&self, baseline: Option<&str>, filter: Option<&str>) -> Options {
            Options {
                baseline: baseline.map(str::to_owned),
                criterion_dir: self.0.clone(),
                filter: filter.map(str::to_owned),
                markdown: false,
            }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn estimate(point: f64, lower: f64, upper: f64) -> String {
        format!(
            r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{lower},"upper_bound":{upper}}},"point_estimate":{point},"standard_error":1.0}}"#
        )
    }

    /// An `estimates.json` as criterion 0.8 writes it (nanoseconds).
    fn estimates(median: (f64, f64, f64), mean: f64) -> String {
        format!(
            r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":null,"std_dev":{}}}"#,
            estimate(mean, mean * 0.9, mean * 1.1),
            estimate(median.0, median.1, median.2),
            estimate(1.0, 0.5, 1.5),
            estimate(2.0, 1.0, 3.0)
        )
    }

    /// A `change/estimates.json`: relative changes of mean and median.
    fn change(median: (f64, f64, f64)) -> String {
        format!(
            r#"{{"mean":{},"median":{}}}"#,
            estimate(median.0, median.1, median.2),
            estimate(median.0, median.1, median.2)
        )
    }

    fn benchmark(group: &str, function: &str, throughput: &str) -> String {
        format!(
            r#"{{"group_id":"{group}","function_id":"{function}","value_str":null,"throughput":{throughput},"full_id":"{group}/{function}","directory_name":"{group}/{function}","title":"{group}/{function}"}}"#
        )
    }

    /// One bench result in `dir` (relative to the scratch root).
    fn add_bench(s: &Scratch, dir: &str, median: (f64, f64, f64), throughput: &str) -> PathBuf {
        let (group, function) = dir.split_once('/').unwrap();
        s.write(
            &format!("{dir}/new/benchmark.json"),
            &benchmark(group, function, throughput),
        );
        s.write(
            &format!("{dir}/new/estimates.json"),
            &estimates(median, median.0 * 1.05),
        )
    }

    fn set_age(path: &Path, age: Duration) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    fn compared(row: &Row) -> Comparison {
        match row.baseline {
            BaselineCell::Compared(c) => c,
            other => panic!("expected a comparison, got {other:?}"),
        }
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_parse_with_defaults_from_the_environment() {
        let env = Env {
            criterion_home: None,
            cargo_target_dir: Some("/t".into()),
        };
        let Command::Table(o) = parse_args(args(&[]), &env).unwrap() else {
            panic!()
        };
        assert_eq!(o.criterion_dir, PathBuf::from("/t/criterion"));
        assert_eq!((o.baseline, o.filter, o.markdown), (None, None, false));

        let Command::Table(o) = parse_args(args(&[]), &Env::default()).unwrap() else {
            panic!()
        };
        assert_eq!(o.criterion_dir, PathBuf::from("target/criterion"));

        let home = Env {
            criterion_home: Some("/home/c".into()),
            cargo_target_dir: Some("/t".into()),
        };
        let Command::Table(o) = parse_args(args(&[]), &home).unwrap() else {
            panic!()
        };
        assert_eq!(o.criterion_dir, PathBuf::from("/home/c"));

        let Command::Table(o) = parse_args(
            args(&[
                "--baseline",
                "main",
                "--target-dir=/x",
                "--filter",
                "slew",
                "--markdown",
            ]),
            &home,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.baseline.as_deref(), Some("main"));
        assert_eq!(o.criterion_dir, PathBuf::from("/x/criterion"));
        assert_eq!(o.filter.as_deref(), Some("slew"));
        assert!(o.markdown);

        assert_eq!(parse_args(args(&["-h"]), &env), Ok(Command::Help));
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        let env = Env::default();
        assert!(
            parse_args(args(&["--baseline"]), &env)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_args(args(&["--baseline="]), &env)
                .unwrap_err()
                .contains("non-empty")
        );
        assert!(
            parse_args(args(&["--baseline", "new"]), &env)
                .unwrap_err()
                .contains("not a baseline name")
        );
        assert!(
            parse_args(args(&["--baseline", "../x"]), &env)
                .unwrap_err()
                .contains("not a baseline name")
        );
        assert!(
            parse_args(args(&["--markdown=yes"]), &env)
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(
            parse_args(args(&["slew_path"]), &env)
                .unwrap_err()
                .contains("unknown argument")
        );
    }

    #[test]
    fn estimates_and_benchmark_files_parse() {
        let e = parse_estimates(&estimates((2.0e6, 1.9e6, 2.2e6), 2.5e6)).unwrap();
        assert_eq!(
            e.median,
            Estimate {
                point: 2.0e6,
                lower: 1.9e6,
                upper: 2.2e6,
                level: 0.95
            }
        );
        assert_eq!(e.mean.point, 2.5e6);

        let (id, t) = parse_benchmark(&benchmark("g", "f", r#"{"Elements":10000}"#)).unwrap();
        assert_eq!((id.as_str(), t), ("g/f", Some(Throughput::Elements(10000))));
        let (_, t) = parse_benchmark(&benchmark("g", "f", "null")).unwrap();
        assert_eq!(t, None);
        let (_, t) = parse_benchmark(&benchmark(
            "g",
            "f",
            r#"{"ElementsAndBytes":{"elements":3,"bytes":9}}"#,
        ))
        .unwrap();
        assert_eq!(t, Some(Throughput::Elements(3)));
        let (_, t) = parse_benchmark(&benchmark("g", "f", r#"{"Bytes":1024}"#)).unwrap();
        assert_eq!(t, Some(Throughput::Bytes(1024)));
    }

    #[test]
    fn malformed_files_are_errors_that_name_the_problem() {
        assert!(format!("{:#}", parse_estimates("{").unwrap_err()).contains("not JSON"));
        assert!(
            format!("{:#}", parse_estimates(r#"{"mean":{}}"#).unwrap_err())
                .contains("point_estimate")
        );
        assert!(
            format!("{:#}", parse_estimates(r#"{"median":{}}"#).unwrap_err()).contains("no mean")
        );
        assert!(
            format!("{:#}", parse_benchmark(r#"{"group_id":"g"}"#).unwrap_err())
                .contains("full_id")
        );

        let s = Scratch::new();
        s.write("g/f/new/estimates.json", r#"{"mean":1}"#);
        let err = format!("{:#}", build(&s.options(None, None)).unwrap_err());
        assert!(err.contains("g/f/new/estimates.json"), "{err}");
    }

    #[test]
    fn numbers_are_formatted_like_criterion() {
        assert_eq!(time(154.0), "154.00 ns");
        assert_eq!(time(2_090_000.0), "2.0900 ms");
        assert_eq!(time(44_200_000.0), "44.200 ms");
        assert_eq!(time(1_009_000_000.0), "1.0090 s");
        assert_eq!(time(9_500.0), "9.5000 µs");
        assert_eq!(
            interval(&Estimate {
                point: 2.09e6,
                lower: 2.01e6,
                upper: 2.15e6,
                level: 0.95
            }),
            "2.0100–2.1500 ms"
        );
        assert_eq!(percent(0.0321), "+3.2100%");
        assert_eq!(percent(-0.124), "−12.400%");
        assert_eq!(
            throughput(Throughput::Elements(10_000), 1.009e9),
            "9.9108 Kelem/s"
        );
        assert_eq!(
            throughput(Throughput::Elements(1), 250_000.0),
            "4.0000 Kelem/s"
        );
        assert_eq!(throughput(Throughput::Bytes(2048), 1e9), "2.0000 KiB/s");
    }

    #[test]
    fn no_results_is_an_error_that_says_so() {
        let s = Scratch::new();
        let missing = Options {
            criterion_dir: s.0.join("nothing-here"),
            ..s.options(None, None)
        };
        let err = format!("{:#}", build(&missing).unwrap_err());
        assert!(
            err.contains("no criterion results") && err.contains("does not exist"),
            "{err}"
        );

        // Criterion's report/ directory alone is no result.
        s.write("report/index.html", "<html></html>");
        let err = format!("{:#}", build(&s.options(None, None)).unwrap_err());
        assert!(err.contains("no criterion results under"), "{err}");

        add_bench(
            &s,
            "slew_path/mqtt_slew_accepted",
            (2.0e6, 1.9e6, 2.1e6),
            "null",
        );
        let err = format!("{:#}", build(&s.options(None, Some("health"))).unwrap_err());
        assert!(
            err.contains("no benchmark id contains \"health\"")
                && err.contains("slew_path/mqtt_slew_accepted"),
            "{err}"
        );
    }

    #[test]
    fn results_without_a_baseline_have_no_baseline_columns() {
        let s = Scratch::new();
        add_bench(
            &s,
            "slew_path/mqtt_slew_accepted",
            (2.09e6, 2.01e6, 2.15e6),
            "null",
        );
        add_bench(
            &s,
            "message_health_ingest/10k_health_messages",
            (1.009e9, 1.0e9, 1.02e9),
            r#"{"Elements":10000}"#,
        );
        let table = build(&s.options(None, None)).unwrap();
        assert_eq!(table.baseline, None);
        let ids: Vec<&str> = table.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "message_health_ingest/10k_health_messages",
                "slew_path/mqtt_slew_accepted"
            ]
        );

        let text = render_text(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("criterion results in "));
        assert_eq!(
            lines[1],
            "benchmark                                     median            95% CI       mean      throughput"
        );
        assert_eq!(
            lines[3],
            "message_health_ingest/10k_health_messages   1.0090 s   1.0000–1.0200 s   1.0595 s  9.9108 Kelem/s"
        );
        assert_eq!(
            lines[4],
            "slew_path/mqtt_slew_accepted               2.0900 ms  2.0100–2.1500 ms  2.1945 ms               —"
        );
        assert_eq!(lines.len(), 5);

        let filtered = build(&s.options(None, Some("SLEW"))).unwrap();
        assert_eq!(filtered.rows.len(), 1);
    }

    #[test]
    fn a_named_baseline_is_compared_with_criterions_change_estimate() {
        let s = Scratch::new();
        let dir = "slew_path/mqtt_slew_accepted";
        add_bench(&s, dir, (2.2e6, 2.15e6, 2.25e6), "null");
        s.write(
            &format!("{dir}/main/estimates.json"),
            &estimates((2.0e6, 1.95e6, 2.05e6), 2.1e6),
        );
        // As criterion writes it: new median / base median - 1, interval beyond the noise.
        let ratio = 2.2e6 / 2.0e6 - 1.0;
        s.write(
            &format!("{dir}/change/estimates.json"),
            &change((ratio, 0.07, 0.13)),
        );

        let table = build(&s.options(Some("main"), None)).unwrap();
        assert_eq!(table.baseline.as_deref(), Some("main"));
        let c = compared(&table.rows[0]);
        assert_eq!((c.verdict, c.source), (Verdict::Slower, Source::Criterion));
        assert_eq!(c.base_median, 2.0e6);
        assert!((c.change - 0.1).abs() < 1e-12);

        let text = render_text(&table);
        assert!(text.contains("main median"), "{text}");
        assert!(text.contains("2.0000 ms  +10.000%  slower"), "{text}");
        assert!(text.contains("criterion's change estimate"), "{text}");

        let md = render_markdown(&table);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| benchmark | median | 95% CI | mean | main median | change | verdict |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---:|---:|---|");
        assert_eq!(
            lines[2],
            "| `slew_path/mqtt_slew_accepted` | 2.2000 ms | 2.1500–2.2500 ms | 2.3100 ms | 2.0000 ms | +10.000% | slower |"
        );
    }

    #[test]
    fn a_change_within_the_noise_threshold_is_no_change() {
        let s = Scratch::new();
        let dir = "g/f";
        add_bench(&s, dir, (1.0e6, 0.9e6, 1.1e6), "null");
        s.write(
            &format!("{dir}/main/estimates.json"),
            &estimates((0.99e6, 0.9e6, 1.1e6), 1.0e6),
        );
        let ratio = 1.0e6 / 0.99e6 - 1.0;
        s.write(
            &format!("{dir}/change/estimates.json"),
            &change((ratio, -0.02, 0.03)),
        );
        let c = compared(&build(&s.options(Some("main"), None)).unwrap().rows[0]);
        assert_eq!(
            (c.verdict, c.source),
            (Verdict::NoChange, Source::Criterion)
        );

        s.write(
            &format!("{dir}/change/estimates.json"),
            &change((ratio, -0.2, -0.05)),
        );
        let c = compared(&build(&s.options(Some("main"), None)).unwrap().rows[0]);
        assert_eq!(c.verdict, Verdict::Faster);
    }

    #[test]
    fn a_change_estimate_of_another_comparison_is_not_used() {
        let s = Scratch::new();
        let dir = "g/f";
        add_bench(&s, dir, (1.0e6, 0.98e6, 1.02e6), "null");
        s.write(
            &format!("{dir}/main/estimates.json"),
            &estimates((2.0e6, 1.9e6, 2.1e6), 2.0e6),
        );
        // A change estimate against `base`, not `main`: its point does not match the medians.
        s.write(
            &format!("{dir}/change/estimates.json"),
            &change((0.3, 0.2, 0.4)),
        );
        let table = build(&s.options(Some("main"), None)).unwrap();
        let c = compared(&table.rows[0]);
        assert_eq!((c.verdict, c.source), (Verdict::Faster, Source::Intervals));
        assert!((c.change + 0.5).abs() < 1e-12);
        let text = render_text(&table);
        assert!(text.contains("−50.000%  faster *"), "{text}");
        assert!(text.contains("* no change estimate"), "{text}");

        // Overlapping intervals without a change estimate: no change.
        fs::remove_dir_all(s.0.join(dir).join("change")).unwrap();
        s.write(
            &format!("{dir}/main/estimates.json"),
            &estimates((1.01e6, 0.99e6, 1.03e6), 1.0e6),
        );
        let c = compared(&build(&s.options(Some("main"), None)).unwrap().rows[0]);
        assert_eq!(
            (c.verdict, c.source),
            (Verdict::NoChange, Source::Intervals)
        );
    }

    #[test]
    fn a_change_estimate_older_than_the_run_is_stale() {
        let s = Scratch::new();
        let dir = "g/f";
        let new_file = add_bench(&s, dir, (1.0e6, 0.98e6, 1.02e6), "null");
        s.write(
            &format!("{dir}/main/estimates.json"),
            &estimates((2.0e6, 1.9e6, 2.1e6), 2.0e6),
        );
        let change_file = s.write(
            &format!("{dir}/change/estimates.json"),
            &change((-0.5, -0.01, 0.01)),
        );
        let c = compared(&build(&s.options(Some("main"), None)).unwrap().rows[0]);
        assert_eq!(c.source, Source::Criterion);

        set_age(&change_file, Duration::from_secs(3600));
        set_age(&new_file, Duration::from_secs(60));
        let c = compared(&build(&s.options(Some("main"), None)).unwrap().rows[0]);
        assert_eq!(c.source, Source::Intervals);
    }

    #[test]
    fn a_baseline_overwritten_by_the_run_shows_the_previous_median() {
        let s = Scratch::new();
        let dir = "alpaca_server/get_rightascension_4_keepalive_connections";
        let new_file = add_bench(
            &s,
            dir,
            (250_000.0, 240_000.0, 260_000.0),
            r#"{"Elements":1}"#,
        );
        // A plain run copies new/ into base/ after comparing with the old base.
        s.write(
            &format!("{dir}/base/estimates.json"),
            &fs::read_to_string(new_file).unwrap(),
        );

        // First run: nothing was compared, base is this run; the automatic base shows nothing.
        let table = build(&s.options(None, None)).unwrap();
        assert_eq!(table.baseline, None);
        assert_eq!(table.rows[0].baseline, BaselineCell::SameRun);
        // Named explicitly, the baseline is shown as this run.
        let table = build(&s.options(Some("base"), None)).unwrap();
        let out = render_text(&table);
        assert!(
            out.contains("(this run)") && out.contains("no earlier one to compare with"),
            "{out}"
        );

        s.write(
            &format!("{dir}/change/estimates.json"),
            &change((0.25, 0.2, 0.3)),
        );
        let table = build(&s.options(None, None)).unwrap();
        assert_eq!(table.baseline.as_deref(), Some("base"));
        let c = compared(&table.rows[0]);
        assert_eq!(
            (c.verdict, c.source),
            (Verdict::Slower, Source::CriterionPrevious)
        );
        assert!((c.base_median - 200_000.0).abs() < 1e-6);
        let out = render_text(&table);
        assert!(out.contains("base median"), "{out}");
        assert!(out.contains("200.00 µs  +25.000%  slower †"), "{out}");
        assert!(out.contains("4.0000 Kelem/s"), "{out}");
    }

    #[test]
    fn a_named_baseline_that_no_bench_has_is_an_error_listing_those_present() {
        let s = Scratch::new();
        add_bench(&s, "g/f", (1.0e6, 0.9e6, 1.1e6), "null");
        s.write(
            "g/f/main/estimates.json",
            &estimates((1.0e6, 0.9e6, 1.1e6), 1.0e6),
        );
        let err = format!(
            "{:#}",
            build(&s.options(Some("nightly"), None)).unwrap_err()
        );
        assert!(
            err.contains("\"nightly\"") && err.contains("baselines present: main"),
            "{err}"
        );

        // Present for one bench only: the other row says so.
        add_bench(&s, "g/h", (1.0e6, 0.9e6, 1.1e6), "null");
        let table = build(&s.options(Some("main"), None)).unwrap();
        assert_eq!(table.rows[1].baseline, BaselineCell::Missing);
        assert!(render_text(&table).contains("(none)"));
    }

    #[test]
    fn ids_sort_with_numbers_in_numeric_order() {
        let mut ids = vec![
            "health_path_ascom/cycle_1000_devices",
            "health_path_ascom/cycle_100_devices",
            "health_path_ascom/cycle_10_devices",
            "ascom_health/cycle_100_devices",
            "health_path_ingest/10_coordinators",
            "g/f2",
            "g/f",
            "g/f02",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            [
                "ascom_health/cycle_100_devices",
                "g/f",
                "g/f02",
                "g/f2",
                "health_path_ascom/cycle_10_devices",
                "health_path_ascom/cycle_100_devices",
                "health_path_ascom/cycle_1000_devices",
                "health_path_ingest/10_coordinators",
            ]
        );
    }

    #[test]
    fn parameterised_benches_are_found_at_any_depth() {
        let s = Scratch::new();
        s.write(
            "health_path_ascom/cycle_devices/100/new/benchmark.json",
            r#"{"group_id":"health_path_ascom","function_id":"cycle_devices","value_str":"100","throughput":{"Elements":100},"full_id":"health_path_ascom/cycle_devices/100"}"#,
        );
        s.write(
            "health_path_ascom/cycle_devices/100/new/estimates.json",
            &estimates((4.87e6, 4.5e6, 5.0e6), 5.0e6),
        );
        // Without benchmark.json (an interrupted run) the path names the bench.
        s.write(
            "other/x/new/estimates.json",
            &estimates((1.0, 0.9, 1.1), 1.0),
        );
        let table = build(&s.options(None, None)).unwrap();
        let ids: Vec<&str> = table.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["health_path_ascom/cycle_devices/100", "other/x"]);
    }
}
