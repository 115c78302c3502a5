//! Consent and compliance (issue 6), one test per rule, on SQLite and PostgreSQL: STOP/START
//! confirmed once and audited, the essential-only rule after an opt-out, replies to what the
//! contact just sent, marketing opt-in and frequency cap, Meta's `user_preferences` and 131050,
//! the check again at send time, the consent API with its validation, erasure with a receipt
//! (and the opt-out surviving it), and retention.

use insurebot::config::{DialogueMode, Settings};
use insurebot::consent::{AddressHasher, ConsentState};
use insurebot::engine::templates_file;
use insurebot::messaging::composer::{
    self, Composer, DecideContext, Decision, Intent, Purpose, Queued, StoredIntent, TemplateChoice,
};
use insurebot::messaging::templates;
use insurebot::store::entities::{
    campaign, campaign_recipient, consent_log, contact, conversation, flow_hop, inbound_message,
    outbox, reminder_send,
};
use insurebot::store::now_ms;
use insurebot::whatsapp::fake::{FailureRule, ScriptedError};
use insurebot::whatsapp::outbound::OutboundBody;
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::*;

pub const API_TOKEN: &str = "consent-api-token-0123456789";
const HOUR_MS: i64 = 3_600_000;

pub fn configure(s: &mut Settings) {
    s.api_token = Some(SecretString::from(API_TOKEN));
}

async fn spawn(backend: &Backend) -> TestApp {
    spawn_app_with(backend, configure).await
}

async fn spawn_flows(backend: &Backend) -> TestApp {
    spawn_app_with(backend, |s| {
        configure(s);
        s.dialogue.handler = DialogueMode::Flows;
    })
    .await
}

/// The composer the app builds (same hash key).
pub fn composer_for(_app: &TestApp) -> Composer {
    let mut settings = Settings::default();
    settings.privacy.hash_key = Some(SecretString::from(HASH_KEY));
    settings.whatsapp.phone_number_id = PHONE_NUMBER_ID.to_owned();
    Composer::from_settings(&settings)
}

/// A contact whose last message (if any) went to the app's number at `last_inbound_at`.
pub async fn new_contact(app: &TestApp, phone: &str, last_inbound_at: Option<i64>) -> i64 {
    let id = contact::Entity::insert(contact::ActiveModel {
        id: NotSet,
        wa_id: Set(Some(phone.to_owned())),
        user_id: Set(None),
        profile_name: Set(Some("Asha".into())),
        last_inbound_at: Set(last_inbound_at),
        lease_owner: Set(None),
        lease_until: Set(None),
        created_at: Set(now_ms()),
        updated_at: Set(now_ms()),
    })
    .exec(&app.db)
    .await
    .unwrap()
    .last_insert_id;
    // The window is kept per business number: this one is on the app's.
    if let Some(at) = last_inbound_at {
        insurebot::store::entities::contact_window::Entity::insert(
            insurebot::store::entities::contact_window::ActiveModel {
                contact_id: Set(id),
                phone_number_id: Set(PHONE_NUMBER_ID.to_owned()),
                last_inbound_at: Set(at),
            },
        )
        .exec_without_returning(&app.db)
        .await
        .unwrap();
    }
    id
}

/// Adds a MARKETING template to the registry (the shipped registry has none).
pub async fn seed_marketing_template(app: &TestApp) {
    let yaml = "templates:\n  - name: renewal_offer\n    category: MARKETING\n    languages: [en]\n    params: [discount]\n";
    let defs = templates_file::parse_file(std::path::Path::new("test.yaml"), yaml).unwrap();
    templates::seed(&app.db, &defs, &[String::new()], now_ms())
        .await
        .unwrap();
}

fn text(body: &str) -> OutboundBody {
    OutboundBody::Text {
        body: body.into(),
        preview_url: false,
    }
}

pub fn campaign(contact_id: i64) -> Intent {
    Intent {
        contact_id,
        in_reply_to: None,
        purpose: Purpose::Campaign { campaign_id: 1 },
        free_form: None,
        template: Some(TemplateChoice {
            name: "renewal_offer".into(),
            language: "en".into(),
            params: vec!["10%".into()],
        }),
    }
}

pub fn notification(contact_id: i64, essential: bool) -> Intent {
    let (kind, template, params) = if essential {
        (
            "claim_update",
            "claim_status_update",
            vec!["CLM-123456".to_owned(), "Approved".to_owned()],
        )
    } else {
        (
            "premium_due",
            "premium_due_reminder",
            vec![
                "12345678".to_owned(),
                "Rs 1,200".to_owned(),
                "1 June".to_owned(),
            ],
        )
    };
    Intent {
        contact_id,
        in_reply_to: None,
        purpose: Purpose::Notification {
            kind: kind.into(),
            essential,
        },
        free_form: None,
        template: Some(TemplateChoice {
            name: template.into(),
            language: "en".into(),
            params,
        }),
    }
}

fn skipped_reason(q: &Queued) -> Option<&str> {
    match q {
        Queued::Skipped { reason, .. } => Some(reason.as_str()),
        Queued::Row(_) => None,
    }
}

async fn post_consent(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/consent", app.address))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn opt_in_marketing(app: &TestApp, phone: &str) {
    let r = post_consent(
        app,
        json!({ "phone": phone, "change": "opt_in", "scope": "marketing",
                "proof": { "text": "Yes, send me offers (at most 2 a week)",
                           "collected_at": now_ms() - 60_000, "detail": "website form v3" } }),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn log_of(app: &TestApp) -> Vec<consent_log::Model> {
    consent_log::Entity::find()
        .order_by_asc(consent_log::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
}

fn user_preferences(wa_id: &str, value: &str, timestamp: i64) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1234", "changes": [{ "field": "user_preferences", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
            "contacts": [{ "profile": { "name": "Kavya" }, "wa_id": wa_id }],
            "user_preferences": [{ "wa_id": wa_id, "detail": "User requested to stop marketing messages",
                "category": "marketing_messages", "value": value, "timestamp": timestamp }]
        }}]}]
    })
    .to_string()
}

#[tokio::test]
async fn stop_and_start_are_each_confirmed_once_and_audited_even_when_meta_redelivers() {
    for backend in backends() {
        let app = spawn_flows(&backend).await;
        let phone = "919800007001";
        let stop = envelope(vec![text_message(phone, &new_wamid(), now_secs(), "Stop")]);
        app.post_webhook(&stop).await;
        app.post_webhook(&stop).await;
        let sent = app.wait_for_sends(1).await;
        assert!(text_of(&sent[0]).contains("no longer receive"), "{sent:?}");
        app.assert_no_more_sends(1).await;
        let start = envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs() + 1,
            "START",
        )]);
        app.post_webhook(&start).await;
        app.post_webhook(&start).await;
        app.wait_for_sends(2).await;
        app.assert_no_more_sends(2).await;

        let log = log_of(&app).await;
        let rows: Vec<(&str, &str, &str, Option<&str>)> = log
            .iter()
            .map(|e| {
                (
                    e.change.as_str(),
                    e.scope.as_str(),
                    e.source.as_str(),
                    e.shown_text.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("opt_out", "all", "keyword", Some("Stop")),
                ("opt_in", "service", "keyword", Some("START")),
                ("opt_in", "reminders", "keyword", Some("START")),
            ]
        );
        let hash = AddressHasher::new(SecretString::from(HASH_KEY)).hash(phone);
        assert!(log.iter().all(|e| e.address_hash.as_deref() == Some(&hash)));
        // START restores service messages, never marketing.
        let state = ConsentState::fold(&log);
        assert!(!state.opted_out() && !state.allows_marketing());
    }
}

#[tokio::test]
async fn the_opt_in_prompt_records_the_text_shown_and_the_answer() {
    for backend in backends() {
        let app = spawn_flows(&backend).await;
        let phone = "919800007002";
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts,
            "offers",
        )]))
        .await;
        app.wait_for_sends(1).await;
        let tap = |id: &str, title: &str, ts: i64| {
            json!({ "from": phone, "id": new_wamid(), "timestamp": ts.to_string(), "type": "interactive",
                    "interactive": { "type": "button_reply", "button_reply": { "id": id, "title": title } } })
        };
        app.post_webhook(&envelope(vec![tap("prefs.offers", "Get offers", ts + 1)]))
            .await;
        let sent = app.wait_for_sends(2).await;
        let prompt = sent[1].body["interactive"]["body"]["text"]
            .as_str()
            .unwrap();
        assert!(prompt.contains("At most 2 messages a week"), "{prompt}");
        app.post_webhook(&envelope(vec![tap(
            "prefs.offers.yes",
            "Yes, send offers",
            ts + 2,
        )]))
        .await;
        app.wait_for_sends(3).await;
        let log = log_of(&app).await;
        assert_eq!(log.len(), 1, "{log:#?}");
        assert_eq!(
            (
                log[0].change.as_str(),
                log[0].scope.as_str(),
                log[0].source.as_str()
            ),
            ("opt_in", "marketing", "button")
        );
        let shown = log[0].shown_text.as_deref().unwrap();
        assert!(shown.starts_with(prompt), "{shown}");
        assert!(shown.ends_with("> Yes, send offers"), "{shown}");
    }
}

#[tokio::test]
async fn after_an_opt_out_only_essential_templates_go_and_the_block_is_recorded() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let composer = composer_for(&app);
        let phone = "919800007003";
        let c = new_contact(&app, phone, Some(now_ms() - 30 * HOUR_MS)).await;
        let r = post_consent(
            &app,
            json!({ "phone": phone, "change": "opt_out", "scope": "all" }),
        )
        .await;
        assert_eq!(r.status(), 201);
        let blocked = composer::queue(&app.db, &composer, notification(c, false))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&blocked), Some("consent_opted_out"));
        let essential = composer::queue(&app.db, &composer, notification(c, true))
            .await
            .unwrap();
        assert!(matches!(essential, Queued::Row(_)), "{essential:?}");
        // A caller cannot make a non-essential template essential...
        let mut claimed = notification(c, false);
        claimed.purpose = Purpose::Notification {
            kind: "premium_due".into(),
            essential: true,
        };
        let q = composer::queue(&app.db, &composer, claimed).await.unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_opted_out"));
        // ... nor stop an essential one from being essential by saying it is not.
        let mut not_essential = notification(c, true);
        not_essential.purpose = Purpose::Notification {
            kind: "claim_update".into(),
            essential: false,
        };
        let q = composer::queue(&app.db, &composer, not_essential)
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_opted_out"));

        let sent = app.wait_for_sends(1).await;
        assert_eq!(sent[0].body["template"]["name"], "claim_status_update");
        app.assert_no_more_sends(1).await;
        let rows = outbox::Entity::find()
            .filter(outbox::Column::ContactId.eq(c))
            .order_by_asc(outbox::Column::Id)
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(rows[0].state, "skipped");
        assert_eq!(
            rows[0].reason.map(|r| r.as_str()),
            Some("consent_opted_out")
        );
        assert!(rows[0].last_error.as_deref().unwrap().contains("opted out"));
    }
}

#[tokio::test]
async fn a_reply_to_the_message_the_contact_just_sent_goes_but_not_to_an_older_one() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let composer = composer_for(&app);
        let phone = "919800007004";
        // Two messages in the echo handler's pipeline would answer them; store them directly.
        let c = new_contact(&app, phone, Some(now_ms() - 60_000)).await;
        let mut ids = Vec::new();
        for (i, at) in [now_ms() - 120_000, now_ms() - 60_000]
            .into_iter()
            .enumerate()
        {
            let row = inbound_message::ActiveModel {
                id: NotSet,
                wamid: Set(format!("{}-{i}", new_wamid())),
                contact_id: Set(c),
                phone_number_id: Set(None),
                msg_type: Set("text".into()),
                content: Set(Some("{}".into())),
                raw: Set(None),
                sent_at: Set(at),
                received_at: Set(at),
                processed_at: Set(Some(at)),
                attempts: Set(0),
                last_error: Set(None),
            };
            ids.push(
                inbound_message::Entity::insert(row)
                    .exec(&app.db)
                    .await
                    .unwrap()
                    .last_insert_id,
            );
        }
        post_consent(
            &app,
            json!({ "phone": phone, "change": "opt_out", "scope": "all" }),
        )
        .await;
        let reply = |in_reply_to| Intent {
            contact_id: c,
            in_reply_to: Some(in_reply_to),
            purpose: Purpose::Reply,
            free_form: Some(text("answer")),
            template: None,
        };
        let older = composer::queue(&app.db, &composer, reply(ids[0]))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&older), Some("consent_opted_out"));
        let latest = composer::queue(&app.db, &composer, reply(ids[1]))
            .await
            .unwrap();
        assert!(matches!(latest, Queued::Row(_)), "{latest:?}");
        // Without the link it is not a reply to anything.
        let mut unlinked = reply(ids[1]);
        unlinked.in_reply_to = None;
        let q = composer::queue(&app.db, &composer, unlinked).await.unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_opted_out"));
        app.wait_for_sends(1).await;
        app.assert_no_more_sends(1).await;
    }
}

#[tokio::test]
async fn marketing_needs_a_marketing_opt_in_and_stays_under_the_frequency_cap() {
    for backend in backends() {
        let app = spawn(&backend).await;
        seed_marketing_template(&app).await;
        let composer = composer_for(&app);
        let phone = "919800007005";
        let c = new_contact(&app, phone, Some(now_ms() - 30 * HOUR_MS)).await;
        let q = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_no_marketing_opt_in"));
        // A MARKETING template is marketing whatever the purpose says.
        let mut disguised = campaign(c);
        disguised.purpose = Purpose::Notification {
            kind: "claim_update".into(),
            essential: true,
        };
        let q = composer::queue(&app.db, &composer, disguised)
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_no_marketing_opt_in"));

        opt_in_marketing(&app, phone).await;
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(
                composer::queue(&app.db, &composer, campaign(c))
                    .await
                    .unwrap(),
            );
        }
        assert!(matches!(results[0], Queued::Row(_)) && matches!(results[1], Queued::Row(_)));
        assert_eq!(skipped_reason(&results[2]), Some("consent_marketing_cap"));
        app.wait_for_sends(2).await;
        app.assert_no_more_sends(2).await;
        // Still capped once those two are sent.
        let q = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_marketing_cap"));
    }
}

#[tokio::test]
async fn whatsapps_marketing_stop_is_stored_once_and_blocks_marketing_until_resumed() {
    for backend in backends() {
        let app = spawn(&backend).await;
        seed_marketing_template(&app).await;
        let composer = composer_for(&app);
        let phone = "919800007006";
        let c = new_contact(&app, phone, None).await;
        opt_in_marketing(&app, phone).await;
        let stop = user_preferences(phone, "stop", now_secs());
        for _ in 0..2 {
            assert_eq!(app.post_webhook(&stop).await.status(), 200);
        }
        let log = log_of(&app).await;
        assert_eq!(log.len(), 2, "{log:#?}");
        assert_eq!(
            (log[1].change.as_str(), log[1].source.as_str()),
            ("opt_out", "user_preferences")
        );
        assert_eq!(log[1].contact_id, Some(c));
        assert_eq!(
            log[1].shown_text.as_deref(),
            Some("User requested to stop marketing messages")
        );
        let q = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap();
        assert_eq!(
            skipped_reason(&q),
            Some("consent_marketing_stopped_on_whatsapp")
        );
        // Service messages still go (Meta stops marketing only).
        let q = composer::queue(&app.db, &composer, notification(c, false))
            .await
            .unwrap();
        assert!(matches!(q, Queued::Row(_)), "{q:?}");
        app.post_webhook(&user_preferences(phone, "resume", now_secs() + 1))
            .await;
        let q = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap();
        assert!(matches!(q, Queued::Row(_)), "{q:?}");
    }
}

#[tokio::test]
async fn a_131050_from_meta_records_the_marketing_stop_so_the_next_campaign_is_not_sent() {
    for backend in backends() {
        let app = spawn(&backend).await;
        seed_marketing_template(&app).await;
        let composer = composer_for(&app);
        let phone = "919800007007";
        let c = new_contact(&app, phone, None).await;
        opt_in_marketing(&app, phone).await;
        app.fake.script(FailureRule::Next {
            count: 1,
            error: ScriptedError::new(400, 131050),
        });
        let Queued::Row(first) = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap()
        else {
            panic!("first campaign should be queued");
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let row = outbox::Entity::find_by_id(first)
                .one(&app.db)
                .await
                .unwrap()
                .unwrap();
            if row.state != "queued" {
                assert_eq!(
                    row.reason.map(|r| r.as_str()),
                    Some("marketing_stopped_by_user")
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let log = log_of(&app).await;
        assert_eq!(log.last().unwrap().source, "error_131050");
        let q = composer::queue(&app.db, &composer, campaign(c))
            .await
            .unwrap();
        assert_eq!(
            skipped_reason(&q),
            Some("consent_marketing_stopped_on_whatsapp")
        );
    }
}

#[tokio::test]
async fn consent_is_checked_again_at_send_time() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let composer = composer_for(&app);
        let phone = "919800007008";
        let c = new_contact(&app, phone, None).await;
        // Queued while allowed (consent unknown, service notification)...
        let stored = StoredIntent {
            purpose: Purpose::Notification {
                kind: "premium_due".into(),
                essential: false,
            },
            free_form: None,
            template: notification(c, false).template,
        };
        let contact = contact::Entity::find_by_id(c)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let before = composer::decide_for(
            &app.db,
            &composer,
            &contact,
            &stored,
            DecideContext::default(),
            false,
            now_ms(),
        )
        .await
        .unwrap();
        assert!(matches!(before, Decision::Send { .. }));
        // ... then the contact opts out of reminders only: the sender's decision refuses it.
        post_consent(
            &app,
            json!({ "phone": phone, "change": "opt_out", "scope": "reminders" }),
        )
        .await;
        let after = composer::decide_for(
            &app.db,
            &composer,
            &contact,
            &stored,
            DecideContext {
                in_reply_to: None,
                row_id: Some(1),
                consent: None,
                number: None,
                written_at: None,
            },
            false,
            now_ms(),
        )
        .await
        .unwrap();
        assert!(
            matches!(
                after,
                Decision::Skip {
                    reason: insurebot::store::entities::outbox::Reason::ConsentScopeOptedOut,
                    ..
                }
            ),
            "{after:?}"
        );
        // A service notification is not a reminder: it still goes.
        let mut service = stored.clone();
        service.purpose = Purpose::Notification {
            kind: "policy_issued".into(),
            essential: false,
        };
        let d = composer::decide(&app.db, &composer, &contact, &service, false, now_ms())
            .await
            .unwrap();
        assert!(matches!(d, Decision::Send { .. }), "{d:?}");
    }
}

#[tokio::test]
async fn require_opt_in_refuses_notifications_to_contacts_whose_consent_is_unknown() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let mut composer = composer_for(&app);
        let mut policy = (*composer.consent).clone();
        policy.require_opt_in = true;
        composer.consent = std::sync::Arc::new(policy);
        let c = new_contact(&app, "919800007009", None).await;
        let q = composer::queue(&app.db, &composer, notification(c, false))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_no_opt_in"));
        let q = composer::queue(&app.db, &composer, notification(c, true))
            .await
            .unwrap();
        assert!(matches!(q, Queued::Row(_)));
    }
}

#[tokio::test]
async fn the_consent_api_needs_the_token_validates_every_field_and_keeps_the_proof() {
    for backend in backends() {
        let app = spawn(&backend).await;
        let url = format!("{}/api/v1/consent", app.address);
        let r = app.http.post(&url).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = post_consent(
            &app,
            json!({ "phone": "12", "change": "opt_in", "scope": ["marketing", "everything"] }),
        )
        .await;
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        let fields: Vec<&str> = body["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["field"].as_str().unwrap())
            .collect();
        for f in ["phone", "scope", "proof.text", "proof.collected_at"] {
            assert!(fields.contains(&f), "{f} not in {body}");
        }
        // A national form is no WhatsApp number: refused with the reason, not stored as typed.
        let r = post_consent(
            &app,
            json!({ "phone": "09800007010", "change": "opt_out", "scope": "all" }),
        )
        .await;
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["problems"][0]["field"], "phone", "{body}");
        assert!(
            body["problems"][0]["problem"]
                .as_str()
                .unwrap()
                .contains("country code"),
            "{body}"
        );
        let r = app
            .http
            .post(&url)
            .bearer_auth(API_TOKEN)
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);

        // A number that never wrote to us: kept under its hash, applies when it does.
        let phone = "919800007010";
        let r = post_consent(
            &app,
            json!({ "phone": "+91 98000 07010", "change": "opt_in", "scope": ["service", "marketing"],
                    "proof": { "text": "I agree to receive policy updates and offers on WhatsApp.",
                               "collected_at": "2026-05-01T10:00:00+05:30", "detail": "web form v3" } }),
        )
        .await;
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["entries"].as_array().unwrap().len(), 2);
        assert_eq!(body["status"], "opted_in");
        let view: Value = app
            .http
            .get(format!("{url}/{phone}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(view["state"]["marketing"], true);
        let entry = &view["entries"][0];
        assert_eq!(entry["source"], "api");
        assert_eq!(
            entry["shown_text"],
            "I agree to receive policy updates and offers on WhatsApp."
        );
        assert_eq!(entry["detail"], "web form v3");
        assert_eq!(entry["occurred_at"], 1_777_609_800_000_i64);
        // The contact that appears later sees it.
        let c = new_contact(&app, phone, None).await;
        let contact = contact::Entity::find_by_id(c)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let hasher = AddressHasher::new(SecretString::from(HASH_KEY));
        let state = insurebot::consent::state_of(&app.db, &hasher, &contact)
            .await
            .unwrap();
        assert!(state.allows_marketing());
    }
}

#[tokio::test]
async fn erasure_removes_personal_data_with_a_receipt_and_the_opt_out_survives_it() {
    for backend in backends() {
        let app = spawn_flows(&backend).await;
        let phone = "919800007011";
        let ts = now_secs();
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts,
            "claim",
        )]))
        .await;
        app.wait_for_sends(1).await;
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 1,
            "STOP",
        )]))
        .await;
        app.wait_for_sends(2).await;
        let old = contact::Entity::find()
            .filter(contact::Column::WaId.eq(phone))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();

        // A campaign that has not reached the contact yet, and a premium reminder it was sent.
        let campaign_id = campaign::Entity::insert(campaign::ActiveModel {
            id: NotSet,
            name: Set("Renewal offer".into()),
            template: Set("renewal_offer".into()),
            language: Set("en".into()),
            state: Set(campaign::State::Draft),
            rate_per_second: Set(10),
            start_at: Set(now_ms()),
            audience_kind: Set("csv".into()),
            audience_detail: Set("test".into()),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now_ms()),
            updated_at: Set(now_ms()),
            started_at: Set(None),
            finished_at: Set(None),
            phone_number_id: Set(None),
        })
        .exec(&app.db)
        .await
        .unwrap()
        .last_insert_id;
        campaign_recipient::Entity::insert(campaign_recipient::ActiveModel {
            id: NotSet,
            campaign_id: Set(campaign_id),
            contact_id: Set(old.id),
            params: Set(r#"["Asha","POL-12345678"]"#.into()),
            language: Set("en".into()),
            state: Set(campaign_recipient::State::Pending),
            reason: Set(None),
            outbox_id: Set(None),
            queued_at: Set(None),
        })
        .exec(&app.db)
        .await
        .unwrap();
        reminder_send::Entity::insert(reminder_send::ActiveModel {
            id: NotSet,
            policy_number: Set("POL-12345678".into()),
            due_date: Set("2026-12-01".into()),
            offset_days: Set(7),
            kind: Set("scheduled".into()),
            contact_id: Set(Some(old.id)),
            outbox_id: Set(None),
            state: Set(reminder_send::State::Queued),
            reason: Set(None),
            run_date: Set("2026-11-24".into()),
            created_at: Set(now_ms()),
        })
        .exec(&app.db)
        .await
        .unwrap();

        let erase = |p: &str| {
            app.http
                .delete(format!("{}/api/v1/contacts/{p}", app.address))
                .bearer_auth(API_TOKEN)
                .send()
        };
        assert_eq!(erase("abc").await.unwrap().status(), 422);
        assert_eq!(erase("919800000000").await.unwrap().status(), 404);
        let r = erase(phone).await.unwrap();
        assert_eq!(r.status(), 200);
        let receipt: Value = r.json().await.unwrap();
        assert_eq!(receipt["contact_id"], old.id);
        assert_eq!(receipt["tables"]["inbound_messages"], 2, "{receipt}");
        assert_eq!(receipt["tables"]["outbox"], 2, "{receipt}");
        assert_eq!(receipt["tables"]["conversations"], 1, "{receipt}");
        assert_eq!(receipt["tables"]["contacts"], 1, "{receipt}");
        for table in [
            "handoffs",
            "identity_verifications",
            "identity_attempts",
            "premium_reminders",
        ] {
            assert!(receipt["tables"][table].is_u64(), "{table}: {receipt}");
        }
        assert_eq!(receipt["tables"]["campaign_recipients"], 1, "{receipt}");
        assert_eq!(
            receipt["tables"]["campaign_recipients (pending, skipped)"], 1,
            "{receipt}"
        );
        assert_eq!(
            receipt["tables"]["reminder_sends (unlinked)"], 1,
            "{receipt}"
        );
        let recipient = campaign_recipient::Entity::find()
            .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (recipient.params.as_str(), recipient.state.as_str()),
            ("[]", "skipped")
        );
        assert_eq!(recipient.reason.as_deref(), Some("erased"));
        let reminder = reminder_send::Entity::find()
            .filter(reminder_send::Column::PolicyNumber.eq("POL-12345678"))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reminder.contact_id, None);
        assert_eq!(receipt["consent_entries_kept"], 1, "{receipt}");

        let tomb = contact::Entity::find_by_id(old.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (tomb.wa_id, tomb.user_id, tomb.profile_name),
            (None, None, None)
        );
        let messages = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(old.id))
            .all(&app.db)
            .await
            .unwrap();
        assert!(
            messages
                .iter()
                .all(|m| m.content.is_none() && m.raw.is_none())
        );
        let rows = outbox::Entity::find()
            .filter(outbox::Column::ContactId.eq(old.id))
            .all(&app.db)
            .await
            .unwrap();
        assert!(
            rows.iter().all(|r| !r.payload.contains("claim")),
            "{rows:#?}"
        );
        assert!(
            conversation::Entity::find_by_id(old.id)
                .one(&app.db)
                .await
                .unwrap()
                .is_none()
        );
        let log = log_of(&app).await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].change, "opt_out");

        // The same number writes again: a new contact, still opted out.
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            ts + 5,
            "hello",
        )]))
        .await;
        let sent = app.wait_for_sends(3).await;
        assert!(text_of(&sent[2]).contains("START"), "{:?}", sent[2]);
        let new = contact::Entity::find()
            .filter(contact::Column::WaId.eq(phone))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(new.id, old.id);
        let composer = composer_for(&app);
        let q = composer::queue(&app.db, &composer, notification(new.id, false))
            .await
            .unwrap();
        assert_eq!(skipped_reason(&q), Some("consent_opted_out"));
        app.assert_no_more_sends(3).await;
    }
}

#[tokio::test]
async fn retention_purges_old_bodies_and_keeps_recent_and_pending_ones() {
    for backend in backends() {
        // Stopped before the rows exist: a running pipeline's sweep would process the pending
        // message, and the purge would then (rightly) count two.
        let mut app = spawn(&backend).await;
        app.shutdown().await;
        let c = new_contact(&app, "919800007012", None).await;
        let day = 24 * HOUR_MS;
        let mut ids = Vec::new();
        for (i, (age, processed)) in [(40 * day, true), (40 * day, false), (day, true)]
            .into_iter()
            .enumerate()
        {
            let at = now_ms() - age;
            let row = inbound_message::ActiveModel {
                id: NotSet,
                wamid: Set(format!("{}-{i}", new_wamid())),
                contact_id: Set(c),
                phone_number_id: Set(None),
                msg_type: Set("text".into()),
                content: Set(Some(r#"{"type":"text","body":"my policy"}"#.into())),
                raw: Set(Some("{}".into())),
                sent_at: Set(at),
                received_at: Set(at),
                processed_at: Set(processed.then_some(at)),
                attempts: Set(0),
                last_error: Set(None),
            };
            ids.push(
                inbound_message::Entity::insert(row)
                    .exec(&app.db)
                    .await
                    .unwrap()
                    .last_insert_id,
            );
        }
        // Flow hops (no contact in them) go when they are as old.
        for age in [40 * day, day] {
            flow_hop::Entity::insert(flow_hop::ActiveModel {
                from_flow: Set(None),
                from_state: Set(None),
                to_kind: Set("end".into()),
                to_flow: Set(None),
                to_state: Set(None),
                at: Set(now_ms() - age),
                ..Default::default()
            })
            .exec(&app.db)
            .await
            .unwrap();
        }
        let report = insurebot::consent::erasure::purge_older_than(&app.db, None, 30, now_ms())
            .await
            .unwrap();
        assert_eq!(report.inbound_messages, 1);
        assert_eq!(report.flow_hops, 1);
        assert_eq!(flow_hop::Entity::find().count(&app.db).await.unwrap(), 1);
        let content = |id| {
            let db = app.db.clone();
            async move {
                inbound_message::Entity::find_by_id(id)
                    .one(&db)
                    .await
                    .unwrap()
                    .unwrap()
                    .content
            }
        };
        assert!(content(ids[0]).await.is_none());
        assert!(
            content(ids[1]).await.is_some(),
            "unprocessed messages are kept"
        );
        assert!(content(ids[2]).await.is_some());
    }
}
