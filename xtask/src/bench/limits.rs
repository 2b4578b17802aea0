//! `limits`: the ceilings of this machine, measured in the same run as the scenarios, which are
//! reported as ratios of them:
//! - the HTTP ceiling: a trivial axum handler in its own process (`xtask bench-echo`), at the
//!   scenarios' concurrency (peak) and at each of their open-loop rates (floor latency);
//! - the ingest transaction, the list query and the thread query replayed straight against the
//!   database at the scenarios' concurrency: pgbench with custom scripts on PostgreSQL, a tight
//!   sqlx loop on SQLite (over the product's own pools: one writer, WAL, `synchronous=FULL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use inbox_store::SecretKey;
use serde_json::json;
use sqlx::Sqlite;
use uuid::Uuid;

use super::Ctx;
use super::dataset::{BUSY_PHONE_NUMBER_ID, PHONE_PREFIX};
use super::load::{self, MakeRequest, Request};
use super::report::thousands;
use super::servers::{SECRET_KEY, Server};

/// Runs the scenario.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    http_ceiling(ctx).await?;
    let seconds = if ctx.opts.quick { 1 } else { 5 };
    let duration = if ctx.opts.quick {
        Duration::from_millis(700)
    } else {
        Duration::from_secs(seconds)
    };
    if ctx.opts.postgres() {
        pgbench_all(ctx, seconds).await?;
    } else {
        sqlite_all(ctx, duration).await?;
    }
    let fsync = ctx
        .report
        .ceilings
        .get("fsync_p50_ms")
        .copied()
        .unwrap_or(0.0);
    if fsync > 0.0 {
        ctx.report.ceiling(
            "fsync_commits_per_s",
            1_000.0 / fsync,
            "1 / median fsync: durable commits per second of one writer without group commit",
        );
    }
    Ok(())
}

async fn http_ceiling(ctx: &mut Ctx) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let echo = Server::start(&exe, &["bench-echo"], &[]).await?;
    let request = Request::get(format!("{}/", echo.base_url), "unused");
    let make: MakeRequest = Arc::new(move |_| request.clone());
    let mut peak = 0.0_f64;
    let mut levels = vec![ctx.list_concurrency, 64];
    levels.dedup();
    for c in levels {
        let run = load::closed_loop(
            &ctx.client,
            c,
            ctx.opts.closed_duration(),
            0,
            false,
            Arc::clone(&make),
        )
        .await;
        println!("  http ceiling c={c}: {:.0} req/s", run.throughput());
        peak = peak.max(run.throughput());
        ctx.report
            .detail("limits", &format!("http_closed_c{c}"), run.json());
    }
    ctx.report.ceiling(
        "http_peak",
        peak,
        "trivial axum handler in its own process, closed loop (req/s)",
    );
    let rates: Vec<u64> = ctx.rates.iter().copied().collect();
    for rate in rates {
        let run = load::open_loop(
            &ctx.client,
            rate as f64,
            ctx.opts.open_duration(),
            512,
            0,
            false,
            Arc::clone(&make),
        )
        .await;
        println!(
            "  http floor at {rate}/s: p50 {:.3} p99 {:.3} ms",
            run.latency.p50, run.latency.p99
        );
        ctx.report.ceiling(
            &format!("http_p99_at_{rate}"),
            run.latency.p99,
            format!("trivial handler p99 at {rate} req/s, open loop (ms)"),
        );
        ctx.report.ceiling(
            &format!("http_p50_at_{rate}"),
            run.latency.p50,
            format!("trivial handler p50 at {rate} req/s, open loop (ms)"),
        );
        ctx.report
            .detail("limits", &format!("http_open_{rate}"), run.json());
    }
    echo.stop().await;
    Ok(())
}

// ---- PostgreSQL: pgbench ----

/// (pgbench turns every `:name` into a parameter, even inside string literals, so no literal
/// here may contain a colon followed by a letter.)
///
/// The ingest transaction, statement for statement as the product runs it for an inbound text
/// from a known customer (see `inbox-store`'s ingest port), with one timestamp for the whole
/// transaction so the list invariants hold.
const PG_INGEST: &str = r#"\set i random(0, :n - 1)
BEGIN;
SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now, gen_random_uuid() AS did, gen_random_uuid() AS mid \gset
SELECT w.id AS ws, w.auto_create_contacts AS ws_auto_create, k.id AS cid, k.whatsapp_name AS k_whatsapp_name, k.last_activity_at AS k_last_activity_at, k.last_contact_at AS k_last_contact_at, k.assigned_to AS k_assigned_to, k.lead_status AS k_lead_status, v.id AS vid, v.workspace_id AS v_workspace_id, v.contact_id AS v_contact_id, v.status AS v_status, v.unread_count AS unread, v.last_message_at AS v_last_message_at, v.last_message_preview AS v_last_message_preview, v.last_inbound_at AS v_last_inbound_at, v.last_seq AS seq, v.kapso_conversation_id AS v_kapso_conversation_id, v.contact_assigned_to AS v_contact_assigned_to, v.lead_status AS v_lead_status FROM workspaces w JOIN contacts k ON k.workspace_id = w.id AND k.phone = :prefix::text || lpad(:i::text, 7, '0') JOIN conversations v ON v.contact_id = k.id AND v.workspace_id = w.id WHERE w.kapso_phone_number_id = :pnid FOR UPDATE OF v \gset
INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, sender_type, kind, text, media, reply_to_wamid, wamid, status, error, raw, sent_at, created_at) VALUES (:mid, :ws, :vid, :seq::bigint + 1, 'inbound', 'contact', 'text', 'limit replay', NULL, NULL, 'wamid.limit.' || :mid::text, 'received', NULL, '{"id":"wamid","type":"text","text":{"body":"limit replay"},"kapso":{"direction":"inbound"}}', :now, :now) ON CONFLICT (workspace_id, wamid) DO NOTHING;
WITH w0 AS (UPDATE contacts SET whatsapp_name = 'Bench Customer', last_activity_at = :now, activity_sort = :now, last_contact_at = :now, updated_at = :now WHERE id = :cid AND workspace_id = :ws), w1 AS (UPDATE conversations SET status = 'open', unread_count = :unread::int + 1, last_message_at = :now, last_message_preview = 'limit replay', last_inbound_at = :now, sort_at = :now, last_seq = :seq::bigint + 1, kapso_conversation_id = 'kconv-limit', updated_at = :now WHERE id = :vid AND workspace_id = :ws), w2 AS (UPDATE conversation_tags SET sort_at = :now WHERE conversation_id = :vid AND sort_at <> :now), w3 AS (INSERT INTO events (workspace_id, kind, conversation_id, contact_id, message_id, created_at) VALUES (:ws, 'message.created', :vid, :cid, :mid, :now), (:ws, 'conversation.updated', :vid, :cid, NULL, :now)) INSERT INTO webhook_deliveries (id, idempotency_key, event, workspace_id, phone_number_id, headers, body, received_at, outcome, error, processed_at, attempts, idempotency_scope) VALUES (:did, 'limit-' || :did::text, 'whatsapp.message.received', :ws, :pnid, '{"content-type":"application/json"}', convert_to(repeat('x', 900), 'UTF8'), :now, 'processed', NULL, :now, 1, :ws) ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id;
END;
"#;

/// The default list page: one index range in list order, joined to contacts.
const LIST_SQL: &str = "SELECT c.id, c.status, c.ai_paused, c.assigned_to, c.unread_count, \
    c.last_message_at, c.last_message_preview, c.last_inbound_at, c.created_at, c.updated_at, \
    k.id, k.name, k.whatsapp_name, k.phone, k.bsuid, k.lead_status, k.lead_score, k.tags, \
    k.assigned_to FROM conversations c JOIN contacts k ON k.id = c.contact_id \
    WHERE c.workspace_id = $1 ORDER BY c.sort_at DESC, c.id DESC LIMIT 50";

/// The newest 50 messages of a conversation.
const THREAD_SQL: &str = "SELECT id, conversation_id, seq, direction, sender_type, \
    sender_user_id, kind, text, media, reply_to_wamid, wamid, status, error, sent_at, created_at \
    FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 50";

async fn pgbench_all(ctx: &mut Ctx, seconds: u64) -> anyhow::Result<()> {
    if which("pgbench").is_none() {
        ctx.report.skip(
            "limits.db",
            "pgbench not found: install it with `apt-get install postgresql-client` (Debian) for the database ceilings",
        );
        return Ok(());
    }
    let ws = ctx.data.busy.as_uuid().to_string();
    let n = ctx.data.conversations.len().to_string();
    let ingest = pgbench(
        ctx,
        "ingest",
        PG_INGEST,
        ctx.ingest_concurrency,
        seconds,
        &[
            ("n", &n),
            ("pnid", BUSY_PHONE_NUMBER_ID),
            ("prefix", PHONE_PREFIX),
        ],
    )
    .await?;
    if let Some((tps, count)) = ingest {
        *ctx.added_messages.entry("limits").or_default() += count;
        ctx.report.ceiling(
            "db_ingest_tps",
            tps,
            format!(
                "the ingest transaction replayed by pgbench at {} clients (tx/s)",
                ctx.ingest_concurrency
            ),
        );
    }
    let list = format!("{};\n", LIST_SQL.replace("$1", ":ws"));
    if let Some((tps, _)) = pgbench(
        ctx,
        "list",
        &list,
        ctx.list_concurrency,
        seconds,
        &[("ws", &ws)],
    )
    .await?
    {
        ctx.report.ceiling(
            "db_list_qps",
            tps,
            format!(
                "the default list query replayed by pgbench at {} clients (q/s)",
                ctx.list_concurrency
            ),
        );
    }
    let thread = format!(
        "\\set i random(0, :n - 1)\n{};\n",
        THREAD_SQL.replace(
            "$1",
            "(SELECT v.id FROM conversations v JOIN contacts k ON k.id = v.contact_id \
             WHERE k.workspace_id = :ws AND k.phone = :prefix::text || lpad(:i::text, 7, '0'))"
        )
    );
    if let Some((tps, _)) = pgbench(
        ctx,
        "thread",
        &thread,
        16,
        seconds,
        &[("ws", &ws), ("n", &n), ("prefix", PHONE_PREFIX)],
    )
    .await?
    {
        ctx.report.ceiling(
            "db_thread_qps",
            tps,
            "the thread query (and a phone lookup for its id) replayed by pgbench at 16 clients (q/s)",
        );
    }
    Ok(())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// Runs a pgbench script; returns (tps, transactions).
async fn pgbench(
    ctx: &mut Ctx,
    name: &str,
    script: &str,
    clients: usize,
    seconds: u64,
    defines: &[(&str, &str)],
) -> anyhow::Result<Option<(f64, u64)>> {
    let path = ctx.run_dir.join(format!("pgbench-{name}.sql"));
    std::fs::write(&path, script)?;
    let mut command = tokio::process::Command::new("pgbench");
    command
        .args(["-n", "-M", "prepared", "-T", &seconds.to_string()])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .arg("-f")
        .arg(&path);
    for (key, value) in defines {
        command.arg("-D").arg(format!("{key}={value}"));
    }
    command.arg(ctx.db.url());
    let output = command.output().await.context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        ctx.report.violation(format!(
            "limits: pgbench {name} failed: {}",
            stderr.lines().take(5).collect::<Vec<_>>().join(" / ")
        ));
        return Ok(None);
    }
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let tps = field("tps = ").unwrap_or(0.0);
    let count = field("number of transactions actually processed: ").unwrap_or(0.0) as u64;
    let latency = field("latency average = ").unwrap_or(0.0);
    println!(
        "  pgbench {name} c={clients}: {} tx/s, average {latency:.3} ms",
        thousands(tps)
    );
    ctx.report.detail(
        "limits",
        &format!("pgbench_{name}"),
        json!({"clients": clients, "seconds": seconds, "tps": tps, "transactions": count,
               "latency_average_ms": latency, "script": script}),
    );
    Ok(Some((tps, count)))
}

// ---- SQLite: tight sqlx loops over the product's pools ----

async fn sqlite_all(ctx: &mut Ctx, duration: Duration) -> anyhow::Result<()> {
    let key = SecretKey::from_base64(SECRET_KEY).map_err(|_| anyhow::anyhow!("bad bench key"))?;
    let store = inbox_store::sqlite::open(ctx.db.url(), &key).await?;
    let ws = ctx.data.busy.as_uuid();
    let phones: Arc<Vec<u32>> = Arc::new(ctx.data.conversations.iter().map(|c| c.index).collect());
    let ids: Arc<Vec<Uuid>> = Arc::new(
        ctx.data
            .conversations
            .iter()
            .filter(|c| c.messages > 0)
            .map(|c| c.id.as_uuid())
            .collect(),
    );

    let write = store.write_pool().clone();
    let concurrency = ctx.ingest_concurrency;
    let (tps, count, errors) = tight_loop(concurrency, duration, move |n| {
        let write = write.clone();
        let phones = Arc::clone(&phones);
        async move { ingest_tx(&write, ws, &phones, n).await }
    })
    .await;
    println!(
        "  sqlite ingest tx c={concurrency}: {} tx/s ({errors} errors)",
        thousands(tps)
    );
    *ctx.added_messages.entry("limits").or_default() += count;
    ctx.report.ceiling(
        "db_ingest_tps",
        tps,
        format!("the ingest transaction in a tight sqlx loop on the product's writer, {concurrency} tasks (tx/s)"),
    );
    // The replay writes from a second process beside inbox-api's own writer, so a few
    // transactions can hit SQLite's busy timeout; that is the harness's business, not the
    // product's. Only a replay that never commits is an error.
    ctx.report
        .detail("limits", "sqlite_ingest_replay_errors", json!(errors));
    if count == 0 {
        ctx.report.violation(format!(
            "limits: the replayed ingest transaction never committed ({errors} errors)"
        ));
    }

    let read = store.read_pool().clone();
    let concurrency = ctx.list_concurrency;
    let (qps, _, errors) = tight_loop(concurrency, duration, move |_| {
        let read = read.clone();
        async move {
            sqlx::query(LIST_SQL)
                .bind(ws)
                .fetch_all(&read)
                .await
                .map(drop)
        }
    })
    .await;
    println!(
        "  sqlite list query c={concurrency}: {} q/s ({errors} errors)",
        thousands(qps)
    );
    ctx.report.ceiling(
        "db_list_qps",
        qps,
        format!("the default list query in a tight sqlx loop on the product's read pool, {concurrency} tasks (q/s)"),
    );

    let read = store.read_pool().clone();
    let (qps, _, errors) = tight_loop(16, duration, move |n| {
        let read = read.clone();
        let ids = Arc::clone(&ids);
        async move {
            let id = ids[(super::kapso::mix(n) % ids.len().max(1) as u64) as usize];
            sqlx::query(THREAD_SQL)
                .bind(id)
                .fetch_all(&read)
                .await
                .map(drop)
        }
    })
    .await;
    println!(
        "  sqlite thread query c=16: {} q/s ({errors} errors)",
        thousands(qps)
    );
    ctx.report.ceiling(
        "db_thread_qps",
        qps,
        "the thread query in a tight sqlx loop on the product's read pool, 16 tasks (q/s)",
    );
    store.close().await;
    Ok(())
}

/// Runs `op` from `concurrency` tasks for `duration`; returns (ops/s, ops, errors).
async fn tight_loop<F, Fut>(concurrency: usize, duration: Duration, op: F) -> (f64, u64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, done, errors, next) = (
            Arc::clone(&op),
            Arc::clone(&done),
            Arc::clone(&errors),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match op(n).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let count = done.load(Ordering::Relaxed);
    (
        count as f64 / start.elapsed().as_secs_f64(),
        count,
        errors.load(Ordering::Relaxed),
    )
}

/// One ingest transaction on SQLite, the product's statements in the product's order.
async fn ingest_tx(
    write: &sqlx::Pool<Sqlite>,
    ws: Uuid,
    phones: &[u32],
    n: u64,
) -> Result<(), sqlx::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let phone = format!(
        "{PHONE_PREFIX}{:07}",
        phones[(super::kapso::mix(n) % phones.len().max(1) as u64) as usize]
    );
    let delivery = Uuid::now_v7();
    let message = Uuid::now_v7();
    let wamid = format!("wamid.limit.{message}");
    let mut tx = write.begin().await?;
    let row: Option<(Uuid, Uuid, i64, i32)> = sqlx::query(
        "SELECT w.id AS ws_id, w.auto_create_contacts AS ws_auto_create, k.id AS k_id, \
         k.whatsapp_name AS k_whatsapp_name, k.last_activity_at AS k_last_activity_at, \
         k.last_contact_at AS k_last_contact_at, k.assigned_to AS k_assigned_to, \
         k.lead_status AS k_lead_status, v.id AS v_id, v.workspace_id AS v_workspace_id, \
         v.contact_id AS v_contact_id, v.status AS v_status, v.unread_count AS v_unread_count, \
         v.last_message_at AS v_last_message_at, v.last_message_preview AS v_last_message_preview, \
         v.last_inbound_at AS v_last_inbound_at, v.last_seq AS v_last_seq, \
         v.kapso_conversation_id AS v_kapso_conversation_id, \
         v.contact_assigned_to AS v_contact_assigned_to, v.lead_status AS v_lead_status \
         FROM workspaces w \
         JOIN contacts k ON k.workspace_id = w.id AND k.phone = $2 \
         JOIN conversations v ON v.contact_id = k.id AND v.workspace_id = w.id \
         WHERE w.kapso_phone_number_id = $1",
    )
    .bind(BUSY_PHONE_NUMBER_ID)
    .bind(&phone)
    .fetch_optional(&mut *tx)
    .await?
    .map(|row: sqlx::sqlite::SqliteRow| {
        use sqlx::Row;
        (
            row.get("k_id"),
            row.get("v_id"),
            row.get("v_last_seq"),
            row.get("v_unread_count"),
        )
    });
    let Some((contact, conversation, seq, unread)) = row else {
        return Err(sqlx::Error::RowNotFound);
    };
    sqlx::query(
        "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, sender_type, kind, \
         text, media, reply_to_wamid, wamid, status, error, raw, sent_at, created_at) \
         VALUES ($1, $2, $3, $4, 'inbound', 'contact', 'text', 'limit replay', NULL, NULL, $5, \
         'received', NULL, $6, $7, $7) ON CONFLICT (workspace_id, wamid) DO NOTHING",
    )
    .bind(message)
    .bind(ws)
    .bind(conversation)
    .bind(seq + 1)
    .bind(&wamid)
    .bind(r#"{"id":"wamid","type":"text","text":{"body":"limit replay"},"kapso":{"direction":"inbound"}}"#)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // The writes nobody reads the results of, sent as one text with the delivery's insert.
    sqlx::query(
        "UPDATE contacts SET whatsapp_name = 'Bench Customer', last_activity_at = $3, \
         activity_sort = $3, last_contact_at = $3, updated_at = $3 WHERE id = $1 AND workspace_id = $2;
         UPDATE conversations SET status = 'open', unread_count = $4, last_message_at = $3, \
         last_message_preview = 'limit replay', last_inbound_at = $3, sort_at = $3, last_seq = $5, \
         kapso_conversation_id = 'kconv-limit', updated_at = $3 WHERE id = $6 AND workspace_id = $2;
         UPDATE conversation_tags SET sort_at = $3 WHERE conversation_id = $6 AND sort_at <> $3;
         INSERT INTO events (workspace_id, kind, conversation_id, contact_id, message_id, created_at) \
         VALUES ($2, 'message.created', $6, $1, $7, $3), ($2, 'conversation.updated', $6, $1, NULL, $3);
         INSERT INTO webhook_deliveries (id, idempotency_key, event, workspace_id, phone_number_id, \
         headers, body, received_at, outcome, error, processed_at, attempts, idempotency_scope) \
         VALUES ($8, $9, 'whatsapp.message.received', $2, $10, '{}', $11, $3, 'processed', NULL, $3, 1, $2) \
         ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(contact)
    .bind(ws)
    .bind(now)
    .bind(unread + 1)
    .bind(seq + 1)
    .bind(conversation)
    .bind(message)
    .bind(delivery)
    .bind(format!("limit-{delivery}"))
    .bind(BUSY_PHONE_NUMBER_ID)
    .bind(vec![b'x'; 900])
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await
}
