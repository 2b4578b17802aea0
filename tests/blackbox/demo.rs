//! `cargo xtask demo`, run the way a newcomer runs it: every `curl` command it prints must work.

use std::process::Stdio;
use std::time::Duration;

use inbox_tests::binary;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_demo_prints_works() {
    let mut demo = Command::new(binary("xtask"))
        .args(["demo", "--listen", "127.0.0.1:0", "--binary"])
        .arg(binary("inbox-api"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the demo");
    // If an assertion fails, stop the demo with SIGTERM rather than kill_on_drop's SIGKILL, so
    // it can stop the server it started instead of leaving it running.
    let _stop = StopOnDrop(demo.id());
    let mut lines = BufReader::new(demo.stdout.take().expect("stdout")).lines();
    let mut commands = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("curl ") {
                commands.push(line);
            } else if line.starts_with("Demo is ready") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(ready, "the demo did not become ready");
    assert!(
        commands.len() >= 8,
        "the demo prints its walkthrough: {commands:?}"
    );

    for command in &commands {
        let streaming = command.contains("/api/events");
        // -f makes HTTP errors fail the command; the event stream never ends, so it gets a
        // deadline and must have delivered something by then.
        let checked = command.replacen("curl -s", "curl -sS -f --max-time 3", 1);
        let output = Command::new("bash")
            .args(["-c", &checked])
            .output()
            .await
            .expect("run curl");
        let body = String::from_utf8_lossy(&output.stdout);
        if streaming {
            assert_eq!(
                output.status.code(),
                Some(28),
                "the stream stays open: {command}"
            );
        } else {
            assert!(
                output.status.success(),
                "`{command}` failed: {} {body}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(body.starts_with('{'), "`{command}` answered JSON: {body}");
        }
    }

    // The event stream saw the walkthrough's changes when replayed from the start.
    let events = commands
        .iter()
        .find(|c| c.contains("/api/events"))
        .expect("events command");
    let replay = events.replacen(
        "curl -s -N",
        "curl -sS -N --max-time 2 -H 'Last-Event-ID: 0'",
        1,
    );
    let output = Command::new("bash")
        .args(["-c", &replay])
        .output()
        .await
        .expect("curl");
    let stream = String::from_utf8_lossy(&output.stdout);
    assert!(stream.contains("event: message.created"), "{stream}");
    assert!(stream.contains("event: conversation.updated"), "{stream}");

    if let Some(pid) = demo.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let status = tokio::time::timeout(Duration::from_secs(20), demo.wait())
        .await
        .expect("the demo stops on SIGTERM")
        .expect("wait");
    assert!(status.success(), "the demo cleans up and exits 0");
}

struct StopOnDrop(Option<u32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
