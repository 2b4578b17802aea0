//! The webhook receiver driven through its router (no network), on SQLite and on PostgreSQL,
//! each scenario in a database of its own, checking what is really stored.

mod fixtures;
mod intake;
mod property;
mod refusals;
mod replays;
mod retention;
mod tenancy;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, Mac};
use inbox_domain::WorkspaceId;
use inbox_domain::phone::CountryCode;
use inbox_domain::ports::Repository;
use inbox_domain::workspace::{NewWorkspace, Secret, WorkspacePatch, WorkspaceSlug};
use inbox_store::testing::{Backend, OnBackend, TestDatabase};
use inbox_store::{SecretKey, postgres, sqlite};
use inbox_webhook::{WebhookSettings, WebhookState, router};
use serde_json::Value;
use sha2::Sha256;
use tower::ServiceExt;

pub(crate) const PHONE_NUMBER_ID: &str = "123456789012345";
pub(crate) const KAPSO_SECRET: &str = "wh_sec_test_123";
pub(crate) const META_SECRET: &str = "meta_app_secret_abc";
pub(crate) const VERIFY_TOKEN: &str = "verify_me";

/// Every table a delivery can write to.
pub(crate) const TABLES: [&str; 6] = [
    "webhook_deliveries",
    "contacts",
    "conversations",
    "messages",
    "pending_statuses",
    "events",
];

/// A store, the router over it, and raw SQL access for checking what is stored.
pub(crate) struct Harness {
    pub repo: Arc<dyn Repository>,
    pub store: Store,
    pub workspace: WorkspaceId,
    _db: TestDatabase,
}

/// The typed store, for raw queries and for closing it.
pub(crate) enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl OnBackend for Harness {
    async fn over(db: TestDatabase, backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let store = sqlite::open(db.url(), &SecretKey::generate())
                    .await
                    .expect("open sqlite");
                Self::with(Arc::new(store.clone()), Store::Sqlite(store), db).await
            }
            Backend::Postgres => {
                let store = postgres::open(db.url(), &SecretKey::generate())
                    .await
                    .expect("open postgres");
                Self::with(Arc::new(store.clone()), Store::Postgres(store), db).await
            }
        }
    }
}

impl Harness {
    /// The test workspace owns [`PHONE_NUMBER_ID`] and signs with [`KAPSO_SECRET`].
    async fn with(repo: Arc<dyn Repository>, store: Store, db: TestDatabase) -> Self {
        let ws = repo
            .create_workspace(NewWorkspace {
                slug: WorkspaceSlug::parse("acme").expect("slug"),
                name: inbox_domain::workspace::WorkspaceName::parse("Acme").expect("name"),
                default_country: CountryCode::default(),
            })
            .await
            .expect("workspace");
        let patch = WorkspacePatch {
            kapso_phone_number_id: Some(Some(PHONE_NUMBER_ID.into())),
            webhook_secret: Some(Some(Secret::new(KAPSO_SECRET))),
            ..WorkspacePatch::default()
        };
        repo.update_workspace(ws.id, patch).await.expect("patch");
        Self {
            repo,
            store,
            workspace: ws.id,
            _db: db,
        }
    }

    /// The router with the Meta secrets configured and no deployment-wide Kapso secret.
    pub fn app(&self) -> Router {
        self.app_with(WebhookSettings {
            kapso_webhook_secret: None,
            meta_app_secret: Some(Secret::new(META_SECRET)),
            meta_verify_token: Some(Secret::new(VERIFY_TOKEN)),
        })
    }

    pub fn app_with(&self, settings: WebhookSettings) -> Router {
        router(WebhookState::new(Arc::clone(&self.repo), settings))
    }

    pub async fn int(&self, sql: &str) -> i64 {
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.write_pool()).await,
            Store::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.write_pool()).await,
        }
        .expect("raw query")
    }

    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.write_pool()).await,
            Store::Postgres(s) => sqlx::query_scalar(sql).fetch_all(s.write_pool()).await,
        }
        .expect("raw query")
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        let mut rows = self.texts(sql).await;
        assert_eq!(rows.len(), 1, "one row expected from {sql}");
        rows.pop().flatten()
    }

    /// Row counts of every table a delivery writes, in [`TABLES`] order.
    pub async fn counts(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in TABLES {
            counts.push(self.int(&format!("SELECT COUNT(*) FROM {table}")).await);
        }
        counts
    }

    pub async fn close(&self) {
        match &self.store {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// A request to post: headers and raw body.
#[derive(Clone, Debug)]
pub(crate) struct Post {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Post {
    /// A Kapso delivery signed with `secret`.
    pub fn kapso(event: &str, key: &str, body: &[u8], secret: &str) -> Self {
        Self {
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Webhook-Event".into(), event.into()),
                ("X-Idempotency-Key".into(), key.into()),
                ("X-Webhook-Signature".into(), hmac_hex(secret, body)),
            ],
            body: body.to_vec(),
        }
    }

    pub fn without(mut self, header: &str) -> Self {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(header));
        self
    }

    pub fn with(mut self, header: &str, value: &str) -> Self {
        self = self.without(header);
        self.headers.push((header.into(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Hex HMAC-SHA256, as Kapso signs.
pub(crate) fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Posts to the webhook; the status and the JSON answer (`Null` when not JSON).
pub(crate) async fn post(app: &Router, post: &Post) -> (StatusCode, Value) {
    let mut request = Request::post("/api/webhook/kapso");
    for (name, value) in &post.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Body::from(post.body.clone()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

inbox_store::on_both_backends!(crate::Harness;
    fixtures::every_fixture_is_stored_once_under_concurrent_repeats,
    fixtures::fixtures_produce_the_promised_state,
    fixtures::batch_messages_resent_one_by_one_are_not_duplicated,
    refusals::bad_signatures_are_refused_and_write_nothing,
    refusals::no_usable_secret_fails_closed,
    refusals::the_workspace_secret_wins_over_the_deployment_secret,
    refusals::oversized_bodies_are_refused,
    refusals::signed_bodies_that_are_not_json_are_bad_requests,
    refusals::unknown_phone_number_ids_are_stored_as_ignored,
    refusals::an_unavailable_database_answers_503,
    refusals::meta_handshake,
    replays::ignored_deliveries_replay_once_contacts_may_be_created,
    replays::unreadable_deliveries_are_kept_as_failed_and_stay_failed_on_replay,
    replays::the_replayer_retries_failed_deliveries_until_the_limit,
    tenancy::a_body_signed_by_one_tenant_naming_another_lands_nowhere,
    tenancy::a_meta_delivery_is_routed_per_number,
    tenancy::the_deployment_secret_serves_only_a_lone_workspace,
    intake::a_nul_character_is_stored_without_it,
    intake::a_batch_over_the_cap_is_refused_whole,
    intake::an_overlong_idempotency_key_is_refused,
    intake::agents_editing_a_contact_while_its_customer_writes_lose_nothing,
    property::random_signed_deliveries_are_stored_exactly_once_or_not_at_all,
    retention::deliveries_are_pruned_after_retention_in_batches,
);
