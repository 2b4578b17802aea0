//! The "hand over this conversation" use case: the local AI-paused flag, then the business's
//! Kapso workflow executions for the customer.

use inbox_domain::ConversationId;
use inbox_domain::conversation::Conversation;
use inbox_domain::ports::StoreError;
use inbox_domain::user::Actor;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::sending::usable;

/// What happened on Kapso's side of a handover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct KapsoOutcome {
    /// Whether Kapso's workflows now match the flag (also true when there was nothing to change).
    pub ok: bool,
    /// How many workflow executions changed status.
    pub executions_updated: u32,
    /// A sentence for people: what was done, or why it could not be.
    pub message: String,
}

/// Sets the conversation's `ai_paused` flag (appending `conversation.updated`), then pauses
/// (`true`: every running or waiting execution of the customer's Kapso conversation becomes
/// `handoff`) or resumes (`false`: back to `waiting`) the business's workflows with the
/// workspace's API key.
///
/// The local change stands whatever Kapso does: agents must be able to take over even while
/// Kapso is down. Missing credentials, a contact without a phone, or a Kapso error are reported
/// in the outcome with `ok: false`.
///
/// # Errors
/// `NotFound` when the conversation is not there for the actor; `Unavailable` or `Internal`
/// from storage.
#[tracing::instrument(skip_all, fields(workspace.id = %actor.workspace_id, conversation.id = %conversation_id, ai_paused))]
pub async fn handover(
    state: &AppState,
    actor: Actor,
    conversation_id: ConversationId,
    ai_paused: bool,
) -> Result<(Conversation, KapsoOutcome), StoreError> {
    let conversation = state
        .repo
        .set_ai_paused(actor, conversation_id, ai_paused)
        .await?;
    let credentials = match state.repo.kapso_credentials(actor.workspace_id).await {
        Ok(credentials) => usable(credentials),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Kapso credentials for a handover");
            return Ok((
                conversation,
                failed("The Kapso credentials could not be read."),
            ));
        }
    };
    let Some((phone_number_id, api_key)) = credentials else {
        return Ok((
            conversation,
            failed("Kapso is not configured for this workspace (phone number id and API key)."),
        ));
    };
    let Some(phone) = conversation.contact.phone.clone() else {
        return Ok((
            conversation,
            failed("The contact has no phone number, so Kapso cannot find its conversation."),
        ));
    };
    let outcome = match state
        .kapso
        .set_workflows_paused(&phone_number_id, &api_key, &phone, ai_paused)
        .await
    {
        Ok(update) => KapsoOutcome {
            ok: true,
            executions_updated: update.executions_updated,
            message: update.message,
        },
        Err(error) => {
            tracing::warn!(%error, "kapso handover failed; the local flag stands");
            failed(&format!("Kapso could not be updated: {error}"))
        }
    };
    Ok((conversation, outcome))
}

fn failed(message: &str) -> KapsoOutcome {
    KapsoOutcome {
        ok: false,
        executions_updated: 0,
        message: message.to_owned(),
    }
}
