//! Support for black-box tests: run the real `inbox-api` and `inbox-webhook` binaries on a fresh
//! database and a free port, drive the admin CLI, and talk HTTP to them.

pub mod tables;
pub mod team;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inbox_store::testing::{OnBackend, TestDatabase};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which database a test runs on (the one enum of every suite's "on both backends" helper).
pub use inbox_store::testing::Backend as Db;

/// A fixed key for tests, so admin commands and servers of one test share it.
pub const TEST_SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The path of one of the workspace's binaries, next to the test executable
/// (`target/<profile>/deps/..` -> `target/<profile>/`). `cargo xtask ci` builds them before the
/// tests; `cargo test` alone does not build another package's binaries.
///
/// # Panics
/// When the binary was not built, with the command that builds it.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo xtask ci`, or `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A database for one test, with the environment the binaries need to use it.
#[derive(Debug)]
pub struct TestEnv {
    db: TestDatabase,
    /// Which backend.
    pub kind: Db,
}

impl OnBackend for TestEnv {
    async fn over(db: TestDatabase, kind: Db) -> Self {
        Self { db, kind }
    }
}

impl TestEnv {
    /// A fresh database of the given kind, or `None` when PostgreSQL is skipped on a developer
    /// machine without it (never on CI).
    pub async fn new(kind: Db, test: &str) -> Option<Self> {
        inbox_store::testing::fixture(kind, test).await
    }

    /// `INBOX_DATABASE_URL`.
    #[must_use]
    pub fn database_url(&self) -> &str {
        self.db.url()
    }

    /// One integer a SQL query answers, read straight from the test's database (to check what
    /// is really stored, beneath the API).
    ///
    /// # Panics
    /// When the database cannot be opened or the query fails.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.kind {
            Db::Sqlite => {
                let pool = sqlx::SqlitePool::connect(self.database_url())
                    .await
                    .expect("open sqlite");
                let value = sqlx::query_scalar(sql).fetch_one(&pool).await;
                pool.close().await;
                value
            }
            Db::Postgres => {
                let pool = sqlx::PgPool::connect(self.database_url())
                    .await
                    .expect("open postgres");
                let value = sqlx::query_scalar(sql).fetch_one(&pool).await;
                pool.close().await;
                value
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A command (one of our binaries, or a program on PATH) with this database and the test key, and no other
    /// `INBOX_*` variable inherited from the caller's environment.
    #[must_use]
    pub fn command(&self, program: &str) -> Command {
        // Our binaries by name; anything else (bash) from PATH.
        let mut command = match program {
            "inbox-api" | "inbox-webhook" | "xtask" => Command::new(binary(program)),
            other => Command::new(other),
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INBOX_") {
                command.env_remove(key);
            }
        }
        command
            .env("INBOX_DATABASE_URL", self.database_url())
            .env("INBOX_SECRET_KEY", TEST_SECRET_KEY)
            .env("INBOX_LOG", "info,tower_http=warn")
            .kill_on_drop(true);
        command
    }

    /// Runs `inbox-api admin <args> --json` and returns its JSON output.
    ///
    /// # Panics
    /// When the command fails, with its stderr.
    pub async fn admin(&self, args: &[&str]) -> Value {
        let output = self
            .command("inbox-api")
            .arg("admin")
            .args(args)
            .arg("--json")
            .output()
            .await
            .expect("run inbox-api admin");
        assert!(
            output.status.success(),
            "inbox-api admin {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "admin {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Starts `inbox-api serve` on a free port.
    pub async fn api(&self, extra_env: &[(&str, &str)]) -> Server {
        let mut command = self.command("inbox-api");
        command.arg("serve");
        Server::start(command, extra_env).await
    }

    /// Starts `inbox-webhook` on a free port.
    pub async fn webhook(&self, extra_env: &[(&str, &str)]) -> Server {
        Server::start(self.command("inbox-webhook"), extra_env).await
    }

    /// Connects workspace `acme` to the test number ([`PHONE_NUMBER_ID`]) and webhook secret
    /// ([`WEBHOOK_SECRET`]) through the admin CLI.
    pub async fn connect_kapso(&self) {
        self.admin(&[
            "workspace",
            "set-kapso",
            "--workspace",
            "acme",
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--webhook-secret",
            WEBHOOK_SECRET,
        ])
        .await;
    }

    /// A workspace `acme` with an owner; returns (workspace id, owner user id, owner token).
    pub async fn workspace_with_owner(&self) -> Seeded {
        let ws = self
            .admin(&["workspace", "create", "--slug", "acme", "--name", "Acme"])
            .await;
        let user = self
            .admin(&[
                "user",
                "create",
                "--name",
                "Owner",
                "--email",
                "owner@acme.test",
            ])
            .await;
        let user_id = str_field(&user, "id");
        self.admin(&[
            "member",
            "add",
            "--workspace",
            "acme",
            "--user",
            &user_id,
            "--role",
            "owner",
        ])
        .await;
        let token = self.admin(&["token", "create", "--user", &user_id]).await;
        Seeded {
            workspace_id: str_field(&ws, "id"),
            user_id,
            token: str_field(&token, "token"),
            token_id: str_field(&token, "id"),
        }
    }
}

/// What [`TestEnv::workspace_with_owner`] made.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Workspace id.
    pub workspace_id: String,
    /// Owner's user id.
    pub user_id: String,
    /// Owner's bearer token.
    pub token: String,
    /// The token's id.
    pub token_id: String,
}

/// A string field of a JSON object.
///
/// # Panics
/// When the field is missing or not a string.
#[must_use]
pub fn str_field(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` missing in {value}"))
        .to_owned()
}

/// A running binary, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(mut command: Command, extra_env: &[(&str, &str)]) -> Self {
        command.env("INBOX_LISTEN", "127.0.0.1:0");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        Self::start_command(command).await
    }

    /// Starts a prepared command and waits for its `listening on` line.
    ///
    /// # Panics
    /// When the server does not start within 30 s, with what it logged.
    pub async fn start_command(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let base_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().expect("log lock").push(line.clone());
                if let Some(at) = line.find("listening on http://") {
                    let url = &line[at + "listening on ".len()..];
                    return url.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("server did not start: {:?}", log.lock().expect("log lock")));
        // Keep draining the log so the child never blocks on a full pipe.
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().expect("log lock").push(line);
            }
        });
        Self {
            child,
            base_url,
            log,
        }
    }

    /// The server's process id.
    ///
    /// # Panics
    /// When the process has already exited.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server is running")
    }

    /// The server's resident memory in KiB, from `/proc`.
    ///
    /// # Panics
    /// When `/proc/<pid>/status` cannot be read.
    #[must_use]
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// `base_url` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What the server has logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Waits (bounded) until the server has logged a line containing `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost machine would, and waits for it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Asks the server to stop (SIGTERM) and waits for it to exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("server stops within 20 s of SIGTERM")
            .expect("wait for server")
    }
}

/// One of the repository's signed sample deliveries (`crates/kapso/samples`).
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Headers as Kapso sent them.
    pub headers: Vec<(String, String)>,
    /// The exact raw body.
    pub body: String,
}

/// Reads a sample by file stem, e.g. `v2-received-text`.
///
/// # Panics
/// When the sample is missing or malformed.
#[must_use]
pub fn fixture(name: &str) -> Fixture {
    let sample = inbox_kapso::samples::load(name);
    Fixture {
        headers: sample.headers,
        body: sample.body,
    }
}

impl Fixture {
    /// Posts the fixture, exactly as Kapso sent it, to a server's webhook.
    pub async fn post(&self, http: &reqwest::Client, server: &Server) -> reqwest::Response {
        let mut request = http
            .post(server.url("/api/webhook/kapso"))
            .body(self.body.clone());
        for (key, value) in &self.headers {
            request = request.header(key, value);
        }
        request.send().await.expect("post fixture")
    }
}

/// Builds signed Kapso v2 deliveries for the test workspace (`phone_number_id`
/// 123456789012345, webhook secret `wh_sec_test_123`), each with a fresh idempotency key.
#[derive(Debug)]
pub struct Deliveries {
    next: u64,
    /// WhatsApp time of the first message: ten minutes ago, so the reply window is open.
    start: u64,
}

impl Default for Deliveries {
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            next: 0,
            start: now.saturating_sub(600),
        }
    }
}

/// The test business number's Kapso id.
pub const PHONE_NUMBER_ID: &str = "123456789012345";
/// The test workspace's Kapso webhook secret.
pub const WEBHOOK_SECRET: &str = "wh_sec_test_123";

impl Deliveries {
    /// A batch delivery of `count` inbound text messages from `from` (WhatsApp digits).
    pub fn inbound_batch(&mut self, from: &str, count: usize) -> Fixture {
        let elements: Vec<Value> = (0..count)
            .map(|_| {
                self.next += 1;
                let n = self.next;
                serde_json::json!({
                    "message": {
                        "id": format!("wamid.TEST.{n}"),
                        "timestamp": (self.start + n).to_string(),
                        "type": "text",
                        "from": from,
                        "text": {"body": format!("message {n}")},
                        "kapso": {"direction": "inbound", "status": "received"}
                    },
                    "conversation": {"id": "conv_test", "phone_number": from, "phone_number_id": PHONE_NUMBER_ID},
                    "phone_number_id": PHONE_NUMBER_ID
                })
            })
            .collect();
        let body = serde_json::json!({
            "type": "whatsapp.message.received",
            "batch": true,
            "data": elements,
            "batch_info": {"size": count}
        })
        .to_string();
        let signature =
            inbox_kapso::signature::sign_kapso(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
        Fixture {
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Webhook-Event".into(), "whatsapp.message.received".into()),
                ("X-Webhook-Signature".into(), signature),
                (
                    "X-Idempotency-Key".into(),
                    format!("test-delivery-{}", self.next),
                ),
                ("X-Webhook-Batch".into(), "true".into()),
            ],
            body,
        }
    }
}

/// One Server-Sent Events frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// `id:`, if any.
    pub id: Option<String>,
    /// `event:`.
    pub event: String,
    /// `data:` lines joined.
    pub data: String,
}

/// A client of `GET /api/events` that reads frames as they come.
#[derive(Debug)]
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
    /// Whether the server ended the stream.
    pub ended: bool,
}

impl SseClient {
    /// Connects; `resume` is sent as `Last-Event-ID`.
    ///
    /// # Panics
    /// When the server does not answer 200 with `text/event-stream`.
    pub async fn connect(
        server: &Server,
        workspace: &str,
        token: &str,
        resume: Option<&str>,
    ) -> Self {
        let mut request = reqwest::Client::new()
            .get(server.url(&format!("/api/events?workspace={workspace}")))
            .bearer_auth(token);
        if let Some(id) = resume {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("connect to /api/events");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "event stream status"
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
            ended: false,
        }
    }

    /// The next event frame (comments skipped), or `None` when the stream ends or `wait` passes.
    pub async fn next(&mut self, wait: Duration) -> Option<SseFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => self.ended = true,
            }
        }
    }

    fn take_frame(&mut self) -> Option<SseFrame> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut frame = SseFrame {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            let mut has_field = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    frame.id = Some(v.trim().to_owned());
                    has_field = true;
                } else if let Some(v) = line.strip_prefix("event:") {
                    frame.event = v.trim().to_owned();
                    has_field = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !frame.data.is_empty() {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    has_field = true;
                }
            }
            if has_field {
                return Some(frame);
            }
        }
    }
}
