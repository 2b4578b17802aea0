//! `ingest`: signed, distinct Kapso deliveries posted to the webhook; peak acknowledged
//! messages per second over increasing concurrency, ack latency at the bar's rate, then the
//! exactly-once checks.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::Ctx;
use super::kapso::Deliveries;
use super::load::{self, LoadSpec, MakeRequest};
use super::machine::busy_text;
use super::probe::{Arg, Probe};
use super::report::{Bar, Ceiling};
use super::targets::Figure;

/// Deliveries for the busy workspace posted to `base_url`: 90% from existing customers, 10%
/// from new ones.
pub fn deliveries(ctx: &Ctx, base_url: &str, tag: &str) -> Deliveries {
    Deliveries {
        url: format!("{base_url}/api/webhook/kapso"),
        tag: tag.to_owned(),
        existing: Arc::new(ctx.data.conversations.iter().map(|c| c.index).collect()),
        new_share: 0.10,
        base_secs: ctx.start_secs,
    }
}

/// Runs the scenario.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let tag = format!("{}i", ctx.tag);
    let deliveries = deliveries(ctx, &ctx.api.base_url, &tag);
    let make: MakeRequest = {
        let d = deliveries.clone();
        Arc::new(move |i| d.request(i, &format!("bench ingest {i}")))
    };

    // Peak: closed loop at increasing concurrency. Indexes never repeat across runs, so every
    // delivery is distinct.
    let levels: &[usize] = if ctx.opts.quick {
        &[1, 4, 16]
    } else {
        &[1, 2, 4, 8, 16, 32, 64]
    };
    let mut next = 0_u64;
    let mut acked: Vec<u64> = Vec::new();
    let mut peak = (0.0_f64, 1_usize);
    let mut steps = Vec::new();
    for &concurrency in levels {
        let run = load::requests(
            &ctx.client,
            LoadSpec::closed(concurrency, ctx.opts.closed_duration())
                .starting_at(next)
                .keeping_acked(),
            Arc::clone(&make),
        )
        .await;
        if run.mostly(404) {
            ctx.report.skip("ingest", "route not available (404)");
            return Ok(());
        }
        anyhow::ensure!(
            run.ok > 0 || run.errors == 0,
            "no delivery was acknowledged at concurrency {concurrency}: {}",
            run.first_error.as_deref().unwrap_or("?")
        );
        next += run.sent + 1;
        acked.extend(&run.acked);
        let throughput = run.throughput();
        println!(
            "  ingest c={concurrency}: {:.0} msgs/s, p99 {:.2} ms{}",
            throughput,
            run.latency.p99,
            non_2xx(&run)
        );
        if throughput > peak.0 {
            peak = (throughput, concurrency);
        }
        steps.push(run.json());
    }
    ctx.ingest_concurrency = peak.1;
    ctx.ingest_peak = Some(peak.0);
    ctx.report.detail("ingest", "closed", json!(steps));

    // Latency at the bar's rate, open loop.
    let rate = ctx.rate(Figure::IngestAck);
    ctx.rates.insert(rate as u64);
    let open = load::requests(
        &ctx.client,
        LoadSpec::open(rate, ctx.opts.open_duration(), 512)
            .starting_at(next)
            .keeping_acked(),
        Arc::clone(&make),
    )
    .await;
    next += open.sent + 1;
    acked.extend(&open.acked);
    println!(
        "  ingest open {rate:.0}/s: p50 {:.2} p99 {:.2} max {:.2} ms{}; machine CPU {}",
        open.latency.p50,
        open.latency.p99,
        open.latency.max,
        non_2xx(&open),
        busy_text(open.machine_cpu_busy)
    );
    ctx.report.detail("ingest", "open", open.json());

    ctx.report.row(
        "ingest",
        format!("peak acked msgs/s (c={})", peak.1),
        peak.0,
        "/s",
        ctx.bar(Figure::IngestPeak),
        Ceiling::Throughput(vec!["db_ingest_tps"]),
    );
    ctx.report.row(
        "ingest",
        format!(
            "ack p99 at {rate:.0}/s{}",
            super::http::overload_note(&open)
        ),
        open.latency.p99,
        "ms",
        ctx.bar(Figure::IngestAck),
        Ceiling::Latency(format!("http_p99_at_{}", rate as u64)),
    );
    ctx.report.row(
        "ingest",
        format!(
            "ack p50 at {rate:.0}/s{}",
            super::http::overload_note(&open)
        ),
        open.latency.p50,
        "ms",
        Bar::None,
        Ceiling::Latency(format!("http_p50_at_{}", rate as u64)),
    );

    verify(ctx, &deliveries, &acked, next).await
}

fn non_2xx(run: &load::Run) -> String {
    let other: Vec<String> = run
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, n)| format!("{n}x{s}"))
        .collect();
    let mut out = String::new();
    if !other.is_empty() {
        out.push_str(&format!(" [{}]", other.join(", ")));
    }
    if run.errors > 0 {
        out.push_str(&format!(
            " [{} transport errors: {}]",
            run.errors,
            run.first_error.as_deref().unwrap_or("")
        ));
    }
    out
}

/// Every acked delivery's message is stored exactly once; re-posting 10% of them changes
/// nothing (no new message, delivery or event, and each is answered 200).
async fn verify(
    ctx: &mut Ctx,
    deliveries: &Deliveries,
    acked: &[u64],
    next: u64,
) -> anyhow::Result<()> {
    let probe = Probe::connect(ctx.db.url()).await?;
    let ws = Arg::Id(ctx.data.busy.as_uuid());
    let prefix = Arg::Text(format!("wamid.bench.{}.%", deliveries.tag));
    let stored: Vec<String> = probe
        .strings(
            "SELECT wamid FROM messages WHERE workspace_id = $1 AND wamid LIKE $2",
            &[ws.clone(), prefix.clone()],
        )
        .await?;
    let stored_set: HashSet<&str> = stored.iter().map(String::as_str).collect();
    let acked_wamids: HashSet<String> = acked.iter().map(|i| deliveries.wamid(*i)).collect();
    let missing = acked_wamids
        .iter()
        .filter(|w| !stored_set.contains(w.as_str()))
        .count();
    let duplicates = stored.len() - stored_set.len();
    // A delivery can be stored without its ack reaching us (a transport error after commit);
    // that is not a violation, but is worth reporting.
    let unacked_stored = stored_set
        .len()
        .saturating_sub(acked_wamids.len() - missing);
    if missing > 0 {
        ctx.report.violation(format!(
            "ingest: {missing} acknowledged deliveries have no stored message"
        ));
    }
    if duplicates > 0 {
        ctx.report.violation(format!(
            "ingest: {duplicates} messages stored more than once"
        ));
    }
    *ctx.added_messages.entry("ingest").or_default() += stored_set.len() as u64;

    let before = counts(&probe, &ws).await?;

    // Re-post a tenth of the acked deliveries, byte for byte (same idempotency keys).
    let step = 10;
    let again: Arc<Vec<u64>> = Arc::new(acked.iter().copied().step_by(step).collect());
    let make: MakeRequest = {
        let d = deliveries.clone();
        let again = Arc::clone(&again);
        Arc::new(move |n| {
            let i = again[(n as usize) % again.len().max(1)];
            d.request(i, &format!("bench ingest {i}"))
        })
    };
    let mut reposted = 0;
    let mut refused = 0;
    if !again.is_empty() {
        let reposts =
            load::requests(&ctx.client, LoadSpec::count(8, again.len() as u64), make).await;
        reposted = reposts.ok;
        refused = reposts.sent - reposts.ok;
    }
    // A second pass with new idempotency keys but the same wamids, as Kapso does when a batch
    // exhausts its retries and is re-sent one by one: dedupe by wamid must hold too.
    let rekeyed: Arc<Vec<u64>> =
        Arc::new(acked.iter().copied().skip(5).step_by(step * 10).collect());
    let rekeyed_ok = if rekeyed.is_empty() {
        0
    } else {
        let d = deliveries.clone();
        let list = Arc::clone(&rekeyed);
        let make: MakeRequest = Arc::new(move |n| {
            let i = list[(n as usize) % list.len().max(1)];
            let mut request = d.request(i, &format!("bench ingest {i}"));
            for (name, value) in &mut request.headers {
                if name.as_str() == "x-idempotency-key" {
                    if let Ok(v) = format!("rekeyed-{}", Uuid::now_v7()).parse() {
                        *value = v;
                    }
                }
            }
            request
        });
        load::requests(&ctx.client, LoadSpec::count(4, rekeyed.len() as u64), make)
            .await
            .ok
    };
    let after = counts(&probe, &ws).await?;
    if refused > 0 {
        ctx.report.violation(format!(
            "ingest: {refused} of {} re-posted deliveries were not answered 2xx",
            again.len()
        ));
    }
    if after.0 != before.0 || after.3 != before.3 {
        ctx.report.violation(format!(
            "ingest: re-posting changed the stored messages ({} -> {}, sum of last_seq {} -> {})",
            before.0, after.0, before.3, after.3
        ));
    }
    if after.1 - before.1 != rekeyed_ok as i64 {
        ctx.report.violation(format!(
            "ingest: re-posting with the same keys stored new deliveries ({} -> {}, {} re-keyed expected)",
            before.1, after.1, rekeyed_ok
        ));
    }
    if after.2 != before.2 {
        ctx.report.violation(format!(
            "ingest: re-posting appended events ({} -> {})",
            before.2, after.2
        ));
    }
    ctx.report.detail(
        "ingest",
        "exactly_once",
        json!({
            "acked": acked.len(),
            "stored": stored_set.len(),
            "missing": missing,
            "duplicates": duplicates,
            "stored_without_ack": unacked_stored,
            "reposted_same_key": again.len(),
            "reposted_ok": reposted,
            "reposted_new_key_same_wamid": rekeyed.len(),
            "messages_before_after": [before.0, after.0],
            "deliveries_before_after": [before.1, after.1],
            "events_before_after": [before.2, after.2],
            "next_index": next,
        }),
    );
    println!(
        "  ingest: {} acked, {} stored once, {missing} missing, {duplicates} duplicated; {} re-posted, nothing changed: {}",
        acked.len(),
        stored_set.len(),
        again.len(),
        after.0 == before.0 && after.2 == before.2
    );
    probe.close().await;
    Ok(())
}

/// (messages in the busy workspace, deliveries, events, sum of last_seq there).
async fn counts(probe: &Probe, ws: &Arg) -> anyhow::Result<(i64, i64, i64, i64)> {
    let messages = probe
        .int(
            "SELECT COUNT(*) FROM messages WHERE workspace_id = $1",
            std::slice::from_ref(ws),
        )
        .await?;
    let deliveries = probe
        .int("SELECT COUNT(*) FROM webhook_deliveries", &[])
        .await?;
    let events = probe.int("SELECT COUNT(*) FROM events", &[]).await?;
    let seqs = probe
        .int(
            "SELECT CAST(COALESCE(SUM(last_seq), 0) AS BIGINT) FROM conversations WHERE workspace_id = $1",
            std::slice::from_ref(ws),
        )
        .await?;
    Ok((messages, deliveries, events, seqs))
}
