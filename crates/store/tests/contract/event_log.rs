use inbox_domain::WorkspaceId;
use inbox_domain::event::LogPosition;
use inbox_domain::timestamp::Timestamp;

use inbox_domain::event::LoggedEvent;

use crate::{Harness, Raw};

/// Waits until `expected` events are settled. On PostgreSQL an event settles once every
/// transaction older than its own has ended, cluster-wide, and the suite runs other tests'
/// migrations on the same server at the same time; this waits on that condition, bounded.
async fn settled(h: &Harness, workspace: Option<WorkspaceId>, expected: usize) -> Vec<LoggedEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = h
            .repo
            .events_after(LogPosition::START, workspace, 1000)
            .await
            .expect("read");
        if events.len() >= expected || std::time::Instant::now() > deadline {
            assert_eq!(events.len(), expected, "settled events");
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
use crate::workspaces::new_workspace;

pub async fn reads_in_order_per_workspace_and_in_pages(h: Harness) {
    let a = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("a")
        .id;
    let b = h
        .repo
        .create_workspace(new_workspace("bbb"))
        .await
        .expect("b")
        .id;
    assert_eq!(h.repo.log_head().await.expect("head"), LogPosition::START);
    for i in 0..10 {
        let ws = if i % 2 == 0 { a } else { b };
        h.raw.insert_event(ws.as_uuid(), 1000 + i).await;
    }
    let all = settled(&h, None, 10).await;
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "log order"
    );
    let only_a = h
        .repo
        .events_after(LogPosition::START, Some(a), 100)
        .await
        .expect("a");
    assert_eq!(only_a.len(), 5);
    assert!(only_a.iter().all(|e| e.event.workspace_id == a));

    let mut seen = Vec::new();
    let mut at = LogPosition::START;
    loop {
        let page = h.repo.events_after(at, None, 3).await.expect("page");
        let Some(last) = page.last() else { break };
        at = last.position;
        seen.extend(page.into_iter().map(|e| e.event.id));
    }
    assert_eq!(seen, all.iter().map(|e| e.event.id).collect::<Vec<_>>());
    assert_eq!(h.repo.log_head().await.expect("head"), all[9].position);
}

pub async fn positions_resume_and_prune(h: Harness) {
    let a = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("a")
        .id;
    for created_at in [1_000, 2_000, 3_000] {
        h.raw.insert_event(a.as_uuid(), created_at).await;
    }
    let all = settled(&h, Some(a), 3).await;
    let second = all[1].event.id;
    let at = h
        .repo
        .position_of(a, second)
        .await
        .expect("pos")
        .expect("found");
    let rest = h.repo.events_after(at, Some(a), 10).await.expect("rest");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.id, all[2].event.id);
    assert_eq!(
        h.repo
            .position_of(WorkspaceId::new(), second)
            .await
            .expect("pos"),
        None
    );

    assert_eq!(
        h.repo
            .prune_events(Timestamp::from_millis(2_500))
            .await
            .expect("prune"),
        2
    );
    assert_eq!(
        h.repo.position_of(a, second).await.expect("pos"),
        None,
        "pruned"
    );
    assert_eq!(
        h.repo
            .events_after(LogPosition::START, Some(a), 10)
            .await
            .expect("left")
            .len(),
        1
    );
}

pub async fn late_commits_are_not_overtaken(h: Harness) {
    let Raw::Postgres(pool) = &h.raw else {
        panic!("PostgreSQL only")
    };
    let ws = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("ws")
        .id;
    let insert = "INSERT INTO events (workspace_id, kind, created_at) VALUES ($1, 'contact.updated', 0) RETURNING id";
    let mut slow = pool.begin().await.expect("begin slow");
    let slow_id: i64 = sqlx::query_scalar(insert)
        .bind(ws.as_uuid())
        .fetch_one(&mut *slow)
        .await
        .expect("slow");
    let fast_id: i64 = sqlx::query_scalar(insert)
        .bind(ws.as_uuid())
        .fetch_one(pool)
        .await
        .expect("fast");
    assert!(slow_id < fast_id);

    // The later id committed first; handing it out now would let a reader resume past the
    // slow event, so nothing is settled yet.
    let early = h
        .repo
        .events_after(LogPosition::START, Some(ws), 10)
        .await
        .expect("early");
    assert!(early.is_empty(), "{early:?}");
    slow.commit().await.expect("commit slow");

    let settled = settled(&h, Some(ws), 2).await;
    let ids: Vec<i64> = settled.iter().map(|e| e.event.id.0).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&slow_id) && ids.contains(&fast_id));
}

pub async fn other_databases_do_not_hold_events_back(h: Harness) {
    let Raw::Postgres(pool) = &h.raw else {
        panic!("PostgreSQL only")
    };
    let ws = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("ws")
        .id;
    // A long write transaction in another database of the same server.
    let admin_url = std::env::var("INBOX_TEST_DATABASE_URL").expect("postgres url");
    let other = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("other database");
    let mut long = other.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *long)
        .await
        .expect("take an xid");

    sqlx::query(
        "INSERT INTO events (workspace_id, kind, created_at) VALUES ($1, 'contact.updated', 0)",
    )
    .bind(ws.as_uuid())
    .execute(pool)
    .await
    .expect("event");
    let events = h
        .repo
        .events_after(LogPosition::START, Some(ws), 10)
        .await
        .expect("read");
    assert_eq!(
        events.len(),
        1,
        "another database's open transaction holds nothing back"
    );
    long.rollback().await.expect("rollback");
}

/// One row the reader cannot decode must not stop every stream of the process: it is skipped
/// (and logged), and the events around it are read.
pub async fn an_unreadable_event_is_skipped_not_a_stall(h: Harness) {
    let ws = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("ws")
        .id;
    h.raw.insert_event(ws.as_uuid(), 1000).await;
    h.raw
        .insert_event_of_kind(ws.as_uuid(), "from.the.future", 1001)
        .await;
    h.raw.insert_event(ws.as_uuid(), 1002).await;
    let read = settled(&h, None, 2).await;
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(
        h.repo
            .events_after(LogPosition::START, Some(ws), 100)
            .await
            .expect("read")
            .len(),
        2
    );
}
