//! The live inbox: one pump per process reads the event log as it grows, renders each event once
//! into its complete SSE frame, and fans it out in-process to every connected stream; each stream
//! replays what its client missed from the log first, then follows the pump, with no gap and no
//! duplicate at the seam.
//!
//! Written for many streams on few cores: every stream that sends an event shares the one copy of
//! its frame's bytes; streams are woken once per page the pump publishes, not once per event, and
//! write every frame waiting for them as one chunk (one write, not one per event); and the pump's
//! heartbeat serves every stream, so an idle stream holds no timer of its own.
//!
//! Rights are re-checked in log order: revoking a token, changing a role or removing a member
//! appends `access.changed`, and the pump (or a replaying stream) re-reads the rights of that
//! workspace's open streams in one batch before it passes on anything written after it; each
//! stream then ends with `event: error` or follows the new role. Every heartbeat re-checks all
//! open streams in one batch too, as a safety net.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use inbox_domain::contact::Contact;
use inbox_domain::conversation::Conversation;
use inbox_domain::event::{ChangeToken, EventKind, LogPosition, LoggedEvent};
use inbox_domain::message::Message;
use inbox_domain::ports::{Repository, StoreError};
use inbox_domain::user::{Actor, Principal};
use inbox_domain::{
    ContactId, ConversationId, EventId, MessageId, Timestamp, TokenId, WorkspaceId,
};
use serde::Deserialize;
use tokio::sync::broadcast::error::TryRecvError;
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

/// How long the pump waits before retrying a failed read.
const RETRY: Duration = Duration::from_millis(500);

/// Comment lines keep idle connections open through proxies.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The heartbeat: an empty SSE comment.
const HEARTBEAT_FRAME: &[u8] = b":\n\n";

/// Told to a stream whose resume point is gone or that fell too far behind.
const RESYNC_FRAME: &[u8] = b"event: resync\ndata: {\"reason\":\"Events were missed; refetch the inbox and reconnect without Last-Event-ID.\"}\n\n";

/// A stream that wakes with many frames waiting writes them in chunks of about this size, so one
/// chunk never holds a whole backlog.
const CHUNK: usize = 64 * 1024;

/// An event rendered once for every stream.
#[derive(Debug)]
pub struct LiveEvent {
    /// The event with its position and current assignees (for visibility).
    pub logged: LoggedEvent,
    /// The complete SSE frame (`id:`, `event:` and `data:` lines, then a blank line), whose data
    /// is the new state plus `workspace_id`; `None` when what the event names no longer exists
    /// (a deleted contact).
    pub frame: Option<Bytes>,
}

/// What the pump hands every stream.
#[derive(Clone, Debug)]
enum Fanout {
    /// The next event of the log.
    Event(Arc<LiveEvent>),
    /// Time for a heartbeat comment.
    Heartbeat,
    /// Re-checked rights of some streams, in log order: each named stream ends or follows its
    /// caller's current role before it sends anything that comes after.
    Access(Arc<AccessVerdicts>),
}

/// The outcome of re-checking the rights of open streams.
#[derive(Debug)]
struct AccessVerdicts {
    /// For an `access.changed` event, its position: a stream applies the verdict when it
    /// reaches it. For the periodic re-check, how far the pump had read when it re-checked: a
    /// stream applies it only if it has not read further (else a verdict older than an
    /// `access.changed` it already handled could undo it).
    position: LogPosition,
    /// Whether this is the periodic re-check rather than an `access.changed` event.
    periodic: bool,
    /// Per stream id.
    verdicts: HashMap<u64, Verdict>,
}

/// What a stream may still do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Go on, with the caller's current role.
    Keep(Actor),
    /// End now, telling the client why: `unauthorized` (the token was revoked), `forbidden`
    /// (no longer a member) or `unavailable` (the rights could not be read; reconnect).
    End(&'static str),
}

/// An open stream, as the pump knows it.
#[derive(Clone, Copy, Debug)]
struct OpenStream {
    token_id: TokenId,
    workspace_id: WorkspaceId,
}

/// The verdict for one stream, from the current principals of the tokens asked about.
fn verdict(stream: OpenStream, principals: &HashMap<TokenId, Principal>) -> Verdict {
    match principals.get(&stream.token_id) {
        None => Verdict::End("unauthorized"),
        Some(principal) => match principal.membership_of(stream.workspace_id) {
            Some(membership) => Verdict::Keep(principal.actor(membership)),
            None => Verdict::End("forbidden"),
        },
    }
}

/// Re-checks the given streams' rights in one read per few hundred tokens. Fails closed: when
/// the rights cannot be read, the streams end and their clients reconnect.
async fn recheck(repo: &dyn Repository, streams: &[(u64, OpenStream)]) -> HashMap<u64, Verdict> {
    let mut tokens: Vec<TokenId> = streams.iter().map(|(_, s)| s.token_id).collect();
    tokens.sort_unstable();
    tokens.dedup();
    match repo.principals_by_tokens(&tokens).await {
        Ok(found) => {
            let principals: HashMap<TokenId, Principal> =
                found.into_iter().map(|p| (p.token_id, p)).collect();
            streams
                .iter()
                .map(|(id, stream)| (*id, verdict(*stream, &principals)))
                .collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, streams = streams.len(), "cannot re-check the rights of event streams; ending them");
            streams
                .iter()
                .map(|(id, _)| (*id, Verdict::End("unavailable")))
                .collect()
        }
    }
}

/// The frame that ends a stream whose rights are gone.
fn error_frame(code: &str) -> Bytes {
    let message = match code {
        "unauthorized" => "The token was revoked; authenticate again.",
        "forbidden" => "You are no longer a member of this workspace.",
        _ => "Your access could not be re-checked; reconnect.",
    };
    Bytes::from(format!(
        "event: error\ndata: {}\n\n",
        serde_json::json!({"code": code, "message": message})
    ))
}

/// The process's single reader of the event log.
pub struct LiveHub {
    fanout: broadcast::Sender<Fanout>,
    /// Moves once the pump has put a page of events (or a heartbeat) into `fanout`. Streams wait
    /// on this rather than on `fanout` itself, which would wake every stream for every event.
    published: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// Every open stream, by id, so the pump can re-check their rights.
    streams: Mutex<HashMap<u64, OpenStream>>,
    next_stream: AtomicU64,
}

impl LiveHub {
    /// Starts the pump on the current runtime.
    #[must_use]
    pub fn start(repo: Arc<dyn Repository>) -> Arc<Self> {
        let (fanout, _) = broadcast::channel(FANOUT_CAPACITY);
        let (shutdown, _) = watch::channel(false);
        let hub = Arc::new(Self {
            fanout,
            published: watch::Sender::new(0),
            shutdown,
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
        });
        tokio::spawn(pump(repo, Arc::clone(&hub)));
        hub
    }

    /// Ends the pump and every stream, so graceful shutdown is not held up by open streams.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn open_streams(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenStream>> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open streams of some workspaces (all of them for `None`).
    fn streams_of(&self, workspaces: Option<&HashSet<WorkspaceId>>) -> Vec<(u64, OpenStream)> {
        self.open_streams()
            .iter()
            .filter(|(_, s)| workspaces.is_none_or(|w| w.contains(&s.workspace_id)))
            .map(|(id, s)| (*id, *s))
            .collect()
    }

    /// Registers a stream, unless its token already holds `max_per_token` open ones.
    fn register(
        self: &Arc<Self>,
        stream: OpenStream,
        max_per_token: usize,
    ) -> Option<Registration> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let mut streams = self.open_streams();
        let held = streams
            .values()
            .filter(|s| s.token_id == stream.token_id)
            .count();
        if held >= max_per_token {
            return None;
        }
        streams.insert(id, stream);
        Some(Registration {
            hub: Arc::clone(self),
            id,
        })
    }
}

/// A stream's place in the hub's registry, removed when the stream ends.
struct Registration {
    hub: Arc<LiveHub>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.open_streams().remove(&self.id);
    }
}

async fn pump(repo: Arc<dyn Repository>, hub: Arc<LiveHub>) {
    let LiveHub {
        fanout, published, ..
    } = &*hub;
    let publish = || published.send_modify(|n| *n = n.wrapping_add(1));
    let mut shutdown = hub.shutdown.subscribe();
    let mut position = loop {
        match repo.log_head().await {
            Ok(head) => break head,
            Err(e) => {
                tracing::warn!(error = %e, "live pump cannot read the log head; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut token = ChangeToken::default();
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            next = repo.wait_for_change(token) => token = next,
            _ = heartbeat.tick() => {
                // The safety net under `access.changed`: every stream's rights, re-read in one
                // batch per heartbeat.
                let streams = hub.streams_of(None);
                if !streams.is_empty() {
                    let verdicts = recheck(&*repo, &streams).await;
                    let _ = fanout.send(Fanout::Access(Arc::new(AccessVerdicts {
                        position,
                        periodic: true,
                        verdicts,
                    })));
                }
                // An error only means nobody is listening.
                let _ = fanout.send(Fanout::Heartbeat);
                publish();
                continue;
            }
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
            let last = last.position;
            let full = batch.len() == PAGE as usize;
            // Nobody is listening: move on without rendering.
            if fanout.receiver_count() > 0 {
                let rendered = match render_batch(&*repo, &batch).await {
                    Ok(rendered) => rendered,
                    Err(e) => {
                        // Read the same page again shortly: events are late, never lost.
                        tracing::warn!(error = %e, "live pump cannot render events; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(RETRY) => {}
                            _ = shutdown.changed() => return,
                        }
                        continue;
                    }
                };
                for (logged, frame) in batch.into_iter().zip(rendered) {
                    // An error only means every receiver has gone; the next event finds out again.
                    if logged.event.kind == EventKind::AccessChanged {
                        let workspaces = HashSet::from([logged.event.workspace_id]);
                        let streams = hub.streams_of(Some(&workspaces));
                        let verdicts = recheck(&*repo, &streams).await;
                        let _ = fanout.send(Fanout::Access(Arc::new(AccessVerdicts {
                            position: logged.position,
                            periodic: false,
                            verdicts,
                        })));
                        continue;
                    }
                    let _ = fanout.send(Fanout::Event(Arc::new(LiveEvent { logged, frame })));
                }
                publish();
            }
            position = last;
            if !full {
                break;
            }
        }
    }
}

/// The SSE frame of each event of a batch: its data is the new state the event announces, as
/// JSON with `workspace_id`, read with an owner's view (each stream applies its own caller's
/// visibility afterwards). One query each loads every message, conversation and contact the
/// batch names, so bursts render in three queries, not one per event or subject. `None` for an
/// event whose subject no longer exists (a deleted contact).
///
/// # Errors
/// When a read fails: the caller retries or tells its clients to resync, never skips silently.
async fn render_batch(
    repo: &dyn Repository,
    batch: &[LoggedEvent],
) -> Result<Vec<Option<Bytes>>, StoreError> {
    let mut message_ids: Vec<MessageId> = Vec::new();
    let mut conversation_ids: Vec<ConversationId> = Vec::new();
    let mut contact_ids: Vec<ContactId> = Vec::new();
    for logged in batch {
        let event = &logged.event;
        match event.kind {
            EventKind::MessageCreated | EventKind::MessageUpdated => {
                message_ids.extend(event.message_id);
            }
            EventKind::ConversationCreated | EventKind::ConversationUpdated => {
                conversation_ids.extend(event.conversation_id);
            }
            EventKind::ContactUpdated => contact_ids.extend(event.contact_id),
            EventKind::AccessChanged => {}
        }
    }
    let (message_ids, conversation_ids, contact_ids) = (
        dedup(message_ids),
        dedup(conversation_ids),
        dedup(contact_ids),
    );
    let (messages, conversations, contacts) = tokio::try_join!(
        repo.messages_by_id(&message_ids),
        repo.conversations_by_id(&conversation_ids),
        repo.contacts_by_id(&contact_ids),
    )?;
    let messages: HashMap<MessageId, Message> = messages.into_iter().map(|m| (m.id, m)).collect();
    let conversations: HashMap<ConversationId, Conversation> =
        conversations.into_iter().map(|c| (c.id, c)).collect();
    let contacts: HashMap<ContactId, Contact> = contacts.into_iter().map(|c| (c.id, c)).collect();
    Ok(batch
        .iter()
        .map(|logged| {
            let event = &logged.event;
            let state = match event.kind {
                EventKind::ConversationCreated | EventKind::ConversationUpdated => event
                    .conversation_id
                    .and_then(|id| conversations.get(&id))
                    .filter(|c| c.workspace_id == event.workspace_id)
                    .and_then(|c| serde_json::to_value(ConversationView::from(c)).ok()),
                EventKind::MessageCreated | EventKind::MessageUpdated => event
                    .message_id
                    .and_then(|id| messages.get(&id))
                    .filter(|m| m.workspace_id == event.workspace_id)
                    .and_then(|m| serde_json::to_value(MessageView::from(m)).ok()),
                EventKind::ContactUpdated => event
                    .contact_id
                    .and_then(|id| contacts.get(&id))
                    .filter(|c| c.workspace_id == event.workspace_id)
                    .and_then(|c| serde_json::to_value(ContactView::from(c)).ok()),
                EventKind::AccessChanged => None,
            };
            let data = state.and_then(|value| with_workspace(value, event.workspace_id))?;
            Some(event_frame(logged, &data))
        })
        .collect())
}

fn dedup<T: Ord>(mut ids: Vec<T>) -> Vec<T> {
    ids.sort_unstable();
    ids.dedup();
    ids
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

/// The SSE frame of an event. `data` is compact JSON, which escapes every line break inside
/// strings, so it is always exactly one `data:` line.
fn event_frame(logged: &LoggedEvent, data: &str) -> Bytes {
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {data}\n\n",
        logged.event.id,
        logged.event.kind.as_str()
    ))
}

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Workspace slug or id.
    pub workspace: String,
    /// Resume after this event id (as `Last-Event-ID` does); `0` replays the whole retained log.
    /// A resume point more than `INBOX_EVENT_REPLAY_MAX` events back gets `resync` instead.
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
        (status = 200, description = "`text/event-stream`: frames `id`, `event` (`conversation.created`, `conversation.updated`, `message.created`, `message.updated`, `contact.updated`, or `resync` when the resume point is older than the retained log or the client fell too far behind, or `error` with `{code, message}` just before the server ends a stream whose rights are gone: `unauthorized` once its token is revoked, `forbidden` once the caller is no longer a member; a lowered role narrows the stream at once) and `data` (the new state as JSON, with `workspace_id`); a `:` comment every 15 s", content_type = "text/event-stream"),
        (status = 401, description = "No, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "Not a member of the workspace", body = ErrorBody),
        (status = 422, description = "Bad query", body = ErrorBody),
        (status = 429, description = "The token already holds `INBOX_MAX_STREAMS_PER_TOKEN` open streams, or spent its requests of the minute (`Retry-After`)", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
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
    let published = state.live.published.subscribe();
    let shutdown = state.live.shutdown.subscribe();
    let (start, resync) = match resume {
        None => (state.repo.log_head().await?, false),
        Some(id) => {
            // A resume point further back than the replay cap is answered with `resync`: a
            // client gone for days refetches instead of replaying days of events.
            let head = state.repo.log_head().await?;
            if head.id.0.saturating_sub(id.max(0)) > state.limits.event_replay_max {
                (head, true)
            } else if id <= 0 {
                (LogPosition::START, false)
            } else {
                match state
                    .repo
                    .position_of(actor.workspace_id, EventId(id))
                    .await?
                {
                    Some(position) => (position, false),
                    None => (head, true),
                }
            }
        }
    };
    let max_streams = state.limits.max_streams_per_token;
    let registration = state
        .live
        .register(
            OpenStream {
                token_id: caller.0.token_id,
                workspace_id: actor.workspace_id,
            },
            max_streams,
        )
        .ok_or_else(|| ApiError::TooManyRequests {
            message: format!(
                "This token already holds {max_streams} open event streams; close one first."
            ),
            retry_after_secs: 5,
        })?;
    let stream = ClientStream {
        repo: Arc::clone(&state.repo),
        registration,
        token_id: caller.0.token_id,
        actor,
        position: start,
        replaying: true,
        resync,
        live,
        published,
        shutdown,
        done: false,
    };
    let mut response = Response::new(Body::from_stream(futures::stream::unfold(
        stream,
        ClientStream::next,
    )));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// One client's stream: replay from the log, then the pump's fan-out.
struct ClientStream {
    repo: Arc<dyn Repository>,
    /// Keeps the stream in the hub's registry while it lives.
    registration: Registration,
    token_id: TokenId,
    /// The caller, with the role they had at the last re-check.
    actor: Actor,
    /// The last position sent (or skipped as invisible): nothing at or before it is sent again.
    position: LogPosition,
    replaying: bool,
    resync: bool,
    live: broadcast::Receiver<Fanout>,
    published: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl ClientStream {
    /// The next chunk of frames to write.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.done || *self.shutdown.borrow() {
            return None;
        }
        loop {
            if self.resync {
                self.resync = false;
                return Some((Ok(Bytes::from_static(RESYNC_FRAME)), self));
            }
            if !self.replaying {
                break;
            }
            if let Some(chunk) = self.replay_page().await {
                return Some((Ok(chunk), self));
            }
        }
        loop {
            // Mark the pump's pages seen before draining: a page published after this wakes the
            // wait below, so nothing is left waiting in the receiver while the stream sleeps.
            self.published.borrow_and_update();
            let mut chunk = Chunk::default();
            while chunk.len() < CHUNK {
                match self.live.try_recv() {
                    Ok(Fanout::Event(live)) => {
                        if live.logged.position > self.position {
                            self.position = live.logged.position;
                            if let Some(frame) = self.visible(&live.logged, live.frame.as_ref()) {
                                chunk.push(frame);
                            }
                        }
                    }
                    Ok(Fanout::Heartbeat) => chunk.push(Bytes::from_static(HEARTBEAT_FRAME)),
                    Ok(Fanout::Access(access)) => {
                        if access.periodic {
                            if access.position < self.position {
                                continue; // older than what this stream has read
                            }
                        } else if access.position <= self.position {
                            continue; // already handled while replaying
                        } else {
                            self.position = access.position;
                        }
                        if let Some(verdict) = access.verdicts.get(&self.registration.id) {
                            if let Some(frame) = self.apply(*verdict) {
                                chunk.push(frame);
                                break;
                            }
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(skipped)) => {
                        tracing::info!(
                            skipped,
                            "an event stream fell too far behind; cutting it off with resync"
                        );
                        self.done = true;
                        chunk.push(Bytes::from_static(RESYNC_FRAME));
                        break;
                    }
                    Err(TryRecvError::Closed) => {
                        self.done = true;
                        break;
                    }
                }
            }
            match chunk.into_bytes() {
                Some(bytes) => return Some((Ok(bytes), self)),
                None if self.done => return None,
                None => {}
            }
            tokio::select! {
                published = self.published.changed() => {
                    if published.is_err() {
                        return None;
                    }
                }
                _ = self.shutdown.changed() => return None,
            }
        }
    }

    /// Reads the next page of missed events and returns its frames for this client as one
    /// chunk (`None` when none is visible); an empty page ends the replay.
    async fn replay_page(&mut self) -> Option<Bytes> {
        match self
            .repo
            .events_after(self.position, Some(self.actor.workspace_id), PAGE)
            .await
        {
            Ok(mut batch) if !batch.is_empty() => {
                // Rights change in log order: events up to an `access.changed` are filtered
                // with the rights the caller had, then the rights are re-read before anything
                // after it.
                let access_change = batch
                    .iter()
                    .position(|logged| logged.event.kind == EventKind::AccessChanged);
                if let Some(at) = access_change {
                    batch.truncate(at + 1);
                }
                if let Some(last) = batch.last() {
                    self.position = last.position;
                }
                let visible: Vec<LoggedEvent> = batch
                    .into_iter()
                    .filter(|logged| self.actor.sees_event(logged))
                    .collect();
                let mut chunk = match render_batch(&*self.repo, &visible).await {
                    Ok(rendered) => {
                        let mut chunk = Chunk::default();
                        for frame in rendered.into_iter().flatten() {
                            chunk.push(frame);
                        }
                        chunk
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot render replayed events; sending resync");
                        self.replaying = false;
                        self.resync = true;
                        return None;
                    }
                };
                if access_change.is_some() {
                    let own = [(
                        self.registration.id,
                        OpenStream {
                            token_id: self.token_id,
                            workspace_id: self.actor.workspace_id,
                        },
                    )];
                    let verdicts = recheck(&*self.repo, &own).await;
                    if let Some(verdict) = verdicts.get(&self.registration.id) {
                        if let Some(frame) = self.apply(*verdict) {
                            chunk.push(frame);
                            self.replaying = false;
                        }
                    }
                }
                chunk.into_bytes()
            }
            Ok(_) => {
                self.replaying = false;
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot replay the event log; sending resync");
                self.replaying = false;
                self.resync = true;
                None
            }
        }
    }

    /// Applies re-checked rights: the frame that ends the stream, or `None` when it goes on
    /// (with the caller's current role).
    fn apply(&mut self, verdict: Verdict) -> Option<Bytes> {
        match verdict {
            Verdict::Keep(actor) => {
                self.actor = actor;
                None
            }
            Verdict::End(code) => {
                self.done = true;
                Some(error_frame(code))
            }
        }
    }

    /// The frame of an event, if this client may see it and it still has a state to show.
    fn visible(&self, logged: &LoggedEvent, frame: Option<&Bytes>) -> Option<Bytes> {
        if !self.actor.sees_event(logged) {
            return None;
        }
        frame.cloned()
    }
}

/// Frames gathered into one write. A single frame is passed on as it is, shared with every other
/// stream; several are copied into one buffer.
#[derive(Default)]
enum Chunk {
    #[default]
    Empty,
    One(Bytes),
    Many(Vec<u8>),
}

impl Chunk {
    fn push(&mut self, frame: Bytes) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(frame),
            Self::One(first) => {
                let mut joined = Vec::with_capacity(first.len() + frame.len() * 4);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&frame);
                Self::Many(joined)
            }
            Self::Many(mut joined) => {
                joined.extend_from_slice(&frame);
                Self::Many(joined)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(frame) => frame.len(),
            Self::Many(joined) => joined.len(),
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self {
            Self::Empty => None,
            Self::One(frame) => Some(frame),
            Self::Many(joined) => Some(Bytes::from(joined)),
        }
    }
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
