//! Which phone numbers a Kapso project owns: `GET /platform/v1/whatsapp/phone_numbers`, paged
//! (`page`, `per_page` up to 100; `meta.total_pages`). Used to check a number before a tenant
//! may route deliveries for it to their workspace.

use inbox_domain::workspace::Secret;
use reqwest::Method;
use serde_json::Value;

use super::{KapsoClient, KapsoError};

/// Numbers asked for per page (Kapso's maximum).
const PER_PAGE: u32 = 100;
/// Pages read at most: 5,000 numbers, far beyond any one project, so a misbehaving answer
/// cannot keep the caller looping.
const MAX_PAGES: u32 = 50;

impl KapsoClient {
    /// Whether the project of `api_key` lists `phone_number_id` among its WhatsApp numbers.
    ///
    /// # Errors
    /// [`KapsoError`] when Kapso cannot be asked or refuses (401 for a key it does not know).
    pub async fn project_has_phone_number(
        &self,
        api_key: &Secret,
        phone_number_id: &str,
    ) -> Result<bool, KapsoError> {
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["platform", "v1", "whatsapp", "phone_numbers"])?;
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("per_page", &PER_PAGE.to_string());
            let (_, answer) = self
                .call("list_phone_numbers", Method::GET, url, api_key, None)
                .await?;
            let records = answer
                .get("data")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let listed = records.iter().any(|record| {
                match record.get("phone_number_id").or_else(|| record.get("id")) {
                    Some(Value::String(id)) => id == phone_number_id,
                    Some(Value::Number(id)) => id.to_string() == phone_number_id,
                    _ => false,
                }
            });
            if listed {
                return Ok(true);
            }
            let total_pages = answer
                .pointer("/meta/total_pages")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            if records.is_empty() || u64::from(page) >= total_pages {
                return Ok(false);
            }
        }
        Ok(false)
    }
}
