//! Process set-up shared by both binaries: configuration, the secret key, tracing, the listener
//! and graceful shutdown. `inbox-api` reuses it, so both binaries behave the same at boot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use inbox_domain::workspace::Secret;
use inbox_store::{Backend, SecretKey};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Settings every process needs, from `INBOX_*` environment variables or flags.
#[derive(Clone, Debug, clap::Args)]
pub struct CoreSettings {
    /// Database: `sqlite://path` (created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "INBOX_DATABASE_URL",
        default_value = "sqlite://data/inbox.db"
    )]
    pub database_url: String,

    /// 32-byte key (base64) encrypting stored secrets. On SQLite it is generated once into
    /// `secret.key` beside the database file when unset; required for PostgreSQL.
    #[arg(long, env = "INBOX_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,

    /// Tracing filter, e.g. `info` or `inbox=debug,sqlx=warn`.
    #[arg(long, env = "INBOX_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` or `json` (JSON lines).
    #[arg(long, env = "INBOX_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Days processed and ignored webhook deliveries are kept (failed ones: 90, or until
    /// replayed).
    #[arg(long, env = "INBOX_DELIVERY_RETENTION_DAYS", default_value_t = 30)]
    pub delivery_retention_days: u32,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of the webhook receiver, from `INBOX_*` environment variables or flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WebhookArgs {
    /// Deployment-wide Kapso webhook secret, used when a workspace has none of its own.
    #[arg(long, env = "INBOX_KAPSO_WEBHOOK_SECRET", hide_env_values = true)]
    pub kapso_webhook_secret: Option<Secret>,

    /// Meta app secret, for Meta-format deliveries (`X-Hub-Signature-256`).
    #[arg(long, env = "INBOX_META_APP_SECRET", hide_env_values = true)]
    pub meta_app_secret: Option<Secret>,

    /// Token Meta's GET verification handshake must present.
    #[arg(long, env = "INBOX_META_VERIFY_TOKEN", hide_env_values = true)]
    pub meta_verify_token: Option<Secret>,
}

impl WebhookArgs {
    /// The receiver's settings.
    #[must_use]
    pub fn settings(&self) -> crate::WebhookSettings {
        let secret =
            |value: &Option<Secret>| value.as_ref().filter(|v| !v.expose().is_empty()).cloned();
        crate::WebhookSettings {
            kapso_webhook_secret: secret(&self.kapso_webhook_secret),
            meta_app_secret: secret(&self.meta_app_secret),
            meta_verify_token: secret(&self.meta_verify_token),
        }
    }
}

/// Why a process could not start. Each message names the problem and the fix in one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// PostgreSQL needs an explicit key: several instances must share it.
    #[error(
        "INBOX_SECRET_KEY is required with PostgreSQL: every instance must share one key; generate it with `openssl rand -base64 32`"
    )]
    MissingSecretKey,
    /// The key is malformed.
    #[error(transparent)]
    InvalidSecretKey(#[from] inbox_store::InvalidSecretKey),
    /// The key file could not be read or written.
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The address is taken or not ours.
    #[error(
        "cannot listen on {addr}: {source}; is another process using it? Set INBOX_LISTEN to another address (port 0 picks a free one)"
    )]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Database(#[from] inbox_store::OpenError),
    /// A deployment-wide webhook secret cannot say which of several tenants signed.
    #[error(
        "INBOX_KAPSO_WEBHOOK_SECRET is set but {workspaces} workspaces exist: a shared secret cannot tell which one signed a delivery; give each workspace its own with `inbox-api admin workspace set-kapso --workspace <slug> --phone-number-id <id> --webhook-secret -` and unset INBOX_KAPSO_WEBHOOK_SECRET"
    )]
    SharedWebhookSecret {
        /// How many workspaces exist.
        workspaces: u64,
    },
    /// The database answered with an error while starting.
    #[error("the database failed while starting: {0}")]
    Store(#[from] inbox_domain::ports::StoreError),
}

/// Starts the intake's background upkeep every process runs, once: failed deliveries replayed
/// with backoff, and deliveries and parked statuses pruned past retention.
pub fn spawn_intake_upkeep(
    repo: &std::sync::Arc<dyn inbox_domain::ports::Repository>,
    core: &CoreSettings,
) {
    crate::replayer::spawn_replayer(repo.clone(), crate::replayer::ReplayPolicy::default());
    crate::retention::spawn_retention(
        repo.clone(),
        crate::retention::RetentionSettings::with_delivery_days(core.delivery_retention_days),
    );
}

/// Refuses a deployment-wide Kapso webhook secret once more than one workspace exists (the
/// receiver also stops applying it then, for workspaces created while it runs).
///
/// # Errors
/// [`StartError::SharedWebhookSecret`], or the database's error.
pub async fn check_webhook_settings(
    repo: &dyn inbox_domain::ports::Repository,
    settings: &crate::WebhookSettings,
) -> Result<(), StartError> {
    if settings.kapso_webhook_secret.is_none() {
        return Ok(());
    }
    let workspaces = repo.workspace_count().await?;
    if workspaces > 1 {
        return Err(StartError::SharedWebhookSecret { workspaces });
    }
    Ok(())
}

impl CoreSettings {
    /// The key that encrypts stored secrets: `INBOX_SECRET_KEY`, or on SQLite the key file
    /// beside the database, generated (with a warning) the first time.
    ///
    /// # Errors
    /// See [`StartError`].
    pub fn secret_key(&self) -> Result<SecretKey, StartError> {
        if let Some(text) = &self.secret_key {
            return Ok(SecretKey::from_base64(text.expose())?);
        }
        match Backend::of_url(&self.database_url)? {
            Backend::Postgres => Err(StartError::MissingSecretKey),
            Backend::Sqlite => key_file(&key_file_path(&self.database_url)),
        }
    }
}

/// `secret.key` in the SQLite database's folder (`data/secret.key` for the default).
fn key_file_path(database_url: &str) -> PathBuf {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("secret.key")
}

fn key_file(path: &Path) -> Result<SecretKey, StartError> {
    let io_error = |source| StartError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SecretKey::from_base64(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(io_error)?;
            }
            let key = SecretKey::generate();
            write_private(path, &key.to_base64()).map_err(io_error)?;
            tracing::warn!(
                path = %path.display(),
                "INBOX_SECRET_KEY is not set: generated a key file; back it up with the database, \
                 stored Kapso credentials cannot be read without it"
            );
            Ok(key)
        }
        Err(e) => Err(io_error(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Installs the global tracing subscriber. Safe to call once per process.
pub fn init_tracing(settings: &CoreSettings) {
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests calling twice) is harmless; ignore it.
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Binds the listener, naming the fix when the address is taken.
///
/// # Errors
/// [`StartError::Listen`].
pub async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Logs the address actually bound (port 0 picks one), in a line tests and scripts can read:
/// `listening on http://127.0.0.1:PORT`.
pub fn announce(service: &str, addr: SocketAddr) {
    tracing::info!(service, "listening on http://{addr}");
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_never_print_their_secrets() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Both {
            #[command(flatten)]
            core: CoreSettings,
            #[command(flatten)]
            webhook: WebhookArgs,
        }
        let parsed = Both::parse_from([
            "x",
            "--secret-key",
            "key-sekrit-1",
            "--kapso-webhook-secret",
            "hook-sekrit-2",
            "--meta-app-secret",
            "meta-sekrit-3",
            "--meta-verify-token",
            "verify-sekrit-4",
        ]);
        let shown = format!("{parsed:?} {:?}", parsed.webhook.settings());
        assert!(!shown.contains("sekrit"), "{shown}");
        assert_eq!(
            parsed
                .webhook
                .settings()
                .meta_app_secret
                .as_ref()
                .map(Secret::expose),
            Some("meta-sekrit-3")
        );
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path("sqlite://data/inbox.db"),
            Path::new("data/secret.key")
        );
        assert_eq!(
            key_file_path("sqlite:/tmp/x/db.sqlite?mode=rwc"),
            Path::new("/tmp/x/secret.key")
        );
        assert_eq!(
            key_file_path("sqlite://inbox.db"),
            Path::new("./secret.key")
        );
    }
}
