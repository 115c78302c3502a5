//! Who is using the console: agents with an argon2id password hash and a role, sessions in the
//! database behind an HttpOnly cookie, a CSRF token per session (and a double-submit cookie on
//! the login form, before there is a session), and login limiting per email and per address.

use std::net::SocketAddr;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ConsoleError, Result};
use crate::http::AppState;
use crate::privacy::mask;
use crate::store::entities::{agent, agent_session, login_failure};
use crate::store::now_ms;

/// The session cookie.
pub const SESSION_COOKIE: &str = "insurebot_session";
/// The login form's double-submit CSRF cookie (there is no session yet to keep a token in).
pub const LOGIN_CSRF_COOKIE: &str = "insurebot_login_csrf";
/// Shortest password `agent add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What an agent may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes conversations from the queue and answers them.
    Agent,
    /// Also sees the dashboard and may transfer or close anyone's conversation.
    Supervisor,
    /// Everything.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_lowercase().as_str() {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// The logged-in agent of a request. Extracting it fails with
/// [`ConsoleError::Unauthenticated`] (a redirect to the login page) when there is no valid,
/// unexpired session.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentAgent {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// The session's CSRF token, put into every form.
    pub csrf: String,
    #[serde(skip)]
    session_id: String,
}

impl CurrentAgent {
    /// Refuses agents below `role`.
    ///
    /// # Errors
    /// [`ConsoleError::Forbidden`].
    pub fn require(&self, role: Role) -> Result<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }

    /// Checks a form's CSRF token against the session's, in constant time.
    ///
    /// # Errors
    /// [`ConsoleError::Csrf`] when missing or different.
    pub fn check_csrf(&self, token: Option<&str>) -> Result<()> {
        match token {
            Some(t) if bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }

    pub fn is_supervisor(&self) -> bool {
        self.role >= Role::Supervisor
    }
}

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::Unauthenticated)?;
        let session_id = token_hash(&token);
        let Some(session) = agent_session::Entity::find_by_id(session_id.clone())
            .filter(agent_session::Column::ExpiresAt.gt(now_ms()))
            .one(&state.db)
            .await?
        else {
            return Err(ConsoleError::Unauthenticated);
        };
        let Some(agent) = agent::Entity::find_by_id(session.agent_id)
            .filter(agent::Column::Active.eq(true))
            .one(&state.db)
            .await?
        else {
            return Err(ConsoleError::Unauthenticated);
        };
        let role = Role::parse(&agent.role).ok_or(ConsoleError::Forbidden)?;
        Ok(CurrentAgent {
            id: agent.id,
            name: agent.name,
            email: agent.email,
            role,
            csrf: session.csrf_token,
            session_id,
        })
    }
}

/// Hashes a password with argon2id and a random salt (PHC string).
///
/// # Errors
/// When hashing fails (it does not with the default parameters).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("cannot encode the salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// True when `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Verifies against a fixed hash so an unknown email costs as much time as a wrong password
/// (otherwise the response time tells which emails exist).
fn burn_time(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

/// Creates an agent; the email is stored lower-cased.
///
/// # Errors
/// An invalid email, name or password, an email already in use, or a database error.
pub async fn create_agent<C: ConnectionTrait>(
    db: &C,
    email: &str,
    name: &str,
    role: Role,
    password: &str,
) -> anyhow::Result<i64> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() < 3 {
        anyhow::bail!("'{email}' is not an email address");
    }
    if name.trim().is_empty() {
        anyhow::bail!("the name is empty");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password needs at least {MIN_PASSWORD_CHARS} characters");
    }
    let exists = agent::Entity::find()
        .filter(agent::Column::Email.eq(email.clone()))
        .count(db)
        .await?;
    if exists > 0 {
        anyhow::bail!("an agent with this email already exists");
    }
    let hash = hash_password(password)?;
    let row = agent::ActiveModel {
        id: NotSet,
        email: Set(email),
        name: Set(name.trim().to_owned()),
        role: Set(role.as_str().to_owned()),
        password_hash: Set(hash),
        active: Set(true),
        created_at: Set(now_ms()),
    };
    Ok(agent::Entity::insert(row).exec(db).await?.last_insert_id)
}

/// The client's address as the server saw it. Deliberately not `X-Forwarded-For`, which any
/// client can set; behind a proxy all clients share the proxy's limit (the per-email limit
/// still applies to each account).
pub struct ClientAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub csrf: Option<String>,
}

/// `GET /console/login`: the form, with a fresh double-submit token.
pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    render_login(&state, &headers, StatusCode::OK, None)
}

fn render_login(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response> {
    let token = random_token();
    let mut ctx = tera::Context::new();
    ctx.insert("csrf", &token);
    ctx.insert("error", &error);
    let page = state.console.render("login.html", &ctx)?;
    let mut response = (status, page).into_response();
    let cookie = cookie_header(
        LOGIN_CSRF_COOKIE,
        &token,
        "/console/login",
        Some(3600),
        secure(state, headers),
    );
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /console/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    let matches = match (&expected, &form.csrf) {
        (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
        _ => false,
    };
    if !matches {
        return Err(ConsoleError::Csrf);
    }
    let settings = &state.settings.console;
    let email = form.email.trim().to_lowercase();
    let ip = peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string());
    let keys = [format!("email:{email}"), format!("ip:{ip}")];
    let now = now_ms();
    let since = now - i64::from(settings.login_window_minutes) * 60_000;
    let failures = |key: &str| {
        login_failure::Entity::find()
            .filter(login_failure::Column::Key.eq(key.to_owned()))
            .filter(login_failure::Column::At.gt(since))
            .count(&state.db)
    };
    if failures(&keys[0]).await? >= u64::from(settings.login_max_failures)
        || failures(&keys[1]).await? >= u64::from(settings.login_max_failures_per_ip)
    {
        tracing::warn!(email = %mask(&email), "console login refused: too many failures");
        return Err(ConsoleError::TooManyAttempts);
    }
    let found = agent::Entity::find()
        .filter(agent::Column::Email.eq(email.clone()))
        .filter(agent::Column::Active.eq(true))
        .one(&state.db)
        .await?;
    // argon2 is deliberately slow: keep it off the async workers.
    let password = form.password.clone();
    let hash = found.as_ref().map(|a| a.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&h, &password),
        None => {
            burn_time(&password);
            false
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("password check panicked: {e}"))?;
    let Some(agent) = found.filter(|_| ok) else {
        record_failure(&state.db, &keys, now, since).await?;
        tracing::info!(email = %mask(&email), "console login failed");
        return render_login(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
        );
    };
    login_failure::Entity::delete_many()
        .filter(login_failure::Column::Key.eq(keys[0].clone()))
        .exec(&state.db)
        .await?;
    let token = start_session(&state.db, agent.id, settings.session_hours).await?;
    tracing::info!(agent_id = agent.id, "console login");
    let mut response = Redirect::to("/console/queue").into_response();
    let max_age = i64::from(settings.session_hours) * 3600;
    let headers_out = response.headers_mut();
    headers_out.append(
        SET_COOKIE,
        cookie_header(
            SESSION_COOKIE,
            &token,
            "/",
            Some(max_age),
            secure(&state, &headers),
        ),
    );
    headers_out.append(
        SET_COOKIE,
        cookie_header(LOGIN_CSRF_COOKIE, "", "/console/login", Some(0), false),
    );
    Ok(response)
}

async fn record_failure(
    db: &DatabaseConnection,
    keys: &[String],
    now: i64,
    since: i64,
) -> Result<()> {
    for key in keys {
        login_failure::Entity::insert(login_failure::ActiveModel {
            id: NotSet,
            key: Set(key.clone()),
            at: Set(now),
        })
        .exec(db)
        .await?;
    }
    // Keep the table small: failures older than the window no longer count.
    login_failure::Entity::delete_many()
        .filter(login_failure::Column::At.lt(since))
        .exec(db)
        .await?;
    Ok(())
}

/// Creates a session for `agent_id`; returns the cookie value (only its hash is stored).
///
/// # Errors
/// Database errors.
pub async fn start_session<C: ConnectionTrait>(
    db: &C,
    agent_id: i64,
    hours: u32,
) -> Result<String, sea_orm::DbErr> {
    let now = now_ms();
    agent_session::Entity::delete_many()
        .filter(agent_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let token = random_token();
    agent_session::Entity::insert(agent_session::ActiveModel {
        id: Set(token_hash(&token)),
        agent_id: Set(agent_id),
        csrf_token: Set(random_token()),
        created_at: Set(now),
        expires_at: Set(now + i64::from(hours) * 3_600_000),
    })
    .exec(db)
    .await?;
    Ok(token)
}

/// A form with only the CSRF token (logout, take, close).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// `POST /console/logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    agent: CurrentAgent,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response> {
    agent.check_csrf(form.csrf.as_deref())?;
    agent_session::Entity::delete_many()
        .filter(agent_session::Column::Id.eq(agent.session_id.clone()))
        .exec(&state.db)
        .await?;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        cookie_header(SESSION_COOKIE, "", "/", Some(0), secure(&state, &headers)),
    );
    Ok(response)
}

/// Ends every session of an agent (for tests and for deactivation).
///
/// # Errors
/// Database errors.
pub async fn expire_sessions_now<C: ConnectionTrait>(db: &C, agent_id: i64) -> Result<()> {
    agent_session::Entity::update_many()
        .col_expr(agent_session::Column::ExpiresAt, Expr::value(now_ms() - 1))
        .filter(agent_session::Column::AgentId.eq(agent_id))
        .exec(db)
        .await?;
    Ok(())
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    super::headers::served_over_https(state.settings.console.secure_cookies, headers)
}

fn cookie_header(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are hex")
}

/// The value of cookie `name`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin > Role::Supervisor && Role::Supervisor > Role::Agent);
        assert_eq!(Role::parse(" Supervisor "), Some(Role::Supervisor));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; insurebot_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
