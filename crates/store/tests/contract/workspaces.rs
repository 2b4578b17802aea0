use inbox_domain::phone::CountryCode;
use inbox_domain::ports::StoreError;
use inbox_domain::workspace::{NewWorkspace, Secret, WorkspaceName, WorkspacePatch, WorkspaceSlug};

use crate::Harness;

pub fn new_workspace(slug: &str) -> NewWorkspace {
    NewWorkspace {
        slug: WorkspaceSlug::parse(slug).expect("valid slug"),
        name: WorkspaceName::parse(&format!("{slug} Ltd")).expect("name"),
        default_country: CountryCode::default(),
    }
}

pub async fn create_and_find_by_slug_and_id(h: Harness) {
    let created = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("create");
    assert_eq!(created.slug.as_str(), "acme");
    assert_eq!(created.default_country.as_str(), "ID");
    assert!(created.auto_create_contacts);
    assert!(!created.has_kapso_api_key && !created.has_webhook_secret);
    let by_slug = h.repo.workspace_by_slug("acme").await.expect("read");
    let by_id = h.repo.workspace_by_id(created.id).await.expect("read");
    assert_eq!(by_slug.as_ref(), Some(&created));
    assert_eq!(by_id, Some(created));
    assert_eq!(h.repo.workspace_by_slug("nope").await.expect("read"), None);
}

pub async fn slugs_are_unique(h: Harness) {
    h.repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("first");
    let err = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect_err("second");
    assert_eq!(err, StoreError::Duplicate("slug".into()));
}

pub async fn secrets_are_encrypted_and_write_only(h: Harness) {
    let ws = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("create");
    let patch = WorkspacePatch {
        kapso_phone_number_id: Some(Some("123456789012345".into())),
        kapso_api_key: Some(Some(Secret::new("kapso_live_key_1"))),
        webhook_secret: Some(Some(Secret::new("wh_sec_test_123"))),
        ..WorkspacePatch::default()
    };
    let updated = h.repo.update_workspace(ws.id, patch).await.expect("patch");
    assert!(updated.has_kapso_api_key && updated.has_webhook_secret);

    let stored = h
        .raw
        .blob("SELECT kapso_api_key_enc FROM workspaces")
        .await
        .expect("stored");
    assert!(
        !String::from_utf8_lossy(&stored).contains("kapso_live_key_1"),
        "plaintext at rest"
    );
    let stored = h
        .raw
        .blob("SELECT webhook_secret_enc FROM workspaces")
        .await
        .expect("stored");
    assert!(
        !String::from_utf8_lossy(&stored).contains("wh_sec_test_123"),
        "plaintext at rest"
    );

    let creds = h
        .repo
        .kapso_credentials_by_phone_number_id("123456789012345")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(creds.workspace_id, ws.id);
    assert_eq!(
        creds.api_key.as_ref().map(Secret::expose),
        Some("kapso_live_key_1")
    );
    assert_eq!(
        creds.webhook_secret.as_ref().map(Secret::expose),
        Some("wh_sec_test_123")
    );
    assert!(
        h.repo
            .kapso_credentials_by_phone_number_id("999")
            .await
            .expect("read")
            .is_none()
    );

    let cleared = WorkspacePatch {
        kapso_api_key: Some(None),
        ..WorkspacePatch::default()
    };
    let updated = h
        .repo
        .update_workspace(ws.id, cleared)
        .await
        .expect("clear");
    assert!(!updated.has_kapso_api_key && updated.has_webhook_secret);
    let creds = h
        .repo
        .kapso_credentials(ws.id)
        .await
        .expect("read")
        .expect("found");
    assert!(creds.api_key.is_none());
    assert_eq!(
        creds.webhook_secret.as_ref().map(Secret::expose),
        Some("wh_sec_test_123")
    );
}

pub async fn phone_number_ids_are_unique(h: Harness) {
    let a = h
        .repo
        .create_workspace(new_workspace("aaa"))
        .await
        .expect("a");
    let b = h
        .repo
        .create_workspace(new_workspace("bbb"))
        .await
        .expect("b");
    let set = |id: &str| WorkspacePatch {
        kapso_phone_number_id: Some(Some(id.into())),
        ..WorkspacePatch::default()
    };
    h.repo
        .update_workspace(a.id, set("111"))
        .await
        .expect("a gets it");
    let err = h
        .repo
        .update_workspace(b.id, set("111"))
        .await
        .expect_err("b cannot");
    assert_eq!(err, StoreError::Duplicate("kapso_phone_number_id".into()));
    let missing = inbox_domain::WorkspaceId::new();
    assert_eq!(
        h.repo
            .update_workspace(missing, set("222"))
            .await
            .expect_err("unknown"),
        StoreError::NotFound
    );
}

pub async fn patch_changes_only_what_it_names(h: Harness) {
    let ws = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("create");
    let patch = WorkspacePatch {
        name: Some(WorkspaceName::parse("Acme Indonesia").expect("name")),
        default_country: Some(CountryCode::parse("SG").expect("SG")),
        auto_create_contacts: Some(false),
        ..WorkspacePatch::default()
    };
    let updated = h.repo.update_workspace(ws.id, patch).await.expect("patch");
    assert_eq!(updated.name, "Acme Indonesia");
    assert_eq!(updated.default_country.as_str(), "SG");
    assert!(!updated.auto_create_contacts);
    assert_eq!(updated.slug, ws.slug);
    assert_eq!(updated.kapso_phone_number_id, None);
    assert!(updated.updated_at >= ws.updated_at);
}

/// Two owners changing different secrets at the same moment: neither change undoes the other
/// (the store once read both secrets and wrote both back).
pub async fn concurrent_patches_of_different_secrets_both_stick(h: Harness) {
    let ws = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("workspace")
        .id;
    for round in 0..30 {
        let key = format!("key-{round}");
        let secret = format!("secret-{round}");
        let api_key = WorkspacePatch {
            kapso_api_key: Some(Some(Secret::new(key.clone()))),
            ..WorkspacePatch::default()
        };
        let webhook = WorkspacePatch {
            webhook_secret: Some(Some(Secret::new(secret.clone()))),
            ..WorkspacePatch::default()
        };
        let (a, b) = tokio::join!(
            h.repo.update_workspace(ws, api_key),
            h.repo.update_workspace(ws, webhook)
        );
        a.expect("api key");
        b.expect("webhook secret");
        let stored = h
            .repo
            .kapso_credentials(ws)
            .await
            .expect("read")
            .expect("credentials");
        assert_eq!(
            stored.api_key.as_ref().map(Secret::expose),
            Some(key.as_str()),
            "round {round}"
        );
        assert_eq!(
            stored.webhook_secret.as_ref().map(Secret::expose),
            Some(secret.as_str()),
            "round {round}"
        );
    }
}
