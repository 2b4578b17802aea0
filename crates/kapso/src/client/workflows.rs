//! Handover: pausing and resuming the business's Kapso workflow executions for one customer.
//!
//! Three calls, as the previous system made them (seed reference section 5), with the list
//! endpoint corrected to the one Kapso documents:
//! 1. `GET /meta/whatsapp/v24.0/{phone_number_id}/conversations?phone_number=<E.164>&status=active&limit=1`
//!    finds the customer's active Kapso conversation;
//! 2. `GET /platform/v1/whatsapp/conversations/{conversation_id}/flow_executions` lists its
//!    workflow executions;
//! 3. `PATCH /platform/v1/workflow_executions/{execution_id}` with
//!    `{"workflow_execution": {"status": "handoff" | "waiting"}}` pauses or resumes each one.

use std::fmt;

use inbox_domain::phone::PhoneE164;
use inbox_domain::workspace::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use super::{GRAPH_VERSION, KapsoClient, KapsoError, WorkflowUpdate};

/// A Kapso conversation (Kapso's own id, not ours).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KapsoConversation {
    /// Kapso's conversation id.
    pub id: String,
}

/// A workflow execution as Kapso lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowExecution {
    /// Kapso's execution id.
    pub id: String,
    /// Kapso's status: `running`, `waiting`, `handoff`, `ended`, `failed`, ... (kept as given,
    /// since Kapso may add more).
    pub status: String,
}

impl WorkflowExecution {
    /// Whether the bot is live in this execution (`running` or `waiting`), so a handover must
    /// pause it.
    #[must_use]
    pub fn is_running_or_waiting(&self) -> bool {
        matches!(self.status.as_str(), "running" | "waiting")
    }

    /// Whether a human has taken this execution over (`handoff`), so handing back resumes it.
    #[must_use]
    pub fn is_handed_off(&self) -> bool {
        self.status == ExecutionStatus::Handoff.as_str()
    }
}

/// The statuses a handover sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    /// A human has the conversation: the workflow stays silent.
    Handoff,
    /// Back to the bot: the workflow waits for the customer's next message (it does not catch
    /// up or greet).
    Waiting,
}

impl ExecutionStatus {
    /// Kapso's name for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Handoff => "handoff",
            Self::Waiting => "waiting",
        }
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KapsoClient {
    /// The customer's active Kapso conversation, if there is one.
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses.
    pub async fn find_active_conversation(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        phone: &PhoneE164,
    ) -> Result<Option<KapsoConversation>, KapsoError> {
        let mut url = self.url(&[
            "meta",
            "whatsapp",
            GRAPH_VERSION,
            phone_number_id,
            "conversations",
        ])?;
        // Kapso documents this filter as E.164; the `+` is percent-encoded by the serializer.
        url.query_pairs_mut()
            .append_pair("phone_number", phone.as_str())
            .append_pair("status", "active")
            .append_pair("limit", "1");
        let (_, answer) = self
            .call("find_active_conversation", Method::GET, url, api_key, None)
            .await?;
        Ok(records(&answer)
            .iter()
            .find_map(id_of)
            .map(|id| KapsoConversation { id }))
    }

    /// Every workflow execution of a Kapso conversation (the first page, newest first: the live
    /// ones are the newest).
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses.
    pub async fn list_workflow_executions(
        &self,
        api_key: &Secret,
        kapso_conversation_id: &str,
    ) -> Result<Vec<WorkflowExecution>, KapsoError> {
        let url = self.url(&[
            "platform",
            "v1",
            "whatsapp",
            "conversations",
            kapso_conversation_id,
            "flow_executions",
        ])?;
        let (_, answer) = self
            .call("list_workflow_executions", Method::GET, url, api_key, None)
            .await?;
        Ok(records(&answer)
            .iter()
            .filter_map(|record| {
                let id = id_of(record)?;
                let status = record.get("status").and_then(Value::as_str)?.to_owned();
                Some(WorkflowExecution { id, status })
            })
            .collect())
    }

    /// Sets one execution's status.
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses (422 for a transition its state
    /// machine does not allow, such as from a terminal status).
    pub async fn update_workflow_execution(
        &self,
        api_key: &Secret,
        execution_id: &str,
        status: ExecutionStatus,
    ) -> Result<(), KapsoError> {
        let url = self.url(&["platform", "v1", "workflow_executions", execution_id])?;
        let body = json!({ "workflow_execution": { "status": status.as_str() } });
        self.call(
            "update_workflow_execution",
            Method::PATCH,
            url,
            api_key,
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Pauses (`paused = true`: every `running` or `waiting` execution becomes `handoff`) or
    /// resumes (`paused = false`: every `handoff` execution becomes `waiting`) the customer's
    /// workflows. No active conversation, or nothing to change, is success with 0 updated.
    ///
    /// Every execution is attempted even when one fails, so as much of the handover as possible
    /// takes effect; the first failure is then returned.
    ///
    /// # Errors
    /// The first [`KapsoError`] met.
    pub async fn set_workflows_paused(
        &self,
        phone_number_id: &str,
        api_key: &Secret,
        phone: &PhoneE164,
        paused: bool,
    ) -> Result<WorkflowUpdate, KapsoError> {
        let Some(conversation) = self
            .find_active_conversation(phone_number_id, api_key, phone)
            .await?
        else {
            return Ok(WorkflowUpdate {
                executions_updated: 0,
                message: "No active Kapso conversation".to_owned(),
            });
        };
        let executions = self
            .list_workflow_executions(api_key, &conversation.id)
            .await?;
        // Resuming looks for `handoff`, not for `running`/`waiting` as the previous system
        // did: those are exactly the executions a pause left behind.
        let (target, verb, none) = if paused {
            (
                ExecutionStatus::Handoff,
                "Paused",
                "No running or waiting workflow executions",
            )
        } else {
            (
                ExecutionStatus::Waiting,
                "Resumed",
                "No handed-off workflow executions",
            )
        };
        let selected: Vec<&WorkflowExecution> = executions
            .iter()
            .filter(|e| {
                if paused {
                    e.is_running_or_waiting()
                } else {
                    e.is_handed_off()
                }
            })
            .collect();
        if selected.is_empty() {
            return Ok(WorkflowUpdate {
                executions_updated: 0,
                message: none.to_owned(),
            });
        }

        let mut updated: u32 = 0;
        let mut first_error = None;
        for execution in selected {
            match self
                .update_workflow_execution(api_key, &execution.id, target)
                .await
            {
                Ok(()) => updated += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        let plural = if updated == 1 { "" } else { "s" };
        Ok(WorkflowUpdate {
            executions_updated: updated,
            message: format!("{verb} {updated} workflow execution{plural}"),
        })
    }
}

/// The records of a list answer: Graph paging `{"data": [...]}`, or a bare array.
fn records(answer: &Value) -> &[Value] {
    answer
        .get("data")
        .unwrap_or(answer)
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// A record's `id`, string or number, when not empty.
fn id_of(record: &Value) -> Option<String> {
    match record.get("id")? {
        Value::String(id) if !id.trim().is_empty() => Some(id.trim().to_owned()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}
