//! "Hand this conversation over": the local AI-paused flag, then the business's Kapso workflow
//! executions for the customer.

use crate::conversation::Conversation;
use crate::ids::ConversationId;
use crate::ports::{
    ConversationRepository, KapsoAccount, KapsoGateway, StoreError, WorkspaceRepository,
};
use crate::user::Actor;

/// What happened on Kapso's side of a handover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KapsoHandover {
    /// Whether Kapso's workflows now match the flag (also true when there was nothing to change).
    pub ok: bool,
    /// How many workflow executions changed status.
    pub executions_updated: u32,
    /// A sentence for people: what was done, or why it could not be.
    pub message: String,
}

impl KapsoHandover {
    fn failed(message: &str) -> Self {
        Self {
            ok: false,
            executions_updated: 0,
            message: message.to_owned(),
        }
    }
}

/// Sets the conversation's `ai_paused` flag (appending `conversation.updated`), then pauses
/// (`true`: every running or waiting execution of the customer's Kapso conversation becomes
/// `handoff`) or resumes (`false`: back to `waiting`) the business's workflows.
///
/// The local change stands whatever Kapso does: agents must be able to take over even while
/// Kapso is down. Missing credentials, a contact without a phone, or a Kapso error are reported
/// in the outcome with `ok: false`.
///
/// # Errors
/// `NotFound` when the conversation is not there for the actor; `Unavailable` or `Internal`
/// from storage.
#[tracing::instrument(skip_all, fields(workspace.id = %actor.workspace_id, conversation.id = %conversation_id, ai_paused))]
pub async fn handover<R>(
    repo: &R,
    kapso: &dyn KapsoGateway,
    actor: Actor,
    conversation_id: ConversationId,
    ai_paused: bool,
) -> Result<(Conversation, KapsoHandover), StoreError>
where
    R: ConversationRepository + WorkspaceRepository + ?Sized,
{
    let conversation = repo
        .set_ai_paused(actor, conversation_id, ai_paused)
        .await?;
    let account = match repo.kapso_credentials(actor.workspace_id).await {
        Ok(credentials) => KapsoAccount::of(credentials),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Kapso credentials for a handover");
            return Ok((
                conversation,
                KapsoHandover::failed("The Kapso credentials could not be read."),
            ));
        }
    };
    let Some(account) = account else {
        return Ok((
            conversation,
            KapsoHandover::failed(
                "Kapso is not configured for this workspace (phone number id and API key).",
            ),
        ));
    };
    let Some(phone) = conversation.contact.phone.clone() else {
        return Ok((
            conversation,
            KapsoHandover::failed(
                "The contact has no phone number, so Kapso cannot find its conversation.",
            ),
        ));
    };
    let outcome = match kapso
        .set_workflows_paused(&account, &phone, ai_paused)
        .await
    {
        Ok(update) => KapsoHandover {
            ok: true,
            executions_updated: update.executions_updated,
            message: update.message,
        },
        Err(error) => {
            tracing::warn!(%error, "kapso handover failed; the local flag stands");
            KapsoHandover::failed(&format!("Kapso could not be updated: {error}"))
        }
    };
    Ok((conversation, outcome))
}
