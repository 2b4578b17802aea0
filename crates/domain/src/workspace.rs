//! Workspaces: the tenants. Everything else belongs to exactly one.

use std::fmt;

use crate::ids::WorkspaceId;
use crate::phone::CountryCode;
use crate::timestamp::Timestamp;
use crate::validation::ValidationError;

/// A workspace slug: `[a-z0-9-]`, 2..=48 characters, unique.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkspaceSlug(String);

impl WorkspaceSlug {
    /// Validates a slug.
    ///
    /// # Errors
    /// When the slug is too short, too long, or has characters outside `[a-z0-9-]`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok_len = (2..=48).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "slug",
                "must be 2 to 48 characters of a-z, 0-9 and -",
            ))
        }
    }

    /// The slug text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A workspace's display name: 1..=100 characters once trimmed. One rule for the API and the
/// admin CLI alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceName(String);

impl WorkspaceName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name, trimming surrounding whitespace.
    ///
    /// # Errors
    /// When the trimmed name is empty or longer than [`Self::MAX_CHARS`] characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if (1..=Self::MAX_CHARS).contains(&name.chars().count()) {
            Ok(Self(name.to_owned()))
        } else {
            Err(ValidationError::new("name", "must be 1 to 100 characters"))
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored workspace. Secrets are not part of it: they are read only where they are used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Id.
    pub id: WorkspaceId,
    /// Unique slug.
    pub slug: WorkspaceSlug,
    /// Display name.
    pub name: String,
    /// Kapso's id of the business phone number; routes webhooks here. Unique.
    pub kapso_phone_number_id: Option<String>,
    /// Whether a Kapso API key is stored (encrypted).
    pub has_kapso_api_key: bool,
    /// Whether a webhook secret is stored (encrypted).
    pub has_webhook_secret: bool,
    /// Country used to read local phone numbers.
    pub default_country: CountryCode,
    /// Whether the webhook creates contacts for unknown numbers.
    pub auto_create_contacts: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What creating a workspace needs.
#[derive(Clone, Debug)]
pub struct NewWorkspace {
    /// Unique slug.
    pub slug: WorkspaceSlug,
    /// Display name.
    pub name: WorkspaceName,
    /// Country used to read local phone numbers.
    pub default_country: CountryCode,
}

/// A change to a workspace's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WorkspacePatch {
    /// New display name.
    pub name: Option<WorkspaceName>,
    /// New Kapso phone number id (`Some(None)` clears it).
    pub kapso_phone_number_id: Option<Option<String>>,
    /// New Kapso API key (`Some(None)` clears it), in plain text: the store encrypts it.
    pub kapso_api_key: Option<Option<Secret>>,
    /// New webhook secret (`Some(None)` clears it), in plain text: the store encrypts it.
    pub webhook_secret: Option<Option<Secret>>,
    /// New default country.
    pub default_country: Option<CountryCode>,
    /// New contact auto-creation flag.
    pub auto_create_contacts: Option<bool>,
}

/// A secret value (API key, webhook secret, token) whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// So configuration (flags, environment variables) can hold a secret from the moment it is
/// read, and never print it in a `Debug` of the settings.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

/// A workspace's decrypted Kapso credentials, for the webhook and the Kapso client.
#[derive(Clone, Debug)]
pub struct KapsoCredentials {
    /// The workspace they belong to.
    pub workspace_id: WorkspaceId,
    /// Kapso's phone number id.
    pub phone_number_id: Option<String>,
    /// Kapso API key.
    pub api_key: Option<Secret>,
    /// Webhook signing secret.
    pub webhook_secret: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret: Secret = "hunter2".parse().expect("any text");
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?} {:?}", Some(&secret)).contains("hunter2"));
    }

    #[test]
    fn slugs() {
        assert!(WorkspaceSlug::parse("acme").is_ok());
        assert!(WorkspaceSlug::parse("a-1").is_ok());
        assert!(WorkspaceSlug::parse("a").is_err());
        assert!(WorkspaceSlug::parse("Acme").is_err());
        assert!(WorkspaceSlug::parse("a_b").is_err());
        assert!(WorkspaceSlug::parse(&"a".repeat(49)).is_err());
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let s = Secret::new("kapso_live_123");
        assert!(!format!("{s:?}").contains("kapso_live_123"));
    }
}
