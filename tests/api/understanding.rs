//! Free text through the real webhook (issue 22): Hinglish answered in Hindi and remembered,
//! values read out of free text (policy number with spaces, a date with a Hindi month, a
//! claim number in lower case), "Did you mean A or B?" with buttons, and what the bot could
//! not place listed (masked) on the supervisor's dashboard and purged by retention.

use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use insurebot::store::entities::{conversation, misunderstood_message};
use insurebot::store::now_ms;
use sea_orm::{EntityTrait, QueryOrder};

use crate::console::{add_agent, login};
use crate::helpers::*;

async fn spawn_flows_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| s.dialogue.handler = DialogueMode::Flows).await
}

/// Sends `text` from `phone` and returns the new reply (the `n`th send).
async fn say(app: &TestApp, phone: &str, ts: i64, text: &str, n: usize) -> String {
    app.post_webhook(&envelope(vec![text_message(phone, &new_wamid(), ts, text)]))
        .await;
    let sent = app.wait_for_sends(n).await;
    shown(&sent[n - 1])
}

#[tokio::test]
async fn hinglish_free_text_is_answered_in_hindi_through_a_whole_claim_lookup() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        insert_policy(&app.db, "POL20240091", None).await;
        let phone = "919800002201";
        let ts = now_secs();
        // Not a keyword of any flow: before issue 22 this was the menu in English.
        let reply = say(&app, phone, ts, "mera claim kahan hai??", 1).await;
        assert_eq!(
            reply,
            "आपकी जानकारी सुरक्षित रखने के लिए, कृपया अपना पॉलिसी नंबर लिखें।"
        );
        let reply = say(&app, phone, ts + 1, "pol 2024 0091", 2).await;
        assert!(reply.starts_with("धन्यवाद। अब कृपया"), "{reply}");
        let reply = say(&app, phone, ts + 2, "१ जनवरी १९८०", 3).await;
        assert_eq!(reply, "कृपया अपना क्लेम नंबर लिखें, जैसे CLM-123456।");
        let reply = say(&app, phone, ts + 3, "clm 240311", 4).await;
        assert!(reply.starts_with("क्लेम CLM240311 नहीं मिला।"), "{reply}");

        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].language, "hi");
        let state: serde_json::Value = serde_json::from_str(&stored[0].state).unwrap();
        assert_eq!(state["language_settled"], true);
        assert_eq!(state["slots"]["dob"], "1980-01-01");
        assert_eq!(state["slots"]["policy_number"], "POL20240091");
    }
}

#[tokio::test]
async fn tanglish_and_tamil_script_start_their_flows_in_tamil() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let ts = now_secs();
        let reply = say(&app, "919800002202", ts, "naan panam kattanum", 1).await;
        assert_eq!(
            reply,
            "உங்கள் தகவலைப் பாதுகாக்க, உங்கள் பாலிசி எண்ணைத் தட்டச்சு செய்யவும்."
        );
        let reply = say(&app, "919800002203", ts, "என் க்ளைம் எங்கே?", 2).await;
        assert_eq!(
            reply,
            "உங்கள் தகவலைப் பாதுகாக்க, உங்கள் பாலிசி எண்ணைத் தட்டச்சு செய்யவும்."
        );
        let stored = conversation::Entity::find().all(&app.db).await.unwrap();
        assert!(stored.iter().all(|c| c.language == "ta"), "{stored:?}");
        assert!(
            stored.iter().all(|c| c.flow.as_deref() == Some("identity")),
            "{stored:?}"
        );
    }
}

#[tokio::test]
async fn two_close_intents_ask_did_you_mean_with_a_button_each() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let phone = "919800002204";
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs(),
            "policy premium",
        )]))
        .await;
        let sent = app.wait_for_sends(1).await;
        let body = &sent[0].body;
        assert_eq!(body["type"], "interactive", "{body}");
        assert_eq!(
            body["interactive"]["body"]["text"],
            "Did you mean one of these? Tap the one you want."
        );
        let buttons: Vec<(&str, &str)> = body["interactive"]["action"]["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["reply"]["id"].as_str().unwrap(),
                    b["reply"]["title"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            buttons,
            [("policy", "Policy details"), ("premium", "Pay premium")]
        );
    }
}

#[tokio::test]
async fn messages_the_bot_cannot_place_are_kept_masked_and_listed_on_the_dashboard() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        let ts = now_secs();
        let phone = "919800002205";
        // Between conversations: the menu, and the text noted.
        say(&app, phone, ts, "kal baarish hogi kya, call 9812345678", 1).await;
        // Understood free text is not noted.
        say(&app, "919800002206", ts, "claim stauts pls", 2).await;
        // The same words again, in another case, count twice in one row.
        say(
            &app,
            "919800002207",
            ts,
            "Kal baarish hogi kya, call 9812345678",
            3,
        )
        .await;

        let rows = misunderstood_message::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].text, "kal baarish hogi kya, call ***");
        assert_eq!(rows[0].place, "-");

        add_agent(&app, "sup@example.com", Role::Supervisor).await;
        let supervisor = login(&app, "sup@example.com").await;
        let html = supervisor
            .get("/console/dashboard")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            html.contains(
                "<tr><td>kal baarish hogi kya, call ***</td><td>en</td><td>-</td><td>2</td></tr>"
            ),
            "{html}"
        );
        assert!(!html.contains("9812345678"));
    }
}

#[tokio::test]
async fn retention_deletes_misunderstood_messages_as_old_as_the_bodies_it_purges() {
    for backend in backends() {
        let app = spawn_flows_app(&backend).await;
        // One noted through a real turn (today's), one as old as a purged body would be.
        say(&app, "919800002208", now_secs(), "kal baarish hogi kya", 1).await;
        let day = 24 * 3_600_000;
        misunderstood_message::Entity::insert(misunderstood_message::ActiveModel {
            text: sea_orm::ActiveValue::Set("purane sawal ***".into()),
            place: sea_orm::ActiveValue::Set("-".into()),
            language: sea_orm::ActiveValue::Set("en".into()),
            at: sea_orm::ActiveValue::Set(now_ms() - 40 * day),
            ..Default::default()
        })
        .exec(&app.db)
        .await
        .unwrap();

        let report = insurebot::consent::erasure::purge_older_than(&app.db, None, 30, now_ms())
            .await
            .unwrap();
        assert_eq!(report.misunderstood_messages, 1);
        let left: Vec<String> = misunderstood_message::Entity::find()
            .order_by_asc(misunderstood_message::Column::Id)
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(left, ["kal baarish hogi kya"]);
    }
}
