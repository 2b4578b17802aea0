//! The live inbox: one pump per process reads the event log as it grows, renders each event once,
//! and fans it out in-process to every connected stream; each stream replays what its client
//! missed from the log first, then follows the pump, with no gap and no duplicate at the seam.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use inbox_domain::event::{ChangeToken, EventKind, LogPosition, LoggedEvent};
use inbox_domain::message::Message;
use inbox_domain::ports::Repository;
use inbox_domain::user::{Actor, Role};
use inbox_domain::{ContactId, ConversationId, EventId, MessageId, Timestamp, UserId, WorkspaceId};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::routes::views::{ContactView, ConversationView, MessageView};

/// Events the pump keeps for streams that fall behind. A stream further behind than this is cut
/// off with `resync`: memory per client is bounded, whatever the client does.
const FANOUT_CAPACITY: usize = 4096;

/// Events read from the log per query.
const PAGE: u32 = 256;

/// Comment lines keep idle connections open through proxies.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// An event rendered once for every stream.
#[derive(Debug)]
pub struct LiveEvent {
    /// The event with its position and current assignees (for visibility).
    pub logged: LoggedEvent,
    /// `data:` of the SSE frame: the new state plus `workspace_id`; `None` when what the event
    /// names no longer exists (a deleted contact).
    pub data: Option<String>,
}

/// The process's single reader of the event log.
pub struct LiveHub {
    fanout: broadcast::Sender<Arc<LiveEvent>>,
    shutdown: watch::Sender<bool>,
}

impl LiveHub {
    /// Starts the pump on the current runtime.
    #[must_use]
    pub fn start(repo: Arc<dyn Repository>) -> Arc<Self> {
        let (fanout, _) = broadcast::channel(FANOUT_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        let hub = Arc::new(Self { fanout, shutdown });
        tokio::spawn(pump(repo, hub.fanout.clone(), hub.shutdown.subscribe()));
        hub
    }

    /// Ends the pump and every stream, so graceful shutdown is not held up by open streams.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

async fn pump(
    repo: Arc<dyn Repository>,
    fanout: broadcast::Sender<Arc<LiveEvent>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut position = loop {
        match repo.log_head().await {
            Ok(head) => break head,
            Err(e) => {
                tracing::warn!(error = %e, "live pump cannot read the log head; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut token = ChangeToken::default();
    loop {
        tokio::select! {
            next = repo.wait_for_change(token) => token = next,
            _ = shutdown.changed() => return,
        }
        loop {
            let batch = match repo.events_after(position, None, PAGE).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "live pump cannot read the log");
                    break;
                }
            };
            let Some(last) = batch.last() else { break };
            position = last.position;
            let full = batch.len() == PAGE as usize;
            // Nobody is listening: move on without rendering.
            if fanout.receiver_count() > 0 {
                let rendered = render_batch(&*repo, &batch).await;
                for (logged, data) in batch.into_iter().zip(rendered) {
                    // An error only means every receiver has gone; the next event finds out again.
                    let _ = fanout.send(Arc::new(LiveEvent { logged, data }));
                }
            }
            if !full {
                break;
            }
        }
    }
}

/// The new state each event of a batch announces, as JSON with `workspace_id`, read with an
/// owner's view (each stream applies its own caller's visibility afterwards). One query loads
/// every message of the batch, and each conversation or contact is read once per batch, however
/// many of its events the batch holds: bursts render in a few queries, not one per event.
/// `None` for an event whose subject no longer exists (a deleted contact).
async fn render_batch(repo: &dyn Repository, batch: &[LoggedEvent]) -> Vec<Option<String>> {
    let mut message_ids: Vec<MessageId> = batch
        .iter()
        .filter(|l| {
            matches!(
                l.event.kind,
                EventKind::MessageCreated | EventKind::MessageUpdated
            )
        })
        .filter_map(|l| l.event.message_id)
        .collect();
    message_ids.sort_unstable();
    message_ids.dedup();
    let messages: HashMap<MessageId, Message> = match repo.messages_by_id(&message_ids).await {
        Ok(found) => found.into_iter().map(|m| (m.id, m)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the messages of an event batch");
            HashMap::new()
        }
    };
    let mut conversations: HashMap<ConversationId, Option<serde_json::Value>> = HashMap::new();
    let mut contacts: HashMap<ContactId, Option<serde_json::Value>> = HashMap::new();
    let mut rendered = Vec::with_capacity(batch.len());
    for logged in batch {
        let event = &logged.event;
        let system = Actor {
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            workspace_id: event.workspace_id,
            role: Role::Owner,
        };
        let state = match event.kind {
            EventKind::ConversationCreated | EventKind::ConversationUpdated => {
                match event.conversation_id {
                    Some(id) => match conversations.get(&id) {
                        Some(done) => done.clone(),
                        None => {
                            let view = repo
                                .conversation(system, id)
                                .await
                                .unwrap_or_else(|e| {
                                    tracing::warn!(error = %e, "cannot render a conversation event");
                                    None
                                })
                                .and_then(|c| serde_json::to_value(ConversationView::from(&c)).ok());
                            conversations.insert(id, view.clone());
                            view
                        }
                    },
                    None => None,
                }
            }
            EventKind::MessageCreated | EventKind::MessageUpdated => event
                .message_id
                .and_then(|id| messages.get(&id))
                .filter(|m| m.workspace_id == event.workspace_id)
                .and_then(|m| serde_json::to_value(MessageView::from(m)).ok()),
            EventKind::ContactUpdated => match event.contact_id {
                Some(id) => match contacts.get(&id) {
                    Some(done) => done.clone(),
                    None => {
                        let view = repo
                            .contact(system, id)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "cannot render a contact event");
                                None
                            })
                            .and_then(|c| serde_json::to_value(ContactView::from(&c)).ok());
                        contacts.insert(id, view.clone());
                        view
                    }
                },
                None => None,
            },
        };
        rendered.push(state.and_then(|value| with_workspace(value, event.workspace_id)));
    }
    rendered
}

fn with_workspace(value: serde_json::Value, workspace_id: WorkspaceId) -> Option<String> {
    let serde_json::Value::Object(mut object) = value else {
        return None;
    };
    object.insert(
        "workspace_id".into(),
        serde_json::Value::String(workspace_id.to_string()),
    );
    serde_json::to_string(&object).ok()
}

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Workspace slug or id.
    pub workspace: String,
    /// Resume after this event id (as `Last-Event-ID` does); `0` replays the whole retained log.
    pub since: Option<i64>,
}

/// The live event stream of a workspace, filtered to what the caller may see.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "real-time",
    security(("bearer" = [])),
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: frames `id`, `event` (`conversation.created`, `conversation.updated`, `message.created`, `message.updated`, `contact.updated`, or `resync` when the resume point is older than the retained log or the client fell too far behind) and `data` (the new state as JSON, with `workspace_id`); a `:` comment every 15 s", content_type = "text/event-stream"),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let actor = caller.in_workspace(&query.workspace)?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an event id"))?,
        ),
        None => query.since,
    };
    // Subscribe before reading the log, so nothing written meanwhile falls between the two.
    let live = state.live.fanout.subscribe();
    let shutdown = state.live.shutdown.subscribe();
    let (start, resync) = match resume {
        None => (state.repo.log_head().await?, false),
        Some(id) if id <= 0 => (LogPosition::START, false),
        Some(id) => match state
            .repo
            .position_of(actor.workspace_id, EventId(id))
            .await?
        {
            Some(position) => (position, false),
            None => (state.repo.log_head().await?, true),
        },
    };
    let stream = ClientStream {
        repo: Arc::clone(&state.repo),
        actor,
        position: start,
        replaying: true,
        pending: Vec::new(),
        resync,
        live,
        shutdown,
        done: false,
    };
    Ok(
        Sse::new(futures::stream::unfold(stream, ClientStream::next))
            .keep_alive(KeepAlive::new().interval(HEARTBEAT)),
    )
}

/// One client's stream: replay from the log, then the pump's fan-out.
struct ClientStream {
    repo: Arc<dyn Repository>,
    actor: Actor,
    /// The last position sent (or skipped as invisible): nothing at or before it is sent again.
    position: LogPosition,
    replaying: bool,
    /// Replayed frames not yet sent, oldest last.
    pending: Vec<SseEvent>,
    resync: bool,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl ClientStream {
    async fn next(mut self) -> Option<(Result<SseEvent, Infallible>, Self)> {
        if self.done || *self.shutdown.borrow() {
            return None;
        }
        if self.resync {
            self.resync = false;
            return Some((Ok(resync_frame()), self));
        }
        while self.replaying {
            if let Some(frame) = self.pending.pop() {
                return Some((Ok(frame), self));
            }
            self.replay_page().await;
        }
        loop {
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.shutdown.changed() => return None,
            };
            match received {
                Ok(live) => {
                    if live.logged.position <= self.position {
                        continue;
                    }
                    self.position = live.logged.position;
                    if let Some(frame) = frame(&self.actor, &live.logged, live.data.as_deref()) {
                        return Some((Ok(frame), self));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::info!(
                        skipped,
                        "an event stream fell too far behind; cutting it off with resync"
                    );
                    self.done = true;
                    return Some((Ok(resync_frame()), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the next page of missed events into `pending`; an empty page ends the replay.
    async fn replay_page(&mut self) {
        match self
            .repo
            .events_after(self.position, Some(self.actor.workspace_id), PAGE)
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                if let Some(last) = batch.last() {
                    self.position = last.position;
                }
                let visible: Vec<LoggedEvent> = batch
                    .into_iter()
                    .filter(|logged| self.actor.sees_event(logged))
                    .collect();
                let rendered = render_batch(&*self.repo, &visible).await;
                let mut frames: Vec<SseEvent> = visible
                    .iter()
                    .zip(rendered)
                    .filter_map(|(logged, data)| frame(&self.actor, logged, data.as_deref()))
                    .collect();
                frames.reverse();
                self.pending = frames;
            }
            Ok(_) => self.replaying = false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot replay the event log; sending resync");
                self.replaying = false;
                self.resync = true;
            }
        }
    }
}

/// The SSE frame of an event, if this actor may see it and it still has a state to show.
fn frame(actor: &Actor, logged: &LoggedEvent, data: Option<&str>) -> Option<SseEvent> {
    if !actor.sees_event(logged) {
        return None;
    }
    Some(
        SseEvent::default()
            .id(logged.event.id.to_string())
            .event(logged.event.kind.as_str())
            .data(data?),
    )
}

fn resync_frame() -> SseEvent {
    SseEvent::default()
        .event("resync")
        .data(r#"{"reason":"Events were missed; refetch the inbox and reconnect without Last-Event-ID."}"#)
}

/// Deletes events older than `retention` now and then; every instance may run it.
pub fn spawn_pruner(repo: Arc<dyn Repository>, retention: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            let cutoff =
                Timestamp::from_millis(Timestamp::now().as_millis().saturating_sub(millis));
            match repo.prune_events(cutoff).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned events past retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune the event log"),
            }
        }
    });
}
