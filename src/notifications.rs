//! Notifications the insurer's systems ask for (issue 5, part 4): a claim update, a premium
//! due or an issued policy, told to a policyholder. This module owns the kinds, who a
//! notification goes to, its text, and queueing it once per idempotency key; the HTTP API
//! (`http::notifications`) only parses and validates the request and maps the errors here to
//! answers.
//!
//! Each kind maps to a template of the registry (used outside the 24-hour window) and a
//! free-form text (used inside it); both are handed to [`composer::queue`], which decides
//! window, template and consent, now and again at send time. Whether the notification is
//! essential (may reach a contact who opted out) is the template's registry flag, never the
//! caller's word.
//!
//! A notification for a policy goes to the mobile registered on it, read through the configured
//! policy source (the embedded tables or the insurer's own API, the same
//! [`PolicySource`](crate::insurer::PolicySource) the flow actions use), before any transaction
//! starts: a slow insurer API never holds a database transaction or SQLite's write gate. When
//! that API fails nothing is stored under the key, so the caller retries.
//!
//! The key, a hash of the request and the answer are stored in `notification_requests` in the
//! same transaction as the outbox row: a repeat with the same key and request gets the first
//! answer and queues nothing; the same key with another request is refused. The key is unique,
//! so concurrent repeats queue once.

use std::collections::BTreeMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
};
use serde_json::{Value, json};

use crate::engine::i18n::{I18n, display_string};
use crate::ingest::pipeline::Pipeline;
use crate::insurer::{Insurer, SourceError};
use crate::messaging::composer::{
    self, ComposeError, Composer, Intent, Purpose, Queued, TemplateChoice,
};
use crate::messaging::templates;
use crate::phone::PhoneNumber;
use crate::store::entities::{conversation, notification_request};
use crate::store::{begin_write, now_ms};
use crate::whatsapp::outbound::OutboundBody;

/// One notification kind: its template, the `data` fields that become the template's
/// parameters (in order) and the free-form text for inside the window.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub template: &'static str,
    pub fields: &'static [&'static str],
    /// The free-form text's message id in `locales/<lang>/notifications.ftl` (the fields are
    /// its arguments), rendered in the contact's language.
    pub message: &'static str,
    /// The English text with `{field}` placeholders, used when no locale is loaded (the echo
    /// handler loads none).
    pub text: &'static str,
}

/// The kinds the API accepts.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "claim_update",
        template: "claim_status_update",
        fields: &["claim_number", "claim_stage"],
        message: "notify-claim-update",
        text: "Your claim {claim_number} is now: {claim_stage}.",
    },
    Kind {
        name: "premium_due",
        template: "premium_due_reminder",
        fields: &["policy_number", "premium_amount", "due_date"],
        message: "notify-premium-due",
        text: "The premium of {premium_amount} for policy {policy_number} is due on {due_date}.",
    },
    Kind {
        name: "policy_issued",
        // Its own template: `policy_summary` answers a lookup (Menu button only), this one
        // announces a new policy and offers its document.
        template: "policy_issued",
        fields: &["policy_number", "plan", "policy_status"],
        message: "notify-policy-issued",
        text: "Your policy {policy_number} ({plan}) has been issued and is {policy_status}.",
    },
];

/// Who a notification (or a one-time password) goes to.
#[derive(Debug)]
pub enum Target {
    /// A normalised policy number: the mobile registered on it.
    Policy(String),
    /// A normalised phone number.
    Phone(String),
}

/// Why the recipient of a notification is not known.
#[derive(Debug)]
pub enum NoRecipient {
    /// No policy with this number in the source.
    UnknownPolicy(String),
    /// The policy has no (valid) registered mobile number.
    NoMobile,
    /// The policy source did not answer (database, or the insurer's API); worth a retry.
    SourceDown(SourceError),
}

/// Who a notification (or a one-time password) goes to, and the line it belongs to.
#[derive(Debug)]
pub struct Addressee {
    /// The phone number it goes to.
    pub phone: String,
    /// The business number (phone number id) of the policy named, when it names one: what
    /// the message leaves from unless the caller chose another.
    pub line: Option<String>,
}

/// The phone number a notification goes to: the one given, or the mobile registered on the
/// policy in the configured source (with the business number the policy belongs to).
///
/// # Errors
/// [`NoRecipient`] says why there is none.
pub async fn recipient(insurer: &Insurer, target: &Target) -> Result<Addressee, NoRecipient> {
    let number = match target {
        Target::Phone(phone) => {
            return Ok(Addressee {
                phone: phone.clone(),
                line: None,
            });
        }
        Target::Policy(number) => number,
    };
    let policy = insurer
        .source()
        .policy(number)
        .await
        .map_err(NoRecipient::SourceDown)?
        .ok_or_else(|| NoRecipient::UnknownPolicy(number.clone()))?;
    policy
        .mobile
        .as_deref()
        // The insurer's systems store mobiles as their exports do (often without +91).
        .and_then(|m| PhoneNumber::from_export(m).ok())
        .map(|phone| Addressee {
            phone: phone.into_string(),
            line: policy.number.clone(),
        })
        .ok_or(NoRecipient::NoMobile)
}

/// The built-in English text (policy numbers masked, as in every chat message).
pub fn render_text(kind: &Kind, params: &[String]) -> String {
    let mut text = kind.text.to_owned();
    for (field, value) in kind.fields.iter().zip(params) {
        text = text.replace(&format!("{{{field}}}"), &display_string(field, value));
    }
    text
}

/// The free-form text in `language` from the live locales, else in English, else the kind's
/// built-in text.
pub fn free_form_text(
    i18n: Option<&I18n>,
    kind: &Kind,
    params: &[String],
    language: &str,
) -> String {
    let Some(i18n) = i18n else {
        return render_text(kind, params);
    };
    let slots: BTreeMap<String, Value> = kind
        .fields
        .iter()
        .zip(params)
        .map(|(field, value)| ((*field).to_owned(), json!(value)))
        .collect();
    [language, "en"]
        .into_iter()
        .find(|lang| i18n.has(lang, kind.message))
        .map_or_else(
            || render_text(kind, params),
            // Data values (a policy status) read in that language, as in the bot's replies.
            |lang| i18n.render_lossy(lang, kind.message, Some(&i18n.args_in(lang, &slots))),
        )
}

/// A validated notification request.
#[derive(Debug)]
pub struct Request {
    /// The caller's idempotency key.
    pub key: String,
    /// A hash of the request as the caller sent it: a repeat under the key must match it.
    pub hash: String,
    pub kind: &'static Kind,
    pub target: Target,
    /// The template's parameters, in the order of `kind.fields`.
    pub params: Vec<String>,
    /// The business number it leaves from (checked to be configured); `None`: the policy's
    /// when it names a policy that has one, else the one the contact last wrote to, else the
    /// deployment's first.
    pub number: Option<String>,
}

/// The answer stored under a key: the first call's, given again to every repeat.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status the answer was given with.
    pub status: u16,
    pub body: Value,
}

/// Why a notification was not queued.
#[derive(Debug)]
pub enum NotifyError {
    /// The key was used before with another request.
    KeyReused,
    /// The recipient is not known (see [`NoRecipient`]); nothing was stored.
    NoRecipient(NoRecipient),
    /// The parameters make a message WhatsApp refuses; nothing was stored.
    Refused(String),
    Db(DbErr),
}

impl From<DbErr> for NotifyError {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

/// What queueing a notification needs, borrowed from the app.
pub struct Notifier<'a> {
    pub db: &'a DatabaseConnection,
    pub insurer: &'a Insurer,
    pub composer: &'a Composer,
    /// Woken for the contact once a message is queued.
    pub pipeline: &'a Pipeline,
    /// The flows' live locales (reloaded with the flows); none with the echo handler.
    pub i18n: Option<&'a I18n>,
    /// The language of a contact who has never chatted.
    pub default_language: &'a str,
}

/// The status a queued (or skipped) notification is answered with.
const ACCEPTED: u16 = 202;

impl Notifier<'_> {
    /// Queues `request` once per key: the first call queues and stores its answer, a repeat
    /// gets that answer back and queues nothing.
    ///
    /// # Errors
    /// [`NotifyError`]: the key reused with another request, no recipient, a message WhatsApp
    /// refuses, or the database.
    pub async fn notify(&self, request: &Request) -> Result<Answer, NotifyError> {
        if let Some(row) = find_key(self.db, &request.key).await? {
            return replay(&row, &request.hash);
        }
        let Addressee { phone, line } = recipient(self.insurer, &request.target)
            .await
            .map_err(NotifyError::NoRecipient)?;
        let number = request.number.clone().or(line);
        let now = now_ms();
        let txn = begin_write(self.db).await?;
        // Claim the key first: a concurrent request with the same key waits here (PostgreSQL)
        // or behind the write gate (SQLite), then finds the committed answer.
        let claimed = notification_request::Entity::insert(notification_request::ActiveModel {
            id: NotSet,
            idempotency_key: Set(request.key.clone()),
            request_hash: Set(request.hash.clone()),
            kind: Set(request.kind.name.to_owned()),
            outbox_id: Set(None),
            status_code: Set(0),
            response: Set(String::new()),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(notification_request::Column::IdempotencyKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        if claimed == 0 {
            txn.rollback().await?;
            let row = find_key(self.db, &request.key)
                .await?
                .ok_or_else(vanished)?;
            return replay(&row, &request.hash);
        }
        let row = find_key(&txn, &request.key).await?.ok_or_else(vanished)?;

        let contact_id = crate::store::contacts::contact_for_phone(&txn, &phone, now).await?;
        let language = conversation::Entity::find()
            .filter(conversation::Column::ContactId.eq(contact_id))
            .one(&txn)
            .await?
            .map_or_else(|| self.default_language.to_owned(), |c| c.language);
        let kind = request.kind;
        // The registry's flag decides whether this may reach a contact who opted out.
        let essential = templates::definition(&txn, kind.template, &language)
            .await?
            .is_some_and(|t| t.essential);
        let intent = Intent {
            contact_id,
            in_reply_to: None,
            purpose: Purpose::Notification {
                kind: kind.name.to_owned(),
                essential,
            },
            free_form: Some(OutboundBody::Text {
                body: free_form_text(self.i18n, kind, &request.params, &language),
                preview_url: false,
            }),
            template: Some(TemplateChoice {
                name: kind.template.to_owned(),
                language,
                params: request.params.clone(),
            }),
        };
        let queued =
            match composer::queue_from(&txn, self.composer, intent, number.as_deref()).await {
                Ok(q) => q,
                Err(ComposeError::Invalid(e)) => {
                    txn.rollback().await?;
                    return Err(NotifyError::Refused(e.to_string()));
                }
                Err(ComposeError::Db(e)) => return Err(e.into()),
                Err(e) => return Err(DbErr::Custom(e.to_string()).into()),
            };
        let (outbox_id, body) = match &queued {
            Queued::Row(id) => (
                *id,
                json!({ "notification_id": row.id, "outbox_id": id, "state": "queued" }),
            ),
            Queued::Skipped { row: id, reason } => (
                *id,
                json!({ "notification_id": row.id, "outbox_id": id, "state": "skipped", "reason": reason }),
            ),
        };
        notification_request::Entity::update(notification_request::ActiveModel {
            id: Set(row.id),
            outbox_id: Set(Some(outbox_id)),
            status_code: Set(i32::from(ACCEPTED)),
            response: Set(body.to_string()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        if matches!(queued, Queued::Row(_)) {
            self.pipeline.notify(contact_id);
        }
        tracing::info!(
            notification_id = row.id,
            outbox_id,
            kind = kind.name,
            "notification queued"
        );
        Ok(Answer {
            status: ACCEPTED,
            body,
        })
    }
}

fn vanished() -> DbErr {
    DbErr::Custom("idempotency row vanished".into())
}

/// The stored answer of `row` for a repeat with the same `hash`; another hash is refused.
fn replay(row: &notification_request::Model, hash: &str) -> Result<Answer, NotifyError> {
    if row.request_hash != hash {
        return Err(NotifyError::KeyReused);
    }
    Ok(Answer {
        status: u16::try_from(row.status_code).unwrap_or(ACCEPTED),
        body: serde_json::from_str(&row.response).unwrap_or(Value::Null),
    })
}

async fn find_key<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<notification_request::Model>, DbErr> {
    notification_request::Entity::find()
        .filter(notification_request::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// A notification's stored request, by its id (for the status call).
///
/// # Errors
/// The database's.
pub async fn find(
    db: &DatabaseConnection,
    id: i64,
) -> Result<Option<notification_request::Model>, DbErr> {
    notification_request::Entity::find_by_id(id).one(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_as_many_placeholders_as_fields() {
        for kind in KINDS {
            for field in kind.fields {
                assert!(kind.text.contains(&format!("{{{field}}}")), "{}", kind.name);
            }
        }
        let text = render_text(&KINDS[0], &["CLM-1".into(), "approved".into()]);
        assert_eq!(text, "Your claim CLM-1 is now: approved.");
    }

    #[test]
    fn every_kind_has_its_text_in_every_shipped_language_and_its_own_template() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let (i18n, problems) = I18n::load(&root.join("locales"));
        assert!(problems.is_empty(), "{problems:?}");
        let registry =
            crate::engine::templates_file::load_file(&root.join("flows/templates/templates.yaml"))
                .unwrap();
        let params: Vec<String> = vec!["H-2023/100245".into(), "Arogya Plus".into(), "x".into()];
        for kind in KINDS {
            let def = registry
                .iter()
                .find(|d| d.name == kind.template)
                .unwrap_or_else(|| {
                    panic!("{}: template {} in the registry", kind.name, kind.template)
                });
            assert_eq!(def.params, kind.fields, "{}", kind.name);
            for lang in ["en", "hi", "ta"] {
                assert!(i18n.has(lang, kind.message), "{lang}: {}", kind.message);
                assert!(def.languages.iter().any(|l| l == lang), "{}", kind.template);
                let text = free_form_text(Some(&i18n), kind, &params, lang);
                assert!(!text.contains('{'), "{lang}: {text}");
            }
        }
        let templates: std::collections::HashSet<&str> = KINDS.iter().map(|k| k.template).collect();
        assert_eq!(
            templates.len(),
            KINDS.len(),
            "each kind has a template of its own"
        );
        let issued = KINDS.iter().find(|k| k.name == "policy_issued").unwrap();
        assert_eq!(
            free_form_text(Some(&i18n), issued, &params, "hi"),
            "आपकी पॉलिसी ••••0245 (Arogya Plus) जारी हो गई है और अभी x है।"
        );
        assert_eq!(
            free_form_text(None, issued, &params, "hi"),
            "Your policy ••••0245 (Arogya Plus) has been issued and is x.",
            "without locales: the built-in English text"
        );
    }
}
