//! The run's findings: every figure next to its bar from `docs/PERFORMANCE.md` and its ratio to the
//! ceiling measured in the same run, written as `target/bench/report.json` and printed as a
//! table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::load::round3;

/// How a figure is judged against its bar.
#[derive(Clone, Copy, Debug)]
pub enum Bar {
    /// Latency: at most this many milliseconds.
    AtMostMs(f64),
    /// Throughput: at least this many per second.
    AtLeast(f64),
    /// Memory: at most this many MiB.
    AtMostMib(f64),
    /// A ratio: at most this (growth).
    AtMostRatio(f64),
    /// No bar; reported for context.
    None,
}

impl Bar {
    fn text(self) -> String {
        match self {
            Self::AtMostMs(ms) => format!("<= {ms} ms"),
            Self::AtLeast(n) => format!(">= {}/s", thousands(n)),
            Self::AtMostMib(m) => format!("<= {m} MiB"),
            Self::AtMostRatio(r) => format!("<= {r}x"),
            Self::None => "-".to_owned(),
        }
    }

    fn met(self, value: f64) -> Option<bool> {
        match self {
            Self::AtMostMs(bar) | Self::AtMostMib(bar) | Self::AtMostRatio(bar) => {
                Some(value <= bar)
            }
            Self::AtLeast(bar) => Some(value >= bar),
            Self::None => None,
        }
    }
}

/// What a figure is compared with to give its ratio to the machine's limit.
#[derive(Clone, Debug)]
pub enum Ceiling {
    /// Throughput: value / the smallest of these named ceilings (e.g. `http_peak`,
    /// `db_list_qps`).
    Throughput(Vec<&'static str>),
    /// Latency: the named floor latency / value (the floor is the trivial handler's p99 at the
    /// same rate), so 1.0 means "as fast as an empty handler".
    Latency(String),
    /// A ratio computed by the scenario itself (e.g. events delivered / offered).
    Given(f64),
    /// None.
    None,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What was measured.
    pub figure: String,
    /// The value.
    pub value: f64,
    /// Unit: `ms`, `/s`, `MiB`, `x`.
    pub unit: &'static str,
    /// Its bar.
    pub bar: Bar,
    /// Its ceiling.
    pub ceiling: Ceiling,
}

/// Everything a run found.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    /// Per-scenario details for the JSON report.
    pub details: Map<String, Value>,
    /// Ceilings measured by `limits` (and fsync, measured first), by name.
    pub ceilings: BTreeMap<String, f64>,
    /// What each ceiling is, for the table.
    pub ceiling_notes: BTreeMap<String, String>,
    /// Scenarios skipped, with why.
    pub skipped: BTreeMap<String, String>,
    /// Correctness violations: any makes the command fail.
    pub violations: Vec<String>,
}

impl Report {
    /// Adds a row.
    pub fn row(
        &mut self,
        scenario: &str,
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
        bar: Bar,
        ceiling: Ceiling,
    ) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            figure: figure.into(),
            value,
            unit,
            bar,
            ceiling,
        });
    }

    /// Records a ceiling.
    pub fn ceiling(&mut self, name: &str, value: f64, note: impl Into<String>) {
        self.ceilings.insert(name.to_owned(), value);
        self.ceiling_notes.insert(name.to_owned(), note.into());
    }

    /// Records scenario details under `scenario.key`.
    pub fn detail(&mut self, scenario: &str, key: &str, value: Value) {
        let entry = self
            .details
            .entry(scenario.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(key.to_owned(), value);
        }
    }

    /// Marks a scenario skipped.
    pub fn skip(&mut self, scenario: &str, why: impl Into<String>) {
        self.skipped.insert(scenario.to_owned(), why.into());
    }

    /// Records a correctness violation.
    pub fn violation(&mut self, what: impl Into<String>) {
        self.violations.push(what.into());
    }

    fn ratio(&self, row: &Row) -> (Option<f64>, String) {
        match &row.ceiling {
            Ceiling::Throughput(names) => {
                let known: Vec<(&str, f64)> = names
                    .iter()
                    .filter_map(|n| self.ceilings.get(*n).map(|v| (*n, *v)))
                    .collect();
                match known.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1)) {
                    Some((name, limit)) if limit > 0.0 => (
                        Some(row.value / limit),
                        format!("{} {}/s", name, thousands(limit)),
                    ),
                    _ => (None, "not measured".to_owned()),
                }
            }
            Ceiling::Latency(name) => match self.ceilings.get(name) {
                Some(floor) if row.value > 0.0 => (
                    Some((floor / row.value).min(1.0)),
                    format!("{name} {floor:.2} ms"),
                ),
                _ => (None, "not measured".to_owned()),
            },
            Ceiling::Given(r) => (Some(*r), "offered".to_owned()),
            Ceiling::None => (None, "-".to_owned()),
        }
    }

    /// The whole report as JSON, with machine and dataset sections added by the caller.
    pub fn json(&self, header: Map<String, Value>) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let (ratio, against) = self.ratio(row);
                json!({
                    "scenario": row.scenario,
                    "figure": row.figure,
                    "value": round3(row.value),
                    "unit": row.unit,
                    "bar": row.bar.text(),
                    "meets_bar": row.bar.met(row.value),
                    "ratio_to_ceiling": ratio.map(round3),
                    "ceiling": against,
                })
            })
            .collect();
        let mut out = header;
        out.insert("figures".to_owned(), Value::Array(rows));
        out.insert("ceilings".to_owned(), json!(self.ceilings));
        out.insert("ceiling_notes".to_owned(), json!(self.ceiling_notes));
        out.insert("scenarios".to_owned(), Value::Object(self.details.clone()));
        out.insert("skipped".to_owned(), json!(self.skipped));
        out.insert("violations".to_owned(), json!(self.violations));
        Value::Object(out)
    }

    /// The readable table.
    pub fn table(&self) -> String {
        let mut lines = vec![[
            "scenario".to_owned(),
            "figure".to_owned(),
            "measured".to_owned(),
            "bar".to_owned(),
            "ok".to_owned(),
            "ratio".to_owned(),
            "of ceiling".to_owned(),
        ]];
        for row in &self.rows {
            let (ratio, against) = self.ratio(row);
            let measured = match row.unit {
                "/s" => format!("{}/s", thousands(row.value)),
                "ms" => format!("{:.2} ms", row.value),
                "MiB" => format!("{:.1} MiB", row.value),
                "x" => format!("{:.2}x", row.value),
                unit => format!("{:.2} {unit}", row.value),
            };
            let ok = match row.bar.met(row.value) {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            lines.push([
                row.scenario.clone(),
                row.figure.clone(),
                measured,
                row.bar.text(),
                ok.to_owned(),
                ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
                against,
            ]);
        }
        let widths: Vec<usize> = (0..7)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
            }
        }
        for (scenario, why) in &self.skipped {
            let _ = writeln!(out, "skipped {scenario}: {why}");
        }
        for (name, note) in &self.ceiling_notes {
            if let Some(value) = self.ceilings.get(name) {
                let _ = writeln!(out, "ceiling {name} = {}: {note}", thousands(*value));
            }
        }
        out
    }
}

/// `12,345` for large numbers, two decimals for small ones.
pub fn thousands(x: f64) -> String {
    if x.abs() < 100.0 {
        return format!("{x:.2}");
    }
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
