//! In-process API tests: `inbox_api::router` over a fresh database of each backend, driven with
//! `tower::ServiceExt::oneshot`: no process, no socket, no admin CLI. The permission matrix and
//! the bad-input table (`inbox_tests::tables`) run here in full; `tests/blackbox` runs a sample
//! of each route family through the built binary.
//!
//! This suite lives beside the black-box one, with `inbox-api` only as a dev-dependency of this
//! test target: the shared tables and seeding stay in `inbox_tests`, which never links the
//! product's library, and `inbox-api` gains no dependency on test support.

mod bad_input;
mod permissions;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Request};
use inbox_api::AppState;
use inbox_domain::sending::SendSettings;
use inbox_kapso::KapsoClient;
use inbox_store::testing::{Backend, OnBackend, TestDatabase};
use inbox_tests::TestEnv;
use inbox_tests::team::{ApiRequest, Direct, RequestBody, Transport};
use serde_json::Value;
use tower::ServiceExt;

/// Where the in-process API's Kapso client points: a closed local port. Nothing these tables
/// do calls Kapso, and a test never reaches the internet.
const NO_KAPSO: &str = "http://127.0.0.1:9";

/// What each test gets: its database, the store (for seeding), and the API's router over that
/// store, built as `inbox-api serve` builds it (default limits and settings).
pub struct App {
    /// The store, as the ports and the seeding helper.
    pub direct: Direct,
    /// The router, as a [`Transport`].
    pub api: InProcess,
    _env: TestEnv,
}

impl OnBackend for App {
    async fn over(db: TestDatabase, backend: Backend) -> Self {
        let env = <TestEnv as OnBackend>::over(db, backend).await;
        let direct = env.direct().await;
        let kapso = KapsoClient::with_base_url(NO_KAPSO).expect("kapso client");
        let state = AppState::new(direct.repo.clone(), kapso, SendSettings::default());
        Self {
            api: InProcess {
                app: inbox_api::router(state),
            },
            direct,
            _env: env,
        }
    }
}

/// The API's router, called in process.
#[derive(Clone)]
pub struct InProcess {
    app: Router,
}

impl Transport for InProcess {
    fn send(&self, request: ApiRequest) -> impl Future<Output = (u16, Value)> + Send {
        let app = self.app.clone();
        async move {
            let mut builder = Request::builder()
                .method(request.method)
                .uri(request.path.as_str());
            if let Some(token) = &request.token {
                builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            // As a client on the wire sends them: the type and length of a body.
            let bytes = match request.body {
                RequestBody::Empty => None,
                RequestBody::Json(value) => Some(value.to_string()),
                RequestBody::Raw(text) => Some(text),
            };
            let body = match bytes {
                None => Body::empty(),
                Some(bytes) => {
                    builder = builder
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .header(CONTENT_LENGTH, bytes.len());
                    Body::from(bytes)
                }
            };
            let response = app
                .oneshot(builder.body(body).expect("request"))
                .await
                .expect("the router is infallible");
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            (status, body)
        }
    }
}
