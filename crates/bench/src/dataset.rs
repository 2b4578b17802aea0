//! The dataset: one busy workspace and 99 small ones, written through the store's bulk module
//! (not through HTTP), with the users and tokens the scenarios act as.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use inbox_domain::ports::WorkspaceRepository;
use inbox_domain::user::Role;
use inbox_domain::workspace::{Secret, WorkspacePatch};
use inbox_domain::{Timestamp, UserId, WorkspaceId};
use inbox_store::SecretKey;
use inbox_store::bulk::{
    Agents, BulkSeed, BulkUser, BulkWorkspace, BusyPlan, RARE_TAG, SeededConversation,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use serde_json::{Value, json};

use super::options::Scale;
use super::servers::{Database, SECRET_KEY};

/// The busy workspace's Kapso number: deliveries naming it are routed there.
pub const BUSY_PHONE_NUMBER_ID: &str = "109000000000001";
/// Its webhook secret (deliveries are signed with it).
pub const WEBHOOK_SECRET: &str = "wh_sec_bench";
/// Seeded contacts' phones: this prefix and the conversation index on 7 digits.
pub const PHONE_PREFIX: &str = "+62812";
/// Phones of contacts the ingest scenario creates: never seeded.
pub const NEW_PHONE_PREFIX: &str = "+62813";

/// A user and the bearer token it calls the API with.
#[derive(Clone, Debug)]
pub struct Agent {
    /// User id.
    pub id: UserId,
    /// Bearer token.
    pub token: String,
}

/// What was seeded, for choosing request targets and checking counts afterwards.
pub struct Dataset {
    /// The busy workspace.
    pub busy: WorkspaceId,
    /// Its slug.
    pub busy_slug: String,
    /// Owner of the busy workspace.
    pub owner: Agent,
    /// A member (sees only what is assigned to them).
    pub member: Agent,
    /// Admins that send replies (many, because sends are rate limited per user).
    pub senders: Vec<Agent>,
    /// The busy workspace's conversations.
    pub conversations: Vec<SeededConversation>,
    /// Conversations per tag key in the busy workspace.
    pub tag_counts: BTreeMap<String, u64>,
    /// Messages seeded in the busy workspace.
    pub busy_messages: u64,
    /// Messages seeded in the small workspaces.
    pub small_messages: u64,
    /// Conversations seeded in the small workspaces.
    pub small_conversations: u64,
    /// Seconds spent seeding.
    pub seconds: f64,
}

impl Dataset {
    /// The rare tag the list scenario filters by.
    pub fn rare_tag(&self) -> &'static str {
        RARE_TAG
    }

    /// As report JSON.
    pub fn json(&self, scale: Scale) -> Value {
        json!({
            "scale": scale.name(),
            "busy_workspace": {
                "conversations": self.conversations.len(),
                "contacts": self.conversations.len(),
                "messages": self.busy_messages,
                "window_open": self.conversations.iter().filter(|c| c.window_open).count(),
                "unread": self.conversations.iter().filter(|c| c.unread).count(),
                "assigned_to_member": self.conversations.iter().filter(|c| c.assigned_to == Some(self.member.id)).count(),
                "tags": self.tag_counts,
            },
            "small_workspaces": {
                "count": scale.small_workspaces(),
                "conversations": self.small_conversations,
                "messages": self.small_messages,
            },
            "users": 2 + self.senders.len() + 4,
            "seed_seconds": (self.seconds * 10.0).round() / 10.0,
        })
    }
}

fn token() -> String {
    let mut bytes = [0_u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("inbox_bench{}", hex::encode(bytes))
}

fn agent(role: Role, name: &str, users: &mut Vec<BulkUser>) -> Agent {
    let id = UserId::new();
    let token = token();
    users.push(BulkUser {
        id,
        name: name.to_owned(),
        email: format!("{}@busy.bench", name.to_lowercase().replace(' ', ".")),
        role,
        token: token.clone(),
    });
    Agent { id, token }
}

/// Seeds the whole dataset into `db`, showing a progress bar.
pub async fn seed(db: &Database, scale: Scale) -> anyhow::Result<Dataset> {
    let key = SecretKey::from_base64(SECRET_KEY).map_err(|_| anyhow::anyhow!("bad bench key"))?;
    match db {
        Database::Sqlite { url, .. } => {
            let store = inbox_store::sqlite::open(url, &key).await?;
            let seeded = seed_into(&store, scale).await;
            store.close().await;
            seeded
        }
        Database::Postgres { url, .. } => {
            let store = inbox_store::postgres::open(url, &key).await?;
            let seeded = seed_into(&store, scale).await;
            store.close().await;
            seeded
        }
    }
}

async fn seed_into<S>(store: &S, scale: Scale) -> anyhow::Result<Dataset>
where
    S: BulkSeed + WorkspaceRepository,
{
    let started = Instant::now();
    let busy = WorkspaceId::new();
    let busy_slug = "busy".to_owned();
    let mut workspaces = vec![BulkWorkspace {
        id: busy,
        slug: busy_slug.clone(),
        name: "Busy Shop".to_owned(),
        kapso_phone_number_id: Some(BUSY_PHONE_NUMBER_ID.to_owned()),
    }];
    for i in 0..scale.small_workspaces() {
        workspaces.push(BulkWorkspace {
            id: WorkspaceId::new(),
            slug: format!("small-{i:02}"),
            name: format!("Small Shop {i}"),
            kapso_phone_number_id: Some(format!("1090000000{:05}", i + 100)),
        });
    }
    store
        .bulk_workspaces(&workspaces)
        .await
        .context("creating workspaces")?;
    store
        .update_workspace(
            busy,
            WorkspacePatch {
                kapso_api_key: Some(Some(Secret::new("kapso_bench_key"))),
                webhook_secret: Some(Some(Secret::new(WEBHOOK_SECRET))),
                ..WorkspacePatch::default()
            },
        )
        .await
        .context("setting the busy workspace's Kapso credentials")?;

    let mut users = Vec::new();
    let owner = agent(Role::Owner, "Owner", &mut users);
    let member = agent(Role::Member, "Member", &mut users);
    let others: Vec<UserId> = (0..4)
        .map(|i| agent(Role::Member, &format!("Agent {i}"), &mut users).id)
        .collect();
    let senders: Vec<Agent> = (0..scale.senders())
        .map(|i| agent(Role::Admin, &format!("Sender {i}"), &mut users))
        .collect();
    store
        .bulk_users(busy, &users)
        .await
        .context("creating users")?;

    let total = scale.busy_messages() + scale.small_workspaces() as u64 * scale.small_messages();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "seeding  [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} messages ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let now = Timestamp::now();
    let plan = BusyPlan {
        workspace_id: busy,
        conversations: scale.busy_conversations(),
        messages: scale.busy_messages(),
        agents: Agents {
            owner: owner.id,
            member: member.id,
            others,
        },
        phone_prefix: PHONE_PREFIX.to_owned(),
        wamid_prefix: "seed-busy".to_owned(),
        now,
        seed: 42,
    };
    let progress = {
        let bar = bar.clone();
        move |n: u64| bar.set_position(n)
    };
    let seeded = store
        .bulk_conversations(&plan, &progress)
        .await
        .context("seeding the busy workspace")?;

    let mut small_messages = 0;
    let mut small_conversations = 0;
    for (i, ws) in workspaces.iter().enumerate().skip(1) {
        let owner_id = UserId::new();
        store
            .bulk_users(
                ws.id,
                &[BulkUser {
                    id: owner_id,
                    name: format!("Owner {i}"),
                    email: format!("owner@{}.bench", ws.slug),
                    role: Role::Owner,
                    token: token(),
                }],
            )
            .await?;
        let base = bar.position();
        let progress = {
            let bar = bar.clone();
            move |n: u64| bar.set_position(base + n)
        };
        let small = store
            .bulk_conversations(
                &BusyPlan {
                    workspace_id: ws.id,
                    conversations: scale.small_conversations(),
                    messages: scale.small_messages(),
                    agents: Agents {
                        owner: owner_id,
                        member: owner_id,
                        others: Vec::new(),
                    },
                    phone_prefix: PHONE_PREFIX.to_owned(),
                    wamid_prefix: format!("seed-{}", ws.slug),
                    now,
                    seed: 1_000 + i as u64,
                },
                &progress,
            )
            .await
            .with_context(|| format!("seeding {}", ws.slug))?;
        small_messages += small.messages;
        small_conversations += small.conversations.len() as u64;
    }
    bar.finish_and_clear();
    let spinner = ProgressBar::new_spinner().with_message("refreshing planner statistics");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    store.bulk_finish().await.context("ANALYZE")?;
    spinner.finish_and_clear();

    Ok(Dataset {
        busy,
        busy_slug,
        owner,
        member,
        senders,
        busy_messages: seeded.messages,
        tag_counts: seeded.tag_counts,
        conversations: seeded.conversations,
        small_messages,
        small_conversations,
        seconds: started.elapsed().as_secs_f64(),
    })
}
