//! The README, followed as written: each of its command blocks runs here, with only what a
//! reader fills in themselves substituted (the ids and token the commands print, the server's
//! address). The two set-up commands are covered by `.ci/run` (`cargo xtask ci`) and by
//! `serves_on_sqlite_with_zero_configuration`; the demo block by `demo.rs`.

use std::collections::HashMap;
use std::path::Path;

use inbox_kapso::fake::FakeKapso;
use inbox_tests::{Db, Deliveries, Server, TestEnv, binary};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

/// The `sh` blocks of README.md, each as its logical lines (continuations joined, comments and
/// blank lines dropped), in order.
fn readme_blocks() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for raw in readme.lines() {
        let line = raw.trim();
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().expect("open block")),
            (Some(block), _) => {
                let code = line.split(" #").next().unwrap_or(line).trim();
                if code.starts_with('#') || code.is_empty() {
                    continue;
                }
                if let Some(head) = code.strip_suffix('\\') {
                    pending.push_str(head);
                    continue;
                }
                pending.push_str(code);
                block.push(std::mem::take(&mut pending));
            }
            _ => {}
        }
    }
    blocks
}

fn block_containing(needle: &str) -> Vec<String> {
    readme_blocks()
        .into_iter()
        .find(|b| b.iter().any(|l| l.contains(needle)))
        .unwrap_or_else(|| panic!("README has a block with `{needle}`"))
}

/// Runs one README line in bash, `inbox` being the built binary on this test's database.
async fn sh(env: &TestEnv, line: &str, vars: &HashMap<&str, String>, stdin: &str) -> String {
    let mut line = line.to_owned();
    for (placeholder, value) in vars {
        line = line.replace(placeholder, value);
    }
    let script = format!(
        "inbox() {{ \"{}\" \"$@\"; }}\nset -e\n{line}",
        binary("inbox-api").display()
    );
    let mut child = env
        .command("bash")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("run");
    assert!(
        output.status.success()
            || (line.contains("/api/events") && output.status.code() == Some(28)),
        "README line failed: {line}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn uuid_in(text: &str) -> String {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no id in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_works_as_written() {
    let env = TestEnv::new(Db::Sqlite, "readme").await.expect("sqlite");
    let fake = FakeKapso::start().await;
    let mut vars: HashMap<&str, String> = HashMap::new();

    // Bootstrap, as the walkthrough's first block says.
    for line in block_containing("inbox admin workspace create") {
        if line.starts_with("inbox()") {
            continue; // The test defines `inbox` as the built binary instead of `cargo run`.
        }
        let out = sh(&env, &line, &vars, "").await;
        if line.contains("user create") {
            vars.insert("<user-id>", uuid_in(&out));
        }
        if line.contains("token create") {
            vars.insert(
                "$T",
                out.lines().last().expect("token line").trim().to_owned(),
            );
        }
    }

    // Connecting Kapso, with both secrets read from standard input.
    vars.insert(
        "<Kapso phone_number_id>",
        inbox_tests::PHONE_NUMBER_ID.to_owned(),
    );
    for line in block_containing("set-kapso") {
        let out = sh(
            &env,
            &line,
            &vars,
            &format!("kapso_key\n{}\n", inbox_tests::WEBHOOK_SECRET),
        )
        .await;
        assert!(!out.contains("kapso_key"), "secrets are never echoed");
    }

    // A customer writes, so there is a conversation with an open reply window.
    let server = env.api(&[("INBOX_KAPSO_BASE_URL", &fake.base_url())]).await;
    let http = reqwest::Client::new();
    let delivery = Deliveries::default().inbound_batch("6281234567890", 1);
    assert_eq!(delivery.post(&http, &server).await.status(), StatusCode::OK);
    let list: serde_json::Value = http
        .get(server.url("/api/conversations?workspace=acme"))
        .bearer_auth(&vars["$T"])
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    vars.insert(
        "<id>",
        list["conversations"][0]["id"]
            .as_str()
            .expect("conversation")
            .to_owned(),
    );
    vars.insert("http://127.0.0.1:8080", server.base_url.clone());

    for line in block_containing("curl") {
        let checked = line.replacen("curl ", "curl -sS -f --max-time 3 ", 1);
        let out = sh(&env, &checked.replace("$T", &vars["$T"]), &vars, "").await;
        if !line.contains("/api/events") {
            assert!(out.starts_with('{'), "`{line}` answers JSON: {out}");
        }
    }
    assert_eq!(
        fake.sends().len(),
        1,
        "the walkthrough's reply reached Kapso"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_scale_out_block_works_as_written() {
    let Some(env) = TestEnv::new(Db::Postgres, "readme_postgres").await else {
        return;
    };
    let mut servers: Vec<Server> = Vec::new();
    for line in block_containing("inbox-webhook") {
        if line.starts_with("export ") {
            // The test's own database and key stand in for the example values.
            continue;
        }
        let mut words = line.split_whitespace();
        let program = words.next().expect("a command");
        let args: Vec<&str> = words.collect();
        let mut command = env.command(program);
        command.args(&args);
        if args.first() == Some(&"admin") {
            let status = command.status().await.expect("run");
            assert!(status.success(), "`{line}` failed");
        } else {
            command.env("INBOX_LISTEN", "127.0.0.1:0");
            servers.push(Server::start_command(command).await);
        }
    }
    assert_eq!(servers.len(), 2, "an API instance and a webhook instance");
    for server in &servers {
        let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
        assert_eq!(ready.status(), StatusCode::OK);
    }
    let api_only = reqwest::Client::new()
        .post(servers[0].url("/api/webhook/kapso"))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(
        api_only.status(),
        StatusCode::NOT_FOUND,
        "--no-webhook serves no webhook"
    );
}
