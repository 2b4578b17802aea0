//! The ingest port: one write transaction per delivery, offering the reads and writes the
//! domain's ingest use case composes.
//!
//! Round trips, not rows, are what a delivery costs: on PostgreSQL each statement waits for the
//! server, on SQLite for the driver's worker thread, and meanwhile the transaction holds its
//! locks (on SQLite, the only writer). So the unit holds back the writes whose results nobody
//! reads (contact, conversation, tag, status and event writes) and sends them in one statement
//! text together with the next statement that must run, which on the common path is the
//! delivery row's insert at the end: joined by `;` on SQLite, which runs them in order in one
//! call, and as data-modifying `WITH` parts on PostgreSQL. A statement that reads runs after
//! the held writes, never beside them, so it sees them.

use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use inbox_domain::contact::LeadStatus;
use inbox_domain::conversation::ConversationStatus;
use inbox_domain::delivery::{DeliveryOutcome, NewDelivery};
use inbox_domain::event::NewEvent;
use inbox_domain::ingest::{
    ContactState, ConversationState, CustomerRef, IngestRoute, IngestWorkspace, MessageStatusState,
    NewIngestedMessage, PendingStatus,
};
use inbox_domain::message::{DeliveryStatus, Media, MessageError};
use inbox_domain::phone::PhoneE164;
use inbox_domain::ports::{IngestRepository, IngestUnit, StoreError};
use inbox_domain::sending::OwnSendMatch;
use inbox_domain::{
    ContactId, ConversationId, DeliveryId, MessageId, Timestamp, UserId, WorkspaceId,
};
use serde_json::{Value, json};
use sqlx::{FromRow, Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::changes::Changes;
use crate::error::from_sqlx;
use crate::events::Dialect;
use crate::group_commit::Member;
use crate::rows::corrupt;

/// One ingest transaction (on SQLite, a savepoint of a group commit). Dropping it without
/// [`IngestUnit::commit`] rolls back, held writes included (they were never sent).
pub(crate) struct Unit<T> {
    tx: T,
    /// Told after commit, when events were appended, so the live stream reads them.
    changes: Arc<Changes>,
    appended_events: bool,
    held: Held,
}

/// How a backend begins and ends a unit's transaction.
trait UnitTx<DB: sqlx::Database>: Sized + Send {
    /// Begins one; with a statement to send first, if any.
    async fn begin(store: &Store<DB>) -> Result<(Self, Option<String>), StoreError>;

    /// Records that the unit is sending statements.
    fn sending(&mut self);

    /// Commits, then tells readers of the event log when events were appended.
    async fn commit(self, changes: &Arc<Changes>, appended_events: bool) -> Result<(), StoreError>;

    /// Records that the unit inserted this delivery.
    fn inserted_delivery(&mut self, id: Uuid);

    /// Called when a delivery's idempotency key was found taken: `Ok` when the delivery that
    /// holds it (`stored`, its id) is durable; otherwise makes its outcome final and answers
    /// `Retryable`, so that the repeat is answered by what became of the original.
    async fn original_is_durable(
        &mut self,
        changes: &Arc<Changes>,
        stored: Option<Uuid>,
    ) -> Result<(), StoreError>;

    /// Whether [`Self::original_is_durable`] needs the id of the delivery holding the key.
    fn needs_original(&self) -> bool;
}

/// PostgreSQL: a transaction per unit. The server commits concurrent transactions with one WAL
/// flush when they meet, and row locks let units of different conversations run in parallel.
impl UnitTx<Postgres> for sqlx::Transaction<'static, Postgres> {
    async fn begin(store: &Store<Postgres>) -> Result<(Self, Option<String>), StoreError> {
        Ok((store.begin_write().await?, None))
    }

    fn sending(&mut self) {}

    async fn commit(self, changes: &Arc<Changes>, appended_events: bool) -> Result<(), StoreError> {
        sqlx::Transaction::commit(self).await.map_err(from_sqlx)?;
        if appended_events {
            changes.committed();
        }
        Ok(())
    }

    fn inserted_delivery(&mut self, _: Uuid) {}

    /// The unique insert waited for the transaction holding the key, which committed.
    async fn original_is_durable(
        &mut self,
        _: &Arc<Changes>,
        _: Option<Uuid>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn needs_original(&self) -> bool {
        false
    }
}

/// SQLite: a savepoint in the writer's group commit (see [`crate::group_commit`]).
impl UnitTx<Sqlite> for Member {
    async fn begin(store: &Store<Sqlite>) -> Result<(Self, Option<String>), StoreError> {
        let (member, first) = store.group_commit.join(store).await?;
        Ok((member, Some(first)))
    }

    fn sending(&mut self) {
        Member::sending(self);
    }

    async fn commit(self, changes: &Arc<Changes>, appended_events: bool) -> Result<(), StoreError> {
        Member::commit(self, changes, appended_events).await
    }

    fn inserted_delivery(&mut self, id: Uuid) {
        Member::inserted_delivery(self, id);
    }

    /// The key may be held by a delivery of this very batch, written but not committed: then
    /// the batch (without this unit) is committed now, and the unit answers `Retryable`; run
    /// again, it finds the original committed, or, if the batch failed, the key free.
    async fn original_is_durable(
        &mut self,
        changes: &Arc<Changes>,
        stored: Option<Uuid>,
    ) -> Result<(), StoreError> {
        if !stored.is_some_and(|id| self.batch_inserted(id)) {
            return Ok(());
        }
        self.commit_others(changes).await;
        Err(StoreError::Retryable(
            "the original of this delivery was not committed yet".into(),
        ))
    }

    fn needs_original(&self) -> bool {
        self.batch_has_deliveries()
    }
}

/// A value bound to a held statement.
#[derive(Clone, Debug)]
enum Bind {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Int32(i32),
    Bytes(Vec<u8>),
}

/// The most values one statement text may carry: below SQLite's 32,766 and PostgreSQL's
/// 65,535 bind parameters, whatever a delivery holds.
pub(crate) const MAX_BINDS: usize = 30_000;

/// The most events one `INSERT` appends (5 values each, and one shared).
const EVENTS_PER_STATEMENT: usize = 1_000;

/// Statements not sent yet, in order, each numbering its own parameters from `$1`; they are sent
/// as few statement texts as [`MAX_BINDS`] allows, each with one list of values.
#[derive(Debug, Default)]
struct Held {
    /// Each statement with the number of values it takes from `binds`, and whether the run
    /// it is in must end with it.
    statements: Vec<(String, usize, bool)>,
    binds: Vec<Bind>,
}

impl Held {
    /// Adds `sql`, whose parameters are `$1..$n` for `binds`.
    fn push(&mut self, sql: &str, binds: Vec<Bind>) {
        self.statements.push((sql.to_owned(), binds.len(), false));
        self.binds.extend(binds);
    }

    /// Adds `sql` as [`Self::push`] does, as the last statement of its run: what follows runs
    /// after it. (On PostgreSQL the parts of one text run in no defined order.)
    fn push_ending_run(&mut self, sql: &str, binds: Vec<Bind>) {
        self.statements.push((sql.to_owned(), binds.len(), true));
        self.binds.extend(binds);
    }

    fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The statements in order, cut into runs of at most [`MAX_BINDS`] values (a statement
    /// that takes more runs alone), each run's parameters numbered after the ones before it
    /// in the run, with its values.
    fn into_runs(self) -> Vec<(Vec<String>, Vec<Bind>)> {
        let mut runs: Vec<(Vec<String>, Vec<Bind>)> = Vec::new();
        let mut binds = self.binds.into_iter();
        let mut ended = true;
        for (sql, count, ends_run) in self.statements {
            let fits = !ended
                && runs
                    .last()
                    .is_some_and(|(_, values)| values.len() + count <= MAX_BINDS);
            if !fits {
                runs.push((Vec::new(), Vec::new()));
            }
            ended = ends_run;
            let Some((statements, values)) = runs.last_mut() else {
                continue;
            };
            statements.push(renumber(&sql, values.len()));
            values.extend(binds.by_ref().take(count));
        }
        runs
    }
}

/// `sql` with every parameter `$n` written `$(n + offset)`. (No statement of this module has a
/// `$` anywhere else.)
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                let _ = write!(out, "{}", n + offset);
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// `contacts` columns ingest reads.
#[derive(sqlx::FromRow)]
struct ContactRow {
    id: Uuid,
    whatsapp_name: Option<String>,
    last_activity_at: Option<i64>,
    last_contact_at: Option<i64>,
    assigned_to: Option<Uuid>,
    lead_status: String,
    erased_at: Option<i64>,
}

/// [`ContactRow`] from `contacts` (with its tombstone's time, if the customer was deleted).
const CONTACT_COLUMNS: &str = "id, whatsapp_name, last_activity_at, last_contact_at, \
    assigned_to, lead_status, (SELECT MAX(t.deleted_at) FROM contact_tombstones t \
      WHERE t.workspace_id = contacts.workspace_id \
        AND (t.phone = contacts.phone OR t.bsuid = contacts.bsuid)) AS erased_at";

/// [`ContactRow`] as an insert returns it: a contact created now was checked for a tombstone
/// before.
const CONTACT_RETURNING: &str = "id, whatsapp_name, last_activity_at, last_contact_at, \
    assigned_to, lead_status, NULL AS erased_at";

impl TryFrom<ContactRow> for ContactState {
    type Error = StoreError;

    fn try_from(row: ContactRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: ContactId::from_uuid(row.id),
            whatsapp_name: row.whatsapp_name,
            last_activity_at: row.last_activity_at.map(Timestamp::from_millis),
            last_contact_at: row.last_contact_at.map(Timestamp::from_millis),
            assigned_to: row.assigned_to.map(UserId::from_uuid),
            lead_status: lead_status(&row.lead_status)?,
            erased_at: row.erased_at.map(Timestamp::from_millis),
        })
    }
}

/// `conversations` columns ingest reads.
#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: Uuid,
    workspace_id: Uuid,
    contact_id: Uuid,
    status: String,
    unread_count: i32,
    last_message_at: Option<i64>,
    last_message_preview: Option<String>,
    last_inbound_at: Option<i64>,
    last_seq: i64,
    kapso_conversation_id: Option<String>,
    contact_assigned_to: Option<Uuid>,
    lead_status: String,
}

const CONVERSATION_COLUMNS: &str = "v.id, v.workspace_id, v.contact_id, v.status, \
    v.unread_count, v.last_message_at, v.last_message_preview, v.last_inbound_at, v.last_seq, \
    v.kapso_conversation_id, v.contact_assigned_to, v.lead_status";

impl TryFrom<ConversationRow> for ConversationState {
    type Error = StoreError;

    fn try_from(row: ConversationRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: ConversationId::from_uuid(row.id),
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            contact_id: ContactId::from_uuid(row.contact_id),
            status: row
                .status
                .parse::<ConversationStatus>()
                .map_err(|e| corrupt("conversation status", e))?,
            unread_count: i64::from(row.unread_count),
            last_message_at: row.last_message_at.map(Timestamp::from_millis),
            last_message_preview: row.last_message_preview,
            last_inbound_at: row.last_inbound_at.map(Timestamp::from_millis),
            last_seq: row.last_seq,
            kapso_conversation_id: row.kapso_conversation_id,
            contact_assigned_to: row.contact_assigned_to.map(UserId::from_uuid),
            lead_status: lead_status(&row.lead_status)?,
        })
    }
}

fn lead_status(text: &str) -> Result<LeadStatus, StoreError> {
    text.parse().map_err(|e| corrupt("lead_status", e))
}

pub(crate) fn delivery_status(text: &str) -> Result<DeliveryStatus, StoreError> {
    text.parse()
        .map_err(|e: String| corrupt("message status", e))
}

/// A message's attachment as stored (JSON text), in the shape the API serves.
pub(crate) fn media_json(media: &Media) -> String {
    json!({
        "url": media.url,
        "mime_type": media.mime_type,
        "filename": media.filename,
        "size_bytes": media.size_bytes,
        "provider_media_id": media.provider_media_id,
    })
    .to_string()
}

/// A message's error as stored (JSON text), in the shape the API serves.
pub(crate) fn error_json(error: &MessageError) -> String {
    json!({"code": error.code, "title": error.title, "message": error.message}).to_string()
}

/// A stored error JSON back into the domain type.
pub(crate) fn error_from_json(text: &str) -> Result<MessageError, StoreError> {
    let value: Value = serde_json::from_str(text).map_err(|e| corrupt("message error", e))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(MessageError {
        code: field("code"),
        title: field("title"),
        message: field("message"),
    })
}

/// The lock key serialising a status with its message's arrival.
pub(crate) fn wamid_key(workspace_id: WorkspaceId, wamid: &str) -> String {
    format!("wamid:{workspace_id}:{wamid}")
}

/// The route's one statement: the workspace, the customer's contact and its conversation,
/// locked. Binds: phone_number_id, the phone (or bsuid).
const ROUTE_COLUMNS: &str = "w.id AS ws_id, w.auto_create_contacts AS ws_auto_create, \
    k.id AS k_id, k.whatsapp_name AS k_whatsapp_name, k.last_activity_at AS k_last_activity_at, \
    k.last_contact_at AS k_last_contact_at, k.assigned_to AS k_assigned_to, \
    k.lead_status AS k_lead_status, (SELECT MAX(t.deleted_at) FROM contact_tombstones t \
      WHERE t.workspace_id = w.id AND (t.phone = k.phone OR t.bsuid = k.bsuid)) AS k_erased_at, \
    v.id AS v_id, v.workspace_id AS v_workspace_id, \
    v.contact_id AS v_contact_id, v.status AS v_status, v.unread_count AS v_unread_count, \
    v.last_message_at AS v_last_message_at, v.last_message_preview AS v_last_message_preview, \
    v.last_inbound_at AS v_last_inbound_at, v.last_seq AS v_last_seq, \
    v.kapso_conversation_id AS v_kapso_conversation_id, \
    v.contact_assigned_to AS v_contact_assigned_to, v.lead_status AS v_lead_status";

/// [`ROUTE_COLUMNS`] as read.
#[derive(sqlx::FromRow)]
struct RouteRow {
    ws_id: Uuid,
    ws_auto_create: bool,
    k_id: Uuid,
    k_whatsapp_name: Option<String>,
    k_last_activity_at: Option<i64>,
    k_last_contact_at: Option<i64>,
    k_assigned_to: Option<Uuid>,
    k_lead_status: String,
    k_erased_at: Option<i64>,
    v_id: Uuid,
    v_workspace_id: Uuid,
    v_contact_id: Uuid,
    v_status: String,
    v_unread_count: i32,
    v_last_message_at: Option<i64>,
    v_last_message_preview: Option<String>,
    v_last_inbound_at: Option<i64>,
    v_last_seq: i64,
    v_kapso_conversation_id: Option<String>,
    v_contact_assigned_to: Option<Uuid>,
    v_lead_status: String,
}

impl TryFrom<RouteRow> for IngestRoute {
    type Error = StoreError;

    fn try_from(row: RouteRow) -> Result<Self, StoreError> {
        let contact = ContactState::try_from(ContactRow {
            id: row.k_id,
            whatsapp_name: row.k_whatsapp_name,
            last_activity_at: row.k_last_activity_at,
            last_contact_at: row.k_last_contact_at,
            assigned_to: row.k_assigned_to,
            lead_status: row.k_lead_status,
            erased_at: row.k_erased_at,
        })?;
        let conversation = ConversationState::try_from(ConversationRow {
            id: row.v_id,
            workspace_id: row.v_workspace_id,
            contact_id: row.v_contact_id,
            status: row.v_status,
            unread_count: row.v_unread_count,
            last_message_at: row.v_last_message_at,
            last_message_preview: row.v_last_message_preview,
            last_inbound_at: row.v_last_inbound_at,
            last_seq: row.v_last_seq,
            kapso_conversation_id: row.v_kapso_conversation_id,
            contact_assigned_to: row.v_contact_assigned_to,
            lead_status: row.v_lead_status,
        })?;
        Ok(Self {
            workspace: IngestWorkspace {
                id: WorkspaceId::from_uuid(row.ws_id),
                auto_create_contacts: row.ws_auto_create,
            },
            customer: Some((contact, conversation)),
        })
    }
}

macro_rules! impl_ingest {
    ($db:ty, $tx:ty) => {
        #[async_trait]
        impl IngestRepository for Store<$db> {
            async fn begin_ingest(&self) -> Result<Box<dyn IngestUnit>, StoreError> {
                let (tx, first) = <$tx as UnitTx<$db>>::begin(self).await?;
                let mut held = Held::default();
                if let Some(first) = first {
                    held.push(&first, Vec::new());
                }
                Ok(Box::new(Unit::<$tx> {
                    tx,
                    changes: Arc::clone(&self.changes),
                    appended_events: false,
                    held,
                }))
            }

            async fn pause_before_retry(&self, attempt: u32) {
                crate::error::pause_before_retry(attempt).await;
            }
        }

        impl Unit<$tx> {
            /// Sends the held writes and then `sql`, as one statement text; the rows `sql`
            /// returns. Only for a `sql` that writes to what no held write touches: on
            /// PostgreSQL the parts of one statement do not see each other's writes.
            async fn send_with(
                &mut self,
                sql: &str,
                binds: Vec<Bind>,
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, StoreError> {
                let mut held = std::mem::take(&mut self.held);
                held.push(sql, binds);
                self.send(held).await
            }

            /// Sends the held writes, if any, so that what runs next sees them.
            async fn flush(&mut self) -> Result<(), StoreError> {
                if self.held.is_empty() {
                    return Ok(());
                }
                let held = std::mem::take(&mut self.held);
                self.send(held).await.map(drop)
            }

            async fn send(
                &mut self,
                held: Held,
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, StoreError> {
                self.tx.sending();
                let mut rows = Vec::new();
                for (statements, binds) in held.into_runs() {
                    let text = <$db as Dialect>::combine(&statements);
                    let mut query = sqlx::query(&text);
                    for bind in binds {
                        query = match bind {
                            Bind::Uuid(v) => query.bind(v),
                            Bind::Text(v) => query.bind(v),
                            Bind::Int(v) => query.bind(v),
                            Bind::Int32(v) => query.bind(v),
                            Bind::Bytes(v) => query.bind(v),
                        };
                    }
                    rows = query.fetch_all(&mut *self.tx).await.map_err(from_sqlx)?;
                }
                Ok(rows)
            }

            async fn workspace(
                &mut self,
                phone_number_id: &str,
            ) -> Result<Option<IngestWorkspace>, StoreError> {
                self.flush().await?;
                let row: Option<(Uuid, bool)> = sqlx::query_as(
                    "SELECT id, auto_create_contacts FROM workspaces \
                     WHERE kapso_phone_number_id = $1",
                )
                .bind(phone_number_id)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                Ok(row.map(|(id, auto_create_contacts)| IngestWorkspace {
                    id: WorkspaceId::from_uuid(id),
                    auto_create_contacts,
                }))
            }
        }

        #[async_trait]
        impl IngestUnit for Unit<$tx> {
            async fn route(
                &mut self,
                phone_number_id: &str,
                customer: Option<&CustomerRef>,
            ) -> Result<Option<IngestRoute>, StoreError> {
                if !<$db as Dialect>::SEQUENTIAL_TEXT {
                    self.flush().await?;
                }
                let key = customer.and_then(|c| match (&c.phone, &c.bsuid) {
                    (Some(phone), _) => Some(("phone", phone.as_str())),
                    (None, Some(bsuid)) => Some(("bsuid", bsuid.as_str())),
                    (None, None) => None,
                });
                if let Some((column, value)) = key {
                    // The common case in one seek per table: a known number, a known customer
                    // with a conversation. The rest takes the step-by-step way.
                    // On SQLite the held statements (the unit's savepoint) go in the same call.
                    let rows = self
                        .send_with(
                            &format!(
                                "SELECT {ROUTE_COLUMNS} FROM workspaces w \
                                 JOIN contacts k ON k.workspace_id = w.id AND k.{column} = $2 \
                                 JOIN conversations v ON v.contact_id = k.id \
                                   AND v.workspace_id = w.id \
                                 WHERE w.kapso_phone_number_id = $1{}",
                                <$db as Dialect>::for_update_of("v")
                            ),
                            vec![
                                Bind::Text(Some(phone_number_id.to_owned())),
                                Bind::Text(Some(value.to_owned())),
                            ],
                        )
                        .await?;
                    if let Some(row) = rows.first() {
                        let row = RouteRow::from_row(row).map_err(from_sqlx)?;
                        return IngestRoute::try_from(row).map(Some);
                    }
                }
                Ok(self
                    .workspace(phone_number_id)
                    .await?
                    .map(|workspace| IngestRoute {
                        workspace,
                        customer: None,
                    }))
            }

            async fn insert_delivery(
                &mut self,
                new: &NewDelivery,
                workspace_id: Option<WorkspaceId>,
                outcome: DeliveryOutcome,
                error: Option<&str>,
            ) -> Result<bool, StoreError> {
                // Nothing held writes to deliveries, so the held writes go with it.
                let rows = self
                    .send_with(
                        &format!("{} RETURNING id", crate::deliveries::INSERT_DELIVERY),
                        vec![
                            Bind::Uuid(Some(new.id.as_uuid())),
                            Bind::Text(crate::deliveries::stored_key(
                                new.idempotency_key.as_deref(),
                            )),
                            Bind::Text(new.event.clone()),
                            Bind::Uuid(workspace_id.map(|id| id.as_uuid())),
                            Bind::Text(new.phone_number_id.clone()),
                            Bind::Text(Some(new.headers.to_string())),
                            Bind::Bytes(new.body.clone()),
                            Bind::Int(Some(new.received_at.as_millis())),
                            Bind::Text(Some(outcome.as_str().to_owned())),
                            Bind::Text(error.map(str::to_owned)),
                            Bind::Int(crate::deliveries::processed_at(outcome)),
                            Bind::Int32(i32::from(outcome != DeliveryOutcome::Pending)),
                            Bind::Uuid(Some(crate::deliveries::GLOBAL_SCOPE)),
                        ],
                    )
                    .await?;
                if rows.len() == 1 {
                    self.tx.inserted_delivery(new.id.as_uuid());
                    return Ok(true);
                }
                let stored = if self.tx.needs_original() {
                    sqlx::query_scalar(
                        "SELECT id FROM webhook_deliveries WHERE idempotency_key = $1 \
                           AND idempotency_scope = COALESCE($2, \
                             (SELECT w.id FROM workspaces w WHERE w.kapso_phone_number_id = $3), $4)",
                    )
                    .bind(crate::deliveries::stored_key(new.idempotency_key.as_deref()))
                    .bind(workspace_id.map(|id| id.as_uuid()))
                    .bind(new.phone_number_id.as_deref())
                    .bind(crate::deliveries::GLOBAL_SCOPE)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(from_sqlx)?
                } else {
                    None
                };
                let changes = Arc::clone(&self.changes);
                self.tx.original_is_durable(&changes, stored).await?;
                Ok(false)
            }

            async fn finish_delivery(
                &mut self,
                id: DeliveryId,
                workspace_id: Option<WorkspaceId>,
                outcome: DeliveryOutcome,
                error: Option<&str>,
                new_attempt: bool,
            ) -> Result<(), StoreError> {
                self.flush().await?;
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET outcome = $2, error = $3, \
                       workspace_id = COALESCE($4, workspace_id), processed_at = $5, \
                       attempts = attempts + $6 \
                     WHERE id = $1",
                )
                .bind(id.as_uuid())
                .bind(outcome.as_str())
                .bind(error)
                .bind(workspace_id.map(|id| id.as_uuid()))
                .bind(Timestamp::now().as_millis())
                .bind(i32::from(new_attempt))
                .execute(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn find_contact(
                &mut self,
                workspace_id: WorkspaceId,
                phone: Option<&PhoneE164>,
                bsuid: Option<&str>,
            ) -> Result<Option<ContactState>, StoreError> {
                self.flush().await?;
                // Phone first, then bsuid, each one seek of its unique index. (One statement with
                // `phone = $2 OR bsuid = $3` let SQLite, with statistics, walk the workspace's
                // contacts instead: 15-20 ms per delivery at 100,000 contacts.)
                let by = |column: &'static str| {
                    format!(
                        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = $1 AND {column} = $2"
                    )
                };
                if let Some(phone) = phone {
                    let row: Option<ContactRow> = sqlx::query_as(&by("phone"))
                        .bind(workspace_id.as_uuid())
                        .bind(phone.as_str())
                        .fetch_optional(&mut *self.tx)
                        .await
                        .map_err(from_sqlx)?;
                    if let Some(row) = row {
                        return ContactState::try_from(row).map(Some);
                    }
                }
                let Some(bsuid) = bsuid else {
                    return Ok(None);
                };
                let row: Option<ContactRow> = sqlx::query_as(&by("bsuid"))
                    .bind(workspace_id.as_uuid())
                    .bind(bsuid)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(from_sqlx)?;
                row.map(ContactState::try_from).transpose()
            }

            async fn erased_at(
                &mut self,
                workspace_id: WorkspaceId,
                phone: Option<&PhoneE164>,
                bsuid: Option<&str>,
            ) -> Result<Option<Timestamp>, StoreError> {
                self.flush().await?;
                let by = |column: &'static str| {
                    format!(
                        "SELECT MAX(deleted_at) FROM contact_tombstones \
                         WHERE workspace_id = $1 AND {column} = $2"
                    )
                };
                let mut latest: Option<i64> = None;
                for (column, value) in [("phone", phone.map(PhoneE164::as_str)), ("bsuid", bsuid)] {
                    let Some(value) = value else { continue };
                    let at: Option<i64> = sqlx::query_scalar(&by(column))
                        .bind(workspace_id.as_uuid())
                        .bind(value)
                        .fetch_one(&mut *self.tx)
                        .await
                        .map_err(from_sqlx)?;
                    latest = latest.max(at);
                }
                Ok(latest.map(Timestamp::from_millis))
            }

            async fn insert_contact(
                &mut self,
                workspace_id: WorkspaceId,
                id: ContactId,
                customer: &CustomerRef,
                now: Timestamp,
            ) -> Result<Option<ContactState>, StoreError> {
                self.flush().await?;
                // No conflict target: a clash on either the phone or the bsuid index means
                // another writer created this customer first.
                let row: Option<ContactRow> = sqlx::query_as(&format!(
                    "INSERT INTO contacts \
                       (id, workspace_id, phone, bsuid, whatsapp_name, source, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'whatsapp', $6, $6) \
                     ON CONFLICT DO NOTHING RETURNING {CONTACT_RETURNING}"
                ))
                .bind(id.as_uuid())
                .bind(workspace_id.as_uuid())
                .bind(customer.phone.as_ref().map(PhoneE164::as_str))
                .bind(customer.bsuid.as_deref())
                .bind(customer.profile_name.as_deref())
                .bind(now.as_millis())
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                row.map(ContactState::try_from).transpose()
            }

            async fn update_contact(
                &mut self,
                workspace_id: WorkspaceId,
                contact: &ContactState,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let activity = contact.last_activity_at.map(Timestamp::as_millis);
                self.held.push(
                    "UPDATE contacts SET whatsapp_name = $3, last_activity_at = $4, \
                       activity_sort = $5, last_contact_at = $6, updated_at = $7 \
                     WHERE id = $1 AND workspace_id = $2",
                    vec![
                        Bind::Uuid(Some(contact.id.as_uuid())),
                        Bind::Uuid(Some(workspace_id.as_uuid())),
                        Bind::Text(contact.whatsapp_name.clone()),
                        Bind::Int(activity),
                        Bind::Int(Some(activity.unwrap_or(0))),
                        Bind::Int(contact.last_contact_at.map(Timestamp::as_millis)),
                        Bind::Int(Some(now.as_millis())),
                    ],
                );
                Ok(())
            }

            async fn lock_conversation(
                &mut self,
                workspace_id: WorkspaceId,
                contact_id: ContactId,
            ) -> Result<Option<ConversationState>, StoreError> {
                self.flush().await?;
                let row: Option<ConversationRow> = sqlx::query_as(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations v \
                     WHERE v.contact_id = $1 AND v.workspace_id = $2{}",
                    <$db as Dialect>::for_update_of("v")
                ))
                .bind(contact_id.as_uuid())
                .bind(workspace_id.as_uuid())
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                row.map(ConversationState::try_from).transpose()
            }

            async fn insert_conversation(
                &mut self,
                c: &ConversationState,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                self.flush().await?;
                let done = sqlx::query(
                    "INSERT INTO conversations (id, workspace_id, contact_id, status, \
                       contact_assigned_to, lead_status, unread_count, last_message_at, \
                       last_message_preview, last_inbound_at, sort_at, last_seq, \
                       kapso_conversation_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                     ON CONFLICT (contact_id) DO NOTHING",
                )
                .bind(c.id.as_uuid())
                .bind(c.workspace_id.as_uuid())
                .bind(c.contact_id.as_uuid())
                .bind(c.status.as_str())
                .bind(c.contact_assigned_to.map(|id| id.as_uuid()))
                .bind(c.lead_status.as_str())
                .bind(i32::try_from(c.unread_count).unwrap_or(i32::MAX))
                .bind(c.last_message_at.map(Timestamp::as_millis))
                .bind(c.last_message_preview.as_deref())
                .bind(c.last_inbound_at.map(Timestamp::as_millis))
                .bind(c.sort_at())
                .bind(c.last_seq)
                .bind(c.kapso_conversation_id.as_deref())
                .bind(now.as_millis())
                .execute(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_conversation(
                &mut self,
                c: &ConversationState,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                self.held.push(
                    "UPDATE conversations SET status = $3, unread_count = $4, \
                       last_message_at = $5, last_message_preview = $6, last_inbound_at = $7, \
                       sort_at = $8, last_seq = $9, kapso_conversation_id = $10, updated_at = $11 \
                     WHERE id = $1 AND workspace_id = $2",
                    vec![
                        Bind::Uuid(Some(c.id.as_uuid())),
                        Bind::Uuid(Some(c.workspace_id.as_uuid())),
                        Bind::Text(Some(c.status.as_str().to_owned())),
                        Bind::Int32(i32::try_from(c.unread_count).unwrap_or(i32::MAX)),
                        Bind::Int(c.last_message_at.map(Timestamp::as_millis)),
                        Bind::Text(c.last_message_preview.clone()),
                        Bind::Int(c.last_inbound_at.map(Timestamp::as_millis)),
                        Bind::Int(Some(c.sort_at())),
                        Bind::Int(Some(c.last_seq)),
                        Bind::Text(c.kapso_conversation_id.clone()),
                        Bind::Int(Some(now.as_millis())),
                    ],
                );
                // The tag index carries the list order key; keep it in step.
                self.held.push(
                    "UPDATE conversation_tags SET sort_at = $2 \
                     WHERE conversation_id = $1 AND sort_at <> $2",
                    vec![Bind::Uuid(Some(c.id.as_uuid())), Bind::Int(Some(c.sort_at()))],
                );
                Ok(())
            }

            async fn insert_message(
                &mut self,
                m: &NewIngestedMessage,
            ) -> Result<bool, StoreError> {
                self.flush().await?;
                let done = sqlx::query(
                    "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, \
                       sender_type, kind, text, media, reply_to_wamid, wamid, status, error, raw, \
                       sent_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (workspace_id, wamid) DO NOTHING",
                )
                .bind(m.id.as_uuid())
                .bind(m.workspace_id.as_uuid())
                .bind(m.conversation_id.as_uuid())
                .bind(m.seq)
                .bind(m.direction.as_str())
                .bind(m.sender_type.as_str())
                .bind(m.kind.as_str())
                .bind(m.text.as_deref())
                .bind(m.media.as_ref().map(media_json))
                .bind(m.reply_to_wamid.as_deref())
                .bind(m.wamid.as_str())
                .bind(m.status.as_str())
                .bind(m.error.as_ref().map(error_json))
                .bind(m.raw.to_string())
                .bind(m.sent_at.as_millis())
                .bind(m.created_at.as_millis())
                .execute(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                Ok(done.rows_affected() == 1)
            }

            async fn take_pending_statuses(
                &mut self,
                workspace_id: WorkspaceId,
                wamid: &str,
            ) -> Result<Vec<PendingStatus>, StoreError> {
                self.flush().await?;
                <$db as Dialect>::lock_key(&mut *self.tx, &wamid_key(workspace_id, wamid))
                    .await?;
                let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
                    "DELETE FROM pending_statuses WHERE workspace_id = $1 AND wamid = $2 \
                     RETURNING status, at, error",
                )
                .bind(workspace_id.as_uuid())
                .bind(wamid)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                let mut pending = rows
                    .into_iter()
                    .map(|(status, at, error)| {
                        Ok(PendingStatus {
                            wamid: wamid.to_owned(),
                            status: delivery_status(&status)?,
                            at: Timestamp::from_millis(at),
                            error: error.as_deref().map(error_from_json).transpose()?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                pending.sort_by_key(|p| p.at);
                Ok(pending)
            }

            async fn lock_message(
                &mut self,
                workspace_id: WorkspaceId,
                wamid: &str,
            ) -> Result<Option<MessageStatusState>, StoreError> {
                self.flush().await?;
                <$db as Dialect>::lock_key(&mut *self.tx, &wamid_key(workspace_id, wamid))
                    .await?;
                let row: Option<(Uuid, Uuid, String, Uuid)> = sqlx::query_as(&format!(
                    "SELECT m.id, m.conversation_id, m.status, v.contact_id \
                     FROM messages m JOIN conversations v ON v.id = m.conversation_id \
                     WHERE m.workspace_id = $1 AND m.wamid = $2{}",
                    <$db as Dialect>::for_update_of("m")
                ))
                .bind(workspace_id.as_uuid())
                .bind(wamid)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                row.map(|(id, conversation_id, status, contact_id)| {
                    Ok(MessageStatusState {
                        id: MessageId::from_uuid(id),
                        conversation_id: ConversationId::from_uuid(conversation_id),
                        contact_id: ContactId::from_uuid(contact_id),
                        status: delivery_status(&status)?,
                    })
                })
                .transpose()
            }

            async fn claim_unsent_outbound(
                &mut self,
                workspace_id: WorkspaceId,
                conversation_id: ConversationId,
                sought: &OwnSendMatch,
                wamid: &str,
            ) -> Result<Option<MessageStatusState>, StoreError> {
                self.flush().await?;
                let target: Option<Uuid> = if sought.callback_data.is_some() {
                    // Our sends carry their message id: only that message can be this one, and
                    // callback data that names none of ours is someone else's send.
                    sought.message_id().map(|id| id.as_uuid())
                } else {
                    // Sends made before callback data, by content. The oldest candidate, because
                    // sends of one conversation reach Kapso in the order they were written, and
                    // so do their echoes.
                    let candidates: Vec<(Uuid, String)> = sqlx::query_as(
                        "SELECT c.id, j.payload FROM messages c \
                           JOIN send_jobs j ON j.message_id = c.id \
                         WHERE c.conversation_id = $2 AND c.workspace_id = $1 \
                           AND c.wamid IS NULL AND c.status = 'pending' \
                           AND c.direction = 'outbound' AND c.sender_user_id IS NOT NULL \
                         ORDER BY c.seq",
                    )
                    .bind(workspace_id.as_uuid())
                    .bind(conversation_id.as_uuid())
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(from_sqlx)?;
                    let mut found = None;
                    for (id, payload) in candidates {
                        let (content, tagged) = crate::sending::read_payload(&payload)?;
                        if !tagged && sought.same_content(&content) {
                            found = Some(id);
                            break;
                        }
                    }
                    found
                };
                let Some(target) = target else {
                    return Ok(None);
                };
                let row: Option<(Uuid, String)> = sqlx::query_as(
                    "UPDATE messages SET wamid = $4 \
                     WHERE id = $3 AND conversation_id = $2 AND workspace_id = $1 \
                       AND wamid IS NULL AND status = 'pending' \
                       AND direction = 'outbound' AND sender_user_id IS NOT NULL \
                       AND NOT EXISTS (SELECT 1 FROM messages o \
                         WHERE o.workspace_id = $1 AND o.wamid = $4) \
                     RETURNING id, status",
                )
                .bind(workspace_id.as_uuid())
                .bind(conversation_id.as_uuid())
                .bind(target)
                .bind(wamid)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                let Some((id, status)) = row else {
                    return Ok(None);
                };
                let contact_id: Uuid =
                    sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
                        .bind(conversation_id.as_uuid())
                        .fetch_one(&mut *self.tx)
                        .await
                        .map_err(from_sqlx)?;
                Ok(Some(MessageStatusState {
                    id: MessageId::from_uuid(id),
                    conversation_id,
                    contact_id: ContactId::from_uuid(contact_id),
                    status: delivery_status(&status)?,
                }))
            }

            async fn claim_own_send(
                &mut self,
                workspace_id: WorkspaceId,
                id: MessageId,
                wamid: &str,
            ) -> Result<Option<MessageStatusState>, StoreError> {
                self.flush().await?;
                let row: Option<(Uuid, String)> = sqlx::query_as(
                    "UPDATE messages SET wamid = $3 \
                     WHERE id = $2 AND workspace_id = $1 \
                       AND wamid IS NULL AND status = 'pending' \
                       AND direction = 'outbound' AND sender_user_id IS NOT NULL \
                       AND NOT EXISTS (SELECT 1 FROM messages o \
                         WHERE o.workspace_id = $1 AND o.wamid = $3) \
                     RETURNING conversation_id, status",
                )
                .bind(workspace_id.as_uuid())
                .bind(id.as_uuid())
                .bind(wamid)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(from_sqlx)?;
                let Some((conversation_id, status)) = row else {
                    return Ok(None);
                };
                let contact_id: Uuid =
                    sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
                        .bind(conversation_id)
                        .fetch_one(&mut *self.tx)
                        .await
                        .map_err(from_sqlx)?;
                Ok(Some(MessageStatusState {
                    id,
                    conversation_id: ConversationId::from_uuid(conversation_id),
                    contact_id: ContactId::from_uuid(contact_id),
                    status: delivery_status(&status)?,
                }))
            }

            async fn update_message_status(
                &mut self,
                workspace_id: WorkspaceId,
                id: MessageId,
                status: DeliveryStatus,
                error: Option<&MessageError>,
            ) -> Result<(), StoreError> {
                self.held.push(
                    "UPDATE messages SET status = $3, error = COALESCE($4, error) \
                     WHERE id = $1 AND workspace_id = $2",
                    vec![
                        Bind::Uuid(Some(id.as_uuid())),
                        Bind::Uuid(Some(workspace_id.as_uuid())),
                        Bind::Text(Some(status.as_str().to_owned())),
                        Bind::Text(error.map(error_json)),
                    ],
                );
                Ok(())
            }

            async fn add_pending_status(
                &mut self,
                workspace_id: WorkspaceId,
                status: &PendingStatus,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                // The caller looked the message up with `lock_message`, which took the wamid's
                // lock: the message cannot appear between that look-up and this insert, held
                // back or not.
                self.held.push(
                    "INSERT INTO pending_statuses (workspace_id, wamid, status, at, error, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (workspace_id, wamid, status) DO NOTHING",
                    vec![
                        Bind::Uuid(Some(workspace_id.as_uuid())),
                        Bind::Text(Some(status.wamid.clone())),
                        Bind::Text(Some(status.status.as_str().to_owned())),
                        Bind::Int(Some(status.at.as_millis())),
                        Bind::Text(status.error.as_ref().map(error_json)),
                        Bind::Int(Some(now.as_millis())),
                    ],
                );
                Ok(())
            }

            async fn append_events(&mut self, events: &[NewEvent]) -> Result<(), StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                self.appended_events = true;
                let now = Timestamp::now().as_millis();
                // In chunks, so no statement carries more values than a backend takes; each
                // chunk but the last ends its run, so the chunks are inserted in order.
                let chunks = events.chunks(EVENTS_PER_STATEMENT).count();
                for (n, chunk) in events.chunks(EVENTS_PER_STATEMENT).enumerate() {
                    let mut sql = String::from(
                        "INSERT INTO events \
                         (workspace_id, kind, conversation_id, contact_id, message_id, created_at) \
                         VALUES ",
                    );
                    let mut binds = Vec::with_capacity(chunk.len() * 5 + 1);
                    binds.push(Bind::Int(Some(now)));
                    for (i, event) in chunk.iter().enumerate() {
                        let at = 2 + i * 5;
                        let _ = write!(
                            sql,
                            "{}(${at}, ${}, ${}, ${}, ${}, $1)",
                            if i == 0 { "" } else { ", " },
                            at + 1,
                            at + 2,
                            at + 3,
                            at + 4
                        );
                        binds.push(Bind::Uuid(Some(event.workspace_id.as_uuid())));
                        binds.push(Bind::Text(Some(event.kind.as_str().to_owned())));
                        binds.push(Bind::Uuid(event.conversation_id.map(|id| id.as_uuid())));
                        binds.push(Bind::Uuid(event.contact_id.map(|id| id.as_uuid())));
                        binds.push(Bind::Uuid(event.message_id.map(|id| id.as_uuid())));
                    }
                    if n + 1 < chunks {
                        self.held.push_ending_run(&sql, binds);
                    } else {
                        self.held.push(&sql, binds);
                    }
                }
                Ok(())
            }

            async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
                self.flush().await?;
                let unit = *self;
                <$tx as UnitTx<$db>>::commit(unit.tx, &unit.changes, unit.appended_events).await
            }
        }
    };
}

impl_ingest!(Sqlite, Member);
impl_ingest!(Postgres, sqlx::Transaction<'static, Postgres>);

#[cfg(test)]
mod tests {
    use super::{Bind, Held, MAX_BINDS, renumber};

    #[test]
    fn held_statements_are_sent_in_runs_of_bounded_values() {
        let mut held = Held::default();
        held.push("SAVEPOINT a", Vec::new());
        for _ in 0..3 {
            held.push("x = $1 AND y = $2", vec![Bind::Int(Some(1)); 2]);
        }
        held.push(
            "big $1",
            (0..MAX_BINDS - 5).map(|_| Bind::Int(None)).collect(),
        );
        held.push_ending_run("ordered $1", vec![Bind::Int(None)]);
        held.push("after $1 $2", vec![Bind::Int(None); 2]);
        let runs = held.into_runs();
        let shape: Vec<(Vec<String>, usize)> = runs
            .into_iter()
            .map(|(statements, binds)| (statements, binds.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    vec![
                        "SAVEPOINT a".to_owned(),
                        "x = $1 AND y = $2".to_owned(),
                        "x = $3 AND y = $4".to_owned(),
                        "x = $5 AND y = $6".to_owned(),
                    ],
                    6
                ),
                (
                    vec!["big $1".to_owned(), "ordered $29996".to_owned()],
                    MAX_BINDS - 4
                ),
                (vec!["after $1 $2".to_owned()], 2),
            ]
        );
    }

    #[test]
    fn renumbering_shifts_every_parameter_and_nothing_else() {
        assert_eq!(renumber("a = $1 AND b = $12", 0), "a = $1 AND b = $12");
        assert_eq!(
            renumber("a = $1 AND b = $12, ($2)", 10),
            "a = $11 AND b = $22, ($12)"
        );
        assert_eq!(renumber("x = 'y' $", 3), "x = 'y' $");
    }
}
