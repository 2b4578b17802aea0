//! The command line: `inbox-api [serve]` runs the system; `inbox-api admin ...` bootstraps and
//! repairs it. Every admin command prints what it did, or one JSON object with `--json`.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand};
use inbox_domain::delivery::DeliveryFilter;
use inbox_domain::ingest::IngestOutcome;
use inbox_domain::phone::CountryCode;
use inbox_domain::ports::Repository;
use inbox_domain::sending::Backoff;
use inbox_domain::token::generate_token;
use inbox_domain::user::{NewUser, Role};
use inbox_domain::validation::text_len;
use inbox_domain::workspace::{NewWorkspace, Secret, WorkspaceName, WorkspacePatch, WorkspaceSlug};
use inbox_domain::{DeliveryId, TokenId, UserId, WorkspaceId};
use inbox_webhook::process::{self, CoreSettings, WebhookArgs};
use serde_json::json;

use crate::AppState;
use inbox_domain::sending::SendSettings;

/// Inbox: a multi-tenant WhatsApp shared inbox over Kapso. Every flag can also be set by the
/// environment variable shown beside it.
#[derive(Debug, Parser)]
#[command(name = "inbox-api", version, about)]
pub struct Cli {
    /// Settings every command needs.
    #[command(flatten)]
    pub core: CoreSettings,

    /// What to do; without a command, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and (unless --no-webhook) the webhook receiver on one listener.
    Serve(ServeArgs),
    /// Bootstrap and repair: workspaces, users, members, tokens, migrations.
    Admin(AdminArgs),
}

/// Settings of the server.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to serve on; port 0 picks a free port and the chosen address is logged.
    #[arg(long, env = "INBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Serve only the API, without the webhook receiver.
    #[arg(long)]
    pub no_webhook: bool,

    /// Where Kapso's API lives (tests and the demo point it at a local fake).
    #[arg(
        long,
        env = "INBOX_KAPSO_BASE_URL",
        default_value = "https://api.kapso.ai"
    )]
    pub kapso_base_url: String,

    /// How long one Kapso request may take, in milliseconds, before it counts as a transient
    /// failure and the send is retried in the background.
    #[arg(long, env = "INBOX_KAPSO_TIMEOUT_MS", default_value_t = 10_000)]
    pub kapso_timeout_ms: u64,

    /// Sends per user per rolling minute, counted in the database across instances.
    #[arg(long, env = "INBOX_SENDS_PER_MINUTE", default_value_t = inbox_domain::sending::DEFAULT_SENDS_PER_MINUTE)]
    pub sends_per_minute: u32,

    /// Delay before the first retry of a send that failed transiently, in milliseconds; it
    /// doubles with each attempt (never less than Kapso's Retry-After).
    #[arg(long, env = "INBOX_SEND_RETRY_BASE_MS", default_value_t = 2_000)]
    pub send_retry_base_ms: u64,

    /// Longest delay between two attempts of a send, in milliseconds.
    #[arg(long, env = "INBOX_SEND_RETRY_MAX_MS", default_value_t = 300_000)]
    pub send_retry_max_ms: u64,

    /// Attempts after which a send that keeps failing transiently is marked failed.
    #[arg(long, env = "INBOX_SEND_MAX_ATTEMPTS", default_value_t = 12)]
    pub send_max_attempts: u32,

    /// How long Kapso's echo of a send whose outcome is unknown (the request timed out after
    /// it was written) may take, in milliseconds: the send is looked up in Kapso's message
    /// history, and retried only if it is not there, no sooner than this.
    #[arg(long, env = "INBOX_SEND_ECHO_WINDOW_MS", default_value_t = 5_000)]
    pub send_echo_window_ms: u64,

    /// How often the outbox worker looks for sends due for a retry, in milliseconds.
    #[arg(long, env = "INBOX_SEND_POLL_MS", default_value_t = 1_000)]
    pub send_poll_ms: u64,

    /// Days of event log kept for clients resuming the live stream; older events are pruned.
    #[arg(long, env = "INBOX_EVENT_RETENTION_DAYS", default_value_t = 7)]
    pub event_retention_days: u32,

    /// Let workspace owners set their `kapso_phone_number_id` through the API, once Kapso
    /// confirms the number belongs to their API key's project. Off by default: only the admin
    /// CLI routes a number to a workspace.
    #[arg(
        long,
        env = "INBOX_OWNERS_MAY_SET_NUMBER",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub owners_may_set_number: bool,

    /// Webhook receiver settings.
    #[command(flatten)]
    pub webhook: WebhookArgs,

    /// Transport limits.
    #[command(flatten)]
    pub http: inbox_webhook::server::HttpLimits,

    /// Requests one token may make a minute in this process (a token bucket; 429
    /// `rate_limited` with `Retry-After` past it).
    #[arg(long, env = "INBOX_REQUESTS_PER_MINUTE", default_value_t = 600)]
    pub requests_per_minute: u32,

    /// Event streams one token may hold open in this process (429 past it).
    #[arg(long, env = "INBOX_MAX_STREAMS_PER_TOKEN", default_value_t = 8)]
    pub max_streams_per_token: usize,

    /// A stream resuming further back than this many events gets `resync` instead of a replay.
    #[arg(long, env = "INBOX_EVENT_REPLAY_MAX", default_value_t = 10_000)]
    pub event_replay_max: i64,
}

/// `inbox-api admin ...`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Print one JSON object instead of a sentence.
    #[arg(long, global = true)]
    pub json: bool,

    /// The admin command.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Run pending database migrations.
    Migrate,
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Memberships.
    #[command(subcommand)]
    Member(MemberCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Stored webhook deliveries: inspect and replay.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
}

/// `admin deliveries ...`.
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List stored deliveries, newest first.
    List {
        /// Only those whose processing failed.
        #[arg(long)]
        failed: bool,
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Process stored deliveries again. Safe to repeat: messages are stored once per wamid.
    Replay {
        /// The delivery to replay.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<DeliveryId>,
        /// Replay every failed delivery instead.
        #[arg(long)]
        failed: bool,
    },
}

/// `admin workspace ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        /// Unique slug: 2 to 48 characters of a-z, 0-9 and -.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// ISO 3166 alpha-2 country for reading local phone numbers.
        #[arg(long, default_value = "ID")]
        default_country: String,
    },
    /// Connect a workspace to its Kapso phone number.
    SetKapso {
        /// Workspace slug or id.
        #[arg(long)]
        workspace: String,
        /// Kapso's phone_number_id of the business number.
        #[arg(long)]
        phone_number_id: String,
        /// Kapso API key; `-` reads it from standard input.
        #[arg(long)]
        api_key: Option<Secret>,
        /// Webhook signing secret of the Kapso webhook; `-` reads it from standard input.
        #[arg(long)]
        webhook_secret: Option<Secret>,
    },
}

/// `admin user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Unique email.
        #[arg(long)]
        email: Option<String>,
    },
}

/// `admin member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a user to a workspace.
    Add {
        /// Workspace slug or id.
        #[arg(long)]
        workspace: String,
        /// User id.
        #[arg(long)]
        user: UserId,
        /// owner, admin or member.
        #[arg(long)]
        role: Role,
    },
    /// Change a member's role; their open event streams follow the new role at once.
    SetRole {
        /// Workspace slug or id.
        #[arg(long)]
        workspace: String,
        /// User id.
        #[arg(long)]
        user: UserId,
        /// owner, admin or member.
        #[arg(long)]
        role: Role,
    },
    /// Remove a user from a workspace; their open event streams of it end at once.
    Remove {
        /// Workspace slug or id.
        #[arg(long)]
        workspace: String,
        /// User id.
        #[arg(long)]
        user: UserId,
    },
}

/// `admin token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; it is printed once and only its hash is stored.
    Create {
        /// User id.
        #[arg(long)]
        user: UserId,
        /// A label, such as `laptop` or `n8n`.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (as printed by `token create`).
        id: TokenId,
    },
}

/// What an admin command did: a sentence, and the same as JSON.
struct Outcome {
    text: String,
    json: serde_json::Value,
}

/// Runs the command line.
///
/// # Errors
/// Any failure, with a message naming the problem and the fix.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    process::init_tracing(&cli.core);
    match cli.command {
        Some(Command::Admin(admin)) => run_admin(&cli.core, admin).await,
        Some(Command::Serve(args)) => run_serve(&cli.core, args).await,
        None => {
            let args = ServeArgs::from_env();
            run_serve(&cli.core, args).await
        }
    }
}

impl ServeArgs {
    /// Serve settings from the environment alone (no subcommand given).
    fn from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Only::parse_from(["inbox-api"]).serve
    }
}

async fn run_serve(core: &CoreSettings, args: ServeArgs) -> anyhow::Result<()> {
    let key = core.secret_key()?;
    let listener = process::bind(&args.listen).await?;
    let repo = inbox_store::open(&core.database_url, &key).await?;
    if !args.no_webhook {
        process::check_webhook_settings(repo.as_ref(), &args.webhook.settings()).await?;
    }
    let kapso_timeout = Duration::from_millis(args.kapso_timeout_ms.max(1));
    let kapso = inbox_kapso::KapsoClient::new(&inbox_kapso::KapsoClientConfig {
        base_url: args.kapso_base_url.clone(),
        connect_timeout: kapso_timeout.min(Duration::from_secs(3)),
        request_timeout: kapso_timeout,
    })
    .context("INBOX_KAPSO_BASE_URL")?;
    let sending = SendSettings {
        sends_per_minute: args.sends_per_minute,
        backoff: Backoff {
            base: Duration::from_millis(args.send_retry_base_ms),
            max: Duration::from_millis(args.send_retry_max_ms.max(args.send_retry_base_ms)),
            max_attempts: args.send_max_attempts.max(1),
        },
        poll_interval: Duration::from_millis(args.send_poll_ms.max(1)),
        echo_window: Duration::from_millis(args.send_echo_window_ms),
        ..SendSettings::for_timeout(kapso_timeout)
    };
    let state = AppState::new(repo.clone(), kapso, sending)
        .with_owners_may_set_number(args.owners_may_set_number)
        .with_limits(crate::limits::ApiLimits {
            requests_per_minute: args.requests_per_minute,
            max_streams_per_token: args.max_streams_per_token,
            event_replay_max: args.event_replay_max,
        });
    let live = Arc::clone(&state.live);
    let (stop_outbox, outbox_stopped) = tokio::sync::watch::channel(false);
    let outbox = crate::sending::spawn_outbox_worker(state.clone(), outbox_stopped.clone());
    let token_use =
        crate::auth::spawn_token_use_writer(state.clone(), Duration::from_secs(60), outbox_stopped);
    crate::live::spawn_pruner(
        repo.clone(),
        Duration::from_secs(u64::from(args.event_retention_days) * 86_400),
    );
    process::spawn_intake_upkeep(&repo, core);
    let mut app = crate::router(state);
    if !args.no_webhook {
        // Merged beside the API's 1 MiB body limit, not under it: deliveries may be 3 MiB.
        let webhook = inbox_webhook::WebhookState::new(repo, args.webhook.settings());
        app = app.merge(inbox_webhook::router(webhook));
    }
    let addr = listener.local_addr()?;
    process::announce("inbox-api", addr);
    let shutdown = async move {
        process::shutdown_signal().await;
        // Open event streams would otherwise hold graceful shutdown forever.
        live.shutdown();
    };
    let served = crate::serve(listener, app, args.http, shutdown).await;
    // In-flight requests have finished (their first send attempts recorded); now let the
    // worker finish its attempts so none is left to a lease, then exit.
    stop_outbox.send_replace(true);
    if let Err(e) = outbox.await {
        tracing::warn!(error = %e, "the outbox worker ended abnormally");
    }
    if let Err(e) = token_use.await {
        tracing::warn!(error = %e, "the token use writer ended abnormally");
    }
    served?;
    Ok(())
}

async fn run_admin(core: &CoreSettings, admin: AdminArgs) -> anyhow::Result<()> {
    let key = core.secret_key()?;
    if matches!(admin.command, AdminCommand::Migrate) {
        inbox_store::migrate(&core.database_url, &key).await?;
        return print(
            admin.json,
            &Outcome {
                text: "Database is migrated to the latest schema.".into(),
                json: json!({"migrated": true}),
            },
        );
    }
    let repo = inbox_store::open(&core.database_url, &key).await?;
    let outcome = match admin.command {
        AdminCommand::Migrate => unreachable!("handled above"),
        AdminCommand::Workspace(command) => workspace(&*repo, command).await?,
        AdminCommand::User(command) => user(&*repo, command).await?,
        AdminCommand::Member(command) => member(&*repo, command).await?,
        AdminCommand::Token(command) => token(&*repo, command).await?,
        AdminCommand::Deliveries(command) => deliveries(&*repo, command).await?,
    };
    print(admin.json, &outcome)
}

fn print(json: bool, outcome: &Outcome) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&outcome.json)?);
    } else {
        println!("{}", outcome.text);
    }
    Ok(())
}

async fn find_workspace(repo: &dyn Repository, reference: &str) -> anyhow::Result<WorkspaceId> {
    let found = match reference.parse::<WorkspaceId>() {
        Ok(id) => repo.workspace_by_id(id).await?,
        Err(_) => repo.workspace_by_slug(reference).await?,
    };
    found
        .map(|w| w.id)
        .ok_or_else(|| anyhow!("no workspace `{reference}`: list slugs with your database tool or create it with `admin workspace create`"))
}

/// A secret from a flag, or from standard input when the flag is `-`.
fn secret(flag: Option<Secret>, what: &str) -> anyhow::Result<Option<Secret>> {
    match flag.as_ref().map(Secret::expose) {
        None => Ok(None),
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .with_context(|| format!("reading the {what} from standard input"))?;
            let value = line.trim();
            anyhow::ensure!(
                !value.is_empty(),
                "the {what} read from standard input is empty"
            );
            Ok(Some(Secret::new(value)))
        }
        Some(_) => Ok(flag),
    }
}

async fn workspace(repo: &dyn Repository, command: WorkspaceCommand) -> anyhow::Result<Outcome> {
    match command {
        WorkspaceCommand::Create {
            slug,
            name,
            default_country,
        } => {
            let new = NewWorkspace {
                slug: WorkspaceSlug::parse(&slug)?,
                name: WorkspaceName::parse(&name)?,
                default_country: CountryCode::parse(&default_country)?,
            };
            let ws = repo.create_workspace(new).await?;
            Ok(Outcome {
                text: format!(
                    "Created workspace {} ({}) with id {}.",
                    ws.slug, ws.name, ws.id
                ),
                json: json!({"id": ws.id.to_string(), "slug": ws.slug.as_str(), "name": ws.name}),
            })
        }
        WorkspaceCommand::SetKapso {
            workspace,
            phone_number_id,
            api_key,
            webhook_secret,
        } => {
            let id = find_workspace(repo, &workspace).await?;
            let api_key = secret(api_key, "API key")?;
            let webhook_secret = secret(webhook_secret, "webhook secret")?;
            let patch = WorkspacePatch {
                kapso_phone_number_id: Some(Some(phone_number_id)),
                kapso_api_key: api_key.map(Some),
                webhook_secret: webhook_secret.map(Some),
                ..WorkspacePatch::default()
            };
            let ws = repo.update_workspace(id, patch).await?;
            Ok(Outcome {
                text: format!(
                    "Workspace {} now receives Kapso number {} (API key {}, webhook secret {}).",
                    ws.slug,
                    ws.kapso_phone_number_id.as_deref().unwrap_or_default(),
                    if ws.has_kapso_api_key {
                        "stored"
                    } else {
                        "not set"
                    },
                    if ws.has_webhook_secret {
                        "stored"
                    } else {
                        "not set"
                    },
                ),
                json: json!({
                    "id": ws.id.to_string(),
                    "kapso_phone_number_id": ws.kapso_phone_number_id,
                    "has_kapso_api_key": ws.has_kapso_api_key,
                    "has_webhook_secret": ws.has_webhook_secret,
                }),
            })
        }
    }
}

async fn user(repo: &dyn Repository, command: UserCommand) -> anyhow::Result<Outcome> {
    let UserCommand::Create { name, email } = command;
    text_len("name", &name, 1, 200)?;
    let user = repo.create_user(NewUser { name, email }).await?;
    Ok(Outcome {
        text: format!("Created user {} with id {}.", user.name, user.id),
        json: json!({"id": user.id.to_string(), "name": user.name, "email": user.email}),
    })
}

async fn member(repo: &dyn Repository, command: MemberCommand) -> anyhow::Result<Outcome> {
    let membership_json = |membership: &inbox_domain::user::Membership| {
        json!({
            "workspace_id": membership.workspace_id.to_string(),
            "user_id": membership.user_id.to_string(),
            "role": membership.role.as_str(),
        })
    };
    match command {
        MemberCommand::Add {
            workspace,
            user,
            role,
        } => {
            let id = find_workspace(repo, &workspace).await?;
            let membership = repo.add_member(id, user, role).await?;
            Ok(Outcome {
                text: format!("User {user} is now {role} of workspace {workspace}."),
                json: membership_json(&membership),
            })
        }
        MemberCommand::SetRole {
            workspace,
            user,
            role,
        } => {
            let id = find_workspace(repo, &workspace).await?;
            let membership = repo
                .set_member_role(id, user, role)
                .await
                .map_err(|e| not_a_member(e, user, &workspace))?;
            Ok(Outcome {
                text: format!("User {user} is now {role} of workspace {workspace}."),
                json: membership_json(&membership),
            })
        }
        MemberCommand::Remove { workspace, user } => {
            let id = find_workspace(repo, &workspace).await?;
            repo.remove_member(id, user)
                .await
                .map_err(|e| not_a_member(e, user, &workspace))?;
            Ok(Outcome {
                text: format!("User {user} is no longer a member of workspace {workspace}."),
                json: json!({"workspace_id": id.to_string(), "user_id": user.to_string(), "removed": true}),
            })
        }
    }
}

fn not_a_member(
    error: inbox_domain::ports::StoreError,
    user: UserId,
    workspace: &str,
) -> anyhow::Error {
    match error {
        inbox_domain::ports::StoreError::NotFound => {
            anyhow::anyhow!("user {user} is not a member of workspace {workspace}")
        }
        other => other.into(),
    }
}

async fn token(repo: &dyn Repository, command: TokenCommand) -> anyhow::Result<Outcome> {
    match command {
        TokenCommand::Create { user, name } => {
            text_len("name", &name, 1, 100)?;
            let generated = generate_token();
            let token = repo.create_token(user, &name, &generated.hash).await?;
            let secret = generated.secret.expose();
            Ok(Outcome {
                text: format!(
                    "Created token {} for user {user}. It is shown only now:\n{secret}",
                    token.id
                ),
                json: json!({"id": token.id.to_string(), "user_id": user.to_string(), "token": secret}),
            })
        }
        TokenCommand::Revoke { id } => {
            let token = repo.revoke_token(id).await?;
            Ok(Outcome {
                text: format!("Revoked token {}.", token.id),
                json: json!({"id": token.id.to_string(), "revoked": true}),
            })
        }
    }
}

fn outcome_json(id: DeliveryId, outcome: &IngestOutcome) -> serde_json::Value {
    let (name, reason) = match outcome {
        IngestOutcome::Duplicate => ("duplicate", None),
        IngestOutcome::Processed => ("processed", None),
        IngestOutcome::Ignored(reason) => ("ignored", Some(reason)),
        IngestOutcome::Failed(error) => ("failed", Some(error)),
    };
    json!({"id": id.to_string(), "outcome": name, "reason": reason})
}

async fn deliveries(repo: &dyn Repository, command: DeliveriesCommand) -> anyhow::Result<Outcome> {
    match command {
        DeliveriesCommand::List { failed, limit } => {
            let filter = if failed {
                DeliveryFilter::Failed
            } else {
                DeliveryFilter::All
            };
            let list = repo.deliveries(filter, limit).await?;
            let mut text = format!("{} deliveries", list.len());
            for d in &list {
                text.push_str(&format!(
                    "\n{}  {}  {:<9}  {}  {}",
                    d.id,
                    d.received_at,
                    d.outcome.as_str(),
                    d.event.as_deref().unwrap_or("-"),
                    d.error.as_deref().unwrap_or(""),
                ));
            }
            let json = json!({"deliveries": list.iter().map(|d| json!({
                "id": d.id.to_string(),
                "received_at": d.received_at.to_string(),
                "event": d.event,
                "phone_number_id": d.phone_number_id,
                "workspace_id": d.workspace_id.map(|w| w.to_string()),
                "outcome": d.outcome.as_str(),
                "error": d.error,
                "attempts": d.attempts,
            })).collect::<Vec<_>>()});
            Ok(Outcome { text, json })
        }
        DeliveriesCommand::Replay { id: Some(id), .. } => {
            let outcome = inbox_webhook::replay_delivery(repo, id).await?;
            let json = outcome_json(id, &outcome);
            Ok(Outcome {
                text: format!(
                    "Replayed delivery {id}: {}.",
                    json["outcome"].as_str().unwrap_or_default()
                ),
                json,
            })
        }
        DeliveriesCommand::Replay { id: None, .. } => {
            let results = inbox_webhook::replay_failed(repo).await?;
            let still_failed = results
                .iter()
                .filter(|(_, o)| matches!(o, IngestOutcome::Failed(_)))
                .count();
            Ok(Outcome {
                text: format!(
                    "Replayed {} failed deliveries; {still_failed} still failing.",
                    results.len()
                ),
                json: json!({
                    "replayed": results.iter().map(|(id, o)| outcome_json(*id, o)).collect::<Vec<_>>(),
                    "still_failed": still_failed,
                }),
            })
        }
    }
}
