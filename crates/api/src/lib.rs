//! The Inbox HTTP API: [`router`] builds the axum application, [`serve`] runs it until shutdown.
//! The binary (`main.rs`) only parses configuration and calls these; tests call them too.

pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod limits;
pub mod live;
pub mod routes;
pub mod sending;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::get;
use axum::{Json, Router};
use inbox_domain::ports::{KapsoGateway, Repository};
use inbox_domain::sending::SendSettings;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// Largest accepted API request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Every storage port.
    pub repo: Arc<dyn Repository>,
    /// The process's reader of the event log, feeding every event stream.
    pub live: Arc<live::LiveHub>,
    /// Kapso's API: sends, history lookups and handover workflow calls (one connection pool
    /// for every tenant).
    pub kapso: Arc<dyn KapsoGateway>,
    /// How sends are paced and retried.
    pub sending: SendSettings,
    /// Whether owners may set their workspace's `kapso_phone_number_id` through the API (after
    /// Kapso confirms their API key's project owns it). Off by default: routing belongs to the
    /// operator, through `inbox-api admin workspace set-kapso`.
    pub owners_may_set_number: bool,
    /// Per-token limits of this process.
    pub limits: limits::ApiLimits,
    /// Each token's request budget in this process.
    pub budgets: Arc<limits::RequestBudgets>,
    /// Token use waiting to be written.
    pub token_use: Arc<auth::TokenUse>,
    /// Repeats of keyed sends waiting for their first request's answer.
    pub send_answers: Arc<sending::SendAnswers>,
}

impl AppState {
    /// State over a repository and a Kapso client, starting the live pump on the current
    /// runtime. The outbox worker is started separately ([`sending::spawn_outbox_worker`]).
    #[must_use]
    pub fn new(
        repo: Arc<dyn Repository>,
        kapso: impl KapsoGateway + 'static,
        sending: SendSettings,
    ) -> Self {
        Self {
            live: live::LiveHub::start(Arc::clone(&repo)),
            repo,
            kapso: Arc::new(kapso),
            sending,
            owners_may_set_number: false,
            limits: limits::ApiLimits::default(),
            budgets: Arc::new(limits::RequestBudgets::default()),
            token_use: Arc::new(auth::TokenUse::default()),
            send_answers: Arc::new(sending::SendAnswers::default()),
        }
    }

    /// The same state under other per-token limits.
    #[must_use]
    pub fn with_limits(mut self, limits: limits::ApiLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same state, letting owners set their number through the API or not.
    #[must_use]
    pub fn with_owners_may_set_number(mut self, allowed: bool) -> Self {
        self.owners_may_set_number = allowed;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inbox API",
        description = "A multi-tenant WhatsApp shared inbox over Kapso. Every `/api/*` route except the webhook needs `Authorization: Bearer <token>`. Errors are `{\"error\": {\"code\", \"message\", \"details\"?}}`."
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody)),
    paths(
        routes::external::openapi_json,
        routes::external::healthz,
        routes::external::readyz,
        routes::external::webhook_receive,
        routes::external::webhook_handshake,
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every authenticated operation may answer 429: each token has a budget of requests a minute
/// (and `/api/events` a cap on open streams). Added once here rather than on every route.
fn document_rate_limits(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, ResponseBuilder};
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.is_none() {
                continue;
            }
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description(
                                "`rate_limited`: the token spent its requests of the minute \
                                 (`INBOX_REQUESTS_PER_MINUTE`); retry after `Retry-After` seconds",
                            )
                            .build(),
                    )
                });
        }
    }
}

/// The documented API routes, from which both the router and the OpenAPI document are built.
/// (`/api/contacts/by-phone` and `/api/contacts/{id}` coexist: a literal segment always wins
/// over a parameter.)
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::me::me))
        .routes(routes!(
            routes::workspaces::get_workspace,
            routes::workspaces::patch_workspace
        ))
        .routes(routes!(routes::workspaces::members))
        .routes(routes!(routes::conversations::list))
        .routes(routes!(routes::conversations::counts))
        .routes(routes!(routes::conversations::get))
        .routes(routes!(routes::conversations::messages))
        .routes(routes!(routes::conversations::assign))
        .routes(routes!(
            routes::conversations::handover,
            routes::conversations::handover_state
        ))
        .routes(routes!(routes::conversations::read))
        .routes(routes!(routes::conversations::set_status))
        .routes(routes!(routes::contacts::list, routes::contacts::create))
        .routes(routes!(routes::contacts::by_phone))
        .routes(routes!(
            routes::contacts::get,
            routes::contacts::patch,
            routes::contacts::delete
        ))
        .routes(routes!(live::events))
        .routes(routes!(routes::messages::send_message))
}

/// The OpenAPI 3.1 document of every API route, generated from the handlers' annotations.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The API application without the webhook routes: `/api/*`, `/api/openapi.json`, and the
/// health probes.
pub fn router(state: AppState) -> Router {
    let (api, mut doc) = api_routes().split_for_parts();
    document_rate_limits(&mut doc);
    let doc = Arc::new(doc);
    api.route(
        "/api/openapi.json",
        get(move || {
            let doc = Arc::clone(&doc);
            async move { Json(doc) }
        }),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .with_state(state.clone())
    .merge(inbox_webhook::health::router(state.repo))
}

async fn not_found(uri: Uri) -> ApiError {
    tracing::debug!(path = %uri.path(), "no such route");
    ApiError::NotFound("Route")
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    tracing::debug!(%method, path = %uri.path(), "method not allowed");
    ApiError::MethodNotAllowed
}

/// Serves `app` on `listener` under the transport `limits` until `shutdown` resolves, then
/// finishes in-flight requests.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: inbox_webhook::server::HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Spans name the matched route, never the raw URI: queries carry phone numbers and search
    // text, which must not reach the logs.
    let traced = TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("unmatched", axum::extract::MatchedPath::as_str);
        tracing::debug_span!("request", method = %request.method(), route)
    });
    let app =
        inbox_webhook::server::with_request_timeout(app, limits.request_timeout()).layer(traced);
    inbox_webhook::server::serve(listener, app, limits, shutdown).await
}
