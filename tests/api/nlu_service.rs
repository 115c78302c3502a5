//! The optional external understanding service (issue 22 item 4) through the real webhook,
//! against a stand-in answering Rasa's `/model/parse` shape on its own port: its intent is
//! used for text the built-in matcher does not know, close ones ask "Did you mean", answers
//! to the state's question never reach it, and when it is slow, failing or talking nonsense
//! the built-in matcher answers and the circuit breaker stops calling it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use insurebot::config::DialogueMode;
use insurebot::store::entities::conversation;
use insurebot::whatsapp::fake::ReceivedRequest;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::*;

/// How the stand-in answers.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Ranking(Value),
    /// 500.
    Error,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Nothing for longer than the client waits.
    Slow,
}

struct Stand {
    answer: Answer,
    /// Request bodies, in order.
    calls: Mutex<Vec<Value>>,
}

impl Stand {
    fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }
}

async fn parse(State(stand): State<Arc<Stand>>, Json(body): Json<Value>) -> Response {
    stand.calls.lock().unwrap().push(body);
    match &stand.answer {
        Answer::Ranking(v) => Json(v.clone()).into_response(),
        Answer::Error => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::Garbage => "<html>rasa is restarting</html>".into_response(),
        Answer::Slow => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Json(json!({})).into_response()
        }
    }
}

/// A stand-in service on port 0 and the app using it (timeout `timeout_ms`, circuit open
/// after 3 failures).
async fn spawn(backend: &Backend, answer: Answer, timeout_ms: u64) -> (TestApp, Arc<Stand>) {
    let stand = Arc::new(Stand {
        answer,
        calls: Mutex::default(),
    });
    let router = Router::new()
        .route("/model/parse", post(parse))
        .with_state(stand.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/model/parse", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = spawn_app_with(backend, |s| {
        s.dialogue.handler = DialogueMode::Flows;
        s.nlu.url = Some(url);
        s.nlu.timeout_ms = timeout_ms;
        s.nlu.breaker_failures = 3;
    })
    .await;
    (app, stand)
}

/// Sends `text` from `phone` and returns the new reply (the `n`th send).
async fn say(app: &TestApp, phone: &str, text: &str, n: usize) -> ReceivedRequest {
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs(),
        text,
    )]))
    .await;
    app.wait_for_sends(n).await.swap_remove(n - 1)
}

fn ranking(scores: &[(&str, f64)]) -> Value {
    let ranked: Vec<Value> = scores
        .iter()
        .map(|(name, confidence)| json!({"name": name, "confidence": confidence}))
        .collect();
    json!({"text": "ignored", "intent": ranked[0], "intent_ranking": ranked})
}

/// Text no phrase list knows.
const UNKNOWN: &str = "zorblax quuxit";

#[tokio::test]
async fn the_services_intent_starts_its_flow_for_text_the_built_in_matcher_does_not_know() {
    for backend in backends() {
        let answer = Answer::Ranking(ranking(&[("help", 0.91), ("premium", 0.05)]));
        let (app, stand) = spawn(&backend, answer, 5_000).await;
        // The keyword is the built-in way to the help flow; the service is not asked.
        let by_keyword = shown(&say(&app, "919800002301", "help", 1).await);
        assert!(stand.calls().is_empty(), "{:?}", stand.calls());
        let by_service = shown(&say(&app, "919800002302", UNKNOWN, 2).await);
        assert_eq!(by_service, by_keyword);
        assert_eq!(stand.calls().len(), 1);

        // Without the service the same text is the menu, not help.
        let plain = spawn_app_with(&backend, |s| s.dialogue.handler = DialogueMode::Flows).await;
        let menu = shown(&say(&plain, "919800002302", UNKNOWN, 1).await);
        assert_ne!(menu, by_keyword);
    }
}

#[tokio::test]
async fn the_request_carries_the_text_the_language_and_the_expected_intents() {
    for backend in backends() {
        let answer = Answer::Ranking(ranking(&[("premium", 0.9)]));
        let (app, stand) = spawn(&backend, answer, 5_000).await;
        say(&app, "919800002303", UNKNOWN, 1).await;
        let calls = stand.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["text"], UNKNOWN);
        assert_eq!(calls[0]["language"], "en");
        let expected: Vec<&str> = calls[0]["expected_intents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for intent in ["claim_status", "help", "policy_lookup", "premium"] {
            assert!(expected.contains(&intent), "{expected:?}");
        }
        // The premium flow asks for the policy number: the answer is the state's, and it
        // does not leave for the service.
        say(&app, "919800002303", "POL20240091", 2).await;
        assert_eq!(stand.calls().len(), 1);
    }
}

#[tokio::test]
async fn close_confidences_ask_did_you_mean_and_unknown_names_are_ignored() {
    for backend in backends() {
        let answer = Answer::Ranking(ranking(&[
            ("book_a_flight", 0.97),
            ("policy_lookup", 0.5),
            ("premium", 0.46),
        ]));
        let (app, _stand) = spawn(&backend, answer, 5_000).await;
        let sent = say(&app, "919800002304", UNKNOWN, 1).await;
        let body = &sent.body;
        assert_eq!(
            body["interactive"]["body"]["text"], "Did you mean one of these? Tap the one you want.",
            "{body}"
        );
        let ids: Vec<&str> = body["interactive"]["action"]["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["reply"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["policy", "premium"]);
    }
}

#[tokio::test]
async fn a_failing_service_leaves_the_answer_to_the_built_in_matcher_and_opens_the_circuit() {
    for backend in backends() {
        for (answer, timeout_ms) in [
            (Answer::Error, 5_000),
            (Answer::Garbage, 5_000),
            (Answer::Slow, 200),
        ] {
            let (app, stand) = spawn(&backend, answer, timeout_ms).await;
            // Hinglish the built-in matcher knows: the claim lookup, asked in Hindi.
            for n in 1..=5 {
                let phone = format!("91980000231{n}");
                let reply = shown(&say(&app, &phone, "mera claim kahan hai??", n).await);
                assert_eq!(
                    reply,
                    "आपकी जानकारी सुरक्षित रखने के लिए, कृपया अपना पॉलिसी नंबर लिखें।"
                );
            }
            // Three failures opened the circuit: the last two were not sent.
            assert_eq!(stand.calls().len(), 3);
        }
    }
}

#[tokio::test]
async fn the_service_naming_the_flow_under_way_is_a_wrong_answer_not_a_restart() {
    for backend in backends() {
        let answer = Answer::Ranking(ranking(&[("premium", 0.93)]));
        let (app, stand) = spawn(&backend, answer, 5_000).await;
        let phone = "919800002305";
        let first = shown(&say(&app, phone, UNKNOWN, 1).await);
        let state = |rows: Vec<conversation::Model>| -> Value {
            serde_json::from_str(&rows[0].state).unwrap()
        };
        let before = state(conversation::Entity::find().all(&app.db).await.unwrap());
        assert_eq!(before["misunderstood"], 0, "{before}");
        // Still not a policy number: the service names premium again, the flow under way.
        let again = shown(&say(&app, phone, UNKNOWN, 2).await);
        assert_eq!(stand.calls().len(), 2);
        let after = state(conversation::Entity::find().all(&app.db).await.unwrap());
        assert_eq!(after["misunderstood"], 1, "{after}");
        assert_eq!(after["position"], before["position"]);
        assert_ne!(again, first, "a retry, not the flow's first question again");
    }
}
