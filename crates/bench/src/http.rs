//! The API scenarios: `list`, `thread`, `actions` and `send`. Each is written against API.md;
//! a route that answers 404 (or 405) is reported as "skipped: route not available".

use std::sync::Arc;

use serde_json::{Value, json};

use super::Ctx;
use super::kapso::mix;
use super::load::{self, LoadSpec, MakeRequest, Request};
use super::machine::busy_text;
use super::report::{Bar, Ceiling};
use super::targets::Figure;

/// How one request kind is measured.
struct Measure<'a> {
    scenario: &'static str,
    name: &'a str,
    /// The latency figure: its open-loop rate and its bar (p99) come from [`TARGETS`].
    ///
    /// [`TARGETS`]: super::targets::TARGETS
    figure: Figure,
    /// Closed-loop concurrencies tried for the peak.
    concurrencies: Vec<usize>,
    /// The peak's figure in the bar, if it has one.
    peak: Option<Figure>,
    /// Ceilings the peak is compared with.
    ceilings: Vec<&'static str>,
}

/// The open-loop rate of the list's growth probe (see [`list`]): well inside what either
/// database serves at any dataset size on this machine.
pub const GROWTH_RATE: f64 = 500.0;

/// A route is missing when it answers 404 or 405 for a resource that exists.
fn missing(status: u16) -> bool {
    status == 404 || status == 405
}

async fn measure(ctx: &mut Ctx, m: Measure<'_>, make: MakeRequest) -> anyhow::Result<Value> {
    let rate = ctx.rate(m.figure);
    ctx.rates.insert(rate as u64);
    let open = load::requests(
        &ctx.client,
        LoadSpec::open(rate, ctx.opts.open_duration(), 512),
        Arc::clone(&make),
    )
    .await;
    println!(
        "  {} {} open {:.0}/s: p50 {:.2} p99 {:.2} max {:.2} ms, {} of {} 2xx; machine CPU {}",
        m.scenario,
        m.name,
        rate,
        open.latency.p50,
        open.latency.p99,
        open.latency.max,
        open.ok,
        open.sent,
        busy_text(open.machine_cpu_busy)
    );
    let mut peak = (0.0_f64, 0_usize);
    let mut closed = Vec::new();
    for &c in &m.concurrencies {
        let run = load::requests(
            &ctx.client,
            LoadSpec::closed(c, ctx.opts.closed_duration()).starting_at(1_000_000),
            Arc::clone(&make),
        )
        .await;
        println!(
            "  {} {} closed c={c}: {:.0}/s, p99 {:.2} ms",
            m.scenario,
            m.name,
            run.throughput(),
            run.latency.p99
        );
        if run.throughput() > peak.0 {
            peak = (run.throughput(), c);
        }
        closed.push(run.json());
    }
    let failed = open.sent - open.ok;
    if failed > 0 {
        ctx.report.detail(
            m.scenario,
            &format!("{}_non_2xx", m.name),
            json!({"open": open.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()}),
        );
    }
    ctx.report.row(
        m.scenario,
        format!("{} p99 at {:.0}/s{}", m.name, rate, overload_note(&open)),
        open.latency.p99,
        "ms",
        ctx.bar(m.figure),
        Ceiling::Latency(format!("http_p99_at_{}", rate as u64)),
    );
    if !m.concurrencies.is_empty() {
        ctx.report.row(
            m.scenario,
            format!("{} peak (c={})", m.name, peak.1),
            peak.0,
            "/s",
            m.peak.map_or(Bar::None, |figure| ctx.bar(figure)),
            Ceiling::Throughput(m.ceilings.clone()),
        );
    }
    if open.ok < open.sent && !open.overloaded {
        ctx.report.violation(format!(
            "{} {}: {} of {} requests were not answered 2xx ({:?})",
            m.scenario,
            m.name,
            open.sent - open.ok,
            open.sent,
            open.statuses
        ));
    }
    Ok(json!({"open": open.json(), "closed": closed, "peak_concurrency": peak.1}))
}

/// Marks a latency figure measured while the server could not keep up with the rate.
pub fn overload_note(run: &load::Run) -> String {
    if run.overloaded {
        format!(
            " (overloaded: served {:.0}/s, a lower bound)",
            run.throughput()
        )
    } else {
        String::new()
    }
}

fn cursor_param(cursor: &str) -> String {
    form_urlencoded::byte_serialize(cursor.as_bytes()).collect()
}

/// `list`: the busy workspace's conversation list, default and filtered, and a deep page.
pub async fn list(ctx: &mut Ctx) -> anyhow::Result<()> {
    let owner = ctx.data.owner.token.clone();
    let member = ctx.data.member.token.clone();
    let base = ctx.url(&format!(
        "/api/conversations?workspace={}",
        ctx.data.busy_slug
    ));
    let probe = Request::get(base.clone(), &owner);
    let (status, first) = ctx.client.json(&probe).await.map_err(anyhow::Error::msg)?;
    if missing(status) {
        ctx.report
            .skip("list", format!("route not available ({status})"));
        return Ok(());
    }
    anyhow::ensure!(status == 200, "GET {base} answered {status}: {first}");

    // The 20th page: follow next_cursor 19 times.
    let mut cursor = String::new();
    for page in 1..20 {
        let url = if cursor.is_empty() {
            base.clone()
        } else {
            format!("{base}&cursor={}", cursor_param(&cursor))
        };
        let (status, body) = ctx
            .client
            .json(&Request::get(url, &owner))
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 200, "page {page} answered {status}: {body}");
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                ctx.report.violation(format!(
                    "list: page {page} has no next_cursor though {} conversations exist",
                    ctx.data.conversations.len()
                ));
                break;
            }
        }
    }

    let rare = ctx.data.rare_tag();
    let member_id = ctx.data.member.id.to_string();
    let variants: Vec<(&str, String, String)> = vec![
        ("default", base.clone(), owner.clone()),
        (
            "assigned_to=me",
            format!("{base}&assigned_to=me"),
            member.clone(),
        ),
        ("tags=rare", format!("{base}&tags={rare}"), owner.clone()),
        ("unread=true", format!("{base}&unread=true"), owner.clone()),
        (
            "page 20",
            format!("{base}&cursor={}", cursor_param(&cursor)),
            owner.clone(),
        ),
    ];

    // Each answer is checked once for the filter it claims to apply.
    for (name, url, token) in &variants {
        let (status, body) = ctx
            .client
            .json(&Request::get(url.clone(), token))
            .await
            .map_err(anyhow::Error::msg)?;
        if status != 200 {
            ctx.report
                .violation(format!("list {name}: answered {status}: {body}"));
            continue;
        }
        let rows = body["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rows.is_empty() || rows.len() > 50 {
            ctx.report.violation(format!(
                "list {name}: {} conversations on a page",
                rows.len()
            ));
        }
        let sorted = rows.windows(2).all(|w| {
            let key = |v: &Value| v["last_message_at"].as_str().unwrap_or("").to_owned();
            key(&w[0]) >= key(&w[1])
        });
        if !sorted {
            ctx.report
                .violation(format!("list {name}: not ordered by last_message_at"));
        }
        let wrong = rows
            .iter()
            .filter(|c| match *name {
                "assigned_to=me" => c["assigned_to"].as_str() != Some(member_id.as_str()),
                "tags=rare" => !c["contact"]["tags"].as_array().is_some_and(|t| {
                    t.iter()
                        .any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(rare)))
                }),
                "unread=true" => c["unread_count"].as_i64().unwrap_or(0) <= 0,
                _ => false,
            })
            .count();
        if wrong > 0 {
            ctx.report.violation(format!(
                "list {name}: {wrong} conversations do not match the filter"
            ));
        }
    }

    let mut best = (0.0_f64, 16_usize);
    for (name, url, token) in variants {
        let request = Request::get(url, &token);
        let make: MakeRequest = Arc::new(move |_| request.clone());
        let make_default = Arc::clone(&make);
        let concurrencies = if name == "default" {
            if ctx.opts.quick {
                vec![4, 16]
            } else {
                vec![4, 16, 64]
            }
        } else {
            vec![16]
        };
        let details = measure(
            ctx,
            Measure {
                scenario: "list",
                name,
                figure: Figure::List,
                concurrencies,
                peak: Some(Figure::ListPeak),
                ceilings: vec!["http_peak", "db_list_qps"],
            },
            make,
        )
        .await?;
        let mut details = details;
        if name == "default" {
            // The growth bar compares this p99 across dataset sizes. At the bar's rate an
            // overloaded run measures its queue, not the data's size, so growth is judged at a
            // rate every size sustains.
            let probe = load::requests(
                &ctx.client,
                LoadSpec::open(GROWTH_RATE, ctx.opts.open_duration(), 512),
                Arc::clone(&make_default),
            )
            .await;
            println!(
                "  list default open {GROWTH_RATE:.0}/s (growth probe): p50 {:.2} p99 {:.2} max {:.2} ms",
                probe.latency.p50, probe.latency.p99, probe.latency.max
            );
            details["growth_probe"] = probe.json();
            let peak = details["closed"]
                .as_array()
                .and_then(|runs| {
                    runs.iter()
                        .map(|r| {
                            (
                                r["throughput_per_s"].as_f64().unwrap_or(0.0),
                                r["concurrency"].as_u64().unwrap_or(16) as usize,
                            )
                        })
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                })
                .unwrap_or(best);
            best = peak;
        }
        ctx.report.detail("list", name, details);
    }
    ctx.list_concurrency = best.1;
    Ok(())
}

/// Conversation ids to act on: those with messages, picked by a stable hash of the index.
fn targets(ctx: &Ctx, only_window_open: bool) -> Arc<Vec<String>> {
    Arc::new(
        ctx.data
            .conversations
            .iter()
            .filter(|c| c.messages > 0 && (!only_window_open || c.window_open))
            .map(|c| c.id.to_string())
            .collect(),
    )
}

fn pick(list: &[String], i: u64) -> &str {
    &list[(mix(i) % list.len().max(1) as u64) as usize]
}

/// `thread`: the newest 50 messages of random conversations.
pub async fn thread(ctx: &mut Ctx) -> anyhow::Result<()> {
    let ids = targets(ctx, false);
    let owner = ctx.data.owner.token.clone();
    let base = ctx.url("/api/conversations");
    let probe = Request::get(
        format!("{base}/{}/messages?limit=50", pick(&ids, 0)),
        &owner,
    );
    let (status, body) = ctx.client.json(&probe).await.map_err(anyhow::Error::msg)?;
    if missing(status) {
        ctx.report
            .skip("thread", format!("route not available ({status})"));
        return Ok(());
    }
    anyhow::ensure!(status == 200, "thread answered {status}: {body}");
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let ascending = messages
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64());
    if messages.is_empty() || messages.len() > 50 || !ascending {
        ctx.report.violation(format!(
            "thread: {} messages, ascending by seq: {ascending}",
            messages.len()
        ));
    }
    let make: MakeRequest = {
        let ids = Arc::clone(&ids);
        Arc::new(move |i| {
            Request::get(
                format!("{base}/{}/messages?limit=50", pick(&ids, i)),
                &owner,
            )
        })
    };
    let details = measure(
        ctx,
        Measure {
            scenario: "thread",
            name: "newest 50",
            figure: Figure::Thread,
            concurrencies: vec![16],
            peak: None,
            ceilings: vec!["http_peak", "db_thread_qps"],
        },
        make,
    )
    .await?;
    ctx.report.detail("thread", "newest 50", details);
    Ok(())
}

/// Builds the body of the `i`-th action request, given the member's user id.
type ActionBody = fn(u64, &str) -> Value;

/// `actions`: assign, handover and read on random conversations, as the owner.
pub async fn actions(ctx: &mut Ctx) -> anyhow::Result<()> {
    let ids = targets(ctx, false);
    let owner = ctx.data.owner.token.clone();
    let member = ctx.data.member.id.to_string();
    let base = ctx.url("/api/conversations");
    let kinds: [(&str, ActionBody); 3] = [
        ("assign", |i, member| {
            if i % 2 == 0 {
                json!({"assigned_to": member})
            } else {
                json!({"assigned_to": null})
            }
        }),
        ("handover", |i, _| json!({"ai_paused": i % 2 == 0})),
        ("read", |_, _| json!({})),
    ];
    let mut any = false;
    for (action, body) in kinds {
        let url = |id: &str| format!("{base}/{id}/{action}");
        let probe = Request::post_json(url(pick(&ids, 0)), &owner, &body(0, &member));
        let (status, answer) = ctx.client.json(&probe).await.map_err(anyhow::Error::msg)?;
        if missing(status) {
            ctx.report.detail(
                "actions",
                action,
                json!({"skipped": format!("route not available ({status})")}),
            );
            continue;
        }
        if status != 200 {
            ctx.report
                .violation(format!("actions {action}: answered {status}: {answer}"));
            continue;
        }
        if action == "read" && answer["unread_count"].as_i64() != Some(0) {
            ctx.report.violation(format!(
                "actions read: unread_count is {} after read",
                answer["unread_count"]
            ));
        }
        any = true;
        let make: MakeRequest = {
            let ids = Arc::clone(&ids);
            let owner = owner.clone();
            let member = member.clone();
            let base = base.clone();
            Arc::new(move |i| {
                Request::post_json(
                    format!("{base}/{}/{action}", pick(&ids, i)),
                    &owner,
                    &body(i, &member),
                )
            })
        };
        let details = measure(
            ctx,
            Measure {
                scenario: "actions",
                name: action,
                figure: Figure::Action,
                concurrencies: vec![16],
                peak: None,
                ceilings: vec!["http_peak", "db_ingest_tps"],
            },
            make,
        )
        .await?;
        ctx.report.detail("actions", action, details);
    }
    if !any {
        ctx.report.skip("actions", "routes not available (404)");
    }
    Ok(())
}

/// `send`: text replies through the fake Kapso (5 ms), from many admins (sends are limited to
/// 30 a minute per user) to conversations whose reply window is open.
pub async fn send(ctx: &mut Ctx) -> anyhow::Result<()> {
    let ids = targets(ctx, true);
    anyhow::ensure!(!ids.is_empty(), "no conversation has an open window");
    let senders: Arc<Vec<String>> =
        Arc::new(ctx.data.senders.iter().map(|s| s.token.clone()).collect());
    let url = ctx.url("/api/messages/send");
    let request = {
        let ids = Arc::clone(&ids);
        let senders = Arc::clone(&senders);
        let url = url.clone();
        move |i: u64| {
            Request::post_json(
                url.clone(),
                &senders[(i % senders.len() as u64) as usize],
                &json!({"conversation_id": pick(&ids, i), "text": format!("bench reply {i}")}),
            )
        }
    };
    // The probe uses the last sender, which the runs below reach last.
    let (status, answer) = ctx
        .client
        .json(&request(senders.len() as u64 - 1))
        .await
        .map_err(anyhow::Error::msg)?;
    if missing(status) {
        ctx.report
            .skip("send", format!("route not available ({status})"));
        return Ok(());
    }
    if status != 201 {
        ctx.report
            .violation(format!("send: answered {status}: {answer}"));
        return Ok(());
    }
    let before = ctx.kapso.sends().len();
    let make: MakeRequest = Arc::new(request);
    let details = measure(
        ctx,
        Measure {
            scenario: "send",
            name: "text reply",
            figure: Figure::Send,
            concurrencies: vec![32],
            peak: None,
            ceilings: vec!["http_peak", "db_ingest_tps"],
        },
        make,
    )
    .await?;
    let created = details["open"]["ok"].as_u64().unwrap_or(0)
        + details["closed"][0]["ok"].as_u64().unwrap_or(0)
        + 1;
    let sent_to_kapso = (ctx.kapso.sends().len() - before) as u64 + 1;
    if sent_to_kapso < created {
        ctx.report.violation(format!(
            "send: {created} replies answered 201 but Kapso received {sent_to_kapso}"
        ));
    }
    *ctx.added_messages.entry("send").or_default() += created;
    ctx.report.detail("send", "text reply", details);
    ctx.kapso.clear_requests();
    Ok(())
}
