//! Who is using the console: agents with an argon2id password hash and a role, sessions in the
//! database behind an HttpOnly cookie, a CSRF token per session (and a double-submit cookie on
//! the login form, before there is a session), and login limiting per email and per address.
//!
//! A login attempt is counted in the database before its password is checked (and the count
//! taken back when the password was right; the window's failures stay), so concurrent
//! attempts, on one instance or many, cannot run more checks than the limits allow. The checks themselves pass through a
//! [`PasswordGate`]: each holds about 19 MB, and only a few run at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ConsoleError, Result};
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::privacy::mask;
use crate::store::entities::{agent, agent_session, login_failure};
use crate::store::{begin_write, now_ms};

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

/// The bound on password checks running at once. Each argon2id check (the crate's default
/// parameters: 19 MiB of memory, 2 passes, 1 lane) holds 19 MiB and a core while it runs;
/// unbounded, 48 concurrent logins took the server from 47 to 904 MB. A login that finds no
/// place is answered at once (503) rather than queued: a queue would hold the requests, and
/// their memory, for as long as the storm lasts. Cheap to clone.
#[derive(Clone)]
pub struct PasswordGate {
    inner: Arc<GateInner>,
}

struct GateInner {
    places: Arc<Semaphore>,
    limit: u32,
    /// Checks running now, the most seen at once, and all checks so far.
    running: AtomicUsize,
    peak: AtomicUsize,
    checks: AtomicU64,
}

/// A place at the [`PasswordGate`], held until the check run with it has finished.
pub struct HashPermit {
    _place: OwnedSemaphorePermit,
    gate: Arc<GateInner>,
}

impl PasswordGate {
    /// A gate letting `limit` checks run at once (at least one).
    pub fn new(limit: u32) -> Self {
        let limit = limit.max(1);
        Self {
            inner: Arc::new(GateInner {
                places: Arc::new(Semaphore::new(limit as usize)),
                limit,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// A place, if one is free now; never waits.
    pub fn try_enter(&self) -> Option<HashPermit> {
        let place = self.inner.places.clone().try_acquire_owned().ok()?;
        Some(HashPermit {
            _place: place,
            gate: self.inner.clone(),
        })
    }

    /// How many checks may run at once.
    pub fn limit(&self) -> u32 {
        self.inner.limit
    }

    /// The most checks that have run at once.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Checks run so far.
    pub fn checks(&self) -> u64 {
        self.inner.checks.load(Ordering::SeqCst)
    }

    /// Waits for and takes every place, until the returned guard drops (tests: the gate as a
    /// storm leaves it, without depending on timing).
    pub async fn occupy_all(&self) -> OwnedSemaphorePermit {
        self.inner
            .places
            .clone()
            .acquire_many_owned(self.inner.limit)
            .await
            .expect("the gate's semaphore is never closed")
    }
}

impl HashPermit {
    /// Runs `check` on the blocking pool, keeping the place until it has finished, even when
    /// the request is dropped meanwhile (the memory is in use until then).
    ///
    /// # Errors
    /// When the check panicked.
    pub async fn run<T: Send + 'static>(
        self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        tokio::task::spawn_blocking(move || {
            let gate = self.gate.clone();
            let running = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
            gate.peak.fetch_max(running, Ordering::SeqCst);
            gate.checks.fetch_add(1, Ordering::SeqCst);
            let out = check();
            gate.running.fetch_sub(1, Ordering::SeqCst);
            drop(self);
            out
        })
        .await
        .map_err(|e| anyhow::anyhow!("password check panicked: {e}"))
    }
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
    let limits = [
        (format!("email:{email}"), settings.login_max_failures),
        (format!("ip:{ip}"), settings.login_max_failures_per_ip),
    ];
    let window_ms = i64::from(settings.login_window_minutes) * 60_000;
    let now = now_ms();
    let refused = |retry_after_secs: u64| {
        Metrics::count(&state.metrics.console_logins, "limited");
        tracing::warn!(email = %mask(&email), "console login refused: too many failures");
        ConsoleError::TooManyAttempts { retry_after_secs }
    };
    // A look first, without a transaction: a client over a limit is refused without taking
    // a place at the gate from anyone else.
    if let Some(retry) = over_limit(&state.db, &limits, now, window_ms).await? {
        return Err(refused(retry));
    }
    let Some(permit) = state.console.password_gate.try_enter() else {
        Metrics::count(&state.metrics.console_logins, "busy");
        tracing::warn!(email = %mask(&email), "console login refused: password checks busy");
        return Err(ConsoleError::Busy);
    };
    let reserved = match reserve_attempt(&state.db, &limits, window_ms).await? {
        Ok(ids) => ids,
        Err(retry) => return Err(refused(retry)),
    };
    let found = agent::Entity::find()
        .filter(agent::Column::Email.eq(email.clone()))
        .filter(agent::Column::Active.eq(true))
        .one(&state.db)
        .await?;
    // argon2 is deliberately slow: keep it off the async workers.
    let password = form.password.clone();
    let hash = found.as_ref().map(|a| a.password_hash.clone());
    let ok = permit
        .run(move || match hash {
            Some(h) => verify_password(&h, &password),
            None => {
                burn_time(&password);
                false
            }
        })
        .await?;
    let Some(agent) = found.filter(|_| ok) else {
        // The reservation stays: it is this failure.
        Metrics::count(&state.metrics.console_logins, "wrong");
        forget_old_failures(&state.db, now - window_ms).await?;
        tracing::info!(email = %mask(&email), "console login failed");
        return render_login(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong email or password."),
        );
    };
    // The right password takes back its own count, and only that: the failures in the window
    // stay, so that the owner logging in does not give a guesser a fresh set of attempts.
    login_failure::Entity::delete_many()
        .filter(login_failure::Column::Id.is_in(reserved))
        .exec(&state.db)
        .await?;
    Metrics::count(&state.metrics.console_logins, "ok");
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

/// The first key of the login limiter's advisory locks (PostgreSQL); the second is taken
/// from the key's hash. Its own space: the pipeline's locks use another first key.
const LOGIN_LOCK_SPACE: i32 = 0x1B16;

/// When an attempt keyed by `limits` (key, most attempts in the window) would go over one of
/// them: in how many seconds one of its attempts leaves the window. Attempts under way count.
async fn over_limit<C: ConnectionTrait>(
    db: &C,
    limits: &[(String, u32)],
    now: i64,
    window_ms: i64,
) -> Result<Option<u64>> {
    let since = now - window_ms;
    let mut retry_after: Option<u64> = None;
    for (key, max) in limits {
        let in_window = || {
            login_failure::Entity::find()
                .filter(login_failure::Column::Key.eq(key.clone()))
                .filter(login_failure::Column::At.gt(since))
        };
        let count = in_window().count(db).await?;
        if count < u64::from(*max) {
            continue;
        }
        // Below the limit again once the oldest attempts beyond it have left the window.
        let frees = in_window()
            .order_by_asc(login_failure::Column::At)
            .offset(count - u64::from(*max))
            .one(db)
            .await?
            .map_or(now, |f| f.at);
        // Clamped: an attempt counted by a request that read the clock after this one did.
        let wait_ms = u64::try_from((frees + window_ms - now).min(window_ms)).unwrap_or(0);
        let secs = wait_ms.div_ceil(1000).max(1);
        retry_after = Some(retry_after.map_or(secs, |r| r.max(secs)));
    }
    Ok(retry_after)
}

/// Counts an attempt against every limit before its password is checked, or says in how many
/// seconds to try again. Atomic, so concurrent attempts on any number of instances see each
/// other: on SQLite the write transaction holds the database's one write lock; on PostgreSQL
/// a transaction-scoped advisory lock per key, taken in the same order (email, then address)
/// by every attempt, so two attempts never wait for each other in a cycle.
/// Returns the ids of the rows that count it.
async fn reserve_attempt(
    db: &DatabaseConnection,
    limits: &[(String, u32)],
    window_ms: i64,
) -> Result<std::result::Result<Vec<i64>, u64>> {
    let txn = begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        for (key, _) in limits {
            let digest = Sha256::digest(key.as_bytes());
            let second = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, $2)",
                [LOGIN_LOCK_SPACE.into(), second.into()],
            ))
            .await?;
        }
    }
    // The time read under the lock: every attempt counted before is no later than it.
    let now = now_ms();
    if let Some(retry) = over_limit(&*txn, limits, now, window_ms).await? {
        txn.rollback().await?;
        return Ok(Err(retry));
    }
    let mut ids = Vec::with_capacity(limits.len());
    for (key, _) in limits {
        let row = login_failure::ActiveModel {
            id: NotSet,
            key: Set(key.clone()),
            at: Set(now),
        };
        ids.push(
            login_failure::Entity::insert(row)
                .exec(&*txn)
                .await?
                .last_insert_id,
        );
    }
    txn.commit().await?;
    Ok(Ok(ids))
}

/// Keeps the table small: attempts older than the window no longer count.
async fn forget_old_failures(db: &DatabaseConnection, since: i64) -> Result<()> {
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
