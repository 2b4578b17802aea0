//! The load generator: one driver ([`drive`]) for every load the bench makes, shaped by a
//! [`LoadSpec`]: open-loop runs at a fixed arrival rate (for latency) and
//! closed-loop runs at a fixed concurrency (for peak throughput), recorded in HDR histograms.
//!
//! Open-loop latency is measured from each request's *intended* start time, not from when it
//! was actually sent: when the server stalls, the requests that should have gone out meanwhile
//! are charged the wait, so slow responses are not hidden by coordinated omission. The schedule
//! is kept by a dedicated OS thread (sub-millisecond sleeps), because tokio's timer wheel has a
//! 1 ms resolution that would itself add up to a millisecond of fake latency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::machine::CpuTimes;

/// Latencies are recorded in microseconds, from 1 us to 2 minutes, with 3 significant digits.
const HIGHEST_US: u64 = 120_000_000;

/// A request not answered this long after its intended start is given up: it is recorded as a
/// timeout *and* at this latency, so percentiles still show it (as a lower bound), and an
/// overloaded server cannot stretch a run without limit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport-error text of a request given up after [`REQUEST_TIMEOUT`].
const TIMED_OUT: &str = "timed out";

/// A pooled HTTP/1.1 keep-alive client: one connection per request in flight.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client whose pool keeps every idle connection for reuse.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { inner }
    }

    /// Sends a request and reads the whole body.
    pub async fn send(&self, request: &Request) -> Result<(u16, Bytes), String> {
        let response = self
            .inner
            .request(request.build())
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }

    /// Sends a request and returns the response with its body unread (for streams).
    pub async fn open(
        &self,
        request: &Request,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        self.inner
            .request(request.build())
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Sends a request and parses a JSON answer; any status is returned with its body.
    pub async fn json(&self, request: &Request) -> Result<(u16, Value), String> {
        let (status, body) = self.send(request).await?;
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// One request, cheap to clone and to turn into a hyper request many times.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Headers beyond `host` and `content-length`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body (empty for GET).
    pub body: Bytes,
}

impl Request {
    /// A GET with a bearer token.
    pub fn get(url: String, token: &str) -> Self {
        Self {
            method: Method::GET,
            url,
            headers: vec![bearer(token)],
            body: Bytes::new(),
        }
    }

    /// A JSON POST with a bearer token.
    pub fn post_json(url: String, token: &str, body: &Value) -> Self {
        Self {
            method: Method::POST,
            url,
            headers: vec![
                bearer(token),
                (
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body: Bytes::from(body.to_string()),
        }
    }

    fn build(&self) -> hyper::Request<Full<Bytes>> {
        let mut builder = hyper::Request::builder()
            .method(self.method.clone())
            .uri(&self.url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(self.body.clone()))
            .unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
    }
}

fn bearer(token: &str) -> (HeaderName, HeaderValue) {
    (
        hyper::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid")),
    )
}

/// Makes the `i`-th request of a run.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request + Send + Sync>;

/// A latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("constant, valid histogram bounds")
}

/// p50 / p95 / p99 / max in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

impl Latency {
    /// From a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            count: h.len(),
        }
    }

    /// As report JSON.
    pub fn json(&self) -> Value {
        json!({"p50_ms": round3(self.p50), "p95_ms": round3(self.p95), "p99_ms": round3(self.p99),
               "max_ms": round3(self.max), "samples": self.count})
    }
}

/// Rounds to 3 decimals, for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// `open` or `closed`.
    pub mode: &'static str,
    /// Target arrival rate (open loop).
    pub rate: Option<f64>,
    /// Workers (closed loop) or most requests in flight allowed (open loop).
    pub concurrency: usize,
    /// Requests started.
    pub sent: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Transport errors (connection refused, reset, ...).
    pub errors: u64,
    /// The first transport error, for the report.
    pub first_error: Option<String>,
    /// Requests given up after [`REQUEST_TIMEOUT`] (also counted in `errors`).
    pub timeouts: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of 2xx answers.
    pub latency: Latency,
    /// Indexes of the requests answered 2xx, when asked for.
    pub acked: Vec<u64>,
    /// Open loop: scheduling stopped early because more than [`MAX_BACKLOG`] of work was
    /// queued; the latencies are then a lower bound of what the full schedule would have seen.
    pub overloaded: bool,
    /// Share of the whole machine's CPU busy during the run (0 to 1; `None` off Linux): tells a
    /// saturated machine from a slow path.
    pub machine_cpu_busy: Option<f64>,
}

/// An open-loop run stops scheduling once this much work (at its rate) is waiting: the server
/// cannot keep up, latency only grows from there, and draining a longer queue would only
/// lengthen the run.
pub const MAX_BACKLOG: Duration = Duration::from_secs(2);

impl Run {
    /// 2xx answers per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether (almost) every answer was this status.
    pub fn mostly(&self, status: u16) -> bool {
        let n = self.statuses.get(&status).copied().unwrap_or(0);
        n > 0 && n * 10 >= self.sent * 9
    }

    /// As report JSON.
    pub fn json(&self) -> Value {
        json!({
            "mode": self.mode,
            "target_rate": self.rate,
            "concurrency": self.concurrency,
            "sent": self.sent,
            "ok": self.ok,
            "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": self.errors,
            "timeouts": self.timeouts,
            "first_error": self.first_error,
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "throughput_per_s": round3(self.throughput()),
            "latency": self.latency.json(),
            "overloaded": self.overloaded,
            "machine_cpu_busy": self.machine_cpu_busy.map(round3),
        })
    }
}

/// Shared recording state of a run.
struct Recorder {
    histogram: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    timeouts: u64,
    ok: u64,
    acked: Vec<u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            histogram: histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            first_error: None,
            timeouts: 0,
            ok: 0,
            acked: Vec::new(),
        }
    }

    fn record(&mut self, i: u64, outcome: Result<u16, String>, micros: u64, keep_acked: bool) {
        match outcome {
            Ok(status) => {
                *self.statuses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    self.ok += 1;
                    let _ = self.histogram.record(micros.clamp(1, HIGHEST_US));
                    if keep_acked {
                        self.acked.push(i);
                    }
                }
            }
            Err(e) => {
                self.errors += 1;
                if e == TIMED_OUT {
                    self.timeouts += 1;
                    let _ = self.histogram.record(micros.clamp(1, HIGHEST_US));
                }
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn finish(self, mut run: Run, elapsed: Duration, cpu: Option<CpuTimes>) -> Run {
        run.machine_cpu_busy = cpu.and_then(CpuTimes::busy_since);
        run.ok = self.ok;
        run.statuses = self.statuses;
        run.errors = self.errors;
        run.first_error = self.first_error;
        run.timeouts = self.timeouts;
        run.elapsed = elapsed;
        run.latency = Latency::of(&self.histogram);
        run.acked = self.acked;
        run
    }
}

/// When a run stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this long: an open loop schedules `rate` x this many operations, a closed loop
    /// starts no operation after it.
    After(Duration),
    /// Once this many operations have been started (and answered).
    Count(u64),
}

/// What one run of the driver does: the whole shape of a load, typed, in one place.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// `Some`: open loop, operations started at this fixed arrival rate (per second), latency
    /// measured from each one's intended start. `None`: closed loop, `concurrency` workers
    /// back to back, latency measured from each one's actual start.
    pub rate: Option<f64>,
    /// Closed loop: the workers. Open loop: the most operations in flight (the rest wait,
    /// and are charged the wait).
    pub concurrency: usize,
    /// When the run stops.
    pub stop: Stop,
    /// The index the first operation gets; later ones count up from it, so runs that must
    /// not repeat each other's operations start where the last one ended.
    pub first_index: u64,
    /// Keep the indexes of the operations answered 2xx ([`Run::acked`]).
    pub keep_acked: bool,
}

impl LoadSpec {
    /// An open-loop run at `rate` for `duration`, at most `max_in_flight` at once.
    pub fn open(rate: f64, duration: Duration, max_in_flight: usize) -> Self {
        Self {
            rate: Some(rate),
            concurrency: max_in_flight,
            stop: Stop::After(duration),
            first_index: 0,
            keep_acked: false,
        }
    }

    /// A closed-loop run of `concurrency` workers for `duration`.
    pub fn closed(concurrency: usize, duration: Duration) -> Self {
        Self {
            rate: None,
            concurrency,
            stop: Stop::After(duration),
            first_index: 0,
            keep_acked: false,
        }
    }

    /// A closed-loop run of `concurrency` workers until `total` operations are answered.
    pub fn count(concurrency: usize, total: u64) -> Self {
        Self {
            stop: Stop::Count(total),
            ..Self::closed(concurrency, Duration::ZERO)
        }
    }

    /// The same, with operation indexes starting at `first_index`.
    pub fn starting_at(self, first_index: u64) -> Self {
        Self {
            first_index,
            ..self
        }
    }

    /// The same, keeping the indexes of the operations answered 2xx.
    pub fn keeping_acked(self) -> Self {
        Self {
            keep_acked: true,
            ..self
        }
    }
}

/// One operation of a run: the `i`-th request sent and answered (its HTTP status), or a
/// database statement replayed (`Ok(200)` when it committed), or a transport error.
pub type Operation =
    Arc<dyn Fn(u64) -> BoxFuture<'static, Result<u16, String>> + Send + Sync + 'static>;

/// The HTTP requests `make` builds, sent with `client`, as operations.
pub fn http(client: &Client, make: MakeRequest) -> Operation {
    let client = client.clone();
    Arc::new(move |i| {
        let client = client.clone();
        let request = make(i);
        Box::pin(async move { client.send(&request).await.map(|(status, _)| status) })
    })
}

/// Sends the requests `make` builds as `spec` says: [`drive`] over [`http`].
pub async fn requests(client: &Client, spec: LoadSpec, make: MakeRequest) -> Run {
    drive(spec, http(client, make)).await
}

/// The load driver: runs `op` as `spec` says and records every outcome. Every scenario's load,
/// over HTTP or straight against the database, goes through here. Returns when every operation
/// has been answered or given up after [`REQUEST_TIMEOUT`].
pub async fn drive(spec: LoadSpec, op: Operation) -> Run {
    match spec.rate {
        Some(rate) => open_loop(spec, rate, op).await,
        None => closed_loop(spec, op).await,
    }
}

/// Operations at a fixed arrival rate, at most `spec.concurrency` at once.
async fn open_loop(spec: LoadSpec, rate: f64, op: Operation) -> Run {
    let cpu = CpuTimes::now();
    let (total, duration) = match spec.stop {
        Stop::After(duration) => (
            (rate * duration.as_secs_f64()).round().max(1.0) as u64,
            duration,
        ),
        Stop::Count(total) => (total, Duration::from_secs_f64(total as f64 / rate)),
    };
    let (first_index, keep_acked) = (spec.first_index, spec.keep_acked);
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let limit = Arc::new(Semaphore::new(spec.concurrency));
    let handle = tokio::runtime::Handle::current();
    let start = Instant::now() + Duration::from_millis(20);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let completed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let backlog_limit = (rate * MAX_BACKLOG.as_secs_f64()).max(64.0) as u64;
    let scheduler = {
        let recorder = Arc::clone(&recorder);
        let completed = Arc::clone(&completed);
        std::thread::spawn(move || {
            for n in 0..total {
                if n - completed.load(std::sync::atomic::Ordering::Relaxed) > backlog_limit {
                    return n;
                }
                let intended = start + Duration::from_secs_f64(n as f64 / rate);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let recorder = Arc::clone(&recorder);
                let limit = Arc::clone(&limit);
                let op = Arc::clone(&op);
                let done = done_tx.clone();
                let completed = Arc::clone(&completed);
                handle.spawn(async move {
                    let i = first_index + n;
                    let operation = op(i);
                    let attempt = async {
                        match limit.acquire().await {
                            Ok(_permit) => operation.await,
                            Err(_) => Err("semaphore closed".to_owned()),
                        }
                    };
                    let give_up = tokio::time::Instant::from_std(intended + REQUEST_TIMEOUT);
                    let outcome = tokio::time::timeout_at(give_up, attempt)
                        .await
                        .unwrap_or_else(|_| Err(TIMED_OUT.to_owned()));
                    let micros = intended.elapsed().as_micros() as u64;
                    if let Ok(mut r) = recorder.lock() {
                        r.record(i, outcome, micros, keep_acked);
                    }
                    completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    drop(done);
                });
            }
            total
        })
    };
    // Every task holds a sender; the channel closes when the scheduler and all tasks are done.
    while done_rx.recv().await.is_some() {}
    let scheduled = scheduler.join().unwrap_or(total);
    let elapsed = start.elapsed();
    let recorder = take(recorder);
    recorder.finish(
        Run {
            mode: "open",
            rate: Some(rate),
            concurrency: spec.concurrency,
            sent: scheduled,
            overloaded: scheduled < total,
            ..Run::default()
        },
        // Throughput of an open-loop run is the answered rate over the scheduled window.
        if scheduled < total {
            elapsed
        } else {
            elapsed.max(duration)
        },
        cpu,
    )
}

/// `spec.concurrency` workers running operations back to back until `spec.stop`.
async fn closed_loop(spec: LoadSpec, op: Operation) -> Run {
    let cpu = CpuTimes::now();
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let first_index = spec.first_index;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(first_index));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency {
        let recorder = Arc::clone(&recorder);
        let next = Arc::clone(&next);
        let op = Arc::clone(&op);
        workers.push(tokio::spawn(async move {
            loop {
                if let Stop::After(duration) = spec.stop {
                    if start.elapsed() >= duration {
                        break;
                    }
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Stop::Count(total) = spec.stop {
                    if i - first_index >= total {
                        break;
                    }
                }
                let operation = op(i);
                let sent = Instant::now();
                let outcome = tokio::time::timeout(REQUEST_TIMEOUT, operation)
                    .await
                    .unwrap_or_else(|_| Err(TIMED_OUT.to_owned()));
                let micros = sent.elapsed().as_micros() as u64;
                if let Ok(mut r) = recorder.lock() {
                    r.record(i, outcome, micros, spec.keep_acked);
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = start.elapsed();
    let sent = match spec.stop {
        Stop::After(_) => next.load(std::sync::atomic::Ordering::Relaxed) - first_index,
        Stop::Count(total) => total,
    };
    take(recorder).finish(
        Run {
            mode: "closed",
            rate: None,
            concurrency: spec.concurrency,
            sent,
            ..Run::default()
        },
        elapsed,
        cpu,
    )
}

fn take(recorder: Arc<Mutex<Recorder>>) -> Recorder {
    match Arc::try_unwrap(recorder) {
        Ok(mutex) => mutex.into_inner().unwrap_or_else(|e| e.into_inner()),
        // A task still holds it (it cannot: all were awaited); take a copy of what is there.
        Err(shared) => {
            let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *guard, Recorder::new())
        }
    }
}
