//! The sending port: pending messages with their send jobs (the durable outbox), the outcome of
//! each Kapso attempt, idempotency records and the per-user rate limit.
//!
//! Locks are taken in the order ingest takes them (conversation, then wamid key), so a send
//! being recorded and a webhook for the same conversation wait for each other instead of
//! deadlocking.

use std::time::Duration;

use async_trait::async_trait;
use inbox_domain::event::{EventKind, NewEvent};
use inbox_domain::ingest::fold_statuses;
use inbox_domain::message::{DeliveryStatus, Message, MessageError, MessageText};
use inbox_domain::phone::PhoneE164;
use inbox_domain::ports::{SendRepository, StoreError};
use inbox_domain::sending::{
    CreatedSend, IdempotentSend, NewSend, OutboundContent, RATE_WINDOW_MILLIS, SendJob,
    retry_after_secs,
};
use inbox_domain::{ContactId, ConversationId, MessageId, Timestamp, UserId, WorkspaceId};
use serde_json::{Value, json};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::conversations::{MESSAGE_COLUMNS, MessageRow};
use crate::error::from_sqlx;
use crate::events::Dialect;
use crate::ingest::{delivery_status, error_from_json, error_json, wamid_key};
use crate::rows::corrupt;

/// A job's payload as stored. `tagged`: its sends carry the message id as
/// `biz_opaque_callback_data`, so its echoes are found by that alone, never by content (jobs
/// written before that have no `tagged`).
fn payload_json(content: &OutboundContent, tagged: bool) -> String {
    let mut payload = match content {
        OutboundContent::Text {
            text,
            reply_to_wamid,
        } => json!({"type": "text", "text": text.as_str(), "reply_to_wamid": reply_to_wamid}),
        OutboundContent::Template { name, template } => {
            json!({"type": "template", "name": name, "template": template})
        }
    };
    if tagged {
        payload["tagged"] = json!(true);
    }
    payload.to_string()
}

/// A stored payload: what it sends, and whether its sends carry callback data.
pub(crate) fn read_payload(text: &str) -> Result<(OutboundContent, bool), StoreError> {
    let value: Value = serde_json::from_str(text).map_err(|e| corrupt("send payload", e))?;
    let tagged = value.get("tagged").and_then(Value::as_bool) == Some(true);
    Ok((payload_from_json(text)?, tagged))
}

/// A stored payload back into what to send.
fn payload_from_json(text: &str) -> Result<OutboundContent, StoreError> {
    let value: Value = serde_json::from_str(text).map_err(|e| corrupt("send payload", e))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    match field("type") {
        Some("text") => Ok(OutboundContent::Text {
            text: MessageText::parse(field("text").unwrap_or_default())
                .map_err(|e| corrupt("send payload text", e))?,
            reply_to_wamid: field("reply_to_wamid").map(str::to_owned),
        }),
        Some("template") => Ok(OutboundContent::Template {
            name: field("name").unwrap_or_default().to_owned(),
            template: value.get("template").cloned().unwrap_or(Value::Null),
        }),
        other => Err(corrupt("send payload type", format!("{other:?}"))),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn event(
    workspace_id: WorkspaceId,
    kind: EventKind,
    conversation_id: ConversationId,
    contact_id: ContactId,
    message_id: Option<MessageId>,
) -> NewEvent {
    NewEvent {
        workspace_id,
        kind,
        conversation_id: Some(conversation_id),
        contact_id: Some(contact_id),
        message_id,
    }
}

/// What the recorders read of a message before changing it.
#[derive(sqlx::FromRow)]
struct SendingRow {
    conversation_id: Uuid,
    contact_id: Uuid,
    wamid: Option<String>,
    status: String,
}

macro_rules! impl_sending {
    ($db:ty) => {
        impl Store<$db> {
            async fn read_message(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                id: MessageId,
            ) -> Result<Message, StoreError> {
                let row: MessageRow = sqlx::query_as(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND workspace_id = $2"
                ))
                .bind(id.as_uuid())
                .bind(workspace_id.as_uuid())
                .fetch_optional(conn)
                .await
                .map_err(from_sqlx)?
                .ok_or(StoreError::NotFound)?;
                Message::try_from(row)
            }

            async fn sending_row(
                conn: &mut <$db as sqlx::Database>::Connection,
                workspace_id: WorkspaceId,
                id: MessageId,
                lock: &str,
            ) -> Result<SendingRow, StoreError> {
                sqlx::query_as(&format!(
                    "SELECT m.conversation_id, v.contact_id, m.wamid, m.status \
                     FROM messages m JOIN conversations v ON v.id = m.conversation_id \
                     WHERE m.id = $1 AND m.workspace_id = $2{lock}"
                ))
                .bind(id.as_uuid())
                .bind(workspace_id.as_uuid())
                .fetch_optional(conn)
                .await
                .map_err(from_sqlx)?
                .ok_or(StoreError::NotFound)
            }

            async fn read_send_request(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: UserId,
                key: &str,
            ) -> Result<Option<IdempotentSend>, StoreError> {
                let row: Option<(String, Option<Uuid>, Option<i32>, Option<String>)> = sqlx::query_as(
                    "SELECT request_hash, message_id, answer_status, answer_body FROM send_requests \
                     WHERE user_id = $1 AND idempotency_key = $2",
                )
                .bind(user_id.as_uuid())
                .bind(key)
                .fetch_optional(conn)
                .await
                .map_err(from_sqlx)?;
                Ok(row.map(|(request_hash, message_id, status, body)| IdempotentSend {
                    request_hash,
                    message_id: message_id.map(MessageId::from_uuid),
                    answer: status
                        .and_then(|s| u16::try_from(s).ok())
                        .zip(body),
                }))
            }
        }

        #[async_trait]
        impl SendRepository for Store<$db> {
            async fn conversation_workspace(
                &self,
                id: ConversationId,
            ) -> Result<Option<WorkspaceId>, StoreError> {
                let row: Option<Uuid> =
                    sqlx::query_scalar("SELECT workspace_id FROM conversations WHERE id = $1")
                        .bind(id.as_uuid())
                        .fetch_optional(&self.read)
                        .await
                        .map_err(from_sqlx)?;
                Ok(row.map(WorkspaceId::from_uuid))
            }

            async fn create_send(&self, new: &NewSend) -> Result<CreatedSend, StoreError> {
                let now = new.now.as_millis();
                let user = new.sender_user_id.as_uuid();
                let mut tx = self.begin_write().await?;
                if let Some(claim) = &new.idempotency {
                    // A concurrent request with the same key blocks here until this
                    // transaction ends, then finds the row.
                    let inserted = sqlx::query(
                        "INSERT INTO send_requests (user_id, idempotency_key, request_hash, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, idempotency_key) DO NOTHING",
                    )
                    .bind(user)
                    .bind(claim.key.as_str())
                    .bind(claim.request_hash.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    if inserted.rows_affected() == 0 {
                        let existing =
                            Self::read_send_request(&mut *tx, new.sender_user_id, &claim.key)
                                .await?
                                .ok_or_else(|| {
                                    StoreError::Internal("idempotency record vanished".into())
                                })?;
                        return Ok(CreatedSend::Existing(existing));
                    }
                }

                // Counting and inserting under one per-user lock keeps the limit exact when
                // one user's requests race, on any number of instances.
                <$db as Dialect>::lock_key(&mut *tx, &format!("send-rate:{user}")).await?;
                let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), MIN(created_at) FROM messages \
                     WHERE sender_user_id = $1 AND created_at > $2",
                )
                .bind(user)
                .bind(now - RATE_WINDOW_MILLIS)
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                if count >= i64::from(new.sends_per_minute) {
                    // Dropping the transaction also releases the idempotency key.
                    let oldest = Timestamp::from_millis(oldest.unwrap_or(now));
                    return Ok(CreatedSend::RateLimited {
                        retry_after_secs: retry_after_secs(oldest, new.now),
                    });
                }

                let conversation: Option<(Uuid, i64, Option<i64>)> = sqlx::query_as(&format!(
                    "SELECT v.contact_id, v.last_seq, v.last_message_at FROM conversations v \
                     WHERE v.id = $1 AND v.workspace_id = $2{}",
                    <$db as Dialect>::for_update_of("v")
                ))
                .bind(new.conversation_id.as_uuid())
                .bind(new.workspace_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let Some((contact_id, last_seq, last_message_at)) = conversation else {
                    return Err(StoreError::NotFound);
                };
                let contact_id = ContactId::from_uuid(contact_id);
                let kind = new.content.kind();
                let text = new.content.text();
                sqlx::query(
                    "INSERT INTO messages (id, workspace_id, conversation_id, seq, direction, \
                       sender_type, sender_user_id, kind, text, reply_to_wamid, wamid, status, \
                       sent_at, created_at) \
                     VALUES ($1, $2, $3, $4, 'outbound', 'user', $5, $6, $7, $8, NULL, $9, $10, $10)",
                )
                .bind(new.message_id.as_uuid())
                .bind(new.workspace_id.as_uuid())
                .bind(new.conversation_id.as_uuid())
                .bind(last_seq + 1)
                .bind(user)
                .bind(kind.as_str())
                .bind(text.as_str())
                .bind(new.content.reply_to_wamid())
                .bind(DeliveryStatus::Pending.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;

                // `last_message_*` follow the newest message by time; a send is "now", so it
                // is the newest unless a clock skew put a webhook message in the future.
                let newest = last_message_at.is_none_or(|at| now >= at);
                let preview = inbox_domain::message::preview(&kind, Some(&text));
                sqlx::query(
                    "UPDATE conversations SET last_seq = $2, updated_at = $3, \
                       last_message_at = CASE WHEN $4 THEN $3 ELSE last_message_at END, \
                       last_message_preview = CASE WHEN $4 THEN $5 ELSE last_message_preview END, \
                       sort_at = CASE WHEN $4 THEN $3 ELSE sort_at END \
                     WHERE id = $1",
                )
                .bind(new.conversation_id.as_uuid())
                .bind(last_seq + 1)
                .bind(now)
                .bind(newest)
                .bind(preview)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                if newest {
                    // The tag index carries the list order key; keep it in step.
                    sqlx::query(
                        "UPDATE conversation_tags SET sort_at = $2 \
                         WHERE conversation_id = $1 AND sort_at <> $2",
                    )
                    .bind(new.conversation_id.as_uuid())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                }
                sqlx::query(
                    "UPDATE contacts SET \
                       last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < $2 \
                         THEN $2 ELSE last_activity_at END, \
                       activity_sort = CASE WHEN activity_sort < $2 THEN $2 ELSE activity_sort END, \
                       last_contact_at = CASE WHEN last_contact_at IS NULL OR last_contact_at < $2 \
                         THEN $2 ELSE last_contact_at END, \
                       updated_at = $2 \
                     WHERE id = $1",
                )
                .bind(contact_id.as_uuid())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;

                sqlx::query(
                    "INSERT INTO send_jobs (message_id, workspace_id, recipient, payload, \
                       attempts, due_at, created_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6)",
                )
                .bind(new.message_id.as_uuid())
                .bind(new.workspace_id.as_uuid())
                .bind(new.to.as_str())
                .bind(payload_json(&new.content, true))
                .bind(now.saturating_add(millis(new.lease)))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                if let Some(claim) = &new.idempotency {
                    sqlx::query(
                        "UPDATE send_requests SET message_id = $3 \
                         WHERE user_id = $1 AND idempotency_key = $2",
                    )
                    .bind(user)
                    .bind(claim.key.as_str())
                    .bind(new.message_id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                }
                let events = [
                    event(
                        new.workspace_id,
                        EventKind::MessageCreated,
                        new.conversation_id,
                        contact_id,
                        Some(new.message_id),
                    ),
                    event(
                        new.workspace_id,
                        EventKind::ConversationUpdated,
                        new.conversation_id,
                        contact_id,
                        None,
                    ),
                    event(
                        new.workspace_id,
                        EventKind::ContactUpdated,
                        new.conversation_id,
                        contact_id,
                        None,
                    ),
                ];
                <$db as Dialect>::append_events(&mut *tx, &events).await?;
                let message = Self::read_message(&mut *tx, new.workspace_id, new.message_id).await?;
                self.commit_events(tx).await?;
                Ok(CreatedSend::Created(Box::new(message)))
            }

            async fn idempotent_send(
                &self,
                user_id: UserId,
                key: &str,
            ) -> Result<Option<IdempotentSend>, StoreError> {
                // From the read pool: an answer is visible there as soon as it is committed
                // (one server on PostgreSQL, WAL readers on SQLite), and waiting repeats must
                // not take turns on SQLite's one writer.
                let mut conn = self.read.acquire().await.map_err(from_sqlx)?;
                Self::read_send_request(&mut *conn, user_id, key).await
            }

            async fn store_send_answer(
                &self,
                user_id: UserId,
                key: &str,
                status: u16,
                body: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE send_requests SET answer_status = $3, answer_body = $4 \
                     WHERE user_id = $1 AND idempotency_key = $2",
                )
                .bind(user_id.as_uuid())
                .bind(key)
                .bind(i32::from(status))
                .bind(body)
                .execute(&self.write)
                .await
                .map(drop)
                .map_err(from_sqlx)
            }

            async fn record_send_accepted(
                &self,
                workspace_id: WorkspaceId,
                message_id: MessageId,
                wamid: &str,
            ) -> Result<Message, StoreError> {
                let mut tx = self.begin_write().await?;
                let before = Self::sending_row(&mut *tx, workspace_id, message_id, "").await?;
                // The conversation first, as ingest locks it: an echo of this very send being
                // ingested now either finished (and gave the message its wamid) or waits.
                sqlx::query(&format!(
                    "SELECT v.id FROM conversations v WHERE v.id = $1{}",
                    <$db as Dialect>::for_update_of("v")
                ))
                .bind(before.conversation_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                // Then the wamid, as a status webhook takes it: a status for this wamid either
                // was kept in pending_statuses (taken below) or will find the message.
                <$db as Dialect>::lock_key(&mut *tx, &wamid_key(workspace_id, wamid)).await?;
                let current = Self::sending_row(
                    &mut *tx,
                    workspace_id,
                    message_id,
                    &<$db as Dialect>::for_update_of("m"),
                )
                .await?;
                if current.wamid.is_none() {
                    // Kapso's echo normally finds this message by its callback data; if it was
                    // stored as a message of its own all the same, that row is this message
                    // twice. Only an echo's row (no sender user): another send of ours keeps its
                    // wamid, and this one fails on the unique key instead.
                    let duplicate: Option<Uuid> = sqlx::query_scalar(
                        "DELETE FROM messages WHERE workspace_id = $1 AND wamid = $2 AND id <> $3 \
                           AND sender_user_id IS NULL \
                         RETURNING id",
                    )
                    .bind(workspace_id.as_uuid())
                    .bind(wamid)
                    .bind(message_id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    if let Some(duplicate) = duplicate {
                        tracing::warn!(
                            message.id = %message_id,
                            duplicate.id = %duplicate,
                            "an echo of our send was stored as a separate message; merged"
                        );
                    }
                    let early: Vec<(String, Option<String>)> = sqlx::query_as(
                        "DELETE FROM pending_statuses WHERE workspace_id = $1 AND wamid = $2 \
                         RETURNING status, error",
                    )
                    .bind(workspace_id.as_uuid())
                    .bind(wamid)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    let mut updates = vec![(DeliveryStatus::Sent, None)];
                    for (status, error) in early {
                        updates.push((
                            delivery_status(&status)?,
                            error.as_deref().map(error_from_json).transpose()?,
                        ));
                    }
                    let status = delivery_status(&current.status)?;
                    let (status, error) = fold_statuses(
                        status,
                        updates.iter().map(|(s, e)| (*s, e.as_ref())),
                    )
                    .map_or((status, None), |(s, e)| (s, e.cloned()));
                    sqlx::query(
                        "UPDATE messages SET wamid = $3, status = $4, error = COALESCE($5, error) \
                         WHERE id = $1 AND workspace_id = $2",
                    )
                    .bind(message_id.as_uuid())
                    .bind(workspace_id.as_uuid())
                    .bind(wamid)
                    .bind(status.as_str())
                    .bind(error.as_ref().map(error_json))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    <$db as Dialect>::append_event(
                        &mut *tx,
                        &event(
                            workspace_id,
                            EventKind::MessageUpdated,
                            ConversationId::from_uuid(current.conversation_id),
                            ContactId::from_uuid(current.contact_id),
                            Some(message_id),
                        ),
                    )
                    .await?;
                } else if current.wamid.as_deref() != Some(wamid) {
                    tracing::warn!(
                        message.id = %message_id,
                        "Kapso answered with another wamid than the echo that claimed the message"
                    );
                }
                sqlx::query("DELETE FROM send_jobs WHERE message_id = $1")
                    .bind(message_id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                let message = Self::read_message(&mut *tx, workspace_id, message_id).await?;
                self.commit_events(tx).await?;
                Ok(message)
            }

            async fn record_send_failed(
                &self,
                workspace_id: WorkspaceId,
                message_id: MessageId,
                error: &MessageError,
            ) -> Result<Message, StoreError> {
                let mut tx = self.begin_write().await?;
                let current = Self::sending_row(
                    &mut *tx,
                    workspace_id,
                    message_id,
                    &<$db as Dialect>::for_update_of("m"),
                )
                .await?;
                // An echo may have shown that Kapso did send it after all; then it stays.
                if current.wamid.is_none() && current.status == DeliveryStatus::Pending.as_str() {
                    sqlx::query(
                        "UPDATE messages SET status = $3, error = $4 \
                         WHERE id = $1 AND workspace_id = $2",
                    )
                    .bind(message_id.as_uuid())
                    .bind(workspace_id.as_uuid())
                    .bind(DeliveryStatus::Failed.as_str())
                    .bind(error_json(error))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    <$db as Dialect>::append_event(
                        &mut *tx,
                        &event(
                            workspace_id,
                            EventKind::MessageUpdated,
                            ConversationId::from_uuid(current.conversation_id),
                            ContactId::from_uuid(current.contact_id),
                            Some(message_id),
                        ),
                    )
                    .await?;
                }
                sqlx::query("DELETE FROM send_jobs WHERE message_id = $1")
                    .bind(message_id.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                let message = Self::read_message(&mut *tx, workspace_id, message_id).await?;
                self.commit_events(tx).await?;
                Ok(message)
            }

            async fn reschedule_send(
                &self,
                message_id: MessageId,
                retry_at: Timestamp,
                last_error: &str,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE send_jobs SET due_at = $2, last_error = $3 WHERE message_id = $1")
                    .bind(message_id.as_uuid())
                    .bind(retry_at.as_millis())
                    .bind(last_error)
                    .execute(&self.write)
                    .await
                    .map(drop)
                    .map_err(from_sqlx)
            }

            async fn claim_due_sends(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<SendJob>, StoreError> {
                let mut tx = self.begin_write().await?;
                // Settled messages (an echo gave them their wamid) need no attempt.
                sqlx::query(
                    "DELETE FROM send_jobs WHERE due_at <= $1 AND message_id IN \
                       (SELECT m.id FROM messages m WHERE m.id = send_jobs.message_id \
                          AND (m.wamid IS NOT NULL OR m.status <> 'pending'))",
                )
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let rows: Vec<(Uuid, Uuid, String, String, i32)> = sqlx::query_as(&format!(
                    "UPDATE send_jobs SET due_at = $2, attempts = attempts + 1 \
                     WHERE message_id IN (SELECT j.message_id FROM send_jobs j \
                       WHERE j.due_at <= $1 ORDER BY j.due_at LIMIT $3{}) \
                     RETURNING message_id, workspace_id, recipient, payload, attempts",
                    <$db as Dialect>::for_update_skip_locked("j")
                ))
                .bind(now.as_millis())
                .bind(lease_until.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                rows.into_iter()
                    .map(|(message_id, workspace_id, recipient, payload, attempts)| {
                        Ok(SendJob {
                            message_id: MessageId::from_uuid(message_id),
                            workspace_id: WorkspaceId::from_uuid(workspace_id),
                            to: PhoneE164::from_trusted(recipient),
                            content: payload_from_json(&payload)?,
                            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        })
                    })
                    .collect()
            }

            async fn prune_send_requests(&self, before: Timestamp) -> Result<u64, StoreError> {
                sqlx::query("DELETE FROM send_requests WHERE created_at < $1")
                    .bind(before.as_millis())
                    .execute(&self.write)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(from_sqlx)
            }
        }
    };
}

impl_sending!(Sqlite);
impl_sending!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let text = OutboundContent::Text {
            text: MessageText::parse("Halo").expect("valid"),
            reply_to_wamid: Some("wamid.IN".into()),
        };
        assert_eq!(
            payload_from_json(&payload_json(&text, true)).expect("valid"),
            text
        );
        let template = OutboundContent::Template {
            name: "order_update".into(),
            template: json!({"name": "order_update", "language": "id", "components": []}),
        };
        assert_eq!(
            payload_from_json(&payload_json(&template, false)).expect("valid"),
            template
        );
        assert!(payload_from_json(r#"{"type": "video"}"#).is_err());
    }
}
