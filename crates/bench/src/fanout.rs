//! `fanout`: 100 SSE clients on `GET /api/events` while deliveries arrive at about 1,000
//! events/s, first through the API's own webhook route (one process), then through a separate
//! `inbox-webhook` process; and 10,000 idle SSE connections, for inbox-api's memory.
//!
//! Each delivery's text carries the time it was posted (`bench-fanout t=<us>`), so a client
//! measures post-to-receipt for every `message.created` event. That includes the ingest
//! transaction before the commit, so it is an upper bound of commit-to-client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::BodyExt;
use hyper::header::{ACCEPT, HeaderValue};
use serde_json::json;
use tokio::task::JoinHandle;

use super::Ctx;
use super::ingest::deliveries;
use super::load::{self, Latency, LoadSpec, MakeRequest, Request, histogram};
use super::machine::{busy_text, rss_mib};
use super::report::{Bar, Ceiling};
use super::servers::Server;
use super::targets::Figure;

/// Precedes the burst's number and the post time: `bench-fanout p=<burst> t=<us>`.
const MARKER: &str = "bench-fanout p=";

/// What the clients saw.
struct Seen {
    histogram: Mutex<Histogram<u64>>,
    /// From the message's `created_at` (in the ingest transaction) to receipt.
    from_commit: Mutex<Histogram<u64>>,
    marked: AtomicU64,
    events: AtomicU64,
    /// `resync` events: a stream that fell behind was told to refetch (allowed by the API).
    resyncs: AtomicU64,
    /// The burst being measured: events of earlier bursts that arrive late are not counted.
    burst: AtomicU64,
    /// Streams open.
    clients: AtomicU64,
    epoch: Instant,
}

impl Seen {
    fn reset(&self) {
        for histogram in [&self.histogram, &self.from_commit] {
            if let Ok(mut h) = histogram.lock() {
                h.reset();
            }
        }
        self.marked.store(0, Ordering::Relaxed);
        self.events.store(0, Ordering::Relaxed);
        self.resyncs.store(0, Ordering::Relaxed);
    }
}

fn events_request(ctx: &Ctx, token: &str) -> Request {
    let mut request = Request::get(
        ctx.url(&format!("/api/events?workspace={}", ctx.data.busy_slug)),
        token,
    );
    request
        .headers
        .push((ACCEPT, HeaderValue::from_static("text/event-stream")));
    request
}

/// Opens one stream; returns its status, and the task reading it when it is 200.
async fn subscribe(
    ctx: &Ctx,
    token: &str,
    seen: Option<Arc<Seen>>,
) -> anyhow::Result<(u16, Option<JoinHandle<()>>)> {
    let response = ctx
        .client
        .open(&events_request(ctx, token))
        .await
        .map_err(anyhow::Error::msg)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Ok((status, None));
    }
    let task = tokio::spawn(async move {
        let mut body = response.into_body();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Some(seen) = seen.as_ref() else {
                continue; // Idle clients only hold the connection.
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = find(&buffer, b"\n\n") {
                let block: Vec<u8> = buffer.drain(..end + 2).collect();
                record(seen, &block);
            }
        }
    });
    Ok((status, Some(task)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Counts an event block; for `message.created` blocks carrying a marker, records latency.
fn record(seen: &Seen, block: &[u8]) {
    let text = String::from_utf8_lossy(block);
    if !text.lines().any(|l| l.starts_with("data:")) {
        return; // A heartbeat comment.
    }
    seen.events.fetch_add(1, Ordering::Relaxed);
    if text.lines().any(|l| {
        l.strip_prefix("event:")
            .is_some_and(|e| e.trim() == "resync")
    }) {
        seen.resyncs.fetch_add(1, Ordering::Relaxed);
    }
    let message_event = text.lines().any(|l| {
        l.strip_prefix("event:")
            .is_some_and(|e| e.trim() == "message.created")
    });
    if !message_event {
        return;
    }
    let Some(at) = text.find(MARKER) else {
        return;
    };
    let rest = &text[at + MARKER.len()..];
    let burst: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if burst.parse::<u64>().ok() != Some(seen.burst.load(Ordering::Relaxed)) {
        return;
    }
    let Some(t) = rest.find(" t=") else {
        return;
    };
    let digits: String = rest[t + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if let Ok(sent) = digits.parse::<u64>() {
        let now = seen.epoch.elapsed().as_micros() as u64;
        if let Ok(mut h) = seen.histogram.lock() {
            let _ = h.record(now.saturating_sub(sent).max(1));
        }
        if let Some(created) = created_at_micros(&text) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            if let Ok(mut h) = seen.from_commit.lock() {
                let _ = h.record(now.saturating_sub(created).max(1));
            }
        }
        seen.marked.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `created_at` of the message in an event block's `data:`, in Unix microseconds.
fn created_at_micros(block: &str) -> Option<u64> {
    let data = block.lines().find_map(|l| l.strip_prefix("data:"))?;
    let value: serde_json::Value = serde_json::from_str(data.trim()).ok()?;
    let at = inbox_domain::Timestamp::parse_rfc3339(value["created_at"].as_str()?).ok()?;
    u64::try_from(at.as_millis()).ok().map(|ms| ms * 1_000)
}

fn marked_deliveries(
    ctx: &Ctx,
    base_url: &str,
    tag: String,
    epoch: Instant,
    burst: u64,
) -> MakeRequest {
    let d = deliveries(ctx, base_url, &tag);
    Arc::new(move |i| {
        let t = epoch.elapsed().as_micros();
        d.request(i, &format!("{MARKER}{burst} t={t}"))
    })
}

/// What the clients measured for a burst's `message.created` events.
struct Latencies {
    /// From the webhook POST: ingest plus fan-out.
    from_post: Latency,
    /// From the message's `created_at`, inside the ingest transaction.
    from_commit: Latency,
}

/// Posts for `duration` at `rate`, waits for stragglers, and returns (acked, latency,
/// marked events seen, all events seen).
async fn burst(
    ctx: &Ctx,
    seen: &Seen,
    make: MakeRequest,
    rate: f64,
    duration: Duration,
    first: u64,
) -> (load::Run, Latencies, u64, u64) {
    seen.reset();
    // The burst's first index names it in the marker (see `marked_deliveries`).
    seen.burst.store(first, Ordering::Relaxed);
    let run = load::requests(
        &ctx.client,
        LoadSpec::open(rate, duration, 256).starting_at(first),
        make,
    )
    .await;
    // Streams may lag behind the posts (a poll interval across processes, or a slow fan-out):
    // wait until every client has every acknowledged message, up to a limit. What has not
    // arrived by then counts as not delivered.
    let expected = run.ok * seen_clients(seen);
    let deadline = Instant::now() + Duration::from_secs(if ctx.opts.quick { 3 } else { 10 });
    while seen.marked.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let latency = seen
        .histogram
        .lock()
        .map(|h| Latency::of(&h))
        .unwrap_or_default();
    let from_commit = seen
        .from_commit
        .lock()
        .map(|h| Latency::of(&h))
        .unwrap_or_default();
    (
        run,
        Latencies {
            from_post: latency,
            from_commit,
        },
        seen.marked.load(Ordering::Relaxed),
        seen.events.load(Ordering::Relaxed),
    )
}

/// Streams each burst is expected to reach.
fn seen_clients(seen: &Seen) -> u64 {
    seen.clients.load(Ordering::Relaxed)
}

/// Runs the scenario.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let clients = 100;
    let seen = Arc::new(Seen {
        histogram: Mutex::new(histogram()),
        from_commit: Mutex::new(histogram()),
        marked: AtomicU64::new(0),
        events: AtomicU64::new(0),
        resyncs: AtomicU64::new(0),
        burst: AtomicU64::new(0),
        clients: AtomicU64::new(clients),
        epoch: ctx.epoch,
    });
    let token = ctx.data.owner.token.clone();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (status, task) = subscribe(ctx, &token, Some(Arc::clone(&seen))).await?;
        match task {
            Some(task) => tasks.push(task),
            None if status == 404 || status == 405 => {
                ctx.report
                    .skip("fanout", format!("route not available ({status})"));
                return Ok(());
            }
            None => anyhow::bail!("GET /api/events answered {status}"),
        }
    }
    let outcome = measure(ctx, &seen, clients, &tasks).await;
    for task in tasks {
        task.abort();
    }
    outcome?;
    idle(ctx).await
}

async fn measure(
    ctx: &mut Ctx,
    seen: &Arc<Seen>,
    clients: u64,
    _tasks: &[JoinHandle<()>],
) -> anyhow::Result<()> {
    let epoch = ctx.epoch;
    // Calibrate: how many events does one delivery make? (message.created, conversation and
    // contact updates, ...). The rate is then set for about 1,000 events/s per client.
    let make = marked_deliveries(ctx, &ctx.api.base_url, format!("{}f", ctx.tag), epoch, 0);
    let (calibration, _, _, events) = burst(
        ctx,
        seen,
        Arc::clone(&make),
        100.0,
        Duration::from_millis(300),
        0,
    )
    .await;
    // Later indexes, so no delivery repeats one of the calibration's.
    let make = marked_deliveries(
        ctx,
        &ctx.api.base_url,
        format!("{}f", ctx.tag),
        epoch,
        1_000_000,
    );
    let per_delivery = events as f64 / (calibration.ok.max(1) * clients) as f64;
    anyhow::ensure!(
        per_delivery > 0.0,
        "no event reached the {clients} SSE clients after {} deliveries",
        calibration.ok
    );
    // Deliveries faster than ingest can commit would measure the webhook's queue, not the
    // fan-out: stay at 60% of the measured ingest peak when that is below 1,000 events/s.
    let wanted = 1_000.0 / per_delivery;
    let rate = ctx
        .ingest_peak
        .map_or(wanted, |peak| wanted.min(peak * 0.6))
        .round()
        .max(10.0);
    let (
        run,
        Latencies {
            from_post: latency,
            from_commit,
        },
        marked,
        events,
    ) = burst(
        ctx,
        seen,
        Arc::clone(&make),
        rate,
        ctx.opts.open_duration(),
        1_000_000,
    )
    .await;
    let delivered = marked as f64 / (run.ok.max(1) * clients) as f64;
    let events_per_s = events as f64 / clients as f64 / ctx.opts.open_duration().as_secs_f64();
    println!(
        "  fanout in-process: {per_delivery:.1} events/delivery, {rate:.0} deliveries/s, {events_per_s:.0} events/s per client; commit-to-client p50 {:.2} p99 {:.2} max {:.2} ms; post-to-client p50 {:.2} p99 {:.2} max {:.2} ms (their acks: p50 {:.2} p99 {:.2} ms); {:.1}% delivered; machine CPU {}",
        from_commit.p50,
        from_commit.p99,
        from_commit.max,
        latency.p50,
        latency.p99,
        latency.max,
        run.latency.p50,
        run.latency.p99,
        delivered * 100.0,
        busy_text(run.machine_cpu_busy)
    );
    *ctx.added_messages.entry("fanout").or_default() += calibration.ok + run.ok;
    latency_rows(
        ctx,
        format!("commit-to-client p99, {clients} clients, {events_per_s:.0} events/s, one process"),
        &from_commit,
        &latency,
        Figure::FanoutInProcess,
        delivered,
    );
    ctx.report.detail(
        "fanout",
        "in_process",
        json!({"clients": clients, "events_per_delivery": per_delivery, "deliveries_per_s": rate,
               "events_per_s_per_client": events_per_s, "latency_post_to_client": latency.json(),
               "latency_commit_to_client": from_commit.json(),
               "delivered_ratio": delivered, "ingest": run.json()}),
    );
    let resyncs = seen.resyncs.load(Ordering::Relaxed);
    ctx.report
        .detail("fanout", "in_process_resyncs", json!(resyncs));
    // A stream that falls behind may be sent `resync` instead (API.md); only silent loss is
    // a violation.
    if delivered < 0.999 && resyncs == 0 {
        ctx.report.violation(format!(
            "fanout: only {:.2}% of message events reached every client, with no resync",
            delivered * 100.0
        ));
    }

    // Across processes: deliveries to inbox-webhook, events read by inbox-api's clients.
    let webhook = Server::start(&ctx.bin_dir.join("inbox-webhook"), &[], &ctx.server_env()).await?;
    let make = marked_deliveries(
        ctx,
        &webhook.base_url,
        format!("{}x", ctx.tag),
        epoch,
        2_000_000,
    );
    // 100 deliveries/s, or less when ingest cannot take that (see above).
    let cross_rate = ctx
        .ingest_peak
        .map_or(100.0, |peak| (peak * 0.6).min(100.0))
        .round()
        .max(5.0);
    let (
        run,
        Latencies {
            from_post: latency,
            from_commit,
        },
        marked,
        _,
    ) = burst(
        ctx,
        seen,
        make,
        cross_rate,
        ctx.opts.open_duration(),
        2_000_000,
    )
    .await;
    webhook.stop().await;
    let delivered = marked as f64 / (run.ok.max(1) * clients) as f64;
    println!(
        "  fanout across processes: {cross_rate:.0} deliveries/s; commit-to-client p50 {:.2} p99 {:.2} max {:.2} ms; post-to-client p50 {:.2} p99 {:.2} max {:.2} ms; {:.1}% delivered; machine CPU {}",
        from_commit.p50,
        from_commit.p99,
        from_commit.max,
        latency.p50,
        latency.p99,
        latency.max,
        delivered * 100.0,
        busy_text(run.machine_cpu_busy)
    );
    *ctx.added_messages.entry("fanout").or_default() += run.ok;
    latency_rows(
        ctx,
        "inbox-webhook process to API client p99 (from commit)".to_owned(),
        &from_commit,
        &latency,
        Figure::FanoutAcrossProcesses,
        delivered,
    );
    ctx.report.detail(
        "fanout",
        "across_processes",
        json!({"clients": clients, "deliveries_per_s": cross_rate,
               "latency_post_to_client": latency.json(),
               "latency_commit_to_client": from_commit.json(), "delivered_ratio": delivered,
               "ingest": run.json()}),
    );
    let resyncs = seen.resyncs.load(Ordering::Relaxed);
    ctx.report
        .detail("fanout", "across_processes_resyncs", json!(resyncs));
    if delivered < 0.999 && resyncs == 0 {
        ctx.report.violation(format!(
            "fanout across processes: only {:.2}% of message events reached every client, with no resync",
            delivered * 100.0
        ));
    }
    Ok(())
}

/// A fan-out bar row, judged from commit, with the POST-based figure beside it for context.
fn latency_rows(
    ctx: &mut Ctx,
    figure: String,
    from_commit: &Latency,
    from_post: &Latency,
    target: Figure,
    delivered: f64,
) {
    let bar = ctx.bar(target);
    ctx.report.row(
        "fanout",
        figure,
        from_commit.p99,
        "ms",
        bar,
        Ceiling::Given(delivered.min(1.0)),
    );
    ctx.report.row(
        "fanout",
        "  the same from the webhook POST (ingest included)",
        from_post.p99,
        "ms",
        Bar::None,
        Ceiling::None,
    );
}

/// Opens many idle streams and reads inbox-api's resident memory.
async fn idle(ctx: &mut Ctx) -> anyhow::Result<()> {
    let target: usize = if ctx.opts.quick { 1_000 } else { 10_000 };
    let before = rss_mib(ctx.api.pid).unwrap_or(0.0);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(target);
    let mut failures = 0;
    // Open in waves, so the accept queue is never the thing measured.
    let token = ctx.data.owner.token.clone();
    while tasks.len() + failures < target {
        let wave = (target - tasks.len() - failures).min(250);
        let opened =
            futures::future::join_all((0..wave).map(|_| subscribe(ctx, &token, None))).await;
        for result in opened {
            match result {
                Ok((_, Some(task))) => tasks.push(task),
                _ => failures += 1,
            }
        }
        if failures > target / 10 {
            break;
        }
    }
    // Let allocations settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_mib(ctx.api.pid).unwrap_or(0.0);
    println!(
        "  connections: {} idle SSE streams open ({failures} failed) in {:.1} s; inbox-api RSS {before:.0} -> {after:.0} MiB",
        tasks.len(),
        started.elapsed().as_secs_f64()
    );
    ctx.report.row(
        "connections",
        format!("inbox-api RSS with {} idle SSE clients", tasks.len()),
        after,
        "MiB",
        ctx.bar(Figure::IdleStreams),
        Ceiling::None,
    );
    ctx.report.detail(
        "fanout",
        "idle",
        json!({"target": target, "open": tasks.len(), "failed": failures,
               "rss_before_mib": before, "rss_after_mib": after,
               "kib_per_connection": if tasks.is_empty() { 0.0 } else { (after - before) * 1024.0 / tasks.len() as f64 }}),
    );
    if failures > 0 {
        ctx.report.violation(format!(
            "connections: {failures} of {target} idle SSE streams could not be opened"
        ));
    }
    for task in tasks {
        task.abort();
    }
    // Give the server a moment to notice the closed connections before the next scenario.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}
