//! `cargo xtask bench`: the performance harness `docs/PERFORMANCE.md` describes.
//!
//! One command builds release binaries, starts them on a fresh database (port 0), seeds the
//! dataset through the store's bulk module, runs the scenarios, checks the data afterwards, and
//! writes `target/bench/report.json` plus a table of every figure next to its bar and its ratio
//! to the ceiling measured in the same run. Correctness violations fail the command; slowness
//! never does.
//!
//! The load generator itself must not be the bottleneck, so `cargo xtask bench` (a debug
//! build) builds the release binaries, then re-runs itself as `target/release/xtask`.

//! `inbox-bench`: the performance harness `docs/PERFORMANCE.md` describes, run as
//! `cargo xtask bench [flags]`.
//!
//! One command builds release binaries, starts them on a fresh database (port 0), seeds the
//! dataset through the store's bulk module, runs the scenarios, checks the data afterwards, and
//! writes `target/bench/report.json` plus a table of every figure next to its bar and its ratio
//! to the ceiling measured in the same run. Correctness violations fail the command; slowness
//! never does.
//!
//! The load generator itself must not be the bottleneck, so `cargo xtask bench` builds the
//! product's binaries in release mode, then runs this crate in release mode
//! (`cargo run --release -p inbox-bench -- [flags]`). It is its own crate so that `cargo xtask`
//! itself compiles none of its dependencies.
//!
//! `inbox-bench bench-echo` is the trivial HTTP server of the HTTP ceiling: the bench starts its
//! own binary that way, so that the server runs in a process of its own, like the product.

mod dataset;
mod fanout;
mod http;
mod ingest;
mod kapso;
mod limits;
mod load;
mod machine;
mod options;
mod probe;
mod report;
mod servers;
mod targets;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use inbox_kapso::fake::FakeKapso;
use serde_json::{Map, Value, json};

use self::dataset::Dataset;
use self::load::Client;
use self::options::{Options, Scale};
use self::report::Report;
use self::servers::{Database, SECRET_KEY, Server};
use self::targets::Figure;

/// The first argument that makes this binary the HTTP ceiling's trivial server.
pub const ECHO_COMMAND: &str = "bench-echo";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ECHO_COMMAND) {
        return echo();
    }
    bench(&args)
}

/// The harness: `cargo xtask bench [flags]`.
fn bench(args: &[String]) -> anyhow::Result<()> {
    let options = Options::parse(args)?;
    let root = workspace_root();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(options, root))
}

/// `inbox-bench bench-echo`: the trivial HTTP server of the HTTP ceiling.
fn echo() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(servers::echo_server())
}

/// The repository's root: this crate lives in `crates/bench`. The manifest folder `cargo run`
/// gives the process comes first: the compiled-in one names the checkout the binary was built
/// in, which may be another one sharing the target directory (as `.ci/run`'s clone does).
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (CI shares one between checkouts), else
/// `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// What the scenarios share.
pub struct Ctx {
    /// Flags.
    pub opts: Options,
    /// The HTTP client.
    pub client: Client,
    /// `inbox-api` (API and webhook in one process).
    pub api: Server,
    /// The seeded data.
    pub data: Dataset,
    /// The run's database.
    pub db: Database,
    /// Findings.
    pub report: Report,
    /// The fake Kapso, answering in 5 ms.
    pub kapso: FakeKapso,
    /// `target/release`.
    pub bin_dir: PathBuf,
    /// `target/bench/run-<db>`.
    pub run_dir: PathBuf,
    /// A common time origin for latencies measured across tasks.
    pub epoch: Instant,
    /// Unix seconds at the start.
    pub start_secs: i64,
    /// Messages the scenarios stored in the busy workspace beyond the seeded ones, by source
    /// (`ingest`, `fanout`, `send`, `limits`), counted from their acknowledgements.
    pub added_messages: std::collections::BTreeMap<&'static str, u64>,
    /// Concurrency at which ingest peaked (the replayed transaction runs at the same).
    pub ingest_concurrency: usize,
    /// Acknowledged deliveries per second at the ingest peak, when measured.
    pub ingest_peak: Option<f64>,
    /// Concurrency at which the list peaked.
    pub list_concurrency: usize,
    /// Open-loop rates used, for the trivial handler's floor latency at each.
    pub rates: std::collections::BTreeSet<u64>,
    /// A short random tag for this run's wamids and keys.
    pub tag: String,
}

impl Ctx {
    /// The bar of `figure` on this run's backend, from [`targets::TARGETS`].
    pub fn bar(&self, figure: Figure) -> report::Bar {
        targets::Target::bar(figure, self.opts.postgres())
    }

    /// The open-loop rate `figure` is measured at on this run's backend, from
    /// [`targets::TARGETS`].
    pub fn rate(&self, figure: Figure) -> f64 {
        targets::Target::rate(figure, self.opts.postgres())
    }

    /// `base_url` + `path` of the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.base_url)
    }

    /// The environment both binaries get.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        server_env(&self.db, &self.kapso)
    }
}

fn server_env(db: &Database, kapso: &FakeKapso) -> Vec<(&'static str, String)> {
    vec![
        ("INBOX_DATABASE_URL", db.url().to_owned()),
        ("INBOX_SECRET_KEY", SECRET_KEY.to_owned()),
        ("INBOX_KAPSO_BASE_URL", kapso.base_url()),
    ]
}

async fn run(opts: Options, root: PathBuf) -> anyhow::Result<()> {
    let started = Instant::now();
    let out_dir = target_dir(&root).join("bench");
    let run_dir = out_dir.join(format!(
        "run-{}",
        if opts.postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    ));
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)?;
    println!(
        "xtask: bench: {} scale {}{}, scenarios {}",
        if opts.postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        opts.scale.name(),
        if opts.quick { " (quick)" } else { "" },
        opts.scenarios.join(",")
    );

    let machine = machine::describe();
    let fsync = machine::fsync_latency(
        &run_dir,
        Duration::from_millis(if opts.quick { 300 } else { 2_000 }),
    )?;
    println!(
        "xtask: bench: fsync of this disk: p50 {:.3} ms, p99 {:.3} ms",
        fsync.p50, fsync.p99
    );

    let db = Database::create(&opts.db, &run_dir).await?;
    let outcome = run_on(
        &opts, &root, &out_dir, &run_dir, &db, machine, fsync, started,
    )
    .await;
    if opts.keep {
        eprintln!("xtask: bench: kept the run's database: {}", db.url());
    } else if let Err(e) = db.remove().await {
        eprintln!("xtask: bench: could not drop the run's database: {e:#}");
    }
    outcome
}

#[allow(clippy::too_many_arguments)] // The run's fixed parts, passed once from `run`.
async fn run_on(
    opts: &Options,
    root: &Path,
    out_dir: &Path,
    run_dir: &Path,
    db: &Database,
    machine: Value,
    fsync: load::Latency,
    started: Instant,
) -> anyhow::Result<()> {
    let data = dataset::seed(db, opts.scale).await?;
    println!(
        "xtask: bench: seeded {} conversations and {} messages (+{} in 99 small workspaces) in {:.1} s",
        data.conversations.len(),
        data.busy_messages,
        data.small_messages,
        data.seconds
    );

    let kapso = FakeKapso::start().await;
    kapso.set_latency(Some(Duration::from_millis(5)));
    let bin_dir = target_dir(root).join("release");
    let api = Server::start(
        &bin_dir.join("inbox-api"),
        &["serve"],
        &server_env(db, &kapso),
    )
    .await?;
    println!("xtask: bench: inbox-api on {}", api.base_url);

    let mut ctx = Ctx {
        opts: opts.clone(),
        client: Client::new(),
        api,
        data,
        db: db.clone(),
        report: Report::default(),
        kapso,
        bin_dir,
        run_dir: run_dir.to_path_buf(),
        epoch: Instant::now(),
        start_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        added_messages: std::collections::BTreeMap::new(),
        ingest_concurrency: 16,
        ingest_peak: None,
        list_concurrency: 16,
        rates: std::collections::BTreeSet::new(),
        tag: format!("{:08x}", rand::random::<u32>()),
    };
    ctx.report.ceiling(
        "fsync_p50_ms",
        fsync.p50,
        "write 4 KiB + fdatasync on the run's disk, median (ms)",
    );

    let mut failure = None;
    for scenario in opts.scenarios.clone() {
        let t = Instant::now();
        println!("xtask: bench: {scenario} ...");
        let result = match scenario {
            "ingest" => ingest::run(&mut ctx).await,
            "list" => http::list(&mut ctx).await,
            "thread" => http::thread(&mut ctx).await,
            "actions" => http::actions(&mut ctx).await,
            "send" => http::send(&mut ctx).await,
            "fanout" => fanout::run(&mut ctx).await,
            "limits" => limits::run(&mut ctx).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            eprintln!("xtask: bench: {scenario} failed: {e:#}");
            for line in ctx.api.recent_log().iter().rev().take(20).rev() {
                eprintln!("  inbox-api: {line}");
            }
            failure.get_or_insert(format!("{scenario}: {e:#}"));
            break;
        }
        if let Some(why) = ctx.report.skipped.get(scenario) {
            println!("xtask: bench: {scenario} skipped: {why}");
        } else {
            println!(
                "xtask: bench: {scenario} done in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    if failure.is_none() {
        verify::dataset(&mut ctx).await?;
    }

    let api_rss = machine::rss_mib(ctx.api.pid);
    let Ctx {
        api, report, data, ..
    } = ctx;
    api.stop().await;

    let mut header = Map::new();
    header.insert(
        "command".into(),
        json!(std::env::args().collect::<Vec<_>>()),
    );
    header.insert("database".into(), json!(db.kind()));
    header.insert("quick".into(), json!(opts.quick));
    header.insert("machine".into(), machine);
    header.insert("fsync".into(), fsync.json());
    header.insert("dataset".into(), data.json(opts.scale));
    header.insert("inbox_api_rss_mib_at_end".into(), json!(api_rss));
    header.insert(
        "seconds".into(),
        json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
    );
    let mut report = report;
    growth(&mut report, out_dir, db.kind(), opts.scale);
    let json = report.json(header);
    std::fs::create_dir_all(out_dir)?;
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(out_dir.join("report.json"), &text)?;
    std::fs::write(
        out_dir.join(format!("report-{}-{}.json", db.kind(), opts.scale.name())),
        &text,
    )?;
    println!("\n{}", report.table());
    println!(
        "xtask: bench: report in {} ({:.0} s in all)",
        out_dir.join("report.json").display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(failure) = failure {
        bail!("a scenario could not run: {failure}");
    }
    if !report.violations.is_empty() {
        bail!(
            "correctness violated:\n- {}",
            report.violations.join("\n- ")
        );
    }
    Ok(())
}

/// The growth bar: the default list page's p99 now against the same backend's last `10k` run,
/// when this is a bigger run and that report exists. Both are read at the growth probe's fixed
/// rate (`http::GROWTH_RATE`), which every size sustains; reports from before the probe existed
/// are compared at the bar's rate.
fn growth(report: &mut Report, out_dir: &Path, kind: &str, scale: Scale) {
    if scale == Scale::K10 {
        return;
    }
    let p99 = |list: &Value, pointer: &str| list.pointer(pointer).and_then(Value::as_f64);
    let Some(list) = report.details.get("list").cloned() else {
        return;
    };
    let small = out_dir.join(format!("report-{kind}-10k.json"));
    let earlier = std::fs::read_to_string(&small)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.pointer("/scenarios/list").cloned());
    let pair = earlier.and_then(|before| {
        const PROBE: &str = "/default/growth_probe/latency/p99_ms";
        const BAR_RATE: &str = "/default/open/latency/p99_ms";
        match (p99(&list, PROBE), p99(&before, PROBE)) {
            (Some(now), Some(before)) => Some((now, before, "growth probe")),
            _ => Some((p99(&list, BAR_RATE)?, p99(&before, BAR_RATE)?, "bar rate")),
        }
    });
    let Some((now, before, rate)) = pair else {
        report.skip(
            "growth",
            format!("no earlier `--scale 10k` report at {}", small.display()),
        );
        return;
    };
    if before > 0.0 {
        report.row(
            "growth",
            format!("list p99 at {} / at 10k ({rate})", scale.name()),
            now / before,
            "x",
            targets::Target::bar(Figure::Growth, kind == "postgres"),
            report::Ceiling::None,
        );
    }
}
