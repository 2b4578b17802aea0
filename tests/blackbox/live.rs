//! The live event stream across processes: latency from another process, resume without gap or
//! duplicate, visibility, slow clients and shutdown.

use std::time::{Duration, Instant};

use inbox_domain::ContactId;
use inbox_domain::event::LogPosition;
use inbox_domain::ports::Repository;
use inbox_domain::user::{Actor, Role};
use inbox_domain::{EventId, UserId, WorkspaceId};
use inbox_store::SecretKey;
use inbox_tests::{
    Deliveries, Seeded, Server, SseClient, SseFrame, TEST_SECRET_KEY, TestEnv, str_field,
};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    a_delivery_to_the_webhook_process_reaches_an_api_stream,
    a_client_resumes_after_a_thousand_events_without_gap_or_duplicate,
    members_see_only_events_of_what_they_may_see,
    a_stalled_client_is_cut_off_with_resync_and_memory_stays_flat,
    a_revoked_tokens_stream_ends_and_carries_nothing_written_after,
    a_demoted_admins_stream_stops_carrying_unassigned_conversations,
    a_removed_members_stream_ends,
);

const SHORT: Duration = Duration::from_secs(10);

async fn setup(env: &TestEnv) -> Seeded {
    let seeded = env.workspace_with_owner().await;
    env.connect_kapso().await;
    seeded
}

async fn open_store(env: &TestEnv) -> Arc<dyn Repository> {
    let key = SecretKey::from_base64(TEST_SECRET_KEY).expect("test key");
    inbox_store::open(env.database_url(), &key)
        .await
        .expect("open store")
}

async fn post(http: &reqwest::Client, server: &Server, delivery: &inbox_tests::Fixture) {
    let response = delivery.post(http, server).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "webhook accepted the delivery"
    );
}

async fn next_of_kind(client: &mut SseClient, kind: &str) -> SseFrame {
    loop {
        let frame = client
            .next(SHORT)
            .await
            .unwrap_or_else(|| panic!("no {kind} event"));
        if frame.event == kind {
            return frame;
        }
    }
}

fn data(frame: &SseFrame) -> Value {
    serde_json::from_str(&frame.data).expect("event data is JSON")
}

async fn a_delivery_to_the_webhook_process_reaches_an_api_stream(env: TestEnv) {
    let seeded = setup(&env).await;
    let api = env.api(&[]).await;
    let webhook = env.webhook(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let mut client = SseClient::connect(&api, "acme", &seeded.token, None).await;

    post(
        &http,
        &webhook,
        &deliveries.inbound_batch("6281234567890", 1),
    )
    .await;
    let acked = Instant::now();
    let frame = next_of_kind(&mut client, "message.created").await;
    let latency = acked.elapsed();
    eprintln!("webhook 200 to API client ({:?}): {latency:?}", env.kind);
    assert!(latency < Duration::from_secs(1), "event took {latency:?}");
    let message = data(&frame);
    assert_eq!(message["text"], "message 1");
    assert_eq!(message["direction"], "inbound");
    assert_eq!(message["workspace_id"], seeded.workspace_id.as_str());
    assert!(frame.id.is_some(), "events carry their id");

    // Graceful shutdown ends open streams instead of waiting on them.
    assert!(api.stop().await.success());
    while client.next(SHORT).await.is_some() {}
    assert!(client.ended, "the stream was closed by the server");
}

async fn a_client_resumes_after_a_thousand_events_without_gap_or_duplicate(env: TestEnv) {
    let seeded = setup(&env).await;
    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let store = open_store(&env).await;
    let workspace = WorkspaceId::from(seeded.workspace_id.parse::<uuid_like::Uuid>().expect("id"));

    let mut client = SseClient::connect(&api, "acme", &seeded.token, None).await;
    post(&http, &api, &deliveries.inbound_batch("6281234567890", 1)).await;
    let k = next_of_kind(&mut client, "message.created")
        .await
        .id
        .expect("id");
    drop(client);

    // Each message adds message.created, each delivery one conversation.updated: 1,020 events.
    for _ in 0..20 {
        post(&http, &api, &deliveries.inbound_batch("6281234567890", 50)).await;
    }
    let from = store
        .position_of(workspace, EventId(k.parse().expect("numeric id")))
        .await
        .expect("position")
        .expect("k is in the log");
    let expected = settled_after(&*store, from, workspace, 1020).await;

    let mut client = SseClient::connect(&api, "acme", &seeded.token, Some(&k)).await;
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let frame = client.next(SHORT).await.expect("replayed event");
        assert_ne!(frame.event, "resync");
        received.push(frame.id.expect("id"));
    }
    assert_eq!(
        received, expected,
        "exactly the events after k, in log order"
    );

    post(&http, &api, &deliveries.inbound_batch("6281234567890", 1)).await;
    let live = next_of_kind(&mut client, "message.created").await;
    assert!(
        !received.contains(live.id.as_ref().expect("id")),
        "no duplicate at the seam"
    );
    assert_eq!(data(&live)["text"], "message 1002");
}

/// The ids of the `count` events after `from`, once the log has settled (on PostgreSQL an event
/// is handed out only when no older transaction can still commit).
async fn settled_after(
    store: &dyn Repository,
    from: LogPosition,
    workspace: WorkspaceId,
    count: usize,
) -> Vec<String> {
    let deadline = Instant::now() + SHORT;
    loop {
        let events = store
            .events_after(from, Some(workspace), 5000)
            .await
            .expect("log");
        if events.len() >= count || Instant::now() > deadline {
            assert_eq!(events.len(), count, "events written after k");
            return events.iter().map(|e| e.event.id.to_string()).collect();
        }
        tokio::task::yield_now().await;
    }
}

async fn members_see_only_events_of_what_they_may_see(env: TestEnv) {
    let seeded = setup(&env).await;
    let member = env.admin(&["user", "create", "--name", "Member"]).await;
    let member_id = str_field(&member, "id");
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "acme",
        "--user",
        &member_id,
        "--role",
        "member",
    ])
    .await;
    let member_token = str_field(
        &env.admin(&["token", "create", "--user", &member_id]).await,
        "token",
    );

    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    post(&http, &api, &deliveries.inbound_batch("6281111111111", 1)).await;
    post(&http, &api, &deliveries.inbound_batch("6282222222222", 1)).await;

    // The owner assigns the first customer's conversation to the member.
    let store = open_store(&env).await;
    let workspace = WorkspaceId::from(seeded.workspace_id.parse::<uuid_like::Uuid>().expect("id"));
    let owner = Actor {
        user_id: UserId::from(seeded.user_id.parse::<uuid_like::Uuid>().expect("id")),
        workspace_id: workspace,
        role: Role::Owner,
    };
    let member_user = UserId::from(member_id.parse::<uuid_like::Uuid>().expect("id"));
    let visible = store
        .conversations(owner, all_conversations())
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|c| {
            c.contact
                .phone
                .as_ref()
                .is_some_and(|p| p.as_str() == "+6281111111111")
        })
        .expect("first customer's conversation");
    store
        .assign_conversation(owner, visible.id, Some(member_user))
        .await
        .expect("assign");
    let hidden_contact: ContactId = store
        .conversations(owner, all_conversations())
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|c| c.id != visible.id)
        .expect("second conversation")
        .contact
        .id;

    // Replay of everything, then live traffic to both customers.
    let mut client = SseClient::connect(&api, "acme", &member_token, Some("0")).await;
    post(&http, &api, &deliveries.inbound_batch("6282222222222", 1)).await;
    post(&http, &api, &deliveries.inbound_batch("6281111111111", 1)).await;
    let mut saw_live_message = false;
    while let Some(frame) = client.next(Duration::from_secs(3)).await {
        let value = data(&frame);
        let conversation = value.get("conversation_id").or_else(|| value.get("id"));
        assert_ne!(
            value["contact"]["id"].as_str(),
            Some(hidden_contact.to_string().as_str()),
            "member saw another's conversation: {frame:?}"
        );
        if frame.event.starts_with("message.") {
            assert_eq!(
                conversation.and_then(Value::as_str),
                Some(visible.id.to_string().as_str())
            );
            saw_live_message |= value["text"] == "message 4";
        }
        assert_ne!(
            frame.event, "contact.updated",
            "the contact is not assigned to the member"
        );
        if saw_live_message {
            break;
        }
    }
    assert!(
        saw_live_message,
        "the member receives their own conversation's messages"
    );

    // A member of another workspace gets 403.
    env.admin(&["workspace", "create", "--slug", "other", "--name", "Other"])
        .await;
    let outsider = str_field(
        &env.admin(&["user", "create", "--name", "Outsider"]).await,
        "id",
    );
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "other",
        "--user",
        &outsider,
        "--role",
        "owner",
    ])
    .await;
    let outsider_token = str_field(
        &env.admin(&["token", "create", "--user", &outsider]).await,
        "token",
    );
    let refused = http
        .get(api.url("/api/events?workspace=acme"))
        .bearer_auth(outsider_token)
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

async fn a_stalled_client_is_cut_off_with_resync_and_memory_stays_flat(env: TestEnv) {
    let seeded = setup(&env).await;
    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    post(&http, &api, &deliveries.inbound_batch("6281234567890", 1)).await;

    let mut stalled = SseClient::connect(&api, "acme", &seeded.token, None).await;
    let before = api.rss_kib();
    // 25,000 messages to one conversation: 50,000 events, while the client reads nothing
    // (in batches of 100, the most Kapso buffers into one delivery).
    for _ in 0..250 {
        post(&http, &api, &deliveries.inbound_batch("6281234567890", 100)).await;
    }
    // Let the pump read everything before measuring: a fresh client resuming from the start
    // sees the last message once the server has caught up.
    let mut watcher = SseClient::connect(&api, "acme", &seeded.token, None).await;
    post(&http, &api, &deliveries.inbound_batch("6281234567890", 1)).await;
    next_of_kind(&mut watcher, "message.created").await;
    let after = api.rss_kib();
    eprintln!(
        "RSS before {before} KiB, after 50,000 events with a stalled client {after} KiB ({:?})",
        env.kind
    );
    assert!(
        after < before + 64 * 1024,
        "server memory grew from {before} KiB to {after} KiB"
    );

    // The stalled client, reading again, finds a resync and the end of its stream.
    let mut last = None;
    while let Some(frame) = stalled.next(SHORT).await {
        last = Some(frame);
    }
    assert!(stalled.ended, "the server ended the stalled stream");
    assert_eq!(last.map(|f| f.event).as_deref(), Some("resync"));
}

mod uuid_like {
    pub use uuid::Uuid;
}

fn all_conversations() -> inbox_domain::conversation::ConversationQuery {
    inbox_domain::conversation::ConversationQuery {
        filter: inbox_domain::conversation::ConversationFilter::default(),
        now: inbox_domain::Timestamp::now(),
        limit: inbox_domain::page::Limit::default(),
        after: None,
    }
}

/// Scale-out: two `inbox-api` instances on one PostgreSQL; a change made through one reaches a
/// stream served by the other (LISTEN/NOTIFY, then the shared log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_through_one_instance_reaches_a_stream_on_another() {
    let Some(env) = TestEnv::new(inbox_tests::Db::Postgres, "two_instances").await else {
        return;
    };
    let seeded = setup(&env).await;
    let agent = str_field(
        &env.admin(&["user", "create", "--name", "Agent"]).await,
        "id",
    );
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "acme",
        "--user",
        &agent,
        "--role",
        "admin",
    ])
    .await;
    let a = env.api(&[]).await;
    let b = env.api(&[]).await;
    let http = reqwest::Client::new();
    post(
        &http,
        &a,
        &Deliveries::default().inbound_batch("6281234567890", 1),
    )
    .await;
    let list: Value = http
        .get(a.url("/api/conversations?workspace=acme"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let conversation = list["conversations"][0]["id"]
        .as_str()
        .expect("a conversation")
        .to_owned();

    let mut on_b = SseClient::connect(&b, "acme", &seeded.token, None).await;
    let assigned = http
        .post(a.url(&format!("/api/conversations/{conversation}/assign")))
        .bearer_auth(&seeded.token)
        .json(&serde_json::json!({"assigned_to": agent}))
        .send()
        .await
        .expect("assign");
    assert_eq!(assigned.status(), StatusCode::OK);
    let sent = Instant::now();
    let frame = next_of_kind(&mut on_b, "conversation.updated").await;
    eprintln!(
        "assignment on instance A to a stream on instance B: {:?}",
        sent.elapsed()
    );
    let view = data(&frame);
    assert_eq!(view["id"], conversation.as_str());
    assert_eq!(view["assigned_to"], agent.as_str());
}

/// Reads a stream until it ends (bounded), returning every frame it carried.
async fn until_end(client: &mut SseClient) -> Vec<SseFrame> {
    let mut frames = Vec::new();
    while let Some(frame) = client.next(SHORT).await {
        frames.push(frame);
    }
    assert!(client.ended, "the stream ended: {frames:?}");
    frames
}

async fn a_revoked_tokens_stream_ends_and_carries_nothing_written_after(env: TestEnv) {
    let seeded = setup(&env).await;
    let api = env.api(&[]).await;
    let webhook = env.webhook(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let mut client = SseClient::connect(&api, "acme", &seeded.token, None).await;
    post(
        &http,
        &webhook,
        &deliveries.inbound_batch("6281111111111", 1),
    )
    .await;
    next_of_kind(&mut client, "message.created").await;

    env.admin(&["token", "revoke", &seeded.token_id]).await;
    let after = deliveries.inbound_batch("6281111111111", 1);
    post(&http, &webhook, &after).await;
    let frames = until_end(&mut client).await;
    let last = frames.last().expect("an error frame");
    assert_eq!(last.event, "error", "{frames:?}");
    assert_eq!(data(last)["code"], "unauthorized");
    assert!(
        frames.iter().all(|f| !f.event.starts_with("message.")),
        "nothing written after the revocation: {frames:?}"
    );
    let again = reqwest::Client::new()
        .get(api.url("/api/events?workspace=acme"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("answer");
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

/// A member of `acme` with a token: (user id, token).
async fn second_person(env: &TestEnv, role: &str) -> (String, String) {
    let user = env.admin(&["user", "create", "--name", "Second"]).await;
    let user_id = str_field(&user, "id");
    env.admin(&[
        "member",
        "add",
        "--workspace",
        "acme",
        "--user",
        &user_id,
        "--role",
        role,
    ])
    .await;
    let token = str_field(
        &env.admin(&["token", "create", "--user", &user_id]).await,
        "token",
    );
    (user_id, token)
}

async fn a_demoted_admins_stream_stops_carrying_unassigned_conversations(env: TestEnv) {
    let seeded = setup(&env).await;
    let (admin_id, admin_token) = second_person(&env, "admin").await;
    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    // A conversation the admin will keep seeing once demoted: assigned to them.
    post(&http, &api, &deliveries.inbound_batch("6281111111111", 1)).await;
    let store = open_store(&env).await;
    let workspace = WorkspaceId::from(seeded.workspace_id.parse::<uuid_like::Uuid>().expect("id"));
    let owner = Actor {
        user_id: UserId::from(seeded.user_id.parse::<uuid_like::Uuid>().expect("id")),
        workspace_id: workspace,
        role: Role::Owner,
    };
    let mine = store
        .conversations(owner, all_conversations())
        .await
        .expect("list")
        .items[0]
        .id;
    let admin_user = UserId::from(admin_id.parse::<uuid_like::Uuid>().expect("id"));
    store
        .assign_conversation(owner, mine, Some(admin_user))
        .await
        .expect("assign");

    let mut client = SseClient::connect(&api, "acme", &admin_token, None).await;
    post(&http, &api, &deliveries.inbound_batch("6282222222222", 1)).await;
    let seen = next_of_kind(&mut client, "message.created").await;
    assert_ne!(
        data(&seen)["conversation_id"],
        mine.to_string(),
        "as an admin, they see an unassigned conversation"
    );

    env.admin(&[
        "member",
        "set-role",
        "--workspace",
        "acme",
        "--user",
        &admin_id,
        "--role",
        "member",
    ])
    .await;
    post(&http, &api, &deliveries.inbound_batch("6283333333333", 1)).await;
    post(&http, &api, &deliveries.inbound_batch("6281111111111", 1)).await;
    // The stream goes on; the next message it carries is the one in their own conversation,
    // and nothing of the unassigned one written before it.
    let frame = next_of_kind(&mut client, "message.created").await;
    assert_eq!(
        data(&frame)["conversation_id"],
        mine.to_string(),
        "only their own conversation after the demotion: {frame:?}"
    );
}

async fn a_removed_members_stream_ends(env: TestEnv) {
    setup(&env).await;
    let (member_id, member_token) = second_person(&env, "admin").await;
    let api = env.api(&[]).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let mut client = SseClient::connect(&api, "acme", &member_token, None).await;
    env.admin(&[
        "member",
        "remove",
        "--workspace",
        "acme",
        "--user",
        &member_id,
    ])
    .await;
    post(&http, &api, &deliveries.inbound_batch("6281111111111", 1)).await;
    let frames = until_end(&mut client).await;
    let last = frames.last().expect("an error frame");
    assert_eq!(
        (last.event.as_str(), data(last)["code"].clone()),
        ("error", Value::from("forbidden"))
    );
    assert!(
        frames.iter().all(|f| !f.event.starts_with("message.")),
        "{frames:?}"
    );
}
