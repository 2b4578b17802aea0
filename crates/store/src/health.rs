//! The readiness probe.

use async_trait::async_trait;
use inbox_domain::ports::{Health, StoreError};
use sqlx::{Postgres, Sqlite};

use crate::Store;
use crate::error::from_sqlx;

macro_rules! impl_health {
    ($db:ty) => {
        #[async_trait]
        impl Health for Store<$db> {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&self.read)
                    .await
                    .map(drop)
                    .map_err(|e| match from_sqlx(e) {
                        StoreError::Internal(reason) => StoreError::Unavailable(reason),
                        other => other,
                    })
            }
        }
    };
}

impl_health!(Sqlite);
impl_health!(Postgres);
