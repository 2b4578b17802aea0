//! The client as the domain's [`KapsoGateway`]: the use cases call Kapso through the port, and
//! only this file knows which client method serves which call.

use async_trait::async_trait;
use inbox_domain::phone::PhoneE164;
use inbox_domain::ports::{
    KapsoAccount, KapsoError, KapsoGateway, SentMessage, SoughtSend, WorkflowUpdate,
};
use inbox_domain::sending::OutboundContent;
use inbox_domain::workspace::Secret;

use super::KapsoClient;

#[async_trait]
impl KapsoGateway for KapsoClient {
    async fn send(
        &self,
        account: &KapsoAccount,
        to: &PhoneE164,
        content: &OutboundContent,
        callback_data: &str,
    ) -> Result<SentMessage, KapsoError> {
        match content {
            OutboundContent::Text {
                text,
                reply_to_wamid,
            } => {
                self.send_text(
                    &account.phone_number_id,
                    &account.api_key,
                    to,
                    text,
                    reply_to_wamid.as_deref(),
                    Some(callback_data),
                )
                .await
            }
            OutboundContent::Template { template, .. } => {
                self.send_template(
                    &account.phone_number_id,
                    &account.api_key,
                    to,
                    template,
                    Some(callback_data),
                )
                .await
            }
        }
    }

    async fn find_sent<'a>(
        &self,
        account: &KapsoAccount,
        sought: &SoughtSend<'a>,
    ) -> Result<Option<SentMessage>, KapsoError> {
        KapsoClient::find_sent(self, &account.phone_number_id, &account.api_key, sought).await
    }

    async fn set_workflows_paused(
        &self,
        account: &KapsoAccount,
        customer: &PhoneE164,
        paused: bool,
    ) -> Result<WorkflowUpdate, KapsoError> {
        KapsoClient::set_workflows_paused(
            self,
            &account.phone_number_id,
            &account.api_key,
            customer,
            paused,
        )
        .await
    }

    async fn project_has_phone_number(
        &self,
        api_key: &Secret,
        phone_number_id: &str,
    ) -> Result<bool, KapsoError> {
        KapsoClient::project_has_phone_number(self, api_key, phone_number_id).await
    }
}
