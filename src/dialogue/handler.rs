//! The flow runner as the pipeline's message handler: the batch's prefetch (conversations and
//! consent in one read each), the external understanding service's answers asked before the
//! transaction, one inbound message through the engine (actions chained, effects performed),
//! and the batch's conversations saved together.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::Value;

use super::conversations::{load, parse, row_for, save, upsert};
use super::effects::{
    event_for, queue_attachment, queue_files, queue_reply, record_consent, record_misunderstood,
};
use super::{ActionResult, FlowRunner, Turn, hops};
use crate::consent::{self, ConsentState, Source};
use crate::engine::actions::ActionRef;
use crate::engine::{self, Conversation, Effect, Event, Mode, Ranking, Reply};
use crate::ingest::pipeline::{BoxFuture, MessageHandler, PendingMessage, Prefetched};
use crate::messaging::composer::Line;
use crate::store::entities::{contact, conversation, inbound_message};
use crate::whatsapp::inbound::MessageContent;

/// Insurer actions one message may trigger before the runner stops the chain (the linter
/// rejects loops; this is the backstop against a misbehaving action).
const MAX_ACTIONS_PER_MESSAGE: usize = 16;

/// Answers kept at most for messages that were then not handled here (another instance took
/// the contact between the ask and the lease): past it they are dropped.
const MAX_UNTAKEN_ANSWERS: usize = 1024;

impl MessageHandler for FlowRunner {
    fn before_batch<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        contacts: &'a [i64],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(nlu) = &self.nlu else {
                return;
            };
            let asks = match self.free_texts(db, contacts).await {
                Ok(asks) => asks,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the messages to understand; built-in matcher answers");
                    return;
                }
            };
            if asks.is_empty() {
                return;
            }
            let flows = self.flows.current();
            let mut expected: Vec<String> = flows.understanding().intents().to_vec();
            expected.sort();
            expected.dedup();
            let answers =
                futures_util::future::join_all(asks.iter().map(|(id, text, language)| async {
                    (*id, nlu.parse(text, language, &expected).await)
                }))
                .await;
            let mut understood = self.understood.lock().expect("understood answers");
            if understood.len() > MAX_UNTAKEN_ANSWERS {
                understood.clear();
            }
            understood.extend(answers.into_iter().filter_map(|(id, r)| Some((id, r?))));
        })
    }

    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        message: &'a PendingMessage,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let Some(event) = event_for(&message.content) else {
                return Ok(());
            };
            let contact = match &message.contact {
                Some(contact) => contact.clone(),
                None => contact::Entity::find_by_id(message.contact_id)
                    .one(txn)
                    .await?
                    .ok_or_else(|| {
                        DbErr::RecordNotFound(format!("contact {}", message.contact_id))
                    })?,
            };
            let (stored, consent) = match &message.prefetched {
                Some(prefetched) => (
                    prefetched.conversation.as_ref().and_then(parse),
                    Some(ConsentState::fold(&prefetched.consent)),
                ),
                None => (load(txn, contact.id).await?, None),
            };
            let conversation = match stored {
                Some(c) => c,
                None => {
                    let number = message.phone_number_id.as_deref();
                    self.new_conversation(txn, &contact, consent.as_ref(), number)
                        .await?
                }
            };
            let source = match &event {
                Event::Button { .. } | Event::ListRow { .. } => Source::Button,
                _ => Source::Keyword,
            };
            let said = match &message.content {
                MessageContent::Text { body } => Some(body.clone()),
                MessageContent::ButtonReply { title, .. }
                | MessageContent::ListReply { title, .. } => Some(title.clone()),
                _ => None,
            };
            let turn = Turn {
                txn,
                contact: &contact,
                number: message.phone_number_id.as_deref(),
                inbound_id: Some(message.id),
                source,
                said,
                fresh: message.fresh.as_ref().map(|f| (f, message.wamid.as_str())),
                line: Line::Answered {
                    number: message.phone_number_id.as_deref(),
                    sent_at: message.sent_at,
                },
                consent: Mutex::new(consent),
            };
            let (refusal, event) = match &message.content {
                MessageContent::Media {
                    kind,
                    caption,
                    filename,
                    ..
                } => {
                    let row = crate::media::fetch::outcomes(txn, &[message.id])
                        .await?
                        .into_iter()
                        .next();
                    let kept = row.as_ref().and_then(|r| media_ref(r, caption, filename));
                    let refusal = match &row {
                        Some(row) => self.media_refusal(row, kind, &conversation.language),
                        None => None,
                    };
                    (refusal, Event::Media(kept))
                }
                _ => (None, event),
            };
            let now = Utc::now();
            let (conversation, moves) = match refusal {
                // The conversation stays where it was: the step that asked for the file asks
                // for it again through this answer.
                Some(reply) => {
                    queue_reply(&turn, &self.composer, &reply).await?;
                    (conversation, Vec::new())
                }
                None => {
                    let ranking = self
                        .understood
                        .lock()
                        .expect("understood answers")
                        .remove(&message.id);
                    self.run_events(&turn, conversation, event, ranking, now)
                        .await?
                }
            };
            let moves = hops::rows(&moves, now.timestamp_millis());
            match &message.prefetched {
                // Stored with the batch's others by `finish`, one statement each.
                Some(prefetched) => {
                    *prefetched.save.lock().expect("conversation to save") =
                        Some(row_for(contact.id, &conversation)?);
                    prefetched.hops.lock().expect("hops to save").extend(moves);
                }
                None => {
                    save(txn, contact.id, &conversation).await?;
                    hops::insert(txn, moves).await?;
                }
            }
            Ok(())
        })
    }

    fn finish<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        messages: &'a [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let rows: Vec<conversation::ActiveModel> = messages
                .iter()
                .filter_map(|m| m.prefetched.as_ref())
                .filter_map(|p| p.save.lock().expect("conversation to save").take())
                .collect();
            upsert(txn, rows).await?;
            let moves = messages
                .iter()
                .filter_map(|m| m.prefetched.as_ref())
                .flat_map(|p| std::mem::take(&mut *p.hops.lock().expect("hops to save")))
                .collect();
            hops::insert(txn, moves).await?;
            Ok(())
        })
    }

    fn prefetch<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        messages: &'a mut [PendingMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let contacts: Vec<contact::Model> =
                messages.iter().filter_map(|m| m.contact.clone()).collect();
            if contacts.is_empty() {
                return Ok(());
            }
            let mut conversations: HashMap<i64, conversation::Model> = conversation::Entity::find()
                .filter(conversation::Column::ContactId.is_in(contacts.iter().map(|c| c.id)))
                .all(txn)
                .await?
                .into_iter()
                .map(|row| (row.contact_id, row))
                .collect();
            let mut consent =
                consent::entries_for_contacts(txn, &self.composer.consent.hasher, &contacts)
                    .await?;
            for message in messages.iter_mut().filter(|m| m.contact.is_some()) {
                message.prefetched = Some(Prefetched {
                    conversation: conversations.remove(&message.contact_id),
                    consent: consent.remove(&message.contact_id).unwrap_or_default(),
                    save: Arc::default(),
                    hops: Arc::default(),
                });
            }
            Ok(())
        })
    }
}

impl FlowRunner {
    /// The texts among the contacts' next messages that the engine would ask the meaning of
    /// (see [`engine::asks_meaning`]), with the conversation's language: read outside any
    /// transaction, so a message handled meanwhile elsewhere only wastes one ask.
    async fn free_texts(
        &self,
        db: &DatabaseConnection,
        contacts: &[i64],
    ) -> Result<Vec<(i64, String, String)>, DbErr> {
        let pending = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.is_in(contacts.iter().copied()))
            .filter(inbound_message::Column::ProcessedAt.is_null())
            .order_by_asc(inbound_message::Column::SentAt)
            .order_by_asc(inbound_message::Column::Id)
            .all(db)
            .await?;
        let mut next: HashMap<i64, inbound_message::Model> = HashMap::new();
        for row in pending {
            next.entry(row.contact_id).or_insert(row);
        }
        let mut conversations: HashMap<i64, conversation::Model> = conversation::Entity::find()
            .filter(conversation::Column::ContactId.is_in(next.keys().copied()))
            .all(db)
            .await?
            .into_iter()
            .map(|row| (row.contact_id, row))
            .collect();
        let flows = self.flows.current();
        let now = Utc::now();
        let mut asks = Vec::new();
        for (contact_id, row) in next {
            let content = row
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<MessageContent>(c).ok());
            let Some(MessageContent::Text { body }) = content else {
                continue;
            };
            let conversation = conversations
                .remove(&contact_id)
                .as_ref()
                .and_then(parse)
                .unwrap_or_else(|| {
                    Conversation::new(self.language_on(row.phone_number_id.as_deref()))
                });
            if engine::asks_meaning(&flows, &conversation, &body, now) {
                asks.push((row.id, body, conversation.language));
            }
        }
        Ok(asks)
    }

    /// A first conversation, in the language of the business number written to (`number`).
    /// A number that opted out before (through the API, or before its contact was erased:
    /// the log keeps the hash of the number) starts quiet, exactly as if it had just said STOP.
    async fn new_conversation(
        &self,
        txn: &DatabaseTransaction,
        contact: &contact::Model,
        known_consent: Option<&ConsentState>,
        number: Option<&str>,
    ) -> Result<Conversation, DbErr> {
        let mut conversation = Conversation::new(self.language_on(number));
        let opted_out = match known_consent {
            Some(state) => state.opted_out(),
            None => consent::state_of(txn, &self.composer.consent.hasher, contact)
                .await?
                .opted_out(),
        };
        if opted_out {
            conversation.mode = Mode::OptedOutQuiet;
        }
        Ok(conversation)
    }

    pub(super) async fn run_events(
        &self,
        turn: &Turn<'_>,
        mut conversation: Conversation,
        first: Event,
        ranking: Option<Ranking>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(Conversation, Vec<engine::Hop>)> {
        let flows = self.flows.current();
        let mut moves = Vec::new();
        let mut events = VecDeque::from([first]);
        let mut actions_run = 0;
        while let Some(event) = events.pop_front() {
            // The service's answer is about the contact's text, the first event only.
            let hint = match &event {
                Event::Text(_) => ranking.as_ref(),
                _ => None,
            };
            let only = self.flows_on(turn.number);
            let outcome = engine::step_on(&flows, &conversation, &event, now, hint, only);
            conversation = outcome.conversation;
            moves.extend(outcome.hops);
            for effect in outcome.effects {
                match effect {
                    Effect::Reply(reply) => queue_reply(turn, &self.composer, &reply).await?,
                    Effect::CallAction { action, args } => {
                        actions_run += 1;
                        let result = match &action {
                            _ if actions_run > MAX_ACTIONS_PER_MESSAGE => {
                                tracing::error!(%action, "too many actions for one message; answering error");
                                ActionResult::error()
                            }
                            ActionRef::Known(known) => {
                                self.actions
                                    .run(turn.txn, turn.contact, *known, &args, now)
                                    .await
                            }
                            // The linter refuses a flow set naming one; kept for safety.
                            ActionRef::Unknown(_) => {
                                tracing::warn!(%action, "unknown insurer action");
                                ActionResult::error()
                            }
                        };
                        tracing::debug!(%action, outcome = %result.outcome, "action finished");
                        if let Some(file) = &result.attachment {
                            let caption = file.caption.map(|id| {
                                let slots = match &result.data {
                                    Value::Object(m) => {
                                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                                    }
                                    _ => Default::default(),
                                };
                                let args = flows.i18n().args_in(&conversation.language, &slots);
                                flows
                                    .i18n()
                                    .render_lossy(&conversation.language, id, Some(&args))
                            });
                            queue_attachment(turn, &self.composer, file, caption, now).await?;
                        }
                        events.push_back(Event::ActionResult {
                            action: action.name().to_owned(),
                            outcome: result.outcome,
                            data: result.data,
                        });
                    }
                    Effect::Handoff { reason } => {
                        let queued = crate::handoff::request(
                            turn.txn,
                            turn.contact.id,
                            &reason,
                            &conversation.language,
                        )
                        .await?;
                        if queued
                            && let Some(notice) =
                                self.after_hours_notice(&flows, &conversation.language, now)
                        {
                            queue_reply(turn, &self.composer, &notice).await?;
                        }
                    }
                    Effect::CancelHandoff { reason } => {
                        crate::handoff::cancel(turn.txn, turn.contact.id, &reason).await?
                    }
                    Effect::Consent { change } => {
                        record_consent(turn, &self.composer, change).await?
                    }
                    Effect::Misunderstood { text, place } => {
                        record_misunderstood(turn, text, place, &conversation.language, now).await?
                    }
                    Effect::SendFiles { files, caption } => {
                        let store = self.media_store.as_ref();
                        queue_files(turn, &self.composer, store, &files, caption, now).await?
                    }
                    // The language lives in the conversation, saved with it below.
                    Effect::SetLanguage { .. } | Effect::EndConversation => {}
                }
            }
        }
        Ok((conversation, moves))
    }
}

impl FlowRunner {
    /// The answer to a media message whose file could not be kept (see `media::fetch`), in
    /// words: the limit when too large, the accepted types when refused, "send it again"
    /// otherwise. `None` when the file was stored (or never fetched: no fetcher).
    fn media_refusal(
        &self,
        row: &crate::store::entities::media_file::Model,
        kind: &crate::whatsapp::inbound::MediaKind,
        language: &str,
    ) -> Option<Reply> {
        use crate::media::Failure;
        let failure = row.failure.as_deref().and_then(Failure::parse)?;
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("kind", kind.as_str());
        let message_id = match failure {
            Failure::TooLarge => {
                args.set(
                    "limit",
                    crate::config::media::describe_bytes(self.media_limits.for_kind(kind)),
                );
                "media-too-large"
            }
            Failure::TypeRefused => {
                args.set("accepted", crate::config::media::accepted_types(kind));
                "media-type-refused"
            }
            Failure::Unavailable => "media-unavailable",
            Failure::HashMismatch => "media-hash-mismatch",
        };
        let body = self
            .flows
            .current()
            .i18n()
            .render_lossy(language, message_id, Some(&args));
        Some(Reply {
            message_id: message_id.to_owned(),
            body,
            header: None,
            footer: None,
            choices: None,
            template: None,
        })
    }
}

/// The slot entry for a fetched file: its hash, detected type and kind, with what the
/// contact wrote on it; `None` unless the file is in the store.
fn media_ref(
    row: &crate::store::entities::media_file::Model,
    caption: &Option<String>,
    file_name: &Option<String>,
) -> Option<engine::media_slot::MediaRef> {
    if row.state != crate::store::entities::media_file::State::Stored {
        return None;
    }
    Some(engine::media_slot::MediaRef {
        sha256: row.sha256.clone()?,
        mime: row.mime_type.clone()?,
        kind: engine::media_slot::FileKind::parse(&row.kind)?,
        file_name: file_name.clone(),
        caption: caption.clone(),
    })
}
