//! The snapshots port: conversations and contacts by id in one query each, for the live stream's
//! renderer.

use async_trait::async_trait;
use inbox_domain::contact::Contact;
use inbox_domain::conversation::Conversation;
use inbox_domain::ports::{SnapshotRepository, StoreError};
use inbox_domain::{ContactId, ConversationId};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::Store;
use crate::contacts::{CONTACT_COLUMNS, ContactRow};
use crate::conversations::{CONVERSATION_COLUMNS, ConversationRow};
use crate::error::from_sqlx;

/// Id lists are padded to the next of these sizes (repeating an id), so each connection
/// prepares a handful of statements instead of one per list length.
const LIST_SIZES: [usize; 6] = [8, 16, 32, 64, 128, 256];

/// `ids` as UUIDs, sorted and deduplicated, then padded to a size of [`LIST_SIZES`] (lists
/// longer than the largest are left as they are).
fn padded(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    if let (Some(&last), Some(&size)) = (
        ids.last(),
        LIST_SIZES.iter().find(|&&size| size >= ids.len()),
    ) {
        ids.resize(size, last);
    }
    ids
}

/// `$1, $2, ... $n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! impl_snapshots {
    ($db:ty) => {
        #[async_trait]
        impl SnapshotRepository for Store<$db> {
            async fn conversations_by_id(
                &self,
                ids: &[ConversationId],
            ) -> Result<Vec<Conversation>, StoreError> {
                let ids = padded(ids.iter().map(|id| id.as_uuid()));
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
                     JOIN contacts k ON k.id = c.contact_id WHERE c.id IN ({})",
                    placeholders(ids.len())
                );
                let mut query = sqlx::query_as::<_, ConversationRow>(&sql);
                for id in ids {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(&self.read).await.map_err(from_sqlx)?;
                rows.into_iter().map(Conversation::try_from).collect()
            }

            async fn contacts_by_id(&self, ids: &[ContactId]) -> Result<Vec<Contact>, StoreError> {
                let ids = padded(ids.iter().map(|id| id.as_uuid()));
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts k WHERE k.id IN ({})",
                    placeholders(ids.len())
                );
                let mut query = sqlx::query_as::<_, ContactRow>(&sql);
                for id in ids {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(&self.read).await.map_err(from_sqlx)?;
                rows.into_iter().map(Contact::try_from).collect()
            }
        }
    };
}

impl_snapshots!(Sqlite);
impl_snapshots!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_deduplicated_and_padded_to_a_few_sizes() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let ids = padded([b, a, b].into_iter());
        assert_eq!(ids.len(), 8);
        assert_eq!(&ids[..2], &[a, b]);
        assert!(ids[2..].iter().all(|&id| id == b));
        assert!(padded(std::iter::empty()).is_empty());
        let many = padded((0..300).map(Uuid::from_u128));
        assert_eq!(many.len(), 300, "longer lists are not padded");
    }
}
