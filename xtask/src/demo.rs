//! `cargo xtask demo`: a working inbox on this machine in one command. It starts `inbox-api` on a
//! temporary SQLite database with a local fake of Kapso, bootstraps a workspace with an owner and
//! an agent, replays a realistic day of signed Kapso deliveries, prints copy-paste `curl`
//! commands with the real tokens, and runs until Ctrl-C, then removes everything it made.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use inbox_kapso::fake::FakeKapso;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PHONE_NUMBER_ID: &str = "109876543210987";
const WEBHOOK_SECRET: &str = "demo_webhook_secret";

/// Options of `cargo xtask demo`.
pub struct DemoOptions {
    /// Where `inbox-api` listens.
    pub listen: String,
    /// A prebuilt `inbox-api` to run instead of building one (tests pass theirs).
    pub binary: Option<std::path::PathBuf>,
}

impl DemoOptions {
    /// Reads `--listen ADDR` (default `127.0.0.1:8080`) and `--binary PATH`.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self {
            listen: "127.0.0.1:8080".to_owned(),
            binary: None,
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--listen" => {
                    options.listen = rest.next().context("--listen needs an address")?.clone();
                }
                "--binary" => {
                    options.binary = Some(rest.next().context("--binary needs a path")?.into());
                }
                other => bail!(
                    "unknown demo option {other} (usage: cargo xtask demo [--listen ADDR] [--binary PATH])"
                ),
            }
        }
        Ok(options)
    }
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub fn run(options: DemoOptions) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(demo(options))
}

async fn demo(options: DemoOptions) -> anyhow::Result<()> {
    let binary = match options.binary {
        Some(binary) => binary,
        None => {
            println!("demo: building inbox-api ...");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-q", "-p", "inbox-api"])
                .status()
                .await?;
            anyhow::ensure!(status.success(), "building inbox-api failed");
            target_dir()?.join("debug").join("inbox-api")
        }
    };

    let dir = tempfile::tempdir()?;
    let fake = FakeKapso::start().await;
    let env = DemoEnv {
        binary,
        database_url: format!("sqlite://{}", dir.path().join("inbox.db").display()),
        secret_key: "ZGVtby1rZXktZGVtby1rZXktZGVtby1rZXktMzJieXQ=".into(),
        kapso_base_url: fake.base_url(),
    };

    let workspace = env
        .admin(&[
            "workspace",
            "create",
            "--slug",
            "demo",
            "--name",
            "Toko Demo",
        ])
        .await?;
    env.admin(&[
        "workspace",
        "set-kapso",
        "--workspace",
        "demo",
        "--phone-number-id",
        PHONE_NUMBER_ID,
        "--api-key",
        "demo_kapso_api_key",
        "--webhook-secret",
        WEBHOOK_SECRET,
    ])
    .await?;
    let owner = env
        .admin(&[
            "user",
            "create",
            "--name",
            "Ayu (owner)",
            "--email",
            "ayu@demo.test",
        ])
        .await?;
    let agent = env
        .admin(&[
            "user",
            "create",
            "--name",
            "Rudi (agent)",
            "--email",
            "rudi@demo.test",
        ])
        .await?;
    let owner_id = field(&owner, "id")?;
    let agent_id = field(&agent, "id")?;
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "demo",
        "--user",
        &owner_id,
        "--role",
        "owner",
    ])
    .await?;
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "demo",
        "--user",
        &agent_id,
        "--role",
        "member",
    ])
    .await?;
    let owner_token = field(
        &env.admin(&["token", "create", "--user", &owner_id, "--name", "demo"])
            .await?,
        "token",
    )?;
    let agent_token = field(
        &env.admin(&["token", "create", "--user", &agent_id, "--name", "demo"])
            .await?,
        "token",
    )?;

    let (mut server, base_url) = env.serve(&options.listen).await?;
    let http = reqwest::Client::new();
    let deliveries = a_day_of_deliveries(now_seconds());
    for delivery in &deliveries {
        let response = http
            .post(format!("{base_url}/api/webhook/kapso"))
            .header("Content-Type", "application/json")
            .header("X-Webhook-Event", &delivery.event)
            .header(
                "X-Webhook-Signature",
                inbox_kapso::signature::sign_kapso(
                    WEBHOOK_SECRET.as_bytes(),
                    delivery.body.as_bytes(),
                ),
            )
            .header("X-Idempotency-Key", &delivery.key)
            .body(delivery.body.clone())
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the webhook refused a demo delivery: {}",
            response.status()
        );
    }

    let failed = env.admin(&["deliveries", "list", "--failed"]).await?;
    anyhow::ensure!(
        failed["deliveries"].as_array().is_some_and(Vec::is_empty),
        "some demo deliveries failed: {failed}"
    );
    let list: Value = http
        .get(format!("{base_url}/api/conversations?workspace=demo"))
        .bearer_auth(&owner_token)
        .send()
        .await?
        .json()
        .await?;
    let conversation = list["conversations"][0]["id"]
        .as_str()
        .unwrap_or("<conversation-id>")
        .to_owned();
    let workspace_id = field(&workspace, "id")?;

    let o = format!("-H 'Authorization: Bearer {owner_token}'");
    let a = format!("-H 'Authorization: Bearer {agent_token}'");
    println!(
        "\nInbox demo is running at {base_url} (workspace `demo`, id {workspace_id}), with a fake Kapso at {}.\n\
         {} signed Kapso deliveries were replayed. Try, in another terminal:\n\n\
         # who am I\n\
         curl -s {base_url}/api/me {o}\n\
         # the inbox, newest first\n\
         curl -s '{base_url}/api/conversations?workspace=demo' {o}\n\
         # one conversation and its thread\n\
         curl -s {base_url}/api/conversations/{conversation}/messages {o}\n\
         # reply (it goes to the fake Kapso)\n\
         curl -s -X POST {base_url}/api/messages/send {o} -H 'Content-Type: application/json' -d '{{\"conversation_id\":\"{conversation}\",\"text\":\"Halo! Pesanan Anda sedang kami proses.\"}}'\n\
         # assign it to the agent\n\
         curl -s -X POST {base_url}/api/conversations/{conversation}/assign {o} -H 'Content-Type: application/json' -d '{{\"assigned_to\":\"{agent_id}\"}}'\n\
         # hand it over from the bot to a human\n\
         curl -s -X POST {base_url}/api/conversations/{conversation}/handover {o} -H 'Content-Type: application/json' -d '{{\"ai_paused\":true}}'\n\
         # the agent now sees it\n\
         curl -s '{base_url}/api/conversations?workspace=demo' {a}\n\
         # watch changes live (Ctrl-C to stop)\n\
         curl -s -N '{base_url}/api/events?workspace=demo' {o}\n\n\
         Demo is ready. Press Ctrl-C to stop and clean up.",
        fake.base_url(),
        deliveries.len(),
    );

    tokio::select! {
        () = shutdown_signal() => {}
        status = server.wait() => bail!("inbox-api exited unexpectedly: {status:?}"),
    }
    println!("demo: stopping and removing {}", dir.path().display());
    if let Some(pid) = server.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
    drop(fake);
    drop(dir);
    Ok(())
}

struct DemoEnv {
    binary: std::path::PathBuf,
    database_url: String,
    secret_key: String,
    kapso_base_url: String,
}

impl DemoEnv {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("INBOX_DATABASE_URL", &self.database_url)
            .env("INBOX_SECRET_KEY", &self.secret_key)
            .env("INBOX_KAPSO_BASE_URL", &self.kapso_base_url)
            .env("INBOX_LOG", "warn")
            .kill_on_drop(true);
        command
    }

    async fn admin(&self, args: &[&str]) -> anyhow::Result<Value> {
        let output = self
            .command()
            .arg("admin")
            .args(args)
            .arg("--json")
            .output()
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "inbox-api admin {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    async fn serve(&self, listen: &str) -> anyhow::Result<(Child, String)> {
        let mut child = self
            .command()
            .arg("serve")
            .env("INBOX_LISTEN", listen)
            .env("INBOX_LOG", "info,tower_http=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("server stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            if let Some(at) = line.find("listening on ") {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok((child, url));
            }
            seen.push(line);
        }
        bail!("inbox-api did not start:\n{}", seen.join("\n"))
    }
}

/// A signed-to-be Kapso delivery.
struct Delivery {
    event: String,
    key: String,
    body: String,
}

/// A morning in a small Indonesian shop's inbox: four customers, text, a photo, an album sent as
/// one batch, the shop's own replies from the WhatsApp Business app (echoes) with their
/// delivery statuses.
fn a_day_of_deliveries(now: i64) -> Vec<Delivery> {
    let customers = [
        ("6281234567890", "Budi Santoso"),
        ("6281398765432", "Siti Rahma"),
        ("6285712345678", "Andi"),
        ("6287788990011", "Dewi Lestari"),
    ];
    let mut out = Vec::new();
    let mut n = 0;
    let mut inbound = |from: &str, name: &str, at: i64, message: Value| -> Value {
        n += 1;
        let mut message = message;
        message["id"] = json!(format!("wamid.DEMO.{n}"));
        message["timestamp"] = json!(at.to_string());
        message["from"] = json!(from);
        message["kapso"] =
            json!({"direction": "inbound", "status": "received", "origin": "cloud_api"});
        json!({
            "message": message,
            "conversation": {"id": format!("kconv_{from}"), "phone_number": format!("+{from}"), "phone_number_id": PHONE_NUMBER_ID, "kapso": {"contact_name": name}},
            "phone_number_id": PHONE_NUMBER_ID
        })
    };
    let hour = 3600;
    let texts = [
        (
            0,
            now - 5 * hour,
            "Selamat pagi, apakah kemeja batik ukuran L masih ada?",
        ),
        (
            1,
            now - 4 * hour,
            "Halo kak, pesanan saya #1042 sudah dikirim?",
        ),
        (2, now - 3 * hour, "Berapa ongkir ke Bandung?"),
        (0, now - 2 * hour, "Kalau warna biru ada juga?"),
        (3, now - 40 * 60, "Mau tanya jam buka toko hari Minggu"),
    ];
    for (i, at, body) in texts {
        let (phone, name) = customers[i];
        let element = inbound(
            phone,
            name,
            at,
            json!({"type": "text", "text": {"body": body}}),
        );
        out.push(single("whatsapp.message.received", element));
    }
    let (phone, name) = customers[1];
    let photo = inbound(
        phone,
        name,
        now - 30 * 60,
        json!({
            "type": "image",
            "image": {"id": "media_demo_1", "mime_type": "image/jpeg", "caption": "Ini bukti transfernya"}
        }),
    );
    out.push(single("whatsapp.message.received", photo));
    let (phone, name) = customers[0];
    let album: Vec<Value> = (0..2)
        .map(|i| {
            inbound(
                phone,
                name,
                now - 20 * 60 + i,
                json!({
                    "type": "image",
                    "image": {"id": format!("media_demo_album_{i}"), "mime_type": "image/jpeg"}
                }),
            )
        })
        .collect();
    out.push(Delivery {
        event: "whatsapp.message.received".into(),
        key: "demo-batch-1".into(),
        body: json!({"type": "whatsapp.message.received", "batch": true, "data": album, "batch_info": {"size": 2}}).to_string(),
    });
    let (phone, _) = customers[2];
    let echo = json!({
        "message": {
            "id": "wamid.DEMO.ECHO1", "timestamp": (now - 2 * hour).to_string(), "type": "text",
            "to": phone, "text": {"body": "Ongkir ke Bandung Rp18.000 ya kak"},
            "kapso": {"direction": "outbound", "status": "sent", "origin": "business_app"}
        },
        "conversation": {"id": format!("kconv_{phone}"), "phone_number": format!("+{phone}"), "phone_number_id": PHONE_NUMBER_ID},
        "phone_number_id": PHONE_NUMBER_ID
    });
    out.push(single("whatsapp.message.sent", echo.clone()));
    for (event, status) in [
        ("whatsapp.message.delivered", "delivered"),
        ("whatsapp.message.read", "read"),
    ] {
        let mut update = echo.clone();
        update["message"]["kapso"]["status"] = json!(status);
        out.push(single(event, update));
    }
    out
}

fn single(event: &str, element: Value) -> Delivery {
    let key = format!(
        "demo-{}-{}",
        event,
        element["message"]["id"].as_str().unwrap_or_default()
    );
    let mut body = element;
    body["event"] = json!(event);
    Delivery {
        event: event.into(),
        key,
        body: body.to_string(),
    }
}

fn field(value: &Value, name: &str) -> anyhow::Result<String> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("`{name}` missing in {value}"))
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn target_dir() -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(dir.into());
    }
    Ok(crate::workspace_root().join("target"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
