//! The ingest use case: store a verified delivery and apply its facts, all in one transaction.

use std::collections::BTreeMap;

use super::rules::{
    ContactState, ConversationState, IngestRoute, IngestWorkspace, NewIngestedMessage,
    PendingStatus, clean_profile_name, effective_sent_at, fold_statuses,
};
use super::{ConversationNotice, CustomerRef, DeliveryFacts, Fact, IncomingMessage, StatusUpdate};
use crate::delivery::{Delivery, DeliveryOutcome, NewDelivery};
use crate::event::{EventKind, NewEvent};
use crate::ids::{ContactId, MessageId, WorkspaceId};
use crate::message::{DeliveryStatus, Direction, MessageError, MessageKind};
use crate::ports::{DeliveryRepository, IngestRepository, IngestUnit, StoreError};
use crate::sending::{EchoContent, OwnSendMatch};
use crate::timestamp::Timestamp;

/// What became of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Its idempotency key was already stored: nothing happened.
    Duplicate,
    /// Every fact was applied.
    Processed,
    /// Stored, but (some of) its facts were deliberately not applied, for this reason.
    Ignored(String),
    /// Applying it failed; it is stored as failed with this error, for replay.
    Failed(String),
}

/// How many times a unit of work that lost a conflict (a deadlock, a serialization failure)
/// is run in all before the delivery is answered `Unavailable`, with nothing stored.
pub const MAX_ATTEMPTS: u32 = 4;

/// Stores a verified delivery and applies its facts in one transaction (one durable commit):
/// the delivery row, contacts, conversations, messages, statuses and events together.
///
/// A unit that loses a conflict with a concurrent transaction (`Retryable`) is run again, up to
/// [`MAX_ATTEMPTS`] in all. When applying fails for a reason that would repeat (`Internal`),
/// the transaction is rolled back and the delivery is stored as `failed` with the error in a
/// second, small one, so it is never lost and can be replayed.
///
/// # Errors
/// `Unavailable` (nothing was stored; the sender should retry): the database is unavailable,
/// the conflicts outlasted the attempts, or the failure record itself failed transiently.
/// `Internal` when the failure record failed for good.
pub async fn ingest<R>(
    repo: &R,
    delivery: &NewDelivery,
    facts: &DeliveryFacts,
) -> Result<IngestOutcome, StoreError>
where
    R: IngestRepository + DeliveryRepository + ?Sized,
{
    let error = match retrying(repo, || first_attempt(repo, delivery, facts)).await? {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    let stored = repo
        .record_delivery(delivery, None, DeliveryOutcome::Failed, Some(error.clone()))
        .await
        .map_err(transient)?;
    Ok(if stored {
        IngestOutcome::Failed(error)
    } else {
        IngestOutcome::Duplicate
    })
}

/// Runs a unit until it does not lose a conflict, at most [`MAX_ATTEMPTS`] times: its outcome,
/// or the text of a failure that would repeat (to be stored as `failed`).
///
/// # Errors
/// `Unavailable` when the database is, or when the conflicts outlast the attempts.
async fn retrying<R, F, Fut>(
    repo: &R,
    mut run: F,
) -> Result<Result<IngestOutcome, String>, StoreError>
where
    R: IngestRepository + ?Sized,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<IngestOutcome, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match run().await {
            Ok(outcome) => return Ok(Ok(outcome)),
            Err(StoreError::Retryable(reason)) if attempt >= MAX_ATTEMPTS => {
                return Err(StoreError::Unavailable(reason));
            }
            Err(StoreError::Retryable(_)) => {
                attempt += 1;
                repo.pause_before_retry(attempt).await;
            }
            Err(StoreError::Unavailable(reason)) => return Err(StoreError::Unavailable(reason)),
            Err(error) => return Ok(Err(error.to_string())),
        }
    }
}

/// A failure of a single statement run outside a retried unit: a lost conflict is as
/// transient as an unavailable database.
fn transient(error: StoreError) -> StoreError {
    match error {
        StoreError::Retryable(reason) => StoreError::Unavailable(reason),
        other => other,
    }
}

/// Applies a stored delivery's facts again (the admin replay), counting an attempt. Safe to
/// repeat: wamids are stored once per workspace and statuses only move forward. Lost conflicts
/// are retried as by [`ingest`].
///
/// # Errors
/// `Unavailable`, or any error of the failure record itself.
pub async fn replay<R>(
    repo: &R,
    delivery: &Delivery,
    facts: &DeliveryFacts,
) -> Result<IngestOutcome, StoreError>
where
    R: IngestRepository + DeliveryRepository + ?Sized,
{
    let error = match retrying(repo, || replay_attempt(repo, delivery, facts)).await? {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    repo.mark_delivery(delivery.id, DeliveryOutcome::Failed, Some(error.clone()))
        .await
        .map_err(transient)?;
    Ok(IngestOutcome::Failed(error))
}

async fn first_attempt<R>(
    repo: &R,
    delivery: &NewDelivery,
    facts: &DeliveryFacts,
) -> Result<IngestOutcome, StoreError>
where
    R: IngestRepository + ?Sized,
{
    let mut unit = repo.begin_ingest().await?;
    let (workspace_id, outcome) = route_and_apply(
        unit.as_mut(),
        delivery.phone_number_id.as_deref(),
        delivery.received_at,
        facts,
    )
    .await?;
    // The delivery row goes last, with its final outcome: one write instead of an insert and
    // a correction, sent together with the writes held back before it. Its unique idempotency
    // key still makes a repeated delivery change nothing: the insert waits for a concurrent
    // unit holding the key to finish, and when the key is stored the unit is dropped, which
    // rolls back everything it did.
    let (stored, error) = stored_outcome(&outcome);
    if !unit
        .insert_delivery(delivery, workspace_id, stored, error)
        .await?
    {
        return Ok(IngestOutcome::Duplicate);
    }
    unit.commit().await?;
    Ok(outcome)
}

async fn replay_attempt<R>(
    repo: &R,
    delivery: &Delivery,
    facts: &DeliveryFacts,
) -> Result<IngestOutcome, StoreError>
where
    R: IngestRepository + ?Sized,
{
    let mut unit = repo.begin_ingest().await?;
    let (workspace_id, outcome) = route_and_apply(
        unit.as_mut(),
        delivery.phone_number_id.as_deref(),
        delivery.received_at,
        facts,
    )
    .await?;
    let (stored, error) = stored_outcome(&outcome);
    unit.finish_delivery(delivery.id, workspace_id, stored, error, true)
        .await?;
    unit.commit().await?;
    Ok(outcome)
}

/// How an applied delivery is stored.
/// Routes a delivery to its workspace and applies its facts there, in the unit's transaction:
/// the workspace (none when the delivery is ignored) and what came of it.
async fn route_and_apply(
    unit: &mut dyn IngestUnit,
    delivery_phone_number_id: Option<&str>,
    received_at: Timestamp,
    facts: &DeliveryFacts,
) -> Result<(Option<WorkspaceId>, IngestOutcome), StoreError> {
    let now = Timestamp::now();
    let plan = Plan::of(facts);
    let phone_number_id = facts
        .phone_number_id
        .as_deref()
        .or(delivery_phone_number_id);
    Ok(match route(unit, phone_number_id, &plan).await? {
        Ok(route) => (
            Some(route.workspace.id),
            apply_facts(unit, route, &plan, facts, Clock { now, received_at }).await?,
        ),
        Err(reason) => (None, IngestOutcome::Ignored(reason)),
    })
}

/// The instants a delivery is applied by: now (for `created_at`, `updated_at`), and when the
/// delivery arrived (what a sender's timestamp is clamped around).
#[derive(Clone, Copy)]
struct Clock {
    now: Timestamp,
    received_at: Timestamp,
}

fn stored_outcome(outcome: &IngestOutcome) -> (DeliveryOutcome, Option<&str>) {
    match outcome {
        IngestOutcome::Ignored(reason) => (DeliveryOutcome::Ignored, Some(reason.as_str())),
        _ => (DeliveryOutcome::Processed, None),
    }
}

/// The workspace a delivery is for (with the first customer's contact and locked conversation
/// when the port found them on the way), or why there is none.
async fn route(
    unit: &mut dyn IngestUnit,
    phone_number_id: Option<&str>,
    plan: &Plan<'_>,
) -> Result<Result<IngestRoute, String>, StoreError> {
    let Some(phone_number_id) = phone_number_id else {
        return Ok(Err("the payload names no phone_number_id".to_owned()));
    };
    let first = plan.groups.values().next().and_then(|group| group.first());
    Ok(unit
        .route(phone_number_id, first.map(CustomerFact::customer))
        .await?
        .ok_or_else(|| format!("no workspace has phone_number_id {phone_number_id}")))
}

/// A fact that concerns one customer's conversation.
enum CustomerFact<'a> {
    Message(&'a IncomingMessage),
    Notice(&'a ConversationNotice),
}

impl CustomerFact<'_> {
    fn customer(&self) -> &CustomerRef {
        match self {
            Self::Message(m) => &m.customer,
            Self::Notice(n) => &n.customer,
        }
    }

    /// When it happened, as the sender says.
    fn at(&self) -> Timestamp {
        match self {
            Self::Message(m) => m.sent_at,
            Self::Notice(n) => n.at,
        }
    }
}

/// The key facts are grouped and ordered by: one group per customer.
fn customer_key(customer: &CustomerRef) -> Option<String> {
    match (&customer.phone, &customer.bsuid) {
        (Some(phone), _) => Some(format!("phone:{}", phone.as_str())),
        (None, Some(bsuid)) => Some(format!("bsuid:{bsuid}")),
        (None, None) => None,
    }
}

/// A delivery's facts in the order they are applied: customer facts grouped per customer, the
/// groups in key order, then statuses in wamid order (each group keeps payload order). Taking
/// row locks in one global order means two deliveries that touch the same conversations cannot
/// deadlock each other, and a status in the same delivery as its message finds it.
struct Plan<'a> {
    groups: BTreeMap<String, Vec<CustomerFact<'a>>>,
    statuses: Vec<&'a StatusUpdate>,
    unhandled: Vec<&'a str>,
    skipped: Vec<String>,
}

impl<'a> Plan<'a> {
    fn of(facts: &'a DeliveryFacts) -> Self {
        let mut plan = Plan {
            groups: BTreeMap::new(),
            statuses: Vec::new(),
            unhandled: Vec::new(),
            skipped: Vec::new(),
        };
        for item in &facts.items {
            let fact = match item {
                Fact::Message(m) => CustomerFact::Message(m),
                Fact::Conversation(n) => CustomerFact::Notice(n),
                Fact::Status(s) => {
                    plan.statuses.push(s);
                    continue;
                }
                Fact::Unhandled { event } => {
                    plan.unhandled.push(event);
                    continue;
                }
            };
            match customer_key(fact.customer()) {
                Some(key) => plan.groups.entry(key).or_default().push(fact),
                None => plan
                    .skipped
                    .push("a fact names no customer phone or bsuid".to_owned()),
            }
        }
        plan.statuses.sort_by(|a, b| a.wamid.cmp(&b.wamid));
        plan
    }
}

/// Applies every fact; the outcome is `Ignored` when any fact was deliberately skipped.
async fn apply_facts(
    unit: &mut dyn IngestUnit,
    route: IngestRoute,
    plan: &Plan<'_>,
    facts: &DeliveryFacts,
    clock: Clock,
) -> Result<IngestOutcome, StoreError> {
    let now = clock.now;
    let workspace = route.workspace;
    // What the route found belongs to the first group (see `route`).
    let mut found = route.customer;
    let mut skipped = plan.skipped.clone();
    let mut events = Vec::new();
    for group in plan.groups.values() {
        let reason =
            apply_customer(unit, workspace, group, found.take(), clock, &mut events).await?;
        if let Some(reason) = reason {
            skipped.push(reason);
        }
    }
    for status in &plan.statuses {
        let update = (status.status, status.error.clone());
        if !update_stored_message(unit, workspace.id, &status.wamid, &[update], &mut events).await?
            && !claim_by_callback(unit, workspace.id, status, &mut events).await?
        {
            let pending = PendingStatus {
                wamid: status.wamid.clone(),
                status: status.status,
                at: status.at,
                error: status.error.clone(),
            };
            unit.add_pending_status(workspace.id, &pending, now).await?;
        }
    }
    if !events.is_empty() {
        unit.append_events(&events).await?;
    }

    if facts.items.is_empty() {
        skipped.push("the delivery carries no message, status or conversation".to_owned());
    } else if plan.unhandled.len() == facts.items.len() {
        let mut unhandled = plan.unhandled.clone();
        unhandled.dedup();
        skipped.push(format!("no handler for {}", unhandled.join(", ")));
    }
    skipped.dedup();
    Ok(if skipped.is_empty() {
        IngestOutcome::Processed
    } else {
        IngestOutcome::Ignored(skipped.join("; "))
    })
}

/// Applies one customer's facts: find or create the contact and conversation (unless `found`
/// holds them, the conversation locked), store the messages, write the contact and
/// conversation once. Returns why the group was skipped, if it was.
async fn apply_customer(
    unit: &mut dyn IngestUnit,
    workspace: IngestWorkspace,
    group: &[CustomerFact<'_>],
    found: Option<(ContactState, ConversationState)>,
    clock: Clock,
    events: &mut Vec<NewEvent>,
) -> Result<Option<String>, StoreError> {
    let now = clock.now;
    let Some(first) = group.first() else {
        return Ok(None);
    };
    let customer = first.customer();
    let phone = customer.phone.as_ref();
    let bsuid = customer.bsuid.as_deref();
    let (found_contact, found_conversation) = match found {
        Some((contact, conversation)) => (Some(contact), Some(conversation)),
        None => (unit.find_contact(workspace.id, phone, bsuid).await?, None),
    };
    // A deleted contact: what the customer said before the deletion never comes back, to a
    // fresh contact either; what they say after starts (or goes to) a fresh contact.
    let erased_at = match &found_contact {
        Some(contact) => contact.erased_at,
        None => unit.erased_at(workspace.id, phone, bsuid).await?,
    };
    let mut kept: Vec<&CustomerFact<'_>> = group.iter().collect();
    if let Some(deleted_at) = erased_at {
        kept.retain(|fact| effective_sent_at(fact.at(), clock.received_at) > deleted_at);
        if kept.is_empty() {
            return Ok(Some(
                "the customer's contact was deleted after these facts".to_owned(),
            ));
        }
    }
    let (mut contact, contact_created) = match found_contact {
        Some(contact) => (contact, false),
        None => match create_contact(unit, workspace, customer, now).await? {
            Some((contact, created)) => (contact, created),
            None => {
                return Ok(Some(
                    "unknown customer and auto_create_contacts is off".to_owned(),
                ));
            }
        },
    };
    let group = kept;
    let mut named = false;
    for fact in &group {
        named |= contact.observe_profile_name(fact.customer().profile_name.as_deref());
    }
    let (mut conversation, conversation_created) = match found_conversation {
        Some(conversation) => (conversation, false),
        None => lock_or_create_conversation(unit, workspace.id, &contact, now).await?,
    };
    let event = |kind, message_id| NewEvent {
        workspace_id: workspace.id,
        kind,
        conversation_id: Some(conversation.id),
        contact_id: Some(contact.id),
        message_id,
    };
    if contact_created || named {
        events.push(event(EventKind::ContactUpdated, None));
    }
    if conversation_created {
        events.push(event(EventKind::ConversationCreated, None));
    }

    let mut contact_dirty = named;
    let mut conversation_dirty = false;
    for fact in &group {
        match fact {
            CustomerFact::Message(m) => {
                if store_message(unit, workspace.id, &mut conversation, m, clock, events).await? {
                    contact_dirty |= contact.record_message(
                        m.direction,
                        effective_sent_at(m.sent_at, clock.received_at),
                    );
                    conversation_dirty = true;
                }
                conversation_dirty |=
                    conversation.observe_kapso_conversation_id(m.kapso_conversation_id.as_deref());
            }
            CustomerFact::Notice(n) => {
                conversation_dirty |=
                    conversation.observe_kapso_conversation_id(n.kapso_conversation_id.as_deref());
            }
        }
    }

    if contact_dirty {
        unit.update_contact(workspace.id, &contact, now).await?;
    }
    if conversation_dirty {
        unit.update_conversation(&conversation, now).await?;
        if !conversation_created {
            events.push(NewEvent {
                workspace_id: workspace.id,
                kind: EventKind::ConversationUpdated,
                conversation_id: Some(conversation.id),
                contact_id: Some(contact.id),
                message_id: None,
            });
        }
    }
    Ok(None)
}

/// A contact for a customer not found (by phone, then bsuid), created when the workspace
/// allows it; `None` when it does not. The flag says whether this unit created it (a
/// concurrent delivery may have).
async fn create_contact(
    unit: &mut dyn IngestUnit,
    workspace: IngestWorkspace,
    customer: &CustomerRef,
    now: Timestamp,
) -> Result<Option<(ContactState, bool)>, StoreError> {
    let phone = customer.phone.as_ref();
    let bsuid = customer.bsuid.as_deref();
    if !workspace.auto_create_contacts {
        return Ok(None);
    }
    let customer = CustomerRef {
        profile_name: clean_profile_name(customer.profile_name.as_deref()).map(str::to_owned),
        ..customer.clone()
    };
    if let Some(created) = unit
        .insert_contact(workspace.id, ContactId::new(), &customer, now)
        .await?
    {
        return Ok(Some((created, true)));
    }
    // A concurrent delivery created it between our read and our insert; it is committed now.
    unit.find_contact(workspace.id, phone, bsuid)
        .await?
        .map(|found| Some((found, false)))
        .ok_or_else(|| StoreError::Internal("contact conflicted but cannot be found".into()))
}

/// The contact's conversation, locked for this unit; created when there is none. The flag
/// says whether this unit created it.
async fn lock_or_create_conversation(
    unit: &mut dyn IngestUnit,
    workspace_id: WorkspaceId,
    contact: &ContactState,
    now: Timestamp,
) -> Result<(ConversationState, bool), StoreError> {
    if let Some(found) = unit.lock_conversation(workspace_id, contact.id).await? {
        return Ok((found, false));
    }
    let fresh = ConversationState::new_for(workspace_id, contact);
    if unit.insert_conversation(&fresh, now).await? {
        // A row this transaction inserted is invisible to, and so uncontended by, others.
        return Ok((fresh, true));
    }
    unit.lock_conversation(workspace_id, contact.id)
        .await?
        .map(|found| (found, false))
        .ok_or_else(|| StoreError::Internal("conversation conflicted but cannot be found".into()))
}

/// Stores a message once per wamid with the conversation's next seq, folding in statuses that
/// arrived before it. Returns whether it was new (and recorded on `conversation`). A repeated
/// outbound message still contributes its status, monotonically.
async fn store_message(
    unit: &mut dyn IngestUnit,
    workspace_id: WorkspaceId,
    conversation: &mut ConversationState,
    m: &IncomingMessage,
    clock: Clock,
    events: &mut Vec<NewEvent>,
) -> Result<bool, StoreError> {
    let now = clock.now;
    // WhatsApp reports statuses only for messages the business sent, so only outbound messages
    // can have statuses waiting for them; inbound ones skip the lookup.
    let pending = match m.direction {
        Direction::Outbound => unit.take_pending_statuses(workspace_id, &m.wamid).await?,
        Direction::Inbound => Vec::new(),
    };
    let (status, error) = fold_statuses(
        m.status,
        pending.iter().map(|p| (p.status, p.error.as_ref())),
    )
    .map_or((m.status, None), |(s, e)| (s, e.cloned()));
    if m.direction == Direction::Outbound {
        // An echo of a message this API is sending whose wamid we have not recorded yet: it
        // is that message, not a new one.
        let sought = OwnSendMatch {
            callback_data: m.callback_data.clone(),
            content: Some(EchoContent {
                kind: m.kind.clone(),
                text: (m.kind == MessageKind::text())
                    .then(|| m.text.clone())
                    .flatten(),
                template: m.template.as_deref().cloned(),
            }),
        };
        if let Some(own) = unit
            .claim_unsent_outbound(workspace_id, conversation.id, &sought, &m.wamid)
            .await?
        {
            let updates: Vec<(DeliveryStatus, Option<MessageError>)> =
                std::iter::once((m.status, None))
                    .chain(pending.into_iter().map(|p| (p.status, p.error)))
                    .collect();
            let folded = fold_statuses(own.status, updates.iter().map(|(s, e)| (*s, e.as_ref())));
            if let Some((status, error)) = folded {
                unit.update_message_status(workspace_id, own.id, status, error)
                    .await?;
            }
            // The wamid changed even when the status did not.
            events.push(NewEvent {
                workspace_id,
                kind: EventKind::MessageUpdated,
                conversation_id: Some(own.conversation_id),
                contact_id: Some(own.contact_id),
                message_id: Some(own.id),
            });
            return Ok(false);
        }
    }
    let message = NewIngestedMessage {
        id: MessageId::new(),
        workspace_id,
        conversation_id: conversation.id,
        seq: conversation.next_seq(),
        direction: m.direction,
        sender_type: m.sender_type,
        kind: m.kind.clone(),
        text: m.text.clone(),
        media: m.media.clone(),
        reply_to_wamid: m.reply_to_wamid.clone(),
        wamid: m.wamid.clone(),
        status,
        error,
        raw: m.raw.clone(),
        sent_at: m.sent_at,
        created_at: now,
    };
    if unit.insert_message(&message).await? {
        // Ordered and windowed by the clamped time; the row keeps the sender's.
        let at = effective_sent_at(m.sent_at, clock.received_at);
        conversation.record_message(m.direction, at, &m.kind, m.text.as_deref());
        events.push(NewEvent {
            workspace_id,
            kind: EventKind::MessageCreated,
            conversation_id: Some(conversation.id),
            contact_id: Some(conversation.contact_id),
            message_id: Some(message.id),
        });
        return Ok(true);
    }
    if m.direction == Direction::Outbound {
        let updates: Vec<(DeliveryStatus, Option<MessageError>)> =
            std::iter::once((m.status, None))
                .chain(pending.into_iter().map(|p| (p.status, p.error)))
                .collect();
        update_stored_message(unit, workspace_id, &m.wamid, &updates, events).await?;
    }
    Ok(false)
}

/// A status for a wamid we do not know yet that names one of our pending sends by its callback
/// data: gives that message the wamid and applies the status. `false` when it names none.
async fn claim_by_callback(
    unit: &mut dyn IngestUnit,
    workspace_id: WorkspaceId,
    status: &StatusUpdate,
    events: &mut Vec<NewEvent>,
) -> Result<bool, StoreError> {
    let sought = OwnSendMatch {
        callback_data: status.callback_data.clone(),
        content: None,
    };
    let Some(id) = sought.message_id() else {
        return Ok(false);
    };
    let Some(own) = unit.claim_own_send(workspace_id, id, &status.wamid).await? else {
        return Ok(false);
    };
    let updates = [
        (DeliveryStatus::Sent, None),
        (status.status, status.error.clone()),
    ];
    if let Some((to, error)) =
        fold_statuses(own.status, updates.iter().map(|(s, e)| (*s, e.as_ref())))
    {
        unit.update_message_status(workspace_id, own.id, to, error)
            .await?;
    }
    // The wamid changed even when the status did not.
    events.push(NewEvent {
        workspace_id,
        kind: EventKind::MessageUpdated,
        conversation_id: Some(own.conversation_id),
        contact_id: Some(own.contact_id),
        message_id: Some(own.id),
    });
    Ok(true)
}

/// Moves a stored message's status forward; `false` when no message has that wamid.
async fn update_stored_message(
    unit: &mut dyn IngestUnit,
    workspace_id: WorkspaceId,
    wamid: &str,
    updates: &[(DeliveryStatus, Option<MessageError>)],
    events: &mut Vec<NewEvent>,
) -> Result<bool, StoreError> {
    let Some(stored) = unit.lock_message(workspace_id, wamid).await? else {
        return Ok(false);
    };
    let folded = fold_statuses(stored.status, updates.iter().map(|(s, e)| (*s, e.as_ref())));
    if let Some((status, error)) = folded {
        unit.update_message_status(workspace_id, stored.id, status, error)
            .await?;
        events.push(NewEvent {
            workspace_id,
            kind: EventKind::MessageUpdated,
            conversation_id: Some(stored.conversation_id),
            contact_id: Some(stored.contact_id),
            message_id: Some(stored.id),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    //! How the use case answers when storage fails: retried, 503 or `failed`, never a 500 for
    //! something that may succeed later.

    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;

    use super::*;
    use crate::delivery::DeliveryFilter;
    use crate::ids::{ContactId, ConversationId, DeliveryId, MessageId};
    use crate::ingest::MessageStatusState;
    use crate::phone::PhoneE164;

    /// Runs a future whose fakes never wait.
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
        }
    }

    /// Each unit's `route` answers the next of `routes` (then routes nowhere); the failure
    /// record answers `record`.
    struct Fake {
        routes: Mutex<VecDeque<StoreError>>,
        record: Result<bool, StoreError>,
        pauses: Mutex<Vec<u32>>,
        recorded: Mutex<u32>,
    }

    impl Fake {
        fn new(routes: Vec<StoreError>, record: Result<bool, StoreError>) -> Self {
            Self {
                routes: Mutex::new(routes.into()),
                record,
                pauses: Mutex::new(Vec::new()),
                recorded: Mutex::new(0),
            }
        }
    }

    struct FakeUnit(Option<StoreError>);

    #[async_trait]
    impl IngestRepository for Fake {
        async fn begin_ingest(&self) -> Result<Box<dyn IngestUnit>, StoreError> {
            let next = self.routes.lock().expect("lock").pop_front();
            Ok(Box::new(FakeUnit(next)))
        }

        async fn pause_before_retry(&self, attempt: u32) {
            self.pauses.lock().expect("lock").push(attempt);
        }
    }

    #[async_trait]
    impl DeliveryRepository for Fake {
        async fn record_delivery(
            &self,
            _: &NewDelivery,
            _: Option<WorkspaceId>,
            _: DeliveryOutcome,
            _: Option<String>,
        ) -> Result<bool, StoreError> {
            *self.recorded.lock().expect("lock") += 1;
            self.record.clone()
        }
        async fn delivery_by_idempotency_key(
            &self,
            _: &str,
        ) -> Result<Option<Delivery>, StoreError> {
            unreachable!()
        }
        async fn delivery(&self, _: DeliveryId) -> Result<Option<Delivery>, StoreError> {
            unreachable!()
        }
        async fn deliveries(&self, _: DeliveryFilter, _: u32) -> Result<Vec<Delivery>, StoreError> {
            unreachable!()
        }
        async fn mark_delivery(
            &self,
            _: DeliveryId,
            _: DeliveryOutcome,
            _: Option<String>,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn prune_deliveries(
            &self,
            _: Timestamp,
            _: Timestamp,
            _: u32,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn prune_pending_statuses(&self, _: Timestamp, _: u32) -> Result<u64, StoreError> {
            unreachable!()
        }
    }

    #[async_trait]
    impl IngestUnit for FakeUnit {
        async fn route(
            &mut self,
            _: &str,
            _: Option<&CustomerRef>,
        ) -> Result<Option<IngestRoute>, StoreError> {
            self.0.take().map_or(Ok(None), Err)
        }
        async fn insert_delivery(
            &mut self,
            _: &NewDelivery,
            _: Option<WorkspaceId>,
            _: DeliveryOutcome,
            _: Option<&str>,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn finish_delivery(
            &mut self,
            _: DeliveryId,
            _: Option<WorkspaceId>,
            _: DeliveryOutcome,
            _: Option<&str>,
            _: bool,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn find_contact(
            &mut self,
            _: WorkspaceId,
            _: Option<&PhoneE164>,
            _: Option<&str>,
        ) -> Result<Option<ContactState>, StoreError> {
            unreachable!()
        }
        async fn erased_at(
            &mut self,
            _: WorkspaceId,
            _: Option<&PhoneE164>,
            _: Option<&str>,
        ) -> Result<Option<Timestamp>, StoreError> {
            unreachable!()
        }
        async fn insert_contact(
            &mut self,
            _: WorkspaceId,
            _: ContactId,
            _: &CustomerRef,
            _: Timestamp,
        ) -> Result<Option<ContactState>, StoreError> {
            unreachable!()
        }
        async fn update_contact(
            &mut self,
            _: WorkspaceId,
            _: &ContactState,
            _: Timestamp,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn lock_conversation(
            &mut self,
            _: WorkspaceId,
            _: ContactId,
        ) -> Result<Option<ConversationState>, StoreError> {
            unreachable!()
        }
        async fn insert_conversation(
            &mut self,
            _: &ConversationState,
            _: Timestamp,
        ) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn update_conversation(
            &mut self,
            _: &ConversationState,
            _: Timestamp,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn insert_message(&mut self, _: &NewIngestedMessage) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn take_pending_statuses(
            &mut self,
            _: WorkspaceId,
            _: &str,
        ) -> Result<Vec<PendingStatus>, StoreError> {
            unreachable!()
        }
        async fn lock_message(
            &mut self,
            _: WorkspaceId,
            _: &str,
        ) -> Result<Option<MessageStatusState>, StoreError> {
            unreachable!()
        }
        async fn claim_unsent_outbound(
            &mut self,
            _: WorkspaceId,
            _: ConversationId,
            _: &crate::sending::OwnSendMatch,
            _: &str,
        ) -> Result<Option<MessageStatusState>, StoreError> {
            unreachable!()
        }
        async fn claim_own_send(
            &mut self,
            _: WorkspaceId,
            _: MessageId,
            _: &str,
        ) -> Result<Option<MessageStatusState>, StoreError> {
            unreachable!()
        }
        async fn update_message_status(
            &mut self,
            _: WorkspaceId,
            _: MessageId,
            _: DeliveryStatus,
            _: Option<&MessageError>,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn add_pending_status(
            &mut self,
            _: WorkspaceId,
            _: &PendingStatus,
            _: Timestamp,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn append_events(&mut self, _: &[NewEvent]) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn commit(self: Box<Self>) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn run(fake: &Fake) -> Result<IngestOutcome, StoreError> {
        let delivery = NewDelivery {
            id: DeliveryId::new(),
            idempotency_key: Some("k".into()),
            event: None,
            phone_number_id: Some("123".into()),
            headers: serde_json::json!({}),
            body: Vec::new(),
            received_at: Timestamp::from_millis(0),
        };
        let facts = DeliveryFacts {
            phone_number_id: Some("123".into()),
            items: Vec::new(),
        };
        block_on(ingest(fake, &delivery, &facts))
    }

    fn conflict() -> StoreError {
        StoreError::Retryable("deadlock detected".into())
    }

    #[test]
    fn lost_conflicts_are_run_again_with_a_pause_before_each_attempt() {
        let fake = Fake::new(vec![conflict(), conflict(), conflict()], Ok(true));
        assert!(matches!(run(&fake), Ok(IngestOutcome::Ignored(_))));
        assert_eq!(*fake.pauses.lock().expect("lock"), vec![2, 3, 4]);
        assert_eq!(*fake.recorded.lock().expect("lock"), 0);
    }

    #[test]
    fn conflicts_past_the_last_attempt_are_unavailable_with_nothing_recorded() {
        let fake = Fake::new(vec![conflict(); 4], Ok(true));
        assert!(matches!(run(&fake), Err(StoreError::Unavailable(_))));
        assert_eq!(*fake.recorded.lock().expect("lock"), 0);
        assert_eq!(*fake.pauses.lock().expect("lock"), vec![2, 3, 4]);
    }

    #[test]
    fn an_unavailable_database_is_not_recorded_as_failed() {
        let fake = Fake::new(vec![StoreError::Unavailable("pool".into())], Ok(true));
        assert!(matches!(run(&fake), Err(StoreError::Unavailable(_))));
        assert_eq!(*fake.recorded.lock().expect("lock"), 0);
    }

    #[test]
    fn a_deterministic_failure_is_recorded_failed() {
        let fake = Fake::new(vec![StoreError::Internal("bad row".into())], Ok(true));
        assert!(matches!(run(&fake), Ok(IngestOutcome::Failed(e)) if e.contains("bad row")));
        assert_eq!(*fake.recorded.lock().expect("lock"), 1);
    }

    #[test]
    fn a_failure_record_that_fails_transiently_is_unavailable() {
        for record in [
            StoreError::Unavailable("pool timed out".into()),
            StoreError::Retryable("deadlock detected".into()),
        ] {
            let fake = Fake::new(vec![StoreError::Internal("bad row".into())], Err(record));
            assert!(matches!(run(&fake), Err(StoreError::Unavailable(_))));
        }
    }
}
