use inbox_domain::ports::StoreError;
use inbox_domain::token::{TokenHash, generate_token};
use inbox_domain::user::{NewUser, Role};
use inbox_domain::{TokenId, UserId, WorkspaceId};

use crate::Harness;
use crate::workspaces::new_workspace;

fn user(name: &str, email: Option<&str>) -> NewUser {
    NewUser {
        name: name.into(),
        email: email.map(Into::into),
    }
}

pub async fn users_have_unique_emails(h: Harness) {
    let ana = h
        .repo
        .create_user(user("Ana", Some("ana@example.com")))
        .await
        .expect("ana");
    assert_eq!(h.repo.user(ana.id).await.expect("read"), Some(ana));
    let err = h
        .repo
        .create_user(user("Ana 2", Some("ana@example.com")))
        .await
        .expect_err("dup");
    assert_eq!(err, StoreError::Duplicate("email".into()));
    // Users without email do not collide with each other.
    h.repo
        .create_user(user("Bot 1", None))
        .await
        .expect("bot 1");
    h.repo
        .create_user(user("Bot 2", None))
        .await
        .expect("bot 2");
}

pub async fn memberships_are_unique_and_reference_real_rows(h: Harness) {
    let ws = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("ws");
    let ana = h.repo.create_user(user("Ana", None)).await.expect("ana");
    let m = h
        .repo
        .add_member(ws.id, ana.id, Role::Owner)
        .await
        .expect("add");
    assert_eq!(m.role, Role::Owner);
    assert_eq!(
        h.repo
            .add_member(ws.id, ana.id, Role::Member)
            .await
            .expect_err("twice"),
        StoreError::Duplicate("membership".into())
    );
    assert_eq!(
        h.repo
            .add_member(WorkspaceId::new(), ana.id, Role::Member)
            .await
            .expect_err("no ws"),
        StoreError::MissingReference("workspace".into())
    );
    assert_eq!(
        h.repo
            .add_member(ws.id, UserId::new(), Role::Member)
            .await
            .expect_err("no user"),
        StoreError::MissingReference("user".into())
    );
    assert_eq!(
        h.repo.membership(ws.id, ana.id).await.expect("read"),
        Some(m)
    );
}

pub async fn memberships_are_listed_both_ways(h: Harness) {
    let acme = h
        .repo
        .create_workspace(new_workspace("acme"))
        .await
        .expect("acme");
    let beta = h
        .repo
        .create_workspace(new_workspace("beta"))
        .await
        .expect("beta");
    let ana = h
        .repo
        .create_user(user("Ana", Some("ana@x.io")))
        .await
        .expect("ana");
    let budi = h.repo.create_user(user("Budi", None)).await.expect("budi");
    h.repo
        .add_member(beta.id, ana.id, Role::Member)
        .await
        .expect("ana beta");
    h.repo
        .add_member(acme.id, ana.id, Role::Owner)
        .await
        .expect("ana acme");
    h.repo
        .add_member(acme.id, budi.id, Role::Admin)
        .await
        .expect("budi acme");

    // A token carries its user's memberships, read with the user in one query.
    let generated = generate_token();
    h.repo
        .create_token(ana.id, "laptop", &generated.hash)
        .await
        .expect("token");
    let principal = h
        .repo
        .authenticate(&generated.hash)
        .await
        .expect("auth")
        .expect("ana's token");
    let summary: Vec<_> = principal
        .memberships
        .iter()
        .map(|m| (m.workspace_slug.as_str(), m.role))
        .collect();
    assert_eq!(summary, [("acme", Role::Owner), ("beta", Role::Member)]);
    assert_eq!(principal.user.id, ana.id);
    assert_eq!(
        principal.membership("beta").map(|m| m.role),
        Some(Role::Member)
    );
    assert_eq!(
        principal
            .membership(&acme.id.to_string())
            .map(|m| m.workspace_slug.as_str()),
        Some("acme")
    );
    assert!(
        principal.membership("ACME").is_none(),
        "slugs match exactly"
    );
    assert!(principal.membership("gamma").is_none());

    let members = h.repo.members(acme.id).await.expect("members");
    let names: Vec<_> = members
        .iter()
        .map(|m| (m.user.name.as_str(), m.role))
        .collect();
    assert_eq!(names, [("Ana", Role::Owner), ("Budi", Role::Admin)]);
    assert!(
        h.repo
            .members(WorkspaceId::new())
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        h.repo
            .membership(beta.id, budi.id)
            .await
            .expect("read")
            .is_none()
    );
}

pub async fn tokens_authenticate_until_revoked(h: Harness) {
    let ana = h.repo.create_user(user("Ana", None)).await.expect("ana");
    let generated = generate_token();
    let token = h
        .repo
        .create_token(ana.id, "laptop", &generated.hash)
        .await
        .expect("token");
    assert_eq!(token.user_id, ana.id);
    assert!(token.last_used_at.is_none() && token.revoked_at.is_none());

    let found = h
        .repo
        .authenticate(&TokenHash::of(generated.secret.expose()))
        .await
        .expect("auth");
    let found = found.expect("ana's token");
    assert_eq!(found.user.id, ana.id);
    assert!(found.memberships.is_empty(), "ana is in no workspace yet");
    assert!(
        h.repo
            .authenticate(&TokenHash::of("inbox_wrong"))
            .await
            .expect("auth")
            .is_none()
    );

    // Authenticating is a pure read; use is recorded later, in batches, off the request path.
    h.repo
        .record_token_use(&[(
            token.id,
            inbox_domain::Timestamp::from_millis(1_700_000_000_000),
        )])
        .await
        .expect("record use");
    let revoked = h.repo.revoke_token(token.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        revoked.last_used_at,
        Some(inbox_domain::Timestamp::from_millis(1_700_000_000_000)),
        "the recorded use"
    );
    assert!(
        h.repo
            .authenticate(&generated.hash)
            .await
            .expect("auth")
            .is_none()
    );
    assert!(
        h.repo.revoke_token(token.id).await.is_ok(),
        "revoking twice is fine"
    );
    assert_eq!(
        h.repo
            .revoke_token(TokenId::new())
            .await
            .expect_err("unknown"),
        StoreError::NotFound
    );
    assert_eq!(
        h.repo
            .create_token(UserId::new(), "x", &generate_token().hash)
            .await
            .expect_err("no user"),
        StoreError::MissingReference("user".into())
    );
}

pub async fn health_answers(h: Harness) {
    h.repo.ping().await.expect("ping");
}
