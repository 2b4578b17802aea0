//! Fast set-up for the API tests: the test opens the same database as the server and writes
//! workspaces, users, tokens, conversations and messages through the store directly, instead of
//! one admin-CLI process per row.

use std::sync::Arc;

use inbox_domain::contact::NewContact;
use inbox_domain::phone::{CountryCode, PhoneE164};
use inbox_domain::ports::Repository;
use inbox_domain::token::TokenHash;
use inbox_domain::user::{NewUser, Role};
use inbox_domain::workspace::{NewWorkspace, WorkspaceName, WorkspaceSlug};
use inbox_domain::{UserId, WorkspaceId};
use inbox_store::SecretKey;
use inbox_store::testing::Seed;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::{Db, Server, TEST_SECRET_KEY, TestEnv};

/// The store of a test's database, as the ports and as the seeding helper.
#[derive(Clone)]
pub struct Direct {
    /// Every port.
    pub repo: Arc<dyn Repository>,
    /// Bulk seeding.
    pub seed: Arc<dyn Seed>,
}

impl TestEnv {
    /// Opens (and migrates) the test's database from the test process.
    ///
    /// # Panics
    /// When the database cannot be opened.
    pub async fn direct(&self) -> Direct {
        let key = SecretKey::from_base64(TEST_SECRET_KEY).expect("test key");
        match self.kind {
            Db::Sqlite => {
                let store = Arc::new(
                    inbox_store::sqlite::open(self.database_url(), &key)
                        .await
                        .expect("open sqlite"),
                );
                Direct {
                    repo: store.clone(),
                    seed: store,
                }
            }
            Db::Postgres => {
                let store = Arc::new(
                    inbox_store::postgres::open(self.database_url(), &key)
                        .await
                        .expect("open postgres"),
                );
                Direct {
                    repo: store.clone(),
                    seed: store,
                }
            }
        }
    }
}

/// A user with a bearer token.
#[derive(Clone, Debug)]
pub struct Person {
    /// User id.
    pub id: UserId,
    /// Bearer token.
    pub token: String,
}

/// A workspace with one user of each role and a second member.
#[derive(Clone, Debug)]
pub struct Team {
    /// Workspace id.
    pub ws: WorkspaceId,
    /// Slug.
    pub slug: String,
    /// Owner.
    pub owner: Person,
    /// Admin.
    pub admin: Person,
    /// A member (tests assign things to them).
    pub member: Person,
    /// Another member (tests assign nothing to them).
    pub member2: Person,
}

impl Direct {
    /// A user, member of `ws` with `role`, with a token.
    ///
    /// # Panics
    /// On storage failures.
    pub async fn person(&self, ws: WorkspaceId, name: &str, role: Role) -> Person {
        let user = self
            .repo
            .create_user(NewUser {
                name: name.to_owned(),
                email: None,
            })
            .await
            .expect("user");
        self.repo
            .add_member(ws, user.id, role)
            .await
            .expect("member");
        let token = format!("inbox_test_{}", user.id.as_uuid().simple());
        self.repo
            .create_token(user.id, "test", &TokenHash::of(&token))
            .await
            .expect("token");
        Person { id: user.id, token }
    }

    /// A workspace `slug` (default country `ID`) with a team.
    ///
    /// # Panics
    /// On storage failures.
    pub async fn team(&self, slug: &str) -> Team {
        let ws = self
            .repo
            .create_workspace(NewWorkspace {
                slug: WorkspaceSlug::parse(slug).expect("slug"),
                name: WorkspaceName::parse(&format!("Workspace {slug}")).expect("name"),
                default_country: CountryCode::default(),
            })
            .await
            .expect("workspace")
            .id;
        Team {
            ws,
            slug: slug.to_owned(),
            owner: self.person(ws, &format!("{slug} owner"), Role::Owner).await,
            admin: self.person(ws, &format!("{slug} admin"), Role::Admin).await,
            member: self
                .person(ws, &format!("{slug} member"), Role::Member)
                .await,
            member2: self
                .person(ws, &format!("{slug} member2"), Role::Member)
                .await,
        }
    }
}

/// An Indonesian mobile number unique per `n`: `+628120nnnnnnn`.
#[must_use]
pub fn phone(n: u32) -> PhoneE164 {
    PhoneE164::from_trusted(format!("+628120{n:07}"))
}

/// A contact with a phone and a name.
#[must_use]
pub fn contact(n: u32, name: &str) -> NewContact {
    NewContact {
        phone: Some(phone(n)),
        name: Some(name.to_owned()),
        ..NewContact::default()
    }
}

/// One API request, whatever carries it to the API.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/api/conversations?workspace=acme`.
    pub path: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The body.
    pub body: RequestBody,
}

/// A request's body.
#[derive(Clone, Debug)]
pub enum RequestBody {
    /// None.
    Empty,
    /// A JSON value, serialized, as `application/json`.
    Json(Value),
    /// These exact bytes, as `application/json` (malformed or oversized JSON).
    Raw(String),
}

/// How requests reach the API: over HTTP to a running `inbox-api` ([`Api`]), or in process
/// to its router (the `inproc` suite). The shared tables ([`crate::tables`]) run on either.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Sends one request; returns the status and the body (`Null` when empty, a string when
    /// not JSON).
    fn send(&self, request: ApiRequest) -> impl Future<Output = (u16, Value)> + Send;

    /// Sends a request with an optional JSON body.
    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> impl Future<Output = (u16, Value)> + Send {
        self.send(ApiRequest {
            method,
            path: path.to_owned(),
            token: token.map(str::to_owned),
            body: body.map_or(RequestBody::Empty, |body| RequestBody::Json(body.clone())),
        })
    }

    /// `GET path` with a token, expecting 200; returns the JSON.
    ///
    /// # Panics
    /// When the answer is not 200.
    fn get_ok(&self, path: &str, token: &str) -> impl Future<Output = Value> + Send {
        let answer = self.call(Method::GET, path, Some(token), None);
        let path = path.to_owned();
        async move {
            let (status, body) = answer.await;
            assert_eq!(status, 200, "GET {path}: {body}");
            body
        }
    }
}

impl Transport for Api {
    fn send(&self, request: ApiRequest) -> impl Future<Output = (u16, Value)> + Send {
        let mut builder = self.request(request.method, &request.path, request.token.as_deref());
        builder = match request.body {
            RequestBody::Empty => builder,
            RequestBody::Json(value) => builder.json(&value),
            RequestBody::Raw(text) => builder
                .header("content-type", "application/json")
                .body(text),
        };
        async move { read(builder.send().await.expect("send")).await }
    }
}

/// An HTTP client bound to a server.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// A client for `server`.
    #[must_use]
    pub fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.base_url.clone(),
        }
    }

    /// A request, with the token when there is one.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request with an optional JSON body; returns the status and the body (`Null`
    /// when empty, a string when not JSON).
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.expect("send")).await
    }

    /// `GET path` with a token, expecting 200; returns the JSON.
    ///
    /// # Panics
    /// When the answer is not 200.
    pub async fn get_ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(token), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// A response's status and body.
///
/// # Panics
/// When the body cannot be read.
pub async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}
