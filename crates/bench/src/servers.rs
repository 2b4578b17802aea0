//! The database a run uses and the processes it starts: the product's binaries on port 0, and
//! the trivial HTTP server that measures the HTTP ceiling.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A fixed key for the run's stored secrets (base64 of 32 bytes); the database is thrown away.
pub const SECRET_KEY: &str = "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtISE=";

/// The fresh database of one run.
#[derive(Clone)]
pub enum Database {
    /// A SQLite file in the run's folder.
    Sqlite {
        /// `sqlite://...`.
        url: String,
    },
    /// A database created on a PostgreSQL server for this run, dropped at the end.
    Postgres {
        /// The URL the caller gave (its database is used to create and drop ours).
        admin_url: String,
        /// `inbox_bench_<ts>`.
        name: String,
        /// The URL of the new database.
        url: String,
    },
}

impl Database {
    /// Creates the run's database: `sqlite` (a file under `run_dir`) or a `postgres://` server
    /// URL, on which a database `inbox_bench_<unix seconds>` is created.
    pub async fn create(choice: &str, run_dir: &Path) -> anyhow::Result<Self> {
        if choice == "sqlite" {
            let path = run_dir.join("inbox.db");
            return Ok(Self::Sqlite {
                url: format!("sqlite://{}", path.display()),
            });
        }
        if !(choice.starts_with("postgres://") || choice.starts_with("postgresql://")) {
            bail!("--db must be `sqlite` or a postgres:// URL, not {choice:?}");
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("inbox_bench_{stamp}");
        let mut admin = sqlx::PgConnection::connect(choice)
            .await
            .with_context(|| format!("connecting to {choice}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await.ok();
        Ok(Self::Postgres {
            url: with_database(choice, &name),
            admin_url: choice.to_owned(),
            name,
        })
    }

    /// `INBOX_DATABASE_URL` for the binaries.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// Drops a PostgreSQL database (a SQLite file stays in the run folder for inspection).
    pub async fn remove(&self) -> anyhow::Result<()> {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .with_context(|| format!("dropping database {name}"))?;
            admin.close().await.ok();
        }
        Ok(())
    }
}

/// `url` with its database name replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

/// A running child process that announced `listening on http://...`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Process id, for RSS readings.
    pub pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Lines of a child's log kept for error reports.
const LOG_LINES: usize = 200;

impl Server {
    /// Starts `binary` with `args` and `env` (plus `INBOX_LISTEN=127.0.0.1:0`), and waits for
    /// its `listening on` line.
    pub async fn start(
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command.args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INBOX_") {
                command.env_remove(key);
            }
        }
        command
            .env("INBOX_LISTEN", "127.0.0.1:0")
            // Info only for the line that says where it listens: per-request logging would
            // measure the logger.
            .env("INBOX_LOG", "warn,inbox_webhook::process=info");
        // The harness is one client with one token driving thousands of requests a second and
        // 10,000 streams, and keeps connections between scenarios: per-token and idle limits
        // meant for people would measure the limits instead of the product.
        command
            .env("INBOX_REQUESTS_PER_MINUTE", "1000000000")
            .env("INBOX_MAX_STREAMS_PER_TOKEN", "1000000")
            .env("INBOX_HTTP_HEADER_TIMEOUT_MS", "600000")
            .env("INBOX_HTTP_IDLE_TIMEOUT_MS", "600000");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().unwrap_or(0);
        let stderr = child.stderr.take().context("piped stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                push(&log, line.clone());
                if let Some(at) = line.find("listening on http://") {
                    let url = &line[at + "listening on ".len()..];
                    return url.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(base_url) = found else {
            bail!(
                "{} did not start:\n{}",
                binary.display(),
                recent(&log).join("\n")
            );
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                push(&sink, line);
            }
        });
        Ok(Self {
            child,
            base_url,
            pid,
            log,
        })
    }

    /// The last lines the process logged.
    pub fn recent_log(&self) -> Vec<String> {
        recent(&self.log)
    }

    /// Asks the process to stop (SIGTERM), and kills it if it has not within 5 s.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn push(log: &Mutex<VecDeque<String>>, line: String) {
    if let Ok(mut log) = log.lock() {
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

fn recent(log: &Mutex<VecDeque<String>>) -> Vec<String> {
    log.lock()
        .map(|l| l.iter().cloned().collect())
        .unwrap_or_default()
}

/// Serves `GET /` with a fixed small body on 127.0.0.1 and a free port: the HTTP ceiling.
/// Runs as `inbox-bench bench-echo` so that it is a separate process, like the product.
pub async fn echo_server() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "b"),
            "postgres://u@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
