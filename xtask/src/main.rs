//! Project automation, run as `cargo xtask <command>`:
//!
//! - `demo`: a working inbox with a fake Kapso and a day of deliveries, until Ctrl-C.
//! - `ci`: everything CI checks, in the order CI checks it: that no file points outside the
//!   repository, formatting, clippy with warnings
//!   denied, the domain's dependency boundary, and the whole test suite on SQLite and
//!   PostgreSQL.
//! - `fake-kapso [--listen 127.0.0.1:PORT]`: serves the local stand-in for Kapso's API (sends
//!   answered with generated wamids, handover workflow calls) until Ctrl-C, for the demo and for
//!   trying sends by hand with `INBOX_KAPSO_BASE_URL` pointed at it.
//! - `bench [flags]`: the performance harness of `docs/PERFORMANCE.md` (`cargo xtask bench
//!   --help`). It lives in its own crate, `crates/bench` (`inbox-bench`), so that nothing here
//!   compiles its dependencies: this builds the product's binaries in release mode, then runs
//!   the harness in release mode with the same flags, and exits as it does.
//! - `samples`: writes the signed sample deliveries in `crates/kapso/samples/` from
//!   `inbox_kapso::samples::generate` (run it after changing a sample there).

mod demo;
mod standalone;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

/// Crates the domain must never depend on (normal dependencies): it does no IO.
const FORBIDDEN_IN_DOMAIN: [&str; 5] = ["sqlx", "reqwest", "axum", "tokio", "hyper"];

/// Where the test suite looks for PostgreSQL when `INBOX_TEST_DATABASE_URL` is unset.
const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bench") {
        return bench(&args[1..]);
    }
    run(&args).map(|()| ExitCode::SUCCESS)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("demo") => demo::run(demo::DemoOptions::parse(&args[1..])?),
        Some("fake-kapso") => fake_kapso(&args[1..]),
        Some("samples") => write_samples(),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | bench [--help] | demo [--listen ADDR] | fake-kapso [--listen 127.0.0.1:PORT] | samples"
            );
            bail!("unknown or missing command: {args:?}");
        }
    }
}

/// Where `fake-kapso` listens unless told otherwise.
const FAKE_KAPSO_LISTEN: &str = "127.0.0.1:8090";

fn fake_kapso(args: &[String]) -> anyhow::Result<()> {
    let listen = match args {
        [] => FAKE_KAPSO_LISTEN.to_owned(),
        [flag, addr] if flag == "--listen" => addr.clone(),
        [flag] if flag.starts_with("--listen=") => flag["--listen=".len()..].to_owned(),
        other => bail!("usage: cargo xtask fake-kapso [--listen 127.0.0.1:PORT], got {other:?}"),
    };
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("`{listen}` is not an address such as 127.0.0.1:8090"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let ctrl_c = async {
            // Without a signal handler there is no clean way to stop; run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        inbox_kapso::fake::run_standalone(addr, ctrl_c)
            .await
            .with_context(|| format!("binding {addr}"))
    })?;
    println!("Fake Kapso stopped.");
    Ok(())
}

/// Writes every sample delivery, removing files of samples that no longer exist.
fn write_samples() -> anyhow::Result<()> {
    let dir = inbox_kapso::samples::dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let samples = inbox_kapso::samples::generate();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|ext| ext == "json")
            && !samples
                .iter()
                .any(|s| path.file_stem().is_some_and(|stem| stem == s.name.as_str()));
        if stale {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for sample in &samples {
        let path = dir.join(format!("{}.json", sample.name));
        std::fs::write(&path, sample.to_file())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "xtask: wrote {} samples to {}",
        samples.len(),
        dir.display()
    );
    Ok(())
}

/// The repository's root (this crate is `xtask/` in it). The manifest folder `cargo run` gives
/// the process comes first: the compiled-in one names the checkout the binary was built in,
/// which may be another one sharing the target directory (as `.ci/run`'s clone does).
pub(crate) fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo xtask bench [flags]`: builds the product in release mode, then runs the harness
/// (`crates/bench`) in release mode with `flags`, and exits with its status.
///
/// Two cargo invocations, not one: built together, cargo would unify features and put the fake
/// Kapso server (which the harness uses) into the product's binaries.
fn bench(flags: &[String]) -> anyhow::Result<ExitCode> {
    let root = workspace_root();
    let product = [
        "build",
        "--release",
        "-p",
        "inbox-api",
        "-p",
        "inbox-webhook",
    ];
    println!("xtask: bench: cargo {}", product.join(" "));
    let mut build = cargo(&product);
    release_env(&mut build, &root);
    let status = build.status().context("running cargo build")?;
    if !status.success() {
        bail!("release build failed ({status})");
    }
    let run = ["run", "--release", "-p", "inbox-bench", "--"];
    println!("xtask: bench: cargo {} {}", run.join(" "), flags.join(" "));
    let mut harness = cargo(&run);
    harness.args(flags);
    release_env(&mut harness, &root);
    let status = harness.status().context("running the bench")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// What the bench's release builds run with.
fn release_env(command: &mut Command, root: &Path) {
    command
        // `cargo xtask` sets this for xtask; ring's build script reruns when it changes, so
        // passing it on rebuilt the TLS stack whenever the release binaries had last been built
        // from a plain shell.
        .env_remove("CARGO_MANIFEST_DIR")
        .current_dir(root);
}

fn ci() -> anyhow::Result<()> {
    standalone::check(&workspace_root())?;
    step("format", cargo(&["fmt", "--all", "--", "--check"]))?;
    step(
        "clippy",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    for dep in FORBIDDEN_IN_DOMAIN {
        let found = Command::new("cargo")
            .args(["tree", "-p", "inbox-domain", "-e", "normal", "-i", dep])
            .output()
            .context("running cargo tree")?;
        if found.status.success() && !found.stdout.is_empty() {
            bail!(
                "inbox-domain depends on {dep}:\n{}",
                String::from_utf8_lossy(&found.stdout)
            );
        }
    }
    println!("xtask: dependency boundary holds: inbox-domain uses none of {FORBIDDEN_IN_DOMAIN:?}");

    // `cargo test` builds a package's binaries only for that package's own integration tests;
    // the black-box suite in `tests/` runs `inbox-api` and `inbox-webhook`, so build them first.
    step(
        "binaries",
        cargo(&["build", "--workspace", "--bins", "--all-features"]),
    )?;
    let mut test = cargo(&["test", "--workspace", "--all-features"]);
    configure_postgres(&mut test)?;
    step("tests", test)
}

/// Points the suite at PostgreSQL: `INBOX_TEST_DATABASE_URL` if set, else the local server if
/// one answers. Without either, a developer machine runs the SQLite half and the PostgreSQL
/// tests say loudly that they skipped; CI fails instead.
fn configure_postgres(test: &mut Command) -> anyhow::Result<()> {
    if std::env::var_os("INBOX_TEST_DATABASE_URL").is_some() {
        return Ok(());
    }
    let local: SocketAddr = "127.0.0.1:5432".parse()?;
    if TcpStream::connect_timeout(&local, Duration::from_secs(1)).is_ok() {
        println!("xtask: INBOX_TEST_DATABASE_URL unset; using {LOCAL_POSTGRES}");
        test.env("INBOX_TEST_DATABASE_URL", LOCAL_POSTGRES);
    } else if std::env::var_os("CI").is_some() {
        bail!(
            "PostgreSQL is required on CI: set INBOX_TEST_DATABASE_URL or start it on 127.0.0.1:5432"
        );
    } else {
        eprintln!(
            "\n!!! xtask: no PostgreSQL on 127.0.0.1:5432 and INBOX_TEST_DATABASE_URL unset:\n\
             !!! the PostgreSQL half of the suite will be SKIPPED.\n"
        );
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args);
    command
}

fn step(name: &str, mut command: Command) -> anyhow::Result<()> {
    println!("xtask: {name}: {command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
