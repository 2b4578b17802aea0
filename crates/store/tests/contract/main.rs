//! The storage contract: every scenario is written once against the ports and run on SQLite and
//! on PostgreSQL, each in a database of its own.

mod bulk;
mod contacts;
mod conversations;
mod deliveries;
mod event_log;
mod fixtures;
mod identity;
mod ingest;
mod intake;
mod messages;
mod sending;
mod snapshots;
mod workspaces;

use std::sync::Arc;

use inbox_domain::ports::Repository;
use inbox_store::testing::{Backend, OnBackend, Seed, TestDatabase, fixture};
use inbox_store::{SecretKey, postgres, sqlite};

/// What a scenario gets: the ports, and raw SQL access for checking what is really stored.
pub struct Harness {
    /// Every port.
    pub repo: Arc<dyn Repository>,
    /// The same database, for raw inspection.
    pub raw: Raw,
    /// Fast test data.
    pub seed: Arc<dyn Seed>,
    /// Bulk seeding, as the benchmark uses it.
    pub bulk: Arc<dyn inbox_store::bulk::BulkSeed>,
    _db: TestDatabase,
}

/// Raw access to the backend under test.
pub enum Raw {
    /// SQLite's write pool.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL's pool.
    Postgres(sqlx::PgPool),
}

impl Raw {
    /// Appends an event row directly (the ports append events only inside the changes they
    /// record; this tests the reading side on its own).
    pub async fn insert_event(&self, workspace_id: uuid::Uuid, created_at: i64) {
        self.insert_event_of_kind(workspace_id, "contact.updated", created_at)
            .await;
    }

    /// Appends an event row of any kind, one this version does not know included (as a newer
    /// version, or a damaged row, would leave behind).
    pub async fn insert_event_of_kind(
        &self,
        workspace_id: uuid::Uuid,
        kind: &str,
        created_at: i64,
    ) {
        let sql = "INSERT INTO events (workspace_id, kind, created_at) VALUES ($1, $2, $3)";
        match self {
            Self::Sqlite(pool) => sqlx::query(sql)
                .bind(workspace_id)
                .bind(kind)
                .bind(created_at)
                .execute(pool)
                .await
                .map(drop),
            Self::Postgres(pool) => sqlx::query(sql)
                .bind(workspace_id)
                .bind(kind)
                .bind(created_at)
                .execute(pool)
                .await
                .map(drop),
        }
        .expect("insert event");
    }

    /// Runs a query returning one optional blob.
    pub async fn blob(&self, sql: &str) -> Option<Vec<u8>> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("raw query")
    }

    /// A UUID as a SQL literal of this backend (SQLite stores UUIDs as 16-byte blobs).
    pub fn uuid(&self, id: uuid::Uuid) -> String {
        match self {
            Self::Sqlite(_) => format!("X'{}'", id.simple()),
            Self::Postgres(_) => format!("'{id}'::uuid"),
        }
    }

    /// Runs a query returning one count.
    pub async fn count(&self, sql: &str) -> i64 {
        self.int(sql).await
    }

    /// Runs a query returning one BIGINT (cast INTEGER columns: PostgreSQL's are 32-bit).
    pub async fn int(&self, sql: &str) -> i64 {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("raw query")
    }

    /// Runs a query returning a column of optional BIGINTs.
    pub async fn ints(&self, sql: &str) -> Vec<Option<i64>> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .expect("raw query")
    }

    /// Runs a query returning a column of optional texts.
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await,
        }
        .expect("raw query")
    }

    /// Runs a query returning one optional text.
    pub async fn text(&self, sql: &str) -> Option<String> {
        let mut rows = self.texts(sql).await;
        assert_eq!(rows.len(), 1, "one row expected from {sql}");
        rows.pop().flatten()
    }

    /// Runs a statement; the error's text when the database refuses it.
    pub async fn execute(&self, sql: &str) -> Result<u64, String> {
        match self {
            Self::Sqlite(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|d| d.rows_affected()),
            Self::Postgres(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|d| d.rows_affected()),
        }
        .map_err(|e| e.to_string())
    }
}

impl OnBackend for Harness {
    async fn over(db: TestDatabase, backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let store = sqlite::open(db.url(), &SecretKey::generate())
                    .await
                    .expect("open sqlite");
                Self {
                    raw: Raw::Sqlite(store.write_pool().clone()),
                    seed: Arc::new(store.clone()),
                    bulk: Arc::new(store.clone()),
                    repo: Arc::new(store),
                    _db: db,
                }
            }
            Backend::Postgres => {
                let store = postgres::open(db.url(), &SecretKey::generate())
                    .await
                    .expect("open postgres");
                Self {
                    raw: Raw::Postgres(store.write_pool().clone()),
                    seed: Arc::new(store.clone()),
                    bulk: Arc::new(store.clone()),
                    repo: Arc::new(store),
                    _db: db,
                }
            }
        }
    }
}

impl Harness {
    async fn sqlite() -> Self {
        fixture(Backend::Sqlite, "sqlite")
            .await
            .expect("SQLite is never skipped")
    }

    async fn postgres(test: &str) -> Option<Self> {
        fixture(Backend::Postgres, test).await
    }
}

// Each scenario on both backends, on a current-thread runtime.
inbox_store::on_both_backends!(crate::Harness, current_thread;
    bulk::seeds_workspaces_users_and_threads_keeping_the_invariants,
    workspaces::create_and_find_by_slug_and_id,
    workspaces::slugs_are_unique,
    workspaces::secrets_are_encrypted_and_write_only,
    workspaces::phone_number_ids_are_unique,
    workspaces::patch_changes_only_what_it_names,
    workspaces::concurrent_patches_of_different_secrets_both_stick,
    identity::users_have_unique_emails,
    identity::memberships_are_unique_and_reference_real_rows,
    identity::memberships_are_listed_both_ways,
    identity::tokens_authenticate_until_revoked,
    identity::health_answers,
    event_log::reads_in_order_per_workspace_and_in_pages,
    event_log::positions_resume_and_prune,
    event_log::an_unreadable_event_is_skipped_not_a_stall,
    deliveries::deliveries_are_stored_once_per_key_and_listed,
    ingest::inbound_creates_contact_conversation_and_message,
    ingest::media_and_errors_are_stored_as_json,
    ingest::repeated_idempotency_key_changes_nothing,
    ingest::duplicate_wamids_do_not_consume_a_seq,
    ingest::wamids_phones_and_conversations_are_unique_where_they_must_be,
    ingest::the_person_set_name_is_never_overwritten,
    ingest::unknown_customers_are_ignored_without_auto_create,
    ingest::unknown_phone_number_ids_are_ignored,
    ingest::last_message_follows_whatsapp_time_not_arrival,
    ingest::outbound_echoes_never_touch_unread_and_inbound_reopens,
    ingest::statuses_before_their_message_are_applied_when_it_arrives,
    ingest::statuses_only_move_forward,
    ingest::failed_records_code_and_title,
    ingest::concurrent_burst_from_a_new_phone,
    ingest::concurrent_copies_of_one_delivery_store_it_once,
    ingest::schema_mirrors_are_kept,
    ingest::conversation_notices_keep_the_kapso_id_current,
    ingest::failures_are_recorded_and_replayable,
    ingest::a_failing_delivery_among_concurrent_ones_fails_alone,
    conversations::every_filter_alone_and_combined_matches_exactly,
    conversations::paging_a_thousand_with_limit_seven_returns_each_once_in_order,
    conversations::paging_while_messages_arrive_never_repeats,
    conversations::a_rare_search_examines_a_bounded_window_per_page,
    conversations::counts_agree_with_the_list,
    conversations::members_never_see_unassigned_conversations,
    conversations::another_workspace_reads_and_changes_nothing_by_id,
    conversations::assignment_rules,
    conversations::actions_change_state_and_append_one_event_each,
    messages::threads_page_back_and_catch_up_in_seq_order,
    messages::threads_follow_conversation_visibility,
    snapshots::conversations_and_contacts_read_by_id_in_one_call,
    contacts::create_makes_the_contact_and_its_waiting_conversation,
    contacts::duplicate_phones_conflict_and_name_the_existing_contact,
    contacts::assignees_must_be_members_and_members_assign_only_themselves,
    contacts::patches_keep_the_conversation_copies_in_step,
    contacts::delete_cascades_and_is_for_owners,
    contacts::by_phone_lookup_gives_bots_the_context,
    contacts::contact_list_filters_and_pages,
    contacts::a_rare_contact_search_examines_a_bounded_window_per_page,
    sending::sends_are_written_pending_with_their_job_then_settle,
    sending::rate_limits_and_idempotency_keys_hold_in_the_database,
    sending::concurrent_workers_never_claim_the_same_job,
    intake::ingest_beside_contact_patches_stores_every_message,
    intake::idempotency_keys_are_namespaced_by_workspace,
    intake::a_huge_delivery_is_stored_in_bounded_statements,
    sending::echoes_find_our_sends_by_callback_data_and_old_ones_by_whole_content,
    sending::a_wamid_another_of_our_sends_has_is_never_taken_from_it,
    intake::sender_timestamps_are_clamped_for_order_and_window,
    intake::retention_prunes_in_small_batches,
    intake::a_deleted_contact_stays_deleted_and_its_payloads_are_redacted,
);

/// Only this database's transactions can delay its events: a long transaction elsewhere on the
/// server must not stall every live stream.
#[tokio::test]
async fn postgres_events_are_not_held_back_by_other_databases() {
    if let Some(h) = Harness::postgres("postgres_events_are_not_held_back_by_other_databases").await
    {
        event_log::other_databases_do_not_hold_events_back(h).await;
    }
}

/// PostgreSQL hands out event ids before commit; a reader must not pass an event whose
/// transaction commits after a later id's. (SQLite has one writer, so this cannot happen there.)
#[tokio::test]
async fn postgres_readers_never_pass_a_late_commit() {
    if let Some(h) = Harness::postgres("postgres_readers_never_pass_a_late_commit").await {
        event_log::late_commits_are_not_overtaken(h).await;
    }
}

/// Serving connections bound every statement and every idle transaction, so a stuck client
/// cannot hold locks (or the live event log) indefinitely.
#[tokio::test]
async fn postgres_serving_connections_bound_statements_and_idle_transactions() {
    let Some(h) =
        Harness::postgres("postgres_serving_connections_bound_statements_and_idle_transactions")
            .await
    else {
        return;
    };
    let Raw::Postgres(pool) = &h.raw else {
        unreachable!("a PostgreSQL harness");
    };
    for (setting, expected) in [
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "1min"),
    ] {
        let shown: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(pool)
            .await
            .expect("show");
        assert_eq!(shown, expected, "{setting}");
    }
}

/// The API and the webhook binaries may share one SQLite file, each with its own writer. A
/// write transaction that read before it wrote must wait for the other process's writer, not
/// fail (`SQLITE_BUSY_SNAPSHOT`) and turn an acknowledged delivery into a `failed` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_processes_writing_one_file_lose_nothing() {
    use inbox_domain::ingest::{IngestOutcome, ingest as apply};
    let h = Harness::sqlite().await;
    ingest::workspace(&h, "acme", ingest::PHONE_NUMBER_ID).await;
    let other: Arc<dyn Repository> = Arc::new(
        sqlite::open(h._db.url(), &SecretKey::generate())
            .await
            .expect("a second process's store"),
    );
    let writers = [Arc::clone(&h.repo), other].map(|repo| {
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..60_i64 {
                let n = i64::try_from(outcomes.len()).expect("small");
                let wamid = format!("wamid.{:p}.{i}", Arc::as_ptr(&repo));
                let customer = format!("62812000{:05}", (i * 7 + n) % 5);
                let items = vec![ingest::inbound(&wamid, &customer, None, 1_000 + i, "hi")];
                let outcome = apply(
                    repo.as_ref(),
                    &ingest::delivery(&wamid),
                    &ingest::facts(items),
                )
                .await;
                outcomes.push(outcome);
            }
            outcomes
        })
    });
    for writer in writers {
        for outcome in writer.await.expect("writer") {
            match outcome {
                Ok(IngestOutcome::Processed) => {}
                other => panic!("a delivery was not stored: {other:?}"),
            }
        }
    }
    assert_eq!(h.raw.count("SELECT COUNT(*) FROM messages").await, 120);
}

/// One lock order everywhere (a conversation before its contact): a contact update that meets
/// a transaction holding the conversation (as ingest holds it while it writes the contact)
/// waits for it instead of deadlocking with it. Before, the update locked the contact first,
/// and PostgreSQL aborted one of the two: on the ingest side, an acknowledged message lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_contact_updates_take_the_conversation_first() {
    use inbox_domain::contact::{ContactPatch, LeadScore};
    use inbox_domain::ingest::ingest as apply;
    use inbox_domain::user::{Actor, Role};

    let Some(h) = Harness::postgres("postgres_contact_updates_take_the_conversation_first").await
    else {
        return;
    };
    let Raw::Postgres(pool) = &h.raw else {
        unreachable!("a PostgreSQL harness");
    };
    let ws = ingest::workspace(&h, "acme", ingest::PHONE_NUMBER_ID).await;
    apply(
        h.repo.as_ref(),
        &ingest::delivery("first"),
        &ingest::facts(vec![ingest::inbound(
            "wamid.L1",
            "6281234567890",
            None,
            1_000,
            "hi",
        )]),
    )
    .await
    .expect("ingest");
    let owner = Actor {
        user_id: inbox_domain::UserId::new(),
        workspace_id: ws,
        role: Role::Owner,
    };
    let phone = inbox_domain::phone::PhoneE164::from_wa_id("6281234567890").expect("phone");
    let contact = h
        .repo
        .contact_by_phone(owner, &phone)
        .await
        .expect("read")
        .expect("contact")
        .contact
        .id;

    // An ingest-like transaction: the conversation first...
    let mut holder = pool.begin().await.expect("begin");
    sqlx::query("SELECT id FROM conversations WHERE contact_id = $1 FOR UPDATE")
        .bind(contact.as_uuid())
        .fetch_one(&mut *holder)
        .await
        .expect("lock the conversation");
    // ...while an agent edits the contact; it must now be waiting on a lock.
    let repo = Arc::clone(&h.repo);
    let edit = tokio::spawn(async move {
        let patch = ContactPatch {
            lead_score: Some(LeadScore::new(42).expect("score")),
            ..ContactPatch::default()
        };
        repo.update_contact(owner, contact, patch).await
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("activity");
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edit waits on a lock"
        );
        tokio::task::yield_now().await;
    }
    // ...then the contact, as ingest writes it after the message.
    sqlx::query("UPDATE contacts SET updated_at = updated_at + 1 WHERE id = $1")
        .bind(contact.as_uuid())
        .execute(&mut *holder)
        .await
        .expect("the ingest side is not the deadlock's victim");
    holder.commit().await.expect("commit");
    edit.await
        .expect("task")
        .expect("the edit is not the deadlock's victim either");
}

/// SQLite's group commit shares a transaction between deliveries; a repeat must not be
/// acknowledged from a batch that has not committed. (PostgreSQL's unique insert waits for the
/// transaction holding the key.)
#[tokio::test]
async fn sqlite_duplicates_wait_for_the_original_to_be_durable() {
    let db = TestDatabase::sqlite().expect("temp dir");
    let store = sqlite::open(db.url(), &SecretKey::generate())
        .await
        .expect("open sqlite");
    intake::sqlite_duplicates_wait_for_the_original_to_be_durable(store).await;
}
