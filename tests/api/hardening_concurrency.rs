//! Issue 16, concurrency and sending: an agent's take/close against a stream of the same
//! policyholder's messages (one per-contact lock for the console and the pipeline), and the
//! number's rate in every sliding second.

use std::time::{Duration, Instant};

use insurebot::config::{DialogueMode, MessagingSettings};
use insurebot::http::console::auth::Role;
use insurebot::messaging::composer::{self, Composer, Intent, Purpose};
use insurebot::store::entities::{conversation, handoff, inbound_message};
use insurebot::whatsapp::fake::RequestKind;
use insurebot::whatsapp::outbound::OutboundBody;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::consent::new_contact;
use crate::console::{AgentClient, add_agent, login};
use crate::helpers::*;

/// Messages the policyholder sends while the agent acts, one webhook each.
const STREAM: usize = 6;
/// How long the race is tried for on one backend; a lost update showed within a few rounds
/// on PostgreSQL before the console took the pipeline's lock.
const RACE_BUDGET: Duration = Duration::from_secs(4);
/// Rounds tried however long they take.
const MIN_ROUNDS: usize = 3;

/// The contact's messages are all processed (the pipeline is done with them).
async fn wait_processed(app: &TestApp, contact_id: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(contact_id))
            .filter(inbound_message::Column::ProcessedAt.is_null())
            .count(&app.db)
            .await
            .unwrap();
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} messages unprocessed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `STREAM` messages, one webhook after the other, as fast as they are acknowledged.
async fn stream(app: &TestApp, phone: &str, round: usize) {
    for i in 0..STREAM {
        let text = format!("still there? {round}.{i}");
        let response = app
            .post_webhook(&envelope(vec![text_message(
                phone,
                &new_wamid(),
                now_secs(),
                &text,
            )]))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// A newer waiting hand-off than `after`, once the pipeline has queued it.
async fn next_waiting(app: &TestApp, phone: &str, after: i64) -> handoff::Model {
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs(),
        "agent",
    )]))
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(h) = handoff::Entity::find()
            .filter(handoff::Column::State.eq("waiting"))
            .filter(handoff::Column::Id.gt(after))
            .order_by_desc(handoff::Column::Id)
            .one(&app.db)
            .await
            .unwrap()
        {
            return h;
        }
        assert!(Instant::now() < deadline, "no hand-off was queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn mode_of(app: &TestApp, contact_id: i64) -> String {
    conversation::Entity::find_by_id(contact_id)
        .one(&app.db)
        .await
        .unwrap()
        .expect("conversation stored")
        .mode
}

async fn state_of(app: &TestApp, handoff_id: i64) -> String {
    handoff::Entity::find_by_id(handoff_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .state
        .to_string()
}

/// The agent's action, a little after the stream starts (a different moment every round, so
/// it lands at different points of the pipeline's transactions).
async fn act_during_stream(
    app: &TestApp,
    phone: &str,
    round: usize,
    act: impl std::future::Future<Output = reqwest::Response>,
) {
    let delay = Duration::from_millis((round % 7 * 3) as u64);
    let (_, response) = tokio::join!(stream(app, phone, round), async {
        tokio::time::sleep(delay).await;
        act.await
    });
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

async fn close(agent: &AgentClient, handoff_id: i64) -> reqwest::Response {
    agent
        .post(
            &format!("/console/handoffs/{handoff_id}/close"),
            &[("csrf", &agent.csrf)],
        )
        .await
}

/// Rounds of: the policyholder asks for an agent; the agent takes the hand-off while the
/// policyholder's messages stream in; then closes it while more stream in. After each action
/// and its stream, the conversation's mode is the one the action set.
async fn take_and_close_amid_streams(backend: Backend) {
    {
        let app = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        add_agent(&app, "asha@example.com", Role::Agent).await;
        let agent = login(&app, "asha@example.com").await;
        let backend = match backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        };
        let phone = "919800001601";
        let started = Instant::now();
        let mut last = 0;
        let mut rounds = 0;
        // At least MIN_ROUNDS however slow the machine (a loaded one made fewer in the budget
        // and failed), more while the budget lasts.
        while rounds < MIN_ROUNDS || started.elapsed() < RACE_BUDGET {
            let queued = next_waiting(&app, phone, last).await;
            last = queued.id;
            let contact_id = queued.contact_id;
            wait_processed(&app, contact_id).await;

            // Taken while the pipeline handles the stream: the conversation is the agent's.
            act_during_stream(&app, phone, rounds, agent.take(queued.id)).await;
            wait_processed(&app, contact_id).await;
            assert_eq!(state_of(&app, queued.id).await, "taken");
            assert_eq!(
                mode_of(&app, contact_id).await,
                "with_agent",
                "round {rounds} on {backend}: the take was overwritten by a message's save"
            );

            // Closed while the pipeline handles the stream: back with the bot.
            act_during_stream(&app, phone, rounds, close(&agent, queued.id)).await;
            wait_processed(&app, contact_id).await;
            assert_eq!(state_of(&app, queued.id).await, "closed");
            assert_eq!(
                mode_of(&app, contact_id).await,
                "bot",
                "round {rounds} on {backend}: the close was overwritten by a message's save"
            );
            rounds += 1;
        }
    }
}

#[needs_postgres]
#[tokio::test]
async fn on_postgresql_takes_and_closes_amid_a_stream_of_messages_are_never_overwritten() {
    // The race this guards against was PostgreSQL's: there the pipeline's lock was an
    // advisory lock the console did not take.
    let backend = postgres_only();
    take_and_close_amid_streams(backend).await;
}

#[tokio::test]
async fn on_sqlite_takes_and_closes_amid_a_stream_of_messages_are_never_overwritten() {
    take_and_close_amid_streams(Backend::Sqlite).await;
}

/// The most of `times` (Unix ms) in any half-open second.
fn most_in_a_second(times: &[i64]) -> usize {
    let mut times = times.to_vec();
    times.sort_unstable();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + 1000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_number_rate_holds_in_every_sliding_second_where_the_sends_arrive() {
    const RATE: u32 = 20;
    // Three seconds of sending at the full rate, to distinct contacts (no pair pacing).
    const SENDS: usize = 60;
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.messaging.rate_per_second = RATE;
            // This machine (2 cores shared with builds, the app and the fake on one test
            // runtime) holds a request up by tens of milliseconds now and then, far more than
            // the network does in production: a margin that covers it, so what is tested is
            // the limiter, not the scheduler. The old bucket (no window) sent 21 in a second.
            s.messaging.rate_window_margin_ms = 250;
            s.mark_read = false;
        })
        .await;
        let composer = Composer::new(&MessagingSettings::default());
        let now = chrono::Utc::now().timestamp_millis();
        for i in 0..SENDS {
            let contact_id = new_contact(&app, &format!("9198160{i:05}"), Some(now)).await;
            let intent = Intent {
                contact_id,
                in_reply_to: None,
                purpose: Purpose::Notification {
                    kind: "claim_update".into(),
                    essential: true,
                },
                free_form: Some(OutboundBody::Text {
                    body: format!("rate {i}"),
                    preview_url: false,
                }),
                template: None,
            };
            composer::queue(&app.db, &composer, intent).await.unwrap();
        }
        let sent = app.wait_for_sends(SENDS).await;
        let times: Vec<i64> = sent
            .iter()
            .filter(|r| r.kind == RequestKind::Send)
            .map(|r| r.received_at.timestamp_millis())
            .collect();
        assert_eq!(times.len(), SENDS);
        let most = most_in_a_second(&times);
        eprintln!("{RATE}/s on {backend:?}: at most {most} sends in any second at the fake");
        assert!(
            most <= RATE as usize,
            "{most} sends arrived within one second at {RATE}/s on {backend:?}"
        );
    }
}
