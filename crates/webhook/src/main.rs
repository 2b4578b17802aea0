//! `inbox-webhook`: serves only the webhook receiver, for deployments that scale intake apart
//! from the API.

use clap::Parser;
use inbox_webhook::process::{self, CoreSettings, WebhookArgs};

/// Inbox webhook receiver. Every flag can also be set by its environment variable.
#[derive(Debug, Parser)]
#[command(name = "inbox-webhook", version, about)]
struct Cli {
    #[command(flatten)]
    core: CoreSettings,

    #[command(flatten)]
    webhook: WebhookArgs,

    #[command(flatten)]
    http: inbox_webhook::server::HttpLimits,

    /// Address to serve on; port 0 picks a free port and the chosen address is logged.
    #[arg(long, env = "INBOX_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    process::init_tracing(&cli.core);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inbox-webhook: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), process::StartError> {
    let key = cli.core.secret_key()?;
    let listener = process::bind(&cli.listen).await?;
    let repo = inbox_store::open(&cli.core.database_url, &key).await?;
    let settings = cli.webhook.settings();
    process::check_webhook_settings(repo.as_ref(), &settings).await?;
    process::spawn_intake_upkeep(&repo, &cli.core);
    let state = inbox_webhook::WebhookState::new(repo.clone(), settings);
    let app = inbox_webhook::server::with_request_timeout(
        inbox_webhook::router(state).merge(inbox_webhook::health::router(repo)),
        cli.http.request_timeout(),
    );
    let addr = listener
        .local_addr()
        .map_err(|source| process::StartError::Listen {
            addr: cli.listen.clone(),
            source,
        })?;
    process::announce("inbox-webhook", addr);
    inbox_webhook::server::serve(listener, app, cli.http, process::shutdown_signal())
        .await
        .map_err(|source| process::StartError::Listen {
            addr: cli.listen,
            source,
        })
}
