//! Webhook signatures: Kapso's `X-Webhook-Signature` and Meta's `X-Hub-Signature-256`.
//!
//! Both are HMAC-SHA256 over the **raw body bytes**, never over re-serialised JSON. Every check
//! fails closed: a missing or empty header, bad hex, a wrong length, an empty secret or a
//! mismatch are all refusals. The comparison is constant time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Kapso signs its webhooks with.
pub const KAPSO_SIGNATURE_HEADER: &str = "X-Webhook-Signature";

/// The header Meta signs its webhooks with.
pub const META_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header was absent or blank.
    #[error("the signature header is missing")]
    Missing,
    /// The configured secret is empty, so no signature can be trusted.
    #[error("the webhook secret is empty")]
    EmptySecret,
    /// The header is not `[sha256=]<hex>` (Kapso) or `sha256=<hex>` (Meta).
    #[error("the signature header is malformed")]
    Malformed,
    /// The signature does not match the body.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks Kapso's `X-Webhook-Signature`: hex HMAC-SHA256 of the raw body keyed with the webhook
/// secret. An optional `sha256=` prefix, surrounding whitespace and upper-case hex are tolerated,
/// as Kapso's own adapters do.
///
/// # Errors
/// [`SignatureError`] when the header is missing or malformed, the secret is empty, or the
/// signature does not match `raw_body`.
pub fn verify_kapso(
    secret: &[u8],
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let value = present(header)?;
    let hex_part = strip_prefix_ignore_case(value, "sha256=").unwrap_or(value);
    verify(secret, raw_body, hex_part)
}

/// Checks Meta's `X-Hub-Signature-256: sha256=<hex>`, keyed with the Meta app secret. The
/// `sha256=` prefix is required, as in Meta's docs and Kapso's SDK.
///
/// # Errors
/// [`SignatureError`] when the header is missing, lacks the `sha256=` prefix or is otherwise
/// malformed, the secret is empty, or the signature does not match `raw_body`.
pub fn verify_meta(
    app_secret: &[u8],
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let value = present(header)?;
    let hex_part = strip_prefix_ignore_case(value, "sha256=").ok_or(SignatureError::Malformed)?;
    verify(app_secret, raw_body, hex_part)
}

/// The `X-Webhook-Signature` value Kapso would send for `raw_body`: lowercase hex, no prefix.
/// Meant for tests and for the local fake Kapso.
#[must_use]
pub fn sign_kapso(secret: &[u8], raw_body: &[u8]) -> String {
    hex::encode(mac(secret, raw_body).finalize().into_bytes())
}

/// The `X-Hub-Signature-256` value Meta would send for `raw_body`: `sha256=<lowercase hex>`.
/// Meant for tests and for the local fake Kapso.
#[must_use]
pub fn sign_meta(app_secret: &[u8], raw_body: &[u8]) -> String {
    format!("sha256={}", sign_kapso(app_secret, raw_body))
}

fn present(header: Option<&str>) -> Result<&str, SignatureError> {
    match header.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(SignatureError::Missing),
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

fn verify(secret: &[u8], raw_body: &[u8], hex_signature: &str) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let expected = hex::decode(hex_signature.trim()).map_err(|_| SignatureError::Malformed)?;
    // A truncated signature would otherwise be a "mismatch"; call it what it is.
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(secret, raw_body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn mac(secret: &[u8], raw_body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never fails; the fallback key keeps the
    // function total without an `expect`, and an empty secret is refused before verifying.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(raw_body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wh_sec_test_123";
    const BODY: &str = r#"{"message":{"id":"wamid.TEST1","timestamp":"1730092800","type":"text","text":{"body":"Hello"},"kapso":{"direction":"inbound","status":"received","processing_status":"pending","origin":"cloud_api","has_media":false,"content":"Hello"}},"conversation":{"id":"conv_123","phone_number":"+15551234567","status":"active","phone_number_id":"123456789012345"},"is_new_conversation":true,"phone_number_id":"123456789012345"}"#;
    const SIGNATURE: &str = "9239328466205fe7980ded93f12f413cea3d3187778047d1968f918e2fea0727";

    const META_SECRET: &[u8] = b"meta_app_secret_abc";
    const META_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}"#;
    const META_SIGNATURE: &str =
        "sha256=5d3df396b76389b4121ad391b03d935e5e085936811b65e074a05c0124127959";

    #[test]
    fn reference_kapso_vector_is_accepted() {
        assert_eq!(BODY.len(), 414);
        assert_eq!(sign_kapso(SECRET, BODY.as_bytes()), SIGNATURE);
        assert_eq!(
            verify_kapso(SECRET, BODY.as_bytes(), Some(SIGNATURE)),
            Ok(())
        );
    }

    #[test]
    fn kapso_tolerates_prefix_case_and_whitespace() {
        let body = BODY.as_bytes();
        for header in [
            format!("sha256={SIGNATURE}"),
            format!("SHA256={SIGNATURE}"),
            SIGNATURE.to_uppercase(),
            format!("  {SIGNATURE}\n"),
        ] {
            assert_eq!(
                verify_kapso(SECRET, body, Some(&header)),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn kapso_refuses_anything_else() {
        let body = BODY.as_bytes();
        assert_eq!(
            verify_kapso(SECRET, body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some("  ")),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some(&SIGNATURE[..62])),
            Err(SignatureError::Malformed),
            "truncated"
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some(&SIGNATURE[..63])),
            Err(SignatureError::Malformed),
            "odd length"
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some(&format!("{SIGNATURE}00"))),
            Err(SignatureError::Malformed),
            "too long"
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some(&SIGNATURE.replace('9', "z"))),
            Err(SignatureError::Malformed),
            "not hex"
        );
        assert_eq!(
            verify_kapso(SECRET, body, Some("sha256=")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_kapso(b"", body, Some(SIGNATURE)),
            Err(SignatureError::EmptySecret)
        );
        assert_eq!(
            verify_kapso(b"wh_sec_other", body, Some(SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        let mut other_body = BODY.as_bytes().to_vec();
        other_body.push(b'\n');
        assert_eq!(
            verify_kapso(SECRET, &other_body, Some(SIGNATURE)),
            Err(SignatureError::Mismatch),
            "a trailing newline changes the body"
        );
        let mut flipped = SIGNATURE.to_owned();
        flipped.replace_range(..1, "8");
        assert_eq!(
            verify_kapso(SECRET, body, Some(&flipped)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn reference_meta_vector_is_accepted() {
        assert_eq!(sign_meta(META_SECRET, META_BODY.as_bytes()), META_SIGNATURE);
        assert_eq!(
            verify_meta(META_SECRET, META_BODY.as_bytes(), Some(META_SIGNATURE)),
            Ok(())
        );
    }

    #[test]
    fn meta_requires_the_prefix_and_the_right_secret() {
        let body = META_BODY.as_bytes();
        let bare = META_SIGNATURE.trim_start_matches("sha256=");
        assert_eq!(
            verify_meta(META_SECRET, body, Some(bare)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_meta(META_SECRET, body, Some(&format!("sha1={bare}"))),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_meta(META_SECRET, body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_meta(SECRET, body, Some(META_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_meta(META_SECRET, &body[1..], Some(META_SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_meta(META_SECRET, body, Some(&META_SIGNATURE[..40])),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn signatures_of_one_scheme_do_not_verify_the_other_secret() {
        let signature = sign_kapso(SECRET, BODY.as_bytes());
        assert_eq!(
            verify_kapso(META_SECRET, BODY.as_bytes(), Some(&signature)),
            Err(SignatureError::Mismatch)
        );
    }
}
