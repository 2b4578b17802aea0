//! Boot, health, the admin CLI, token authentication and first-run errors.

use std::process::Stdio;

use inbox_tests::{TestEnv, binary};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

inbox_store::on_both_backends!(inbox_tests::TestEnv;
    admin_cli_bootstraps_and_me_lists_the_membership,
    revoked_and_unknown_tokens_get_401,
    set_kapso_stores_secrets_without_echoing_them,
    both_binaries_answer_probes_and_stop_gracefully,
    debug_logs_name_routes_never_phone_numbers_or_tokens,
    token_use_is_recorded_off_the_request_path,
);

async fn admin_cli_bootstraps_and_me_lists_the_membership(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let server = env.api(&[]).await;
    let http = reqwest::Client::new();

    let ready = http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);

    let me: Value = http
        .get(server.url("/api/me"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"]["id"], seeded.user_id.as_str());
    assert_eq!(me["user"]["name"], "Owner");
    assert_eq!(me["user"]["email"], "owner@acme.test");
    let memberships = me["memberships"].as_array().expect("memberships");
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0]["role"], "owner");
    assert_eq!(memberships[0]["workspace"]["slug"], "acme");
    assert_eq!(
        memberships[0]["workspace"]["id"],
        seeded.workspace_id.as_str()
    );
}

async fn revoked_and_unknown_tokens_get_401(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let server = env.api(&[]).await;
    let http = reqwest::Client::new();
    let me = |token: Option<String>| {
        let request = http.get(server.url("/api/me"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.expect("me") }
    };

    assert_eq!(
        me(Some(seeded.token.clone())).await.status(),
        StatusCode::OK
    );
    let revoked = env.admin(&["token", "revoke", &seeded.token_id]).await;
    assert_eq!(revoked["revoked"], true);

    for token in [
        Some(seeded.token.clone()),
        Some("inbox_not_a_real_token".into()),
        None,
    ] {
        let response = me(token.clone()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(body.get("user").is_none());
    }
}

async fn set_kapso_stores_secrets_without_echoing_them(env: TestEnv) {
    env.workspace_with_owner().await;
    let mut child = env
        .command("inbox-api")
        .args([
            "admin",
            "workspace",
            "set-kapso",
            "--workspace",
            "acme",
            "--phone-number-id",
            "123456789012345",
            "--api-key",
            "-",
            "--webhook-secret",
            "wh_sec_test_123",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"kapso_key_from_stdin\n")
        .await
        .expect("write key");
    drop(stdin);
    let output = child.wait_with_output().await.expect("set-kapso");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(!printed.contains("kapso_key_from_stdin") && !printed.contains("wh_sec_test_123"));
    let json: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json["kapso_phone_number_id"], "123456789012345");
    assert_eq!(json["has_kapso_api_key"], true);
    assert_eq!(json["has_webhook_secret"], true);
}

async fn both_binaries_answer_probes_and_stop_gracefully(env: TestEnv) {
    let api = env.api(&[]).await;
    let webhook = env.webhook(&[]).await;
    let http = reqwest::Client::new();
    for server in [&api, &webhook] {
        for probe in ["/healthz", "/readyz"] {
            let response = http.get(server.url(probe)).send().await.expect("probe");
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{probe} on {}",
                server.base_url
            );
        }
    }
    assert!(api.stop().await.success(), "inbox-api exits 0 on SIGTERM");
    assert!(
        webhook.stop().await.success(),
        "inbox-webhook exits 0 on SIGTERM"
    );
}

/// README command 1: no configuration at all creates `data/inbox.db` and `data/secret.key` in
/// the working directory and serves.
#[tokio::test]
async fn serves_on_sqlite_with_zero_configuration() {
    let dir = tempfile_dir();
    let mut command = tokio::process::Command::new(binary("inbox-api"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("INBOX_") {
            command.env_remove(key);
        }
    }
    // Port 0 only because 8080 may be busy on the test machine; nothing else is configured.
    command
        .current_dir(dir.path())
        .env("INBOX_LISTEN", "127.0.0.1:0")
        .kill_on_drop(true);
    let server = inbox_tests::Server::start_command(command).await;
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(dir.path().join("data/inbox.db").exists());
    assert!(dir.path().join("data/secret.key").exists());
    assert!(
        server.log().contains("generated a key file"),
        "warns about the generated key"
    );
}

fn tempfile_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Each first-run mistake gets one line that names the problem and the fix.
#[tokio::test]
async fn first_run_mistakes_name_the_fix() {
    let run = |env: Vec<(&'static str, String)>| async move {
        let mut command = tokio::process::Command::new(binary("inbox-api"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("INBOX_") {
                command.env_remove(key);
            }
        }
        let dir = tempfile_dir();
        command.current_dir(dir.path()).env("INBOX_LOG", "error");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().await.expect("run inbox-api");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let wrong_scheme = run(vec![(
        "INBOX_DATABASE_URL",
        "mysql://localhost/inbox".into(),
    )])
    .await;
    assert!(
        wrong_scheme.contains("INBOX_DATABASE_URL must start with sqlite:// or postgres://"),
        "{wrong_scheme}"
    );

    let no_key = run(vec![(
        "INBOX_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/test".into(),
    )])
    .await;
    assert!(
        no_key.contains("INBOX_SECRET_KEY is required with PostgreSQL"),
        "{no_key}"
    );

    let unreachable = run(vec![
        (
            "INBOX_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none".into(),
        ),
        ("INBOX_SECRET_KEY", inbox_tests::TEST_SECRET_KEY.into()),
    ])
    .await;
    assert!(
        unreachable.contains("cannot connect to the database at INBOX_DATABASE_URL"),
        "{unreachable}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let busy = run(vec![("INBOX_LISTEN", addr.clone())]).await;
    assert!(
        busy.contains(&format!("cannot listen on {addr}")) && busy.contains("INBOX_LISTEN"),
        "{busy}"
    );
}

#[tokio::test]
async fn help_lists_the_configuration() {
    let output = tokio::process::Command::new(binary("inbox-api"))
        .arg("--help")
        .output()
        .await
        .expect("help");
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "INBOX_DATABASE_URL",
        "INBOX_SECRET_KEY",
        "INBOX_LOG",
        "INBOX_LOG_FORMAT",
    ] {
        assert!(help.contains(variable), "--help names {variable}");
    }
    let output = tokio::process::Command::new(binary("inbox-api"))
        .args(["serve", "--help"])
        .output()
        .await
        .expect("help");
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "INBOX_LISTEN",
        "INBOX_KAPSO_BASE_URL",
        "INBOX_KAPSO_WEBHOOK_SECRET",
        "INBOX_META_APP_SECRET",
        "INBOX_META_VERIFY_TOKEN",
    ] {
        assert!(help.contains(variable), "serve --help names {variable}");
    }
}

/// Even at `debug`, request logs name the matched route: a query's phone number or search text
/// and the bearer token never reach the log.
async fn debug_logs_name_routes_never_phone_numbers_or_tokens(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let server = env.api(&[("INBOX_LOG", "debug")]).await;
    let http = reqwest::Client::new();
    for path in [
        "/api/contacts/by-phone?workspace=acme&phone=081298765432",
        "/api/conversations?workspace=acme&q=081298765432",
        "/api/nothing-here?phone=081298765432",
    ] {
        http.get(server.url(path))
            .bearer_auth(&seeded.token)
            .send()
            .await
            .expect("answer");
    }
    assert!(
        server.wait_for_log("/api/contacts/by-phone").await,
        "the route is named"
    );
    let log = server.log();
    assert!(
        !log.contains("081298765432"),
        "a phone number in the log:\n{log}"
    );
    assert!(!log.contains(&seeded.token), "the token in the log");
}

/// Authenticating a request writes nothing; the server records token use in a batch, at the
/// latest when it stops.
async fn token_use_is_recorded_off_the_request_path(env: TestEnv) {
    let seeded = env.workspace_with_owner().await;
    let server = env.api(&[]).await;
    let me = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let used = "SELECT COUNT(*) FROM api_tokens WHERE last_used_at IS NOT NULL";
    assert_eq!(
        env.scalar(used).await,
        0,
        "nothing written on the request path"
    );
    assert!(server.stop().await.success());
    assert_eq!(
        env.scalar(used).await,
        1,
        "written by the batch at shutdown"
    );
}
