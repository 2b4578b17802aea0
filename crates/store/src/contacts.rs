//! The contacts port.
//!
//! A contact's assignee, lead status and tags are copied onto its conversation
//! (`conversations.contact_assigned_to`, `conversations.lead_status`, `conversation_tags`), so
//! that the conversation list filters on them through its own indexes; every write here
//! rewrites those copies in the transaction that changes the contact, after the contact row's
//! update (which on PostgreSQL locks the row, so concurrent patches rewrite the copies one
//! after the other).
//!
//! The contacts list walks `(workspace_id, activity_sort DESC, id DESC)`, or the assignee or
//! lead-status index ending in the same order. The tag filter is checked per visited contact
//! through its conversation's tag rows (primary-key lookups): the contacts list is not a hot
//! path, and an index carrying `activity_sort` per tag would have to be bumped by every
//! ingested message.

use async_trait::async_trait;
use inbox_domain::contact::{
    Contact, ContactLookup, ContactPatch, ContactQuery, ContactSource, LOOKUP_RECENT_MESSAGES,
    Metadata, NewContact, Tags,
};
use inbox_domain::event::{EventKind, NewEvent};
use inbox_domain::message::Message;
use inbox_domain::page::{Cursor, Page};
use inbox_domain::phone::PhoneE164;
use inbox_domain::ports::{ActionError, ContactRepository, StoreError};
use inbox_domain::user::{Actor, Visibility};
use inbox_domain::{ContactId, ConversationId, Timestamp, UserId, WorkspaceId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::conversations::{
    MESSAGE_COLUMNS, MessageRow, PageBounds, ScanEdgeRow, Shape, lead_score, lead_status,
    tags_from_json, tags_to_json,
};
use crate::error::{from_sqlx, pause_before_retry};
use crate::events::Dialect;
use crate::query::{Arg, ListDialect, SEARCH_SCAN_ROWS, Sql, bind_all, search_condition};
use crate::rows::corrupt;
use inbox_domain::ingest::MAX_ATTEMPTS;

/// Columns of `contacts` (aliased `k`) as [`ContactRow`] reads them.
pub(crate) const CONTACT_COLUMNS: &str = "k.id, k.workspace_id, k.phone, k.bsuid, k.name, \
    k.whatsapp_name, k.email, k.lead_status, k.lead_score, k.tags, k.assigned_to, k.source, \
    k.metadata, k.created_at, k.updated_at, k.last_activity_at, k.last_contact_at, \
    k.activity_sort";

/// The same columns unqualified, for `RETURNING` (SQLite does not take an alias there).
const CONTACT_RETURNING: &str = "id, workspace_id, phone, bsuid, name, whatsapp_name, email, \
    lead_status, lead_score, tags, assigned_to, source, metadata, created_at, updated_at, \
    last_activity_at, last_contact_at, activity_sort";

/// A stored contact.
#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    id: Uuid,
    workspace_id: Uuid,
    phone: Option<String>,
    bsuid: Option<String>,
    name: Option<String>,
    whatsapp_name: Option<String>,
    email: Option<String>,
    lead_status: String,
    lead_score: i32,
    tags: String,
    assigned_to: Option<Uuid>,
    source: String,
    metadata: String,
    created_at: i64,
    updated_at: i64,
    last_activity_at: Option<i64>,
    last_contact_at: Option<i64>,
    activity_sort: i64,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StoreError;

    fn try_from(row: ContactRow) -> Result<Self, StoreError> {
        let metadata: serde_json::Value =
            serde_json::from_str(&row.metadata).map_err(|e| corrupt("metadata", e))?;
        Ok(Self {
            id: ContactId::from_uuid(row.id),
            workspace_id: WorkspaceId::from_uuid(row.workspace_id),
            phone: row.phone.map(PhoneE164::from_trusted),
            bsuid: row.bsuid,
            name: row.name,
            whatsapp_name: row.whatsapp_name,
            email: row.email,
            lead_status: lead_status(&row.lead_status)?,
            lead_score: lead_score(row.lead_score)?,
            tags: tags_from_json(&row.tags)?,
            assigned_to: row.assigned_to.map(UserId::from_uuid),
            source: row
                .source
                .parse::<ContactSource>()
                .map_err(|e| corrupt("source", e))?,
            metadata: Metadata::parse(metadata).map_err(|e| corrupt("metadata", e))?,
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
            last_activity_at: row.last_activity_at.map(Timestamp::from_millis),
            last_contact_at: row.last_contact_at.map(Timestamp::from_millis),
        })
    }
}

/// A contact with its conversation's id, for the by-phone lookup.
#[derive(sqlx::FromRow)]
struct LookupRow {
    conversation_id: Option<Uuid>,
    #[sqlx(flatten)]
    contact: ContactRow,
}

fn metadata_json(metadata: &Metadata) -> String {
    serde_json::Value::Object(metadata.as_map().clone()).to_string()
}

/// Builds the statement reading one page of contacts, or `None` when the filters exclude
/// everything the actor may see (a member asking for someone else's contacts).
/// For a search, `shape` asks instead for the edge of the window the page may examine.
fn list_sql<D: ListDialect>(
    actor: &Actor,
    query: &ContactQuery,
    shape: Shape<ContactId>,
) -> Option<Sql> {
    let filter = &query.filter;
    let mut sql = Sql::default();
    let ws = sql.arg(Arg::Uuid(actor.workspace_id.as_uuid()));
    let PageBounds {
        key,
        id,
        limit,
        scan_floor,
    } = shape.bind(&mut sql, query.after, query.limit, ContactId::as_uuid);

    // Members see only their own contacts, which makes them the assignee filter and the driver.
    let assignee: Option<Option<UserId>> = match actor.visibility() {
        Visibility::AssignedTo(me) => {
            let wanted = filter.assigned_to.map_or(Some(me), |a| a.resolve(me));
            if wanted != Some(me) {
                return None;
            }
            Some(Some(me))
        }
        Visibility::All => filter.assigned_to.map(|a| a.resolve(actor.user_id)),
    };

    let mut walks: Vec<(&'static str, Option<String>)> = Vec::new();
    let mut lead_drives = false;
    if let Some(assignee) = assignee {
        let condition = match assignee {
            Some(user) => format!("k.assigned_to = {}", sql.arg(Arg::Uuid(user.as_uuid()))),
            None => "k.assigned_to IS NULL".to_owned(),
        };
        walks.push(("contacts_assigned_idx", Some(condition)));
    } else if let Some(leads) = &filter.lead_status {
        for status in leads.as_slice() {
            let p = sql.arg(Arg::Text(status.as_str().into()));
            walks.push(("contacts_lead_idx", Some(format!("k.lead_status = {p}"))));
        }
        lead_drives = true;
    } else {
        walks.push(("contacts_activity_idx", None));
    }

    let mut residual = Vec::new();
    if !lead_drives {
        if let Some(leads) = &filter.lead_status {
            let list = sql.list(
                leads
                    .as_slice()
                    .iter()
                    .map(|s| Arg::Text(s.as_str().into())),
            );
            residual.push(format!("k.lead_status IN ({list})"));
        }
    }
    if let Some(tags) = &filter.tags {
        let list = sql.list(tags.keys().iter().map(|t| Arg::Text(t.clone())));
        residual.push(format!(
            "EXISTS (SELECT 1 FROM conversations c2 JOIN conversation_tags t2 \
             ON t2.conversation_id = c2.id WHERE c2.contact_id = k.id AND t2.tag IN ({list}))"
        ));
    }
    if let (Some(q), Shape::Page { .. }) = (&filter.q, shape) {
        residual.push(search_condition(&mut sql, q.as_str()));
    }
    if let Some((floor_key, floor_id)) = &scan_floor {
        residual.push(format!("k.activity_sort >= {floor_key}"));
        residual.push(format!(
            "(k.activity_sort > {floor_key} OR k.id >= {floor_id})"
        ));
    }

    let branches: Vec<String> = walks
        .into_iter()
        .map(|(index, condition)| {
            let mut conditions = vec![format!("k.workspace_id = {ws}")];
            conditions.extend(condition);
            conditions.push(format!("k.activity_sort <= {key}"));
            conditions.push(format!("(k.activity_sort < {key} OR k.id < {id})"));
            conditions.extend(residual.iter().cloned());
            format!(
                "SELECT k.activity_sort AS sort_at, k.id AS id FROM contacts AS k{} WHERE {} \
                 ORDER BY k.activity_sort DESC, k.id DESC LIMIT {limit}",
                D::indexed_by(index),
                conditions.join(" AND ")
            )
        })
        .collect();
    let page = if branches.len() == 1 {
        branches.concat()
    } else {
        let parts: Vec<String> = branches
            .iter()
            .enumerate()
            .map(|(i, b)| format!("SELECT sort_at, id FROM ({b}) AS w{i}"))
            .collect();
        format!(
            "SELECT sort_at, id FROM ({}) AS u ORDER BY sort_at DESC, id DESC LIMIT {limit}",
            parts.join(" UNION ALL ")
        )
    };
    if let Shape::ScanEdge = shape {
        let last = sql.arg(Arg::Int(SEARCH_SCAN_ROWS - 1));
        sql.text = format!(
            "SELECT sort_at AS sort_key, id FROM ({page}) AS s \
             ORDER BY sort_at DESC, id DESC LIMIT 1 OFFSET {last}"
        );
        return Some(sql);
    }
    sql.text = format!(
        "WITH page AS ({page}) SELECT {CONTACT_COLUMNS} FROM page p \
         JOIN contacts k ON k.id = p.id ORDER BY p.sort_at DESC, p.id DESC"
    );
    Some(sql)
}

/// The checks every write naming an assignee makes, in the order that reveals nothing: the
/// role rule first (the target is already known to be visible), then membership.
macro_rules! check_assignee {
    ($db:ty, $tx:expr, $actor:expr, $assignee:expr) => {{
        let assignee: Option<UserId> = $assignee;
        if !$actor.may_assign_to(assignee) {
            return Err(ActionError::Forbidden);
        }
        if let Some(user) = assignee {
            let is_member: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM memberships WHERE workspace_id = $1 AND user_id = $2)",
            )
            .bind($actor.workspace_id.as_uuid())
            .bind(user.as_uuid())
            .fetch_one(&mut *$tx)
            .await
            .map_err(from_sqlx)?;
            if !is_member {
                return Err(ActionError::AssigneeNotMember);
            }
        }
    }};
}

macro_rules! impl_contacts {
    ($db:ty) => {
        impl Store<$db> {
            /// Replaces a conversation's tag rows with `tags`, at the conversation's sort key.
            async fn write_conversation_tags(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                conversation_id: Uuid,
                sort_at: i64,
                tags: &Tags,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM conversation_tags WHERE conversation_id = $1")
                    .bind(conversation_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                for key in tags.keys() {
                    sqlx::query(
                        "INSERT INTO conversation_tags (conversation_id, workspace_id, tag, sort_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(conversation_id)
                    .bind(workspace_id.as_uuid())
                    .bind(key)
                    .bind(sort_at)
                    .execute(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                }
                Ok(())
            }

            /// A contact by id in the workspace, ignoring visibility.
            async fn contact_row(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                id: ContactId,
            ) -> Result<Option<ContactRow>, StoreError> {
                sqlx::query_as(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts k WHERE k.id = $1 AND k.workspace_id = $2"
                ))
                .bind(id.as_uuid())
                .bind(workspace_id.as_uuid())
                .fetch_optional(conn)
                .await
                .map_err(from_sqlx)
            }

            /// What intake kept of a contact being deleted: a tombstone (its phone, bsuid and the
            /// time), so that ingest and replay never bring it back with messages from before,
            /// and the raw payloads of the workspace's applied deliveries that name it, which are
            /// redacted. (Failed deliveries keep theirs until replayed or pruned: they may carry
            /// other customers' messages not stored yet; the tombstone keeps this one out.)
            async fn erase_intake_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                row: &ContactRow,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO contact_tombstones (workspace_id, phone, bsuid, deleted_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(workspace_id.as_uuid())
                .bind(row.phone.as_deref())
                .bind(row.bsuid.as_deref())
                .bind(Timestamp::now().as_millis())
                .execute(&mut *conn)
                .await
                .map_err(from_sqlx)?;
                // Payloads carry the phone as WhatsApp's wa_id: digits, no `+`.
                let needles = [
                    row.phone.as_deref().map(|p| p.trim_start_matches('+')),
                    row.bsuid.as_deref(),
                ];
                for needle in needles.into_iter().flatten().filter(|n| !n.is_empty()) {
                    sqlx::query(&format!(
                        "UPDATE webhook_deliveries SET body = $3, headers = '{{}}' \
                         WHERE workspace_id = $1 AND outcome IN ('processed', 'ignored') \
                           AND {}",
                        <$db as Contains>::CONTAINS
                    ))
                    .bind(workspace_id.as_uuid())
                    .bind(needle.as_bytes().to_vec())
                    .bind(b"{\"redacted\":\"contact deleted\"}".to_vec())
                    .execute(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                }
                Ok(())
            }

            /// Locks a contact's conversation until commit; its id, if it has one.
            async fn lock_conversation_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                contact_id: ContactId,
            ) -> Result<Option<Uuid>, StoreError> {
                sqlx::query_scalar(&format!(
                    "SELECT v.id FROM conversations v WHERE v.contact_id = $1 AND v.workspace_id = $2{}",
                    <$db as Dialect>::for_update_of("v")
                ))
                .bind(contact_id.as_uuid())
                .bind(workspace_id.as_uuid())
                .fetch_optional(conn)
                .await
                .map_err(from_sqlx)
            }

            /// [`ContactRepository::update_contact`], one attempt.
            async fn update_contact_once(
                &self,
                actor: Actor,
                id: ContactId,
                patch: ContactPatch,
            ) -> Result<Contact, ActionError> {
                let mut tx = self.begin_write().await?;
                let visible = Self::contact_row(&mut *tx, actor.workspace_id, id)
                    .await?
                    .is_some_and(|row| actor.sees_contact(row.assigned_to.map(UserId::from_uuid)));
                if !visible {
                    return Err(StoreError::NotFound.into());
                }
                if let Some(assignee) = patch.assigned_to {
                    check_assignee!($db, tx, actor, assignee);
                }
                // The conversation first, as ingest and sending lock it, then the contact: one
                // order everywhere, or concurrent ingest and patches deadlock on PostgreSQL.
                Self::lock_conversation_of(&mut *tx, actor.workspace_id, id).await?;
                let view_changes = patch.name.is_some()
                    || patch.tags.is_some()
                    || patch.lead_status.is_some()
                    || patch.lead_score.is_some()
                    || patch.assigned_to.is_some();
                let row: ContactRow = sqlx::query_as(&format!(
                    "UPDATE contacts SET \
                       name = CASE WHEN $3 THEN $4 ELSE name END, \
                       email = CASE WHEN $5 THEN $6 ELSE email END, \
                       tags = COALESCE($7, tags), \
                       lead_status = COALESCE($8, lead_status), \
                       lead_score = COALESCE($9, lead_score), \
                       assigned_to = CASE WHEN $10 THEN $11 ELSE assigned_to END, \
                       metadata = COALESCE($12, metadata), \
                       updated_at = $13 \
                     WHERE id = $1 AND workspace_id = $2 RETURNING {CONTACT_RETURNING}"
                ))
                .bind(id.as_uuid())
                .bind(actor.workspace_id.as_uuid())
                .bind(patch.name.is_some())
                .bind(patch.name.clone().flatten())
                .bind(patch.email.is_some())
                .bind(patch.email.clone().flatten())
                .bind(patch.tags.as_ref().map(tags_to_json))
                .bind(patch.lead_status.map(|s| s.as_str()))
                .bind(patch.lead_score.map(|s| i32::from(s.value())))
                .bind(patch.assigned_to.is_some())
                .bind(patch.assigned_to.flatten().map(|u| u.as_uuid()))
                .bind(patch.metadata.as_ref().map(metadata_json))
                .bind(Timestamp::now().as_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let conversation: Option<(Uuid, i64)> = sqlx::query_as(
                    "UPDATE conversations SET contact_assigned_to = $2, lead_status = $3 \
                     WHERE contact_id = $1 RETURNING id, sort_at",
                )
                .bind(id.as_uuid())
                .bind(row.assigned_to)
                .bind(&row.lead_status)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let contact = Contact::try_from(row)?;
                if let (Some((conversation_id, sort_at)), Some(_)) = (conversation, &patch.tags) {
                    Self::write_conversation_tags(
                        &mut *tx,
                        actor.workspace_id,
                        conversation_id,
                        sort_at,
                        &contact.tags,
                    )
                    .await?;
                }
                let conversation_id =
                    conversation.map(|(c, _)| ConversationId::from_uuid(c));
                let mut kinds = vec![EventKind::ContactUpdated];
                if view_changes && conversation_id.is_some() {
                    kinds.push(EventKind::ConversationUpdated);
                }
                for kind in kinds {
                    <$db as Dialect>::append_event(
                        &mut *tx,
                        &NewEvent {
                            workspace_id: actor.workspace_id,
                            kind,
                            conversation_id,
                            contact_id: Some(id),
                            message_id: None,
                        },
                    )
                    .await?;
                }
                self.commit_events(tx).await?;
                Ok(contact)
            }

            /// [`ContactRepository::delete_contact`], one attempt.
            async fn delete_contact_once(&self, actor: Actor, id: ContactId) -> Result<(), ActionError> {
                let mut tx = self.begin_write().await?;
                let row = Self::contact_row(&mut *tx, actor.workspace_id, id)
                    .await?
                    .filter(|row| actor.sees_contact(row.assigned_to.map(UserId::from_uuid)));
                let Some(row) = row else {
                    return Err(StoreError::NotFound.into());
                };
                if !actor.may_delete_contacts() {
                    return Err(ActionError::Forbidden);
                }
                // The conversation first, as everywhere, then the contact.
                let conversation_id =
                    Self::lock_conversation_of(&mut *tx, actor.workspace_id, id).await?;
                // The conversation, its messages and tag rows go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM contacts WHERE id = $1 AND workspace_id = $2")
                    .bind(id.as_uuid())
                    .bind(actor.workspace_id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                Self::erase_intake_of(&mut *tx, actor.workspace_id, &row).await?;
                let conversation_id = conversation_id.map(ConversationId::from_uuid);
                let mut kinds = vec![EventKind::ContactUpdated];
                if conversation_id.is_some() {
                    kinds.push(EventKind::ConversationUpdated);
                }
                for kind in kinds {
                    <$db as Dialect>::append_event(
                        &mut *tx,
                        &NewEvent {
                            workspace_id: actor.workspace_id,
                            kind,
                            conversation_id,
                            contact_id: Some(id),
                            message_id: None,
                        },
                    )
                    .await?;
                }
                self.commit_events(tx).await?;
                Ok(())
            }

        }

        #[async_trait]
        impl ContactRepository for Store<$db> {
            async fn contacts(
                &self,
                actor: Actor,
                query: ContactQuery,
            ) -> Result<Page<Contact, ContactId>, StoreError> {
                // A search examines a bounded window of the walk: first find where it ends.
                let floor = match &query.filter.q {
                    Some(_) => match list_sql::<$db>(&actor, &query, Shape::ScanEdge) {
                        Some(edge) => {
                            let row: Option<ScanEdgeRow> =
                                bind_all(sqlx::query_as(&edge.text), edge.args)
                                    .fetch_optional(&self.read)
                                    .await
                                    .map_err(from_sqlx)?;
                            row.map(|r| Cursor::new(r.sort_key, ContactId::from_uuid(r.id)))
                        }
                        None => None,
                    },
                    None => None,
                };
                let Some(sql) = list_sql::<$db>(&actor, &query, Shape::Page { floor }) else {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                };
                let rows: Vec<ContactRow> = bind_all(sqlx::query_as(&sql.text), sql.args)
                    .fetch_all(&self.read)
                    .await
                    .map_err(from_sqlx)?;
                let limit = usize::from(query.limit.get());
                let more = rows.len() > limit;
                let mut items = Vec::with_capacity(limit.min(rows.len()));
                let mut next = None;
                for row in rows.into_iter().take(limit) {
                    next = Some(Cursor::new(row.activity_sort, ContactId::from_uuid(row.id)));
                    items.push(Contact::try_from(row)?);
                }
                Ok(Page {
                    items,
                    // A window that ended before the page filled goes on after its last row.
                    next: if more { next } else { floor },
                })
            }

            async fn contact(
                &self,
                actor: Actor,
                id: ContactId,
            ) -> Result<Option<Contact>, StoreError> {
                let mut conn = self.read.acquire().await.map_err(from_sqlx)?;
                Self::contact_row(&mut *conn, actor.workspace_id, id)
                    .await?
                    .filter(|row| actor.sees_contact(row.assigned_to.map(UserId::from_uuid)))
                    .map(Contact::try_from)
                    .transpose()
            }

            async fn create_contact(
                &self,
                actor: Actor,
                new: NewContact,
            ) -> Result<Contact, ActionError> {
                if new.phone.is_none() && new.bsuid.is_none() {
                    return Err(StoreError::Internal(
                        "a contact needs a phone or a bsuid".into(),
                    )
                    .into());
                }
                let mut tx = self.begin_write().await?;
                check_assignee!($db, tx, actor, new.assigned_to);
                let now = Timestamp::now().as_millis();
                let contact_id = ContactId::new();
                let row: ContactRow = sqlx::query_as(&format!(
                    "INSERT INTO contacts (id, workspace_id, phone, bsuid, name, whatsapp_name, \
                       email, lead_status, lead_score, tags, assigned_to, source, metadata, \
                       created_at, updated_at, activity_sort) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, 0) \
                     RETURNING {CONTACT_RETURNING}"
                ))
                .bind(contact_id.as_uuid())
                .bind(actor.workspace_id.as_uuid())
                .bind(new.phone.as_ref().map(|p| p.as_str().to_owned()))
                .bind(&new.bsuid)
                .bind(&new.name)
                .bind(&new.whatsapp_name)
                .bind(&new.email)
                .bind(new.lead_status.as_str())
                .bind(i32::from(new.lead_score.value()))
                .bind(tags_to_json(&new.tags))
                .bind(new.assigned_to.map(|u| u.as_uuid()))
                .bind(new.source.unwrap_or(ContactSource::Api).as_str())
                .bind(metadata_json(&new.metadata))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                // One conversation per contact, made now so the contact can be written to (and
                // found by tag) before they ever write; closed, because nothing awaits an answer.
                let conversation_id = ConversationId::new();
                sqlx::query(
                    "INSERT INTO conversations (id, workspace_id, contact_id, status, \
                       contact_assigned_to, lead_status, sort_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'closed', $4, $5, 0, $6, $6)",
                )
                .bind(conversation_id.as_uuid())
                .bind(actor.workspace_id.as_uuid())
                .bind(contact_id.as_uuid())
                .bind(new.assigned_to.map(|u| u.as_uuid()))
                .bind(new.lead_status.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                Self::write_conversation_tags(
                    &mut *tx,
                    actor.workspace_id,
                    conversation_id.as_uuid(),
                    0,
                    &new.tags,
                )
                .await?;
                for kind in [EventKind::ContactUpdated, EventKind::ConversationCreated] {
                    <$db as Dialect>::append_event(
                        &mut *tx,
                        &NewEvent {
                            workspace_id: actor.workspace_id,
                            kind,
                            conversation_id: Some(conversation_id),
                            contact_id: Some(contact_id),
                            message_id: None,
                        },
                    )
                    .await?;
                }
                self.commit_events(tx).await?;
                Ok(Contact::try_from(row)?)
            }

            async fn contact_id_by_phone(
                &self,
                workspace_id: WorkspaceId,
                phone: &PhoneE164,
            ) -> Result<Option<ContactId>, StoreError> {
                let id: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM contacts WHERE workspace_id = $1 AND phone = $2",
                )
                .bind(workspace_id.as_uuid())
                .bind(phone.as_str())
                .fetch_optional(&self.read)
                .await
                .map_err(from_sqlx)?;
                Ok(id.map(ContactId::from_uuid))
            }

            async fn update_contact(
                &self,
                actor: Actor,
                id: ContactId,
                patch: ContactPatch,
            ) -> Result<Contact, ActionError> {
                let mut attempt = 1;
                loop {
                    match self.update_contact_once(actor, id, patch.clone()).await {
                        Err(ActionError::Store(StoreError::Retryable(reason))) => {
                            if attempt >= MAX_ATTEMPTS {
                                return Err(StoreError::Unavailable(reason).into());
                            }
                            attempt += 1;
                            pause_before_retry(attempt).await;
                        }
                        other => return other,
                    }
                }
            }

            async fn delete_contact(&self, actor: Actor, id: ContactId) -> Result<(), ActionError> {
                let mut attempt = 1;
                loop {
                    match self.delete_contact_once(actor, id).await {
                        Err(ActionError::Store(StoreError::Retryable(reason))) => {
                            if attempt >= MAX_ATTEMPTS {
                                return Err(StoreError::Unavailable(reason).into());
                            }
                            attempt += 1;
                            pause_before_retry(attempt).await;
                        }
                        other => return other,
                    }
                }
            }

            async fn contact_by_phone(
                &self,
                actor: Actor,
                phone: &PhoneE164,
            ) -> Result<Option<ContactLookup>, StoreError> {
                let mut conn = self.read.acquire().await.map_err(from_sqlx)?;
                let row: Option<LookupRow> = sqlx::query_as(&format!(
                    "SELECT c.id AS conversation_id, {CONTACT_COLUMNS} FROM contacts k \
                     LEFT JOIN conversations c ON c.contact_id = k.id \
                     WHERE k.workspace_id = $1 AND k.phone = $2"
                ))
                .bind(actor.workspace_id.as_uuid())
                .bind(phone.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(from_sqlx)?;
                let Some(row) = row.filter(|r| {
                    actor.sees_contact(r.contact.assigned_to.map(UserId::from_uuid))
                }) else {
                    return Ok(None);
                };
                let recent_messages = match row.conversation_id {
                    Some(conversation_id) => {
                        let rows: Vec<MessageRow> = sqlx::query_as(&format!(
                            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 \
                             ORDER BY seq DESC LIMIT $2"
                        ))
                        .bind(conversation_id)
                        .bind(i64::try_from(LOOKUP_RECENT_MESSAGES).unwrap_or(i64::MAX))
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(from_sqlx)?;
                        rows.into_iter()
                            .map(Message::try_from)
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    None => Vec::new(),
                };
                let contact = Contact::try_from(row.contact)?;
                let last_interaction = recent_messages
                    .iter()
                    .map(|m| m.sent_at)
                    .chain(contact.last_activity_at)
                    .max();
                Ok(Some(ContactLookup {
                    contact,
                    conversation_id: row.conversation_id.map(ConversationId::from_uuid),
                    last_interaction,
                    recent_messages,
                }))
            }
        }
    };
}

/// Whether the delivery's `body` (bytes) contains the bytes bound as `$2`.
trait Contains {
    const CONTAINS: &'static str;
}

impl Contains for Sqlite {
    const CONTAINS: &'static str = "instr(body, $2) > 0";
}

impl Contains for Postgres {
    const CONTAINS: &'static str = "position($2 in body) > 0";
}

impl_contacts!(Sqlite);
impl_contacts!(Postgres);
