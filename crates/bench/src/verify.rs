//! The checks after the run: the schema's invariants hold over every row (for the seeded data
//! and for everything the product and the replays wrote), the seeded data is intact, and no
//! scenario wrote into another tenant. Any violation fails the command.

use serde_json::json;

use super::Ctx;
use super::probe::{Arg, Probe};

/// Invariants, each a query counting the rows that break it.
const INVARIANTS: [(&str, &str); 7] = [
    (
        "conversations.sort_at = COALESCE(last_message_at, 0)",
        "SELECT COUNT(*) FROM conversations WHERE sort_at <> COALESCE(last_message_at, 0)",
    ),
    (
        "last_seq is the newest message's seq, and seq runs 1..=last_seq",
        "SELECT COUNT(*) FROM conversations v WHERE v.last_seq <> \
         (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = v.id) \
         OR v.last_seq <> (SELECT COALESCE(MAX(m.seq), 0) FROM messages m WHERE m.conversation_id = v.id)",
    ),
    (
        "conversation_tags carry their conversation's sort_at",
        "SELECT COUNT(*) FROM conversation_tags t JOIN conversations v ON v.id = t.conversation_id \
         WHERE t.sort_at <> v.sort_at OR t.workspace_id <> v.workspace_id",
    ),
    (
        "conversations copy their contact's assignee and lead status",
        "SELECT COUNT(*) FROM conversations v JOIN contacts k ON k.id = v.contact_id \
         WHERE v.lead_status <> k.lead_status \
         OR (v.contact_assigned_to IS NULL) <> (k.assigned_to IS NULL) \
         OR v.contact_assigned_to <> k.assigned_to",
    ),
    (
        "contacts.activity_sort = COALESCE(last_activity_at, 0)",
        "SELECT COUNT(*) FROM contacts WHERE activity_sort <> COALESCE(last_activity_at, 0)",
    ),
    (
        // Every delivery the harness posts is well formed: one stored as failed was answered
        // 200 without its facts applied, which is exactly how messages used to go missing
        // (SQLite's BUSY_SNAPSHOT between the API and webhook processes).
        "no delivery was stored as failed",
        "SELECT COUNT(*) FROM webhook_deliveries WHERE outcome = 'failed'",
    ),
    (
        "messages live in their conversation's workspace",
        "SELECT COUNT(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id \
         WHERE m.workspace_id <> v.workspace_id",
    ),
];

/// Runs every check, recording violations and details in the report.
pub async fn dataset(ctx: &mut Ctx) -> anyhow::Result<()> {
    let probe = Probe::connect(ctx.db.url()).await?;
    let mut checked = serde_json::Map::new();
    for (name, sql) in INVARIANTS {
        let broken = probe.int(sql, &[]).await?;
        checked.insert(name.to_owned(), json!(broken));
        if broken != 0 {
            ctx.report
                .violation(format!("invariant broken in {broken} rows: {name}"));
        }
    }

    let ws = Arg::Id(ctx.data.busy.as_uuid());
    let seeded_left = probe
        .int(
            "SELECT COUNT(*) FROM messages WHERE workspace_id = $1 AND wamid LIKE 'wamid.seed-busy.%'",
            std::slice::from_ref(&ws),
        )
        .await?;
    if seeded_left != ctx.data.busy_messages as i64 {
        ctx.report.violation(format!(
            "the busy workspace has {seeded_left} seeded messages, {} were seeded",
            ctx.data.busy_messages
        ));
    }
    let elsewhere = probe
        .int(
            "SELECT COUNT(*) FROM messages WHERE workspace_id <> $1",
            std::slice::from_ref(&ws),
        )
        .await?;
    if elsewhere != ctx.data.small_messages as i64 {
        ctx.report.violation(format!(
            "the small workspaces hold {elsewhere} messages, {} were seeded (writes leaked across tenants?)",
            ctx.data.small_messages
        ));
    }
    let small_conversations = probe
        .int(
            "SELECT COUNT(*) FROM conversations WHERE workspace_id <> $1",
            std::slice::from_ref(&ws),
        )
        .await?;
    if small_conversations != ctx.data.small_conversations as i64 {
        ctx.report.violation(format!(
            "the small workspaces hold {small_conversations} conversations, {} were seeded",
            ctx.data.small_conversations
        ));
    }
    let busy_messages = probe
        .int(
            "SELECT COUNT(*) FROM messages WHERE workspace_id = $1",
            std::slice::from_ref(&ws),
        )
        .await?;
    let added: u64 = ctx.added_messages.values().sum();
    checked.insert(
        "busy_messages".to_owned(),
        json!({"stored": busy_messages, "seeded": ctx.data.busy_messages,
               "added_by_scenarios": ctx.added_messages}),
    );
    // Sends answered 502 also store a (failed) message, so only a shortfall is a violation.
    if (busy_messages as u64) < ctx.data.busy_messages + added {
        ctx.report.violation(format!(
            "the busy workspace has {busy_messages} messages; seeded {} + acknowledged {added}",
            ctx.data.busy_messages
        ));
    }
    ctx.report.detail("verify", "checks", json!(checked));

    // Plans of the hottest queries, for reading the report's figures.
    let plans = [
        (
            "list_default",
            "SELECT c.id FROM conversations c JOIN contacts k ON k.id = c.contact_id \
             WHERE c.workspace_id = $1 ORDER BY c.sort_at DESC, c.id DESC LIMIT 50",
        ),
        (
            "list_rare_tag",
            "SELECT t.conversation_id FROM conversation_tags t WHERE t.workspace_id = $1 \
             AND t.tag = 'influencer' ORDER BY t.sort_at DESC, t.conversation_id DESC LIMIT 50",
        ),
        (
            "list_unread",
            "SELECT c.id FROM conversations c WHERE c.workspace_id = $1 AND c.unread_count > 0 \
             ORDER BY c.sort_at DESC, c.id DESC LIMIT 50",
        ),
    ];
    // And the ingest transaction's lookups, with the same parameter shapes as the product.
    let ingest_plans = [
        (
            "ingest_find_contact",
            "SELECT id FROM contacts WHERE workspace_id = $1 AND (phone = $2 OR bsuid = $3) \
             ORDER BY CASE WHEN phone = $2 THEN 0 ELSE 1 END LIMIT 1",
        ),
        (
            "ingest_pending_statuses",
            "DELETE FROM pending_statuses WHERE workspace_id = $1 AND wamid = $2 RETURNING status",
        ),
        (
            "ingest_tags_sort_key",
            "UPDATE conversation_tags SET sort_at = $3 WHERE conversation_id = $1 AND sort_at <> $3 AND $2 = $2",
        ),
    ];
    for (name, sql) in ingest_plans {
        let args = [
            ws.clone(),
            Arg::Text("+628120000042".to_owned()),
            Arg::Text(String::new()),
        ];
        let args = if name == "ingest_pending_statuses" {
            &args[..2]
        } else {
            &args[..]
        };
        // EXPLAIN ANALYZE would run the DELETE/UPDATE on PostgreSQL: plans only there.
        let result = if matches!(probe, Probe::Postgres(_)) && name != "ingest_find_contact" {
            continue;
        } else {
            probe.explain(sql, args).await
        };
        match result {
            Ok(plan) => ctx.report.detail("plans", name, json!(plan)),
            Err(e) => ctx.report.detail("plans", name, json!(format!("{e:#}"))),
        }
    }
    for (name, sql) in plans {
        match probe.explain(sql, std::slice::from_ref(&ws)).await {
            Ok(plan) => ctx.report.detail("plans", name, json!(plan)),
            Err(e) => ctx.report.detail("plans", name, json!(format!("{e:#}"))),
        }
    }
    probe.close().await;
    println!(
        "xtask: bench: checks: {} violation(s)",
        ctx.report.violations.len()
    );
    Ok(())
}
