//! The consent property (issue 6): random sequences of inbound messages (including STOP and
//! START in three languages, and the offers opt-in prompt), Meta's `user_preferences`
//! stop/resume, notifications (essential or not, free-form or template), campaign sends with a
//! MARKETING template and agent replies never produce
//! - a non-essential message to an opted-out contact (except a free-form reply or agent
//!   message to a message the contact sent at or after their STOP: they wrote to us), nor
//! - a marketing message without a marketing opt-in (or after WhatsApp's own stop), nor more
//!   campaign messages than the frequency cap.
//!
//! It runs the production code end to end without HTTP: `ingest` for webhooks, the real
//! `FlowRunner` (engine + consent recording) for inbound messages, `composer::queue` for
//! proactive sends, and at "send time" `composer::decide_for` (what the sender calls) plus
//! `outbox::record_attempt`. The expected consent is computed by the test's own fold of the
//! raw log rows, and cross-checked against the keywords the contact sent.

use std::path::Path;
use std::sync::Arc;

use insurebot::config::{DatabaseUrl, Settings};
use insurebot::consent::AddressHasher;
use insurebot::dialogue::FlowRunner;
use insurebot::dialogue::flows::FlowStore;
use insurebot::engine::flowset::EngineSettings;
use insurebot::engine::templates_file;
use insurebot::ingest::pipeline::{MessageHandler, PendingMessage};
use insurebot::ingest::store;
use insurebot::insurer::Insurer;
use insurebot::messaging::composer::{
    self, Composer, DecideContext, Decision, Intent, Purpose, StoredIntent, TemplateChoice,
};
use insurebot::messaging::outbox::{self, AttemptResult};
use insurebot::messaging::templates;
use insurebot::store::entities::{consent_log, contact, inbound_message, outbox as outbox_row};
use insurebot::whatsapp::inbound::parse_webhook;
use insurebot::whatsapp::outbound::OutboundBody;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::*;

const OPT_OUT_WORDS: &[&str] = &[
    "STOP",
    "stop ",
    "Stop all",
    "unsubscribe",
    "बंद करें",
    "நிறுத்து",
];
const OPT_IN_WORDS: &[&str] = &["START", "start", "शुरू", "தொடங்கு"];
const OTHER_WORDS: &[&str] = &["hello", "menu", "claim", "please stop the bill", "offers"];
const CAP: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    /// The contact writes; `old` backdates the message 30 hours (window closed).
    Say {
        text: &'static str,
        old: bool,
    },
    /// "offers", then the two taps of the opt-in prompt: Get offers, Yes.
    OffersYes,
    /// Meta's marketing stop (true) or resume.
    WhatsAppPreference {
        stop: bool,
    },
    Notify {
        essential: bool,
        free_form: bool,
    },
    Campaign {
        free_form: bool,
    },
    /// An agent's message, linked to the contact's latest message or not.
    Agent {
        linked: bool,
    },
    /// The sender decides on every queued row.
    Send,
}

fn op() -> impl Strategy<Value = Op> {
    let words: Vec<&'static str> = OPT_OUT_WORDS
        .iter()
        .chain(OPT_IN_WORDS)
        .chain(OTHER_WORDS)
        .copied()
        .collect();
    prop_oneof![
        4 => (prop::sample::select(words), prop::bool::weighted(0.2))
            .prop_map(|(text, old)| Op::Say { text, old }),
        2 => Just(Op::OffersYes),
        1 => any::<bool>().prop_map(|stop| Op::WhatsAppPreference { stop }),
        3 => (any::<bool>(), any::<bool>())
            .prop_map(|(essential, free_form)| Op::Notify { essential, free_form }),
        3 => any::<bool>().prop_map(|free_form| Op::Campaign { free_form }),
        1 => any::<bool>().prop_map(|linked| Op::Agent { linked }),
        3 => Just(Op::Send),
    ]
}

/// The test's own reading of the log (not the production fold).
#[derive(Debug, Default, Clone)]
struct Expected {
    opted_out: bool,
    marketing: bool,
    whatsapp_stop: bool,
}

fn expected(log: &[consent_log::Model]) -> Expected {
    let mut e = Expected::default();
    for row in log {
        match (row.change.as_str(), row.scope.as_str(), row.source.as_str()) {
            ("opt_out", "all", _) => {
                e.opted_out = true;
                e.marketing = false;
            }
            ("opt_in", "service", _) => e.opted_out = false,
            (change, "marketing", "user_preferences" | "error_131050") => {
                e.whatsapp_stop = change == "opt_out"
            }
            ("opt_in", "marketing", _) => e.marketing = true,
            ("opt_out", "marketing", _) => e.marketing = false,
            _ => {}
        }
    }
    e
}

struct World {
    db: DatabaseConnection,
    composer: Composer,
    runner: FlowRunner,
    hasher: AddressHasher,
    next_phone: std::sync::atomic::AtomicU64,
    _db: TestDb,
}

/// One case's contact and what the test knows about it.
struct Case {
    contact_id: i64,
    phone: String,
    /// Id of the latest inbound opt-out keyword message (a reply to it or later may go).
    stop_point: Option<i64>,
    ts: i64,
}

impl World {
    async fn new(backend: &Backend) -> World {
        let test_db = TestDb::create(backend).await;
        let db = insurebot::store::connect(&DatabaseUrl::new(test_db.url.clone()))
            .await
            .unwrap();
        insurebot::store::migrate(&db).await.unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let defs = templates_file::load_file(&root.join("flows/templates/templates.yaml")).unwrap();
        templates::seed(&db, &defs, &[String::new()], 0)
            .await
            .unwrap();
        let marketing = templates_file::parse_file(
            Path::new("test.yaml"),
            "templates:\n  - name: renewal_offer\n    category: MARKETING\n    languages: [en]\n    params: [discount]\n",
        )
        .unwrap();
        templates::seed(&db, &marketing, &[String::new()], 0)
            .await
            .unwrap();
        let mut settings = Settings::default();
        settings.privacy.hash_key = Some(SecretString::from(HASH_KEY));
        settings.consent.marketing_cap = CAP;
        let composer = Composer::from_settings(&settings);
        let flows = FlowStore::load(
            &root.join("flows"),
            &root.join("locales"),
            EngineSettings::default(),
        )
        .unwrap();
        let runner = FlowRunner {
            flows: Arc::new(flows),
            actions: Arc::new(Insurer::from_settings(&settings.insurer, db.clone()).unwrap()),
            composer: composer.clone(),
            default_language: "en".into(),
            lines: Default::default(),
            office_hours: None,
            agent_idle_close: None,
            agent_reply_limit: None,
            media_limits: Default::default(),
            media_store: None,
            nlu: None,
            understood: Default::default(),
        };
        World {
            db,
            hasher: AddressHasher::new(settings.hash_key()),
            composer,
            runner,
            next_phone: std::sync::atomic::AtomicU64::new(1),
            _db: test_db,
        }
    }

    async fn run(&self, ops: &[Op]) -> Result<(), TestCaseError> {
        let n = self
            .next_phone
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let phone = format!("9198{n:08}");
        let now = chrono::Utc::now().timestamp_millis();
        let contact_id = contact::Entity::insert(contact::ActiveModel {
            id: NotSet,
            wa_id: Set(Some(phone.clone())),
            user_id: Set(None),
            profile_name: Set(None),
            last_inbound_at: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(&self.db)
        .await
        .unwrap()
        .last_insert_id;
        let mut case = Case {
            contact_id,
            phone,
            stop_point: None,
            ts: now_secs(),
        };
        for op in ops.iter().chain([&Op::Send]) {
            self.apply(&mut case, op).await?;
        }
        Ok(())
    }

    async fn apply(&self, case: &mut Case, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Say { text, old } => {
                let id = self.say(case, text, *old).await;
                let log = self.log(case).await;
                if OPT_OUT_WORDS.contains(text) {
                    case.stop_point = Some(id);
                    prop_assert!(expected(&log).opted_out, "STOP not recorded: {log:#?}");
                }
                if OPT_IN_WORDS.contains(text) {
                    prop_assert!(!expected(&log).opted_out, "START not recorded: {log:#?}");
                }
            }
            Op::OffersYes => {
                self.say(case, "offers", false).await;
                self.tap(case, "prefs.offers", "Get offers").await;
                self.tap(case, "prefs.offers.yes", "Yes, send offers").await;
            }
            Op::WhatsAppPreference { stop } => {
                case.ts += 1;
                let body = json!({
                    "object": "whatsapp_business_account",
                    "entry": [{ "id": "1", "changes": [{ "field": "user_preferences", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": { "display_phone_number": "1", "phone_number_id": PHONE_NUMBER_ID },
                        "user_preferences": [{ "wa_id": case.phone, "category": "marketing_messages",
                            "value": if *stop { "stop" } else { "resume" }, "timestamp": case.ts }]
                    }}]}]
                });
                self.ingest(&body.to_string()).await;
            }
            Op::Notify {
                essential,
                free_form,
            } => {
                let (kind, template, params) = if *essential {
                    (
                        "claim_update",
                        "claim_status_update",
                        vec!["CLM-1", "Approved"],
                    )
                } else {
                    (
                        "premium_due",
                        "premium_due_reminder",
                        vec!["P1", "Rs 1", "1 June"],
                    )
                };
                self.queue(Intent {
                    contact_id: case.contact_id,
                    in_reply_to: None,
                    purpose: Purpose::Notification {
                        kind: kind.into(),
                        essential: *essential,
                    },
                    free_form: free_form.then(|| text("notice")),
                    template: Some(choice(template, &params)),
                })
                .await;
            }
            Op::Campaign { free_form } => {
                self.queue(Intent {
                    contact_id: case.contact_id,
                    in_reply_to: None,
                    purpose: Purpose::Campaign { campaign_id: 7 },
                    free_form: free_form.then(|| text("10% off your renewal")),
                    template: Some(choice("renewal_offer", &["10%"])),
                })
                .await;
            }
            Op::Agent { linked } => {
                let latest = inbound_message::Entity::find()
                    .filter(inbound_message::Column::ContactId.eq(case.contact_id))
                    .order_by_desc(inbound_message::Column::Id)
                    .one(&self.db)
                    .await
                    .unwrap();
                self.queue(Intent {
                    contact_id: case.contact_id,
                    in_reply_to: if *linked { latest.map(|m| m.id) } else { None },
                    purpose: Purpose::Agent,
                    free_form: Some(text("an agent writes")),
                    template: None,
                })
                .await;
            }
            Op::Send => self.send_all(case).await?,
        }
        Ok(())
    }

    async fn log(&self, case: &Case) -> Vec<consent_log::Model> {
        consent_log::Entity::find()
            .filter(
                consent_log::Column::ContactId
                    .eq(case.contact_id)
                    .or(consent_log::Column::AddressHash.eq(self.hasher.hash(&case.phone))),
            )
            .order_by_asc(consent_log::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    async fn ingest(&self, body: &str) {
        let events = parse_webhook(body.as_bytes()).unwrap();
        store::ingest(
            &self.db,
            &events,
            &self.hasher,
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .unwrap();
    }

    /// Ingests one message and runs the real flow runner on it; returns its id.
    async fn deliver(&self, case: &mut Case, message: serde_json::Value) -> i64 {
        let wamid = message["id"].as_str().unwrap().to_owned();
        self.ingest(&envelope(vec![message])).await;
        let row = inbound_message::Entity::find()
            .filter(inbound_message::Column::Wamid.eq(wamid.clone()))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap();
        let pending = PendingMessage {
            id: row.id,
            wamid,
            contact_id: case.contact_id,
            sent_at: row.sent_at,
            phone_number_id: row.phone_number_id.clone(),
            content: serde_json::from_str(row.content.as_deref().unwrap()).unwrap(),
            contact: None,
            fresh: None,
            prefetched: None,
        };
        let txn = self.db.begin().await.unwrap();
        self.runner.handle(&txn, &pending).await.unwrap();
        txn.commit().await.unwrap();
        row.id
    }

    async fn say(&self, case: &mut Case, body: &str, old: bool) -> i64 {
        case.ts += 1;
        let ts = if old { case.ts - 30 * 3600 } else { case.ts };
        let message = text_message(&case.phone, &new_wamid(), ts, body);
        self.deliver(case, message).await
    }

    async fn tap(&self, case: &mut Case, id: &str, title: &str) -> i64 {
        case.ts += 1;
        let message = json!({ "from": case.phone, "id": new_wamid(), "timestamp": case.ts.to_string(),
            "type": "interactive", "interactive": { "type": "button_reply",
            "button_reply": { "id": id, "title": title } } });
        self.deliver(case, message).await
    }

    async fn queue(&self, intent: Intent) {
        composer::queue(&self.db, &self.composer, intent)
            .await
            .unwrap();
    }

    /// The sender's decision on every queued row, in order, checking the property on each
    /// message that would go.
    async fn send_all(&self, case: &Case) -> Result<(), TestCaseError> {
        let rows = outbox_row::Entity::find()
            .filter(outbox_row::Column::ContactId.eq(case.contact_id))
            .filter(outbox_row::Column::State.eq(outbox_row::State::Queued))
            .order_by_asc(outbox_row::Column::Id)
            .all(&self.db)
            .await
            .unwrap();
        for row in rows {
            let contact = contact::Entity::find_by_id(case.contact_id)
                .one(&self.db)
                .await
                .unwrap()
                .unwrap();
            let intent = StoredIntent::from_payload(&row.payload).unwrap();
            let decision = composer::decide_for(
                &self.db,
                &self.composer,
                &contact,
                &intent,
                DecideContext {
                    in_reply_to: row.in_reply_to,
                    row_id: Some(row.id),
                    consent: None,
                    number: row.phone_number_id.as_deref(),
                    written_at: None,
                },
                row.fallback,
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .unwrap();
            let result = match decision {
                Decision::Skip { reason, detail } => AttemptResult::Skipped { reason, detail },
                Decision::Send {
                    sent_as, template, ..
                } => {
                    self.check(case, &row, &intent, sent_as, template.as_deref())
                        .await?;
                    AttemptResult::Sent {
                        wamid: format!("wamid.sent.{}", row.id),
                        sent_as,
                    }
                }
            };
            outbox::record_attempt(&self.db, &row, &result)
                .await
                .unwrap();
        }
        Ok(())
    }

    async fn check(
        &self,
        case: &Case,
        row: &outbox_row::Model,
        intent: &StoredIntent,
        sent_as: &str,
        template: Option<&templates::TemplateInfo>,
    ) -> Result<(), TestCaseError> {
        let log = self.log(case).await;
        let e = expected(&log);
        let marketing = matches!(intent.purpose, Purpose::Campaign { .. })
            || template.is_some_and(|t| t.category == "MARKETING");
        if marketing {
            prop_assert!(
                e.marketing && !e.whatsapp_stop && !e.opted_out,
                "marketing sent without opt-in: {e:?} {intent:?} {log:#?}"
            );
            let sent_campaigns = outbox_row::Entity::find()
                .filter(outbox_row::Column::ContactId.eq(case.contact_id))
                .filter(outbox_row::Column::Purpose.eq("campaign"))
                .filter(outbox_row::Column::State.eq(outbox_row::State::Sent))
                .all(&self.db)
                .await
                .unwrap()
                .len();
            prop_assert!(
                sent_campaigns < CAP as usize,
                "over the cap: {sent_campaigns} sent"
            );
        } else if e.opted_out {
            let essential_template = sent_as == "template"
                && template.is_some_and(|t| t.essential)
                && !matches!(
                    intent.purpose,
                    Purpose::Notification {
                        essential: false,
                        ..
                    }
                );
            // The same essential notice may go free-form inside the window when its template
            // fallback is marked essential in the registry.
            let essential_notice_free_form = sent_as == "free_form"
                && matches!(
                    intent.purpose,
                    Purpose::Notification {
                        essential: true,
                        ..
                    }
                )
                && match &intent.template {
                    Some(t) => templates::lookup(&self.db, "", &t.name, &t.language)
                        .await
                        .unwrap()
                        .is_some_and(|t| t.essential),
                    None => false,
                };
            let reply_to_what_they_just_sent =
                matches!(intent.purpose, Purpose::Reply | Purpose::Agent)
                    && sent_as == "free_form"
                    && row
                        .in_reply_to
                        .zip(case.stop_point)
                        .is_some_and(|(to, stop)| to >= stop);
            prop_assert!(
                essential_template || essential_notice_free_form || reply_to_what_they_just_sent,
                "non-essential message to an opted-out contact: {intent:?} as {sent_as}, in reply to {:?} (STOP at {:?})",
                row.in_reply_to,
                case.stop_point
            );
        }
        Ok(())
    }
}

fn text(body: &str) -> OutboundBody {
    OutboundBody::Text {
        body: body.into(),
        preview_url: false,
    }
}

fn choice(name: &str, params: &[&str]) -> TemplateChoice {
    TemplateChoice {
        name: name.into(),
        language: "en".into(),
        params: params.iter().map(|p| (*p).to_owned()).collect(),
    }
}

#[test]
fn no_sequence_sends_non_essential_messages_after_an_opt_out_or_marketing_without_opt_in() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for backend in backends() {
        let world = rt.block_on(World::new(&backend));
        let cases = match backend {
            Backend::Sqlite => 128,
            Backend::Postgres(_) => 32,
        };
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        });
        let outcome = runner.run(&prop::collection::vec(op(), 1..24), |ops| {
            rt.block_on(world.run(&ops))
        });
        if let Err(e) = outcome {
            panic!("{backend:?}: {e}");
        }
    }
}
