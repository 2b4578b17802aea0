//! `limits`: the ceilings of this machine, measured in the same run as the scenarios, which are
//! reported as ratios of them:
//! - the HTTP ceiling: a trivial axum handler in its own process (`inbox-bench bench-echo`), at
//!   the scenarios' concurrency (peak) and at each of their open-loop rates (floor latency);
//! - the ingest transaction, the list query and the thread query replayed straight against the
//!   database at the scenarios' concurrency, with no HTTP in between. They are the product's own
//!   statements, not a copy: the replay calls the store (`inbox-store`) as the product does, over
//!   its own pools (on SQLite: one writer, WAL, `synchronous=FULL`): the domain's ingest use case
//!   on the store's ingest port for a text from a known customer, and the list and thread reads
//!   of its conversation port.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inbox_domain::conversation::{ConversationFilter, ConversationQuery};
use inbox_domain::delivery::NewDelivery;
use inbox_domain::ingest::{IngestOutcome, ingest};
use inbox_domain::message::{ThreadPosition, ThreadQuery};
use inbox_domain::page::Limit;
use inbox_domain::ports::Repository;
use inbox_domain::user::{Actor, Role};
use inbox_domain::{ConversationId, DeliveryId, Timestamp};
use inbox_store::SecretKey;
use serde_json::json;

use super::Ctx;
use super::kapso::{Deliveries, mix};
use super::load::{self, LoadSpec, MakeRequest, Operation, Request};
use super::report::thousands;
use super::servers::{SECRET_KEY, Server};

/// Runs the scenario.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    http_ceiling(ctx).await?;
    // (As long as pgbench's `-T 1` / `-T 5` and the SQLite loops used to run.)
    let duration = match (ctx.opts.quick, ctx.opts.postgres()) {
        (false, _) => Duration::from_secs(5),
        (true, true) => Duration::from_secs(1),
        (true, false) => Duration::from_millis(700),
    };
    database(ctx, duration).await?;
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
    let exe = std::env::current_exe().context("locating the inbox-bench binary")?;
    let echo = Server::start(&exe, &[super::ECHO_COMMAND], &[]).await?;
    let request = Request::get(format!("{}/", echo.base_url), "unused");
    let make: MakeRequest = Arc::new(move |_| request.clone());
    let mut peak = 0.0_f64;
    let mut levels = vec![ctx.list_concurrency, 64];
    levels.dedup();
    for c in levels {
        let run = load::requests(
            &ctx.client,
            LoadSpec::closed(c, ctx.opts.closed_duration()),
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
        let run = load::requests(
            &ctx.client,
            LoadSpec::open(rate as f64, ctx.opts.open_duration(), 512),
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

// ---- The database: the store's own code, straight against the run's database ----

/// The event header Kapso sends with an inbound message.
const EVENT: &str = "whatsapp.message.received";

/// Replays the ingest transaction, the list query and the thread query through the store.
async fn database(ctx: &mut Ctx, duration: Duration) -> anyhow::Result<()> {
    let key = SecretKey::from_base64(SECRET_KEY).map_err(|_| anyhow::anyhow!("bad bench key"))?;
    let repo: Arc<dyn Repository> = inbox_store::open(ctx.db.url(), &key)
        .await
        .context("opening the run's database through the store")?;
    let kind = ctx.db.kind();
    let actor = Actor {
        user_id: ctx.data.owner.id,
        workspace_id: ctx.data.busy,
        role: Role::Owner,
    };

    // Ingest: a text from a known customer, parsed by the product's parser and applied by the
    // domain's ingest use case on the store's ingest port, as the webhook does after the
    // signature check.
    let concurrency = ctx.ingest_concurrency;
    let deliveries = Deliveries {
        url: String::new(),
        tag: format!("{}l", ctx.tag),
        existing: Arc::new(ctx.data.conversations.iter().map(|c| c.index).collect()),
        new_share: 0.0,
        base_secs: ctx.start_secs,
    };
    let op: Operation = {
        let repo = Arc::clone(&repo);
        Arc::new(move |n| {
            let repo = Arc::clone(&repo);
            let body = deliveries.request(n, "limit replay").body.to_vec();
            let key = format!("limit-{}-{n}", deliveries.tag);
            Box::pin(async move { ingest_one(repo.as_ref(), key, body).await })
        })
    };
    let run = load::drive(LoadSpec::closed(concurrency, duration), op).await;
    let (tps, count, errors) = (run.throughput(), run.ok, run.sent - run.ok);
    println!(
        "  {kind} ingest tx c={concurrency}: {} tx/s ({errors} errors)",
        thousands(tps)
    );
    *ctx.added_messages.entry("limits").or_default() += count;
    ctx.report.ceiling(
        "db_ingest_tps",
        tps,
        format!("the ingest transaction replayed through the store's ingest port, {concurrency} tasks (tx/s)"),
    );
    // On SQLite the replay writes from a second process beside inbox-api's own writer, so a
    // few transactions can hit SQLite's busy timeout; that is the harness's business, not the
    // product's. Only a replay that never commits is an error.
    ctx.report.detail("limits", "db_ingest", run.json());
    if count == 0 {
        ctx.report.violation(format!(
            "limits: the replayed ingest transaction never committed ({errors} errors{})",
            run.first_error
                .as_deref()
                .map_or_else(String::new, |e| format!(", first: {e}"))
        ));
    }

    // The default list page, as `GET /api/conversations` asks the store for it.
    let concurrency = ctx.list_concurrency;
    let op: Operation = {
        let repo = Arc::clone(&repo);
        Arc::new(move |_| {
            let repo = Arc::clone(&repo);
            Box::pin(async move {
                let query = ConversationQuery {
                    filter: ConversationFilter::default(),
                    now: Timestamp::now(),
                    limit: Limit::DEFAULT,
                    after: None,
                };
                repo.conversations(actor, query)
                    .await
                    .map(|_| 200)
                    .map_err(|e| e.to_string())
            })
        })
    };
    let run = load::drive(LoadSpec::closed(concurrency, duration), op).await;
    println!(
        "  {kind} list query c={concurrency}: {} q/s ({} errors)",
        thousands(run.throughput()),
        run.sent - run.ok
    );
    ctx.report.ceiling(
        "db_list_qps",
        run.throughput(),
        format!("the default list query through the store's conversation port, {concurrency} tasks (q/s)"),
    );
    ctx.report.detail("limits", "db_list", run.json());

    // The newest 50 messages of random conversations.
    let ids: Arc<Vec<ConversationId>> = Arc::new(
        ctx.data
            .conversations
            .iter()
            .filter(|c| c.messages > 0)
            .map(|c| c.id)
            .collect(),
    );
    let limit = Limit::new(50).map_err(|e| anyhow::anyhow!("page size: {e}"))?;
    let op: Operation = {
        let repo = Arc::clone(&repo);
        Arc::new(move |n| {
            let repo = Arc::clone(&repo);
            let id = ids[(mix(n) % ids.len().max(1) as u64) as usize];
            Box::pin(async move {
                let query = ThreadQuery {
                    position: ThreadPosition::Newest,
                    limit,
                };
                repo.messages(actor, id, query)
                    .await
                    .map(|_| 200)
                    .map_err(|e| e.to_string())
            })
        })
    };
    let run = load::drive(LoadSpec::closed(16, duration), op).await;
    println!(
        "  {kind} thread query c=16: {} q/s ({} errors)",
        thousands(run.throughput()),
        run.sent - run.ok
    );
    ctx.report.ceiling(
        "db_thread_qps",
        run.throughput(),
        "the thread query through the store's conversation port, 16 tasks (q/s)",
    );
    ctx.report.detail("limits", "db_thread", run.json());
    Ok(())
}

/// One delivery through the product's ingest, without HTTP: `Ok(200)` when it was processed.
async fn ingest_one(repo: &dyn Repository, key: String, body: Vec<u8>) -> Result<u16, String> {
    let facts = inbox_kapso::parse_delivery(Some(EVENT), &body).map_err(|e| e.to_string())?;
    let delivery = NewDelivery {
        id: DeliveryId::new(),
        idempotency_key: Some(key),
        event: Some(EVENT.to_owned()),
        phone_number_id: facts.phone_number_id.clone(),
        headers: json!({"content-type": "application/json"}),
        body,
        received_at: Timestamp::now(),
    };
    match ingest(repo, &delivery, &facts).await {
        Ok(IngestOutcome::Processed) => Ok(200),
        Ok(other) => Err(format!("not processed: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
