//! Real faults against the real binaries: a server killed mid-burst, and PostgreSQL cut off
//! behind a TCP proxy. Nothing acknowledged is lost, nothing is stored twice, threads stay
//! gap-free, and the service recovers by itself.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inbox_tests::{Db, Deliveries, Fixture, Server, TestEnv};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

inbox_store::on_both_backends!(inbox_tests::TestEnv; a_server_killed_mid_burst_loses_and_duplicates_nothing);

/// How long Kapso waits for an answer before it counts the delivery as failed.
const KAPSO_TIMEOUT: Duration = Duration::from_secs(10);

fn wamid_of(fixture: &Fixture) -> String {
    let body: Value = serde_json::from_str(&fixture.body).expect("JSON");
    body["data"][0]["message"]["id"]
        .as_str()
        .expect("wamid")
        .to_owned()
}

/// Posts to a webhook URL as Kapso would; the status, or `None` when no answer came.
async fn deliver(http: &reqwest::Client, url: &str, fixture: &Fixture) -> Option<u16> {
    let mut request = http
        .post(format!("{url}/api/webhook/kapso"))
        .timeout(KAPSO_TIMEOUT)
        .body(fixture.body.clone());
    for (key, value) in &fixture.headers {
        request = request.header(key, value);
    }
    request.send().await.ok().map(|r| r.status().as_u16())
}

async fn a_server_killed_mid_burst_loses_and_duplicates_nothing(env: TestEnv) {
    const CUSTOMERS: usize = 6;
    const PER_CUSTOMER: usize = 30;
    env.workspace_with_owner().await;
    env.connect_kapso().await;
    let mut deliveries = Deliveries::default();
    let queues: Vec<Vec<(Fixture, String)>> = (0..CUSTOMERS)
        .map(|c| {
            (0..PER_CUSTOMER)
                .map(|_| {
                    let fixture = deliveries.inbound_batch(&format!("1555123{c:04}"), 1);
                    let wamid = wamid_of(&fixture);
                    (fixture, wamid)
                })
                .collect()
        })
        .collect();

    let server = env.webhook(&[]).await;
    let http = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let progress = Arc::new(Notify::new());
    let senders: Vec<JoinHandle<()>> = queues
        .iter()
        .cloned()
        .map(|queue| {
            let (http, url) = (http.clone(), server.base_url.clone());
            let (acked, progress) = (Arc::clone(&acked), Arc::clone(&progress));
            tokio::spawn(async move {
                for (fixture, wamid) in queue {
                    if deliver(&http, &url, &fixture).await != Some(200) {
                        return; // the server is gone
                    }
                    acked.lock().expect("lock").insert(wamid);
                    progress.notify_one();
                }
            })
        })
        .collect();
    let total = CUSTOMERS * PER_CUSTOMER;
    while acked.lock().expect("lock").len() < total / 3 {
        progress.notified().await;
    }
    server.kill().await;
    for sender in senders {
        sender.await.expect("sender");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() < total, "the kill came mid-burst");

    let server = env.webhook(&[]).await;
    for wamid in &acked {
        assert_eq!(
            env.scalar(&format!(
                "SELECT COUNT(*) FROM messages WHERE wamid = '{wamid}'"
            ))
            .await,
            1,
            "{wamid} was acknowledged before the crash, so it survived it"
        );
    }
    // Kapso retries what it never saw acknowledged, and may retry an acknowledged one whose
    // answer it lost: every delivery again, in each customer's order.
    for queue in &queues {
        for (fixture, wamid) in queue {
            assert_eq!(
                deliver(&http, &server.base_url, fixture).await,
                Some(200),
                "{wamid} re-posted"
            );
        }
    }
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM messages").await,
        i64::try_from(total).expect("small"),
        "every message once"
    );
    assert_eq!(
        env.scalar(
            "SELECT COUNT(*) FROM (SELECT wamid FROM messages GROUP BY wamid HAVING COUNT(*) > 1) d"
        )
        .await,
        0
    );
    assert_eq!(
        env.scalar(
            "SELECT COUNT(*) FROM conversations c WHERE c.last_seq <> (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) \
             OR c.last_seq <> (SELECT COALESCE(MAX(seq), 0) FROM messages m WHERE m.conversation_id = c.id)"
        )
        .await,
        0,
        "threads gap-free"
    );
    server.stop().await;
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (cut, connections) = (Arc::clone(&cut), Arc::clone(&connections));
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(client); // the database is unreachable
                        continue;
                    }
                    let relay = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().expect("lock").push(relay);
                }
            })
        };
        Self {
            addr,
            cut,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for relay in self.connections.lock().expect("lock").drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// PostgreSQL cut off: the webhook answers 503 within Kapso's timeout (so Kapso retries),
/// `/readyz` and the API answer 503 `unavailable`, and once the database is back everything
/// works again without a restart, the retried delivery stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_without_a_restart() {
    let Some(env) = TestEnv::new(Db::Postgres, "a_database_outage_answers_503").await else {
        return;
    };
    let seeded = env.workspace_with_owner().await;
    env.connect_kapso().await;
    let mut url = reqwest::Url::parse(env.database_url()).expect("database URL");
    let upstream = SocketAddr::new(
        url.host_str()
            .unwrap_or("127.0.0.1")
            .parse()
            .unwrap_or_else(|_| [127, 0, 0, 1].into()),
        url.port().unwrap_or(5432),
    );
    let proxy = Proxy::start(upstream).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.addr.port())).expect("port");
    let mut command = env.command("inbox-api");
    command
        .arg("serve")
        .env("INBOX_DATABASE_URL", url.as_str())
        .env("INBOX_LISTEN", "127.0.0.1:0");
    let server = Server::start_command(command).await;
    let http = reqwest::Client::new();
    let mut deliveries = Deliveries::default();
    let first = deliveries.inbound_batch("15551230001", 1);
    assert_eq!(deliver(&http, &server.base_url, &first).await, Some(200));

    proxy.cut();
    let second = deliveries.inbound_batch("15551230001", 1);
    assert_eq!(
        deliver(&http, &server.base_url, &second).await,
        Some(503),
        "answered within Kapso's timeout, as retryable"
    );
    let ready = http
        .get(server.url("/readyz"))
        .timeout(KAPSO_TIMEOUT)
        .send()
        .await
        .expect("readyz answers");
    assert_eq!(ready.status().as_u16(), 503);
    let listed = http
        .get(server.url("/api/conversations?workspace=acme"))
        .bearer_auth(&seeded.token)
        .timeout(KAPSO_TIMEOUT)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(listed.status().as_u16(), 503);
    let body: Value = listed.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "unavailable");

    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http.get(server.url("/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recovered without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deliver(&http, &server.base_url, &second).await, Some(200));
    assert_eq!(deliver(&http, &server.base_url, &second).await, Some(200));
    assert_eq!(env.scalar("SELECT COUNT(*) FROM messages").await, 2);
    let listed = http
        .get(server.url("/api/conversations?workspace=acme"))
        .bearer_auth(&seeded.token)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(listed.status().as_u16(), 200);
    server.stop().await;
}
