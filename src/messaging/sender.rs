//! The sender: drains the outbox through the Cloud API client.
//!
//! For each due row it claims, it decides again what may go ([`composer::decide`]: the window
//! and the template registry as they are now); the pipeline's free-form replies arrive in
//! memory instead, decided in the transaction that queued them (see
//! [`handoff`](super::handoff)). Then it paces the send (per recipient, then per phone
//! number, see [`pacing`](super::pacing)) and classifies the answer:
//! - temporary errors (timeouts, 5xx, 429, 130429, 131056, …) are retried with exponential
//!   backoff and full jitter, honouring Retry-After; a row that exhausts its attempts is
//!   dead-lettered;
//! - 131047/470 (window closed) turn into the template fallback once, or end the row with
//!   `window_closed_no_template`;
//! - other permanent errors end the row with a reason (`undeliverable`, …); 132015/132016 also
//!   take the template out of use in the registry; 131050 records the contact's marketing stop
//!   in the consent log (source `error_131050`), so the gate stops the next marketing message.
//!
//! Rows of different contacts go out concurrently (as many as the rate needs at the Cloud API's
//! latency, up to `max_in_flight`: [`inflight`](super::inflight)), rows of one contact in order. Everything is in the database, so a restart drains what was left.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::composer::{self, Composer, DecideContext, Decision, StoredIntent};
use super::handover::{FRESH_FOR_MS, FreshRow, Handoff, Handover};
use super::inflight::InFlight;
use super::numbers::Lines;
use super::outbox::{self, AttemptResult};
use super::templates;
use crate::config::OutboxSettings;
use crate::metrics::Metrics;
use crate::privacy::mask;
use crate::store::entities::outbox::Reason;
use crate::store::entities::{contact, inbound_message, outbox as outbox_row};
use crate::store::now_ms;
use crate::whatsapp::client::{CloudApiClient, ErrorClass, SendError};
use crate::whatsapp::outbound::{OutboundBody, Recipient};

/// Rows claimed per database round trip at most.
const BATCH: u64 = 64;
/// How often the outbox is polled when nobody wakes the sender (retries come due, other
/// instances' rows).
const POLL: Duration = Duration::from_millis(250);
/// How often idle per-recipient buckets are dropped.
const FORGET_IDLE: Duration = Duration::from_secs(60);

/// Drains the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    pub db: DatabaseConnection,
    /// One client and pacing per business number: a row goes out on its number's line.
    pub lines: Lines,
    pub settings: OutboxSettings,
    pub composer: Composer,
    /// Sends in flight at once at most (the rate and the observed latency set how many,
    /// see [`inflight`](super::inflight)).
    pub max_in_flight: usize,
    pub metrics: Arc<Metrics>,
    pub instance_id: String,
    /// Notified whenever a row is queued, so the sender need not wait for the next poll.
    pub wake: Arc<Notify>,
    /// Mark the inbound message read once its reply is sent.
    pub mark_read: bool,
    /// Replies the pipeline decided and hands over in memory (taken by the one `run`).
    pub handoff: Handoff,
    /// Uploads the stored file of a media message before it is sent (its media id cached);
    /// `None`: media messages end as `no_media_store`.
    pub uploader: Option<crate::media::uploads::Uploader>,
}

impl Sender {
    /// Sends until `stop` is cancelled; the sends in flight finish first.
    pub async fn run(self, stop: CancellationToken) {
        let mut handed_over = self.handoff.take_receiver();
        let this_run = self.handoff.lease_owner().to_owned();
        match outbox::release_own_stale_leases(&self.db, &self.instance_id, &this_run).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "took back the outbox leases of this instance's previous run"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not release this instance's old outbox leases")
            }
        }
        let recorder = outbox::ResultRecorder::start(self.db.clone());
        let slots = InFlight::new(self.lines.total_rate(), self.max_in_flight);
        let mut tasks = JoinSet::new();
        let mut last_forget = tokio::time::Instant::now();
        // Whether the outbox may hold rows due for this sender: set by a wake (a row queued
        // for the claim), the poll, and a claim that filled its batch. Replies handed over in
        // memory and finished sends do not set it, so they cost no claim query.
        let mut look = true;
        // A deadline, not a sleep restarted by every wake-up: a busy sender still looks at
        // least every POLL (for retries that came due, other instances' rows).
        let mut next_poll = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            if tokio::time::Instant::now() >= next_poll {
                look = true;
                next_poll = tokio::time::Instant::now() + POLL;
            }
            if last_forget.elapsed() >= FORGET_IDLE {
                self.lines.iter().for_each(|line| line.pacing.forget_idle());
                last_forget = tokio::time::Instant::now();
            }
            let free = slots.available() as u64;
            let claimed = if free == 0 || !look {
                // Without a free slot the claim waits for a send to end (`look` stays set).
                Ok(Vec::new())
            } else {
                let limit = free.min(BATCH);
                let claimed = outbox::claim_due(&self.db, &self.instance_id, limit).await;
                look = claimed
                    .as_ref()
                    .is_ok_and(|rows| rows.len() as u64 == limit);
                claimed
            };
            match claimed {
                Ok(rows) if !rows.is_empty() => {
                    // What every row needs, read for the whole batch at once.
                    let mut contacts = match self.contacts_of(&rows).await {
                        Ok(contacts) => contacts,
                        Err(e) => {
                            // Retried like any database error on a send, so the rows do not
                            // sit leased to nobody until the lease expires.
                            tracing::warn!(error = %e, "could not read the claimed rows' contacts");
                            let (this, recorder) = (self.clone(), recorder.clone());
                            tasks.spawn(async move {
                                for row in rows {
                                    let retry = this.db_retry(&row, &e);
                                    if let Err(e) = recorder.record(row, retry).await {
                                        tracing::error!(error = %e, "could not record send result");
                                    }
                                }
                            });
                            continue;
                        }
                    };
                    let mut answered = self.inbound_wamids(&rows).await;
                    for row in rows {
                        let slot = slots.acquire().await;
                        let contact = contacts.remove(&row.contact_id);
                        let answered = row.in_reply_to.and_then(|id| answered.remove(&id));
                        let (this, recorder, slots) =
                            (self.clone(), recorder.clone(), slots.clone());
                        tasks.spawn(async move {
                            slots
                                .run(slot, this.send_row(row, contact, answered, &recorder))
                                .await;
                        });
                    }
                    // More may be due right away (other contacts, or the next row of one).
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox claim failed"),
            }
            tokio::select! {
                () = stop.cancelled() => break,
                Some((fresh, mut room)) = recv_fresh(&mut handed_over) => {
                    // One task per contact, started as slots free up (earlier sends end).
                    // The room the rows took goes back as the last of them start: what is
                    // held covers the rows not started yet.
                    let mut unstarted = fresh.len();
                    for contact_rows in by_contact(fresh) {
                        let slot = slots.acquire().await;
                        unstarted -= contact_rows.len();
                        let started = room.saturating_sub(u32::try_from(unstarted).unwrap_or(u32::MAX));
                        self.handoff.make_room(started);
                        room -= started;
                        let (this, recorder, slots) = (self.clone(), recorder.clone(), slots.clone());
                        tasks.spawn(async move {
                            slots
                                .run(slot, this.send_fresh(contact_rows, &recorder))
                                .await;
                        });
                    }
                    self.handoff.make_room(room);
                    continue;
                }
                () = self.wake.notified() => look = true,
                () = tokio::time::sleep_until(next_poll) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Rows handed over but not started: back to the outbox for the next run or another
        // instance (the pipeline releases what it hands over from now on itself).
        self.handoff.close();
        if let Some(mut rx) = handed_over {
            rx.close();
            while let Ok((rows, _room)) = rx.try_recv() {
                self.release_fresh(rows.into_iter()).await;
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The contacts of `rows` (one query; a contact can have only one row in a claim, but a
    /// row may belong to a contact erased since).
    async fn contacts_of(
        &self,
        rows: &[outbox_row::Model],
    ) -> Result<HashMap<i64, contact::Model>, sea_orm::DbErr> {
        let ids: Vec<i64> = rows.iter().map(|r| r.contact_id).collect();
        Ok(contact::Entity::find()
            .filter(contact::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect())
    }

    /// The wamids of the inbound messages `rows` answer, to mark them read once sent (best
    /// effort: empty when they cannot be read).
    async fn inbound_wamids(&self, rows: &[outbox_row::Model]) -> HashMap<i64, String> {
        if !self.mark_read {
            return HashMap::new();
        }
        let ids: Vec<i64> = rows.iter().filter_map(|r| r.in_reply_to).collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match inbound_message::Entity::find()
            .select_only()
            .column(inbound_message::Column::Id)
            .column(inbound_message::Column::Wamid)
            .filter(inbound_message::Column::Id.is_in(ids))
            .into_tuple::<(i64, String)>()
            .all(&self.db)
            .await
        {
            Ok(found) => found.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not look up messages to mark read");
                HashMap::new()
            }
        }
    }

    #[tracing::instrument(name = "outbox.send", skip_all, fields(outbox_id = row.id))]
    async fn send_row(
        &self,
        row: outbox_row::Model,
        contact: Option<contact::Model>,
        answered_wamid: Option<String>,
        recorder: &outbox::ResultRecorder,
    ) {
        let result = self.attempt(&row, contact).await;
        self.finish(row, result, answered_wamid, recorder).await;
    }

    /// Rows handed over by the pipeline, one contact's in order: each is sent on its
    /// queue-time decision while that is fresh. Once one is not done (retried, deferred,
    /// falling back to its template) or a decision has gone stale, the rest go back to the
    /// outbox, where the claim keeps them behind the unfinished row and decides them again.
    async fn send_fresh(&self, rows: Vec<FreshRow>, recorder: &outbox::ResultRecorder) {
        let mut rows = rows.into_iter();
        while let Some(fresh) = rows.next() {
            if now_ms() - fresh.decided_at > FRESH_FOR_MS {
                self.release_fresh(std::iter::once(fresh).chain(rows)).await;
                return;
            }
            Metrics::count(&self.metrics.handoffs, "on_queue_decision");
            let FreshRow {
                row,
                contact,
                intent,
                message,
                sent_as,
                template,
                answered_wamid,
                ..
            } = fresh;
            let result = self
                .send_decided(
                    &row,
                    &contact,
                    &intent,
                    message,
                    sent_as,
                    template.as_deref(),
                )
                .instrument(tracing::info_span!("outbox.send", outbox_id = row.id))
                .await;
            let done = matches!(
                result,
                AttemptResult::Sent { .. }
                    | AttemptResult::Failed { .. }
                    | AttemptResult::Dead { .. }
                    | AttemptResult::Skipped { .. }
            );
            let answered = answered_wamid.filter(|_| self.mark_read);
            self.finish(row, result, answered, recorder).await;
            if !done {
                self.release_fresh(rows).await;
                return;
            }
        }
    }

    /// Gives handed-over rows back to the outbox (decided again when claimed).
    async fn release_fresh(&self, rows: impl Iterator<Item = FreshRow>) {
        let rows: Vec<FreshRow> = rows.collect();
        if rows.is_empty() {
            return;
        }
        self.metrics
            .handoffs
            .get_or_create(&crate::metrics::OutcomeLabel {
                outcome: "released",
            })
            .inc_by(rows.len() as u64);
        self.handoff.release(&self.db, rows).await;
        self.wake.notify_one();
    }

    /// Logs and counts a result, records it (releasing the lease) and marks the answered
    /// message read once its reply is sent.
    async fn finish(
        &self,
        row: outbox_row::Model,
        result: AttemptResult,
        answered_wamid: Option<String>,
        recorder: &outbox::ResultRecorder,
    ) {
        let outcome = result.outcome();
        Metrics::count(&self.metrics.outbound_sends, outcome);
        match &result {
            AttemptResult::Sent { sent_as, .. } => tracing::debug!(sent_as, "sent"),
            AttemptResult::Deferred { next_attempt_at } => {
                tracing::debug!(
                    wait_ms = next_attempt_at - now_ms(),
                    "per-recipient pace: deferred"
                )
            }
            AttemptResult::Retry { reason, code, .. } => {
                tracing::info!(attempt = row.attempts + 1, code = ?code, %reason, "send will be retried")
            }
            AttemptResult::Fallback { code, .. } => {
                tracing::info!(code = ?code, "window closed according to Meta: the template fallback goes next")
            }
            AttemptResult::Failed {
                reason,
                code,
                detail,
            } => {
                tracing::warn!(outcome, code = ?code, %reason, %detail, "send ended without delivery")
            }
            AttemptResult::Dead { reason, code } => {
                tracing::warn!(outcome, code = ?code, %reason, "dead-lettered")
            }
            AttemptResult::Skipped { reason, detail } => {
                tracing::info!(outcome, %reason, %detail, "nothing sent")
            }
            AttemptResult::Confirmed => {
                tracing::info!(
                    "an unrecorded earlier send reached Meta: recorded sent, not sent again"
                )
            }
        }
        let sent = matches!(
            result,
            AttemptResult::Sent { .. } | AttemptResult::Confirmed
        );
        let number = row.phone_number_id.clone();
        if let Err(e) = recorder.record(row, result).await {
            // The lease expires and the row is tried again: at worst a counted duplicate.
            tracing::error!(error = %e, "could not record send result");
        }
        if let (true, Some(wamid)) = (sent, answered_wamid) {
            self.mark_inbound_read(number.as_deref(), wamid);
        }
    }

    async fn attempt(
        &self,
        row: &outbox_row::Model,
        contact: Option<contact::Model>,
    ) -> AttemptResult {
        // Such a row is claimed only when the sender of the attempt Meta took died before it
        // could record it: the message does not go again.
        if outbox::taken_by_meta(row) {
            return AttemptResult::Confirmed;
        }
        let intent = match StoredIntent::from_payload(&row.payload) {
            Ok(intent) => intent,
            Err(e) => {
                return AttemptResult::Failed {
                    code: None,
                    reason: Reason::UnreadablePayload,
                    detail: format!("unreadable payload: {e}"),
                };
            }
        };
        let Some(contact) = contact else {
            return AttemptResult::Skipped {
                reason: Reason::NoAddress,
                detail: format!("contact {} no longer exists", row.contact_id),
            };
        };
        // Decided now, not when queued: the window may have closed, a template been paused,
        // the contact opted out.
        let context = DecideContext {
            in_reply_to: row.in_reply_to,
            row_id: Some(row.id),
            consent: None,
            number: row.phone_number_id.as_deref(),
            written_at: None,
        };
        let decision = match composer::decide_for(
            &self.db,
            &self.composer,
            &contact,
            &intent,
            context,
            row.fallback,
            now_ms(),
        )
        .await
        {
            Ok(d) => d,
            Err(e) => return self.db_retry(row, &e),
        };
        let (message, sent_as, template) = match decision {
            Decision::Skip { reason, detail } => return AttemptResult::Skipped { reason, detail },
            Decision::Send {
                message,
                sent_as,
                template,
            } => (message, sent_as, template),
        };
        self.send_decided(
            row,
            &contact,
            &intent,
            message,
            sent_as,
            template.as_deref(),
        )
        .await
    }

    /// Sends what was decided for `row`, paced, and classifies the answer.
    async fn send_decided(
        &self,
        row: &outbox_row::Model,
        contact: &contact::Model,
        intent: &StoredIntent,
        mut message: crate::whatsapp::outbound::OutboundMessage,
        sent_as: &'static str,
        template: Option<&templates::TemplateInfo>,
    ) -> AttemptResult {
        let line = match self.lines.of(row.phone_number_id.as_deref()) {
            Ok(line) => line,
            // Removed from the configuration since it was queued: sending it from another
            // number would answer the policyholder from a line they did not write to.
            Err(number) => {
                return AttemptResult::Failed {
                    code: None,
                    reason: Reason::NumberNotConfigured,
                    detail: format!("business number {number} is not configured"),
                };
            }
        };
        if let Err(wait) = line.pacing.pair_check(row.contact_id) {
            return AttemptResult::Deferred {
                next_attempt_at: now_ms() + i64::try_from(wait.as_millis()).unwrap_or(6_000),
            };
        }
        line.pacing.number_ready().await;
        // Echoed in status webhooks: ties a status to the row even without the wamid.
        message.callback_data = Some(outbox::callback_data(row.id));
        match self.upload(row, &line.client, message.body).await {
            Ok(body) => message.body = body,
            Err(failed) => return failed,
        }
        let recipient = match &message.to {
            Recipient::Phone(p) | Recipient::UserId(p) => mask(p),
        };
        tracing::debug!(%recipient, sent_as, "sending");
        match line.client.send(&message).await {
            Ok(sent) => AttemptResult::Sent {
                wamid: sent.message_id,
                sent_as,
            },
            Err(error) => {
                if matches!(error, SendError::Api { code: 131050, .. }) {
                    self.record_marketing_stop(contact, &error).await;
                }
                self.classify(row, intent, &message.body, template, &error)
                    .await
            }
        }
    }

    /// A media body with its stored file replaced by a media id (cached, or uploaded now).
    /// An unreachable store or API is retried like a send; a file gone from the store (erased
    /// since it was queued) or refused by Meta ends the row.
    async fn upload(
        &self,
        row: &outbox_row::Model,
        client: &CloudApiClient,
        body: OutboundBody,
    ) -> Result<OutboundBody, AttemptResult> {
        use crate::media::uploads::UploadError;
        // Every other body goes as it is; only a stored file needs an upload first.
        let Some((sha256, mime_type, _)) = body.stored_file() else {
            return Ok(body);
        };
        let Some(uploader) = &self.uploader else {
            return Err(AttemptResult::Failed {
                code: None,
                reason: Reason::NoMediaStore,
                detail: "a media message needs the media store".into(),
            });
        };
        let filename = match &body {
            OutboundBody::Media {
                filename: Some(f), ..
            } => f.clone(),
            _ => format!("file.{}", mime_type.rsplit('/').next().unwrap_or("bin")),
        };
        let retry = |reason: String| {
            let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
            if attempts >= self.settings.max_attempts {
                return AttemptResult::Dead {
                    code: None,
                    reason: format!("gave up after {attempts} attempts: {reason}"),
                };
            }
            let delay = backoff(&self.settings, attempts, None);
            AttemptResult::Retry {
                next_attempt_at: now_ms() + i64::try_from(delay.as_millis()).unwrap_or(1000),
                code: None,
                reason,
            }
        };
        match uploader
            .media_id(client, sha256, mime_type, &filename, now_ms())
            .await
        {
            Ok(id) => Ok(body.with_media_id(id)),
            Err(UploadError::Db(e)) => Err(retry(format!("database: {e}"))),
            Err(UploadError::Store(e)) => Err(retry(format!("media store: {e:#}"))),
            Err(UploadError::Gone) => Err(AttemptResult::Failed {
                code: None,
                reason: Reason::MediaGone,
                detail: UploadError::Gone.to_string(),
            }),
            Err(UploadError::Api(e)) => {
                let code = match &e {
                    SendError::Api { code, .. } => Some(*code),
                    _ => None,
                };
                match e.class() {
                    ErrorClass::Retryable { .. } => Err(retry(format!("upload: {e}"))),
                    _ => Err(AttemptResult::Failed {
                        code,
                        reason: Reason::UploadRefused,
                        detail: e.to_string(),
                    }),
                }
            }
        }
    }

    /// Meta says the contact stopped marketing in WhatsApp: the consent log learns it, so the
    /// gate refuses their next marketing message instead of Meta.
    async fn record_marketing_stop(&self, contact: &contact::Model, error: &SendError) {
        let recorded = crate::consent::record_marketing_refused(
            &self.db,
            &self.composer.consent.hasher,
            contact,
            &error.to_string(),
            now_ms(),
        )
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record the marketing stop from 131050");
        }
    }

    fn db_retry(&self, row: &outbox_row::Model, e: &sea_orm::DbErr) -> AttemptResult {
        let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        AttemptResult::Retry {
            next_attempt_at: now_ms()
                + i64::try_from(backoff(&self.settings, attempts, None).as_millis())
                    .unwrap_or(1000),
            code: None,
            reason: format!("database: {e}"),
        }
    }

    async fn classify(
        &self,
        row: &outbox_row::Model,
        intent: &StoredIntent,
        body: &OutboundBody,
        template: Option<&templates::TemplateInfo>,
        error: &SendError,
    ) -> AttemptResult {
        let code = match error {
            SendError::Api { code, .. } => Some(*code),
            _ => None,
        };
        let detail = error.to_string();
        match error.class() {
            ErrorClass::Retryable { retry_after } => {
                let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    return AttemptResult::Dead {
                        code,
                        reason: format!("gave up after {attempts} attempts: {detail}"),
                    };
                }
                // No answer in time: Meta may have taken it. Its status webhook, naming the
                // row (callback data), then marks the row sent before this retry comes due
                // (`outbox::confirm_unanswered`), so the message is not sent twice.
                let retry_after = match error {
                    SendError::Transport { timeout: true, .. } => Some(
                        retry_after
                            .unwrap_or_default()
                            .max(Duration::from_millis(self.settings.unconfirmed_wait_ms)),
                    ),
                    _ => retry_after,
                };
                let delay = backoff(&self.settings, attempts, retry_after);
                AttemptResult::Retry {
                    next_attempt_at: now_ms() + i64::try_from(delay.as_millis()).unwrap_or(0),
                    code,
                    reason: detail,
                }
            }
            ErrorClass::WindowClosed => {
                let was_template = matches!(body, OutboundBody::Template { .. });
                if intent.template.is_none() {
                    AttemptResult::Failed {
                        code,
                        reason: Reason::WindowClosedNoTemplate,
                        detail,
                    }
                } else if row.fallback || was_template {
                    // The fallback is taken once: a second 131047 is not a loop.
                    AttemptResult::Failed {
                        code,
                        reason: Reason::WindowClosed,
                        detail,
                    }
                } else {
                    AttemptResult::Fallback {
                        code,
                        reason: detail,
                    }
                }
            }
            ErrorClass::Permanent => {
                let reason = permanent_reason(error);
                if let (Some(c @ (132015 | 132016)), Some(t)) = (code, template) {
                    // Meta knows the template is paused before our webhook said so: stop
                    // using it for everyone now.
                    let status = if c == 132015 { "PAUSED" } else { "DISABLED" };
                    if let Err(e) = templates::set_status(
                        &self.db,
                        Some(&t.waba_id),
                        &t.name,
                        Some(&t.language),
                        status,
                        Some(&detail),
                        "api_error",
                        now_ms(),
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "could not record the template's status");
                    }
                }
                if matches!(
                    code,
                    Some(131031 | 368 | 130497 | 131042 | 131048 | 190 | 10)
                ) {
                    tracing::error!(code = ?code, "account-level Cloud API error: needs an operator");
                }
                AttemptResult::Failed {
                    code,
                    reason,
                    detail,
                }
            }
        }
    }

    /// Marks the answered message read on `number`, the line the reply to it left from (the
    /// message came to that number), on a task of its own: the receipt holds neither the
    /// send's slot nor the next reply of the contact (one more Graph API round trip each).
    ///
    /// It takes no rate token. Meta counts a number's throughput in *messages*, inbound and
    /// outbound, of every message type (reference §5.1, "Throughput"); a read receipt is no
    /// message (no wamid, not a message type, not billed) but a status on an inbound one, and
    /// there is at most one per inbound message, whose rate Meta's own limit already bounds.
    /// Taking a token halved the replies a rate allowed (1,000/s of rate: 500 replies/s).
    fn mark_inbound_read(&self, number: Option<&str>, wamid: String) {
        let Ok(line) = self.lines.of(number) else {
            return;
        };
        let client = Arc::clone(&line.client);
        tokio::spawn(
            async move {
                // Best effort: a missing read receipt must never hold up or fail the
                // conversation.
                if let Err(e) = client.mark_read(&wamid).await {
                    tracing::info!(error = %e, "mark-as-read failed");
                }
            }
            .in_current_span(),
        );
    }
}

/// The reason recorded for a permanent error (reference §5.4).
pub fn permanent_reason(error: &SendError) -> Reason {
    let code = match error {
        SendError::Invalid(_) => return Reason::InvalidMessage,
        // HTTP success without a wamid: Meta probably has it; retrying would duplicate.
        SendError::Decode(_) => return Reason::UnconfirmedResponse,
        SendError::Transport { .. } => return Reason::Transport,
        SendError::Api { code, .. } => *code,
    };
    match code {
        131026 => Reason::Undeliverable,
        131050 => Reason::MarketingStoppedByUser,
        131049 => Reason::EcosystemEngagementLimit,
        131048 => Reason::SpamRateLimited,
        132015 | 132016 => Reason::TemplateNotApproved,
        132001 => Reason::TemplateUnknown,
        132000 | 132012 => Reason::TemplateParams,
        131030 => Reason::RecipientNotAllowed,
        131031 | 368 | 130497 => Reason::AccountRestricted,
        131042 => Reason::PaymentIssue,
        0 | 10 | 190 | 200..=299 => Reason::Auth,
        100 | 131008 | 131009 => Reason::InvalidRequest,
        _ => Reason::PermanentError,
    }
}

/// Exponential backoff with full jitter, never shorter than the server's Retry-After.
pub fn backoff(settings: &OutboxSettings, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = settings
        .retry_base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let cap = exp.min(settings.retry_max_ms).max(1);
    let jittered = Duration::from_millis(rand::rng().random_range(cap / 2..=cap));
    retry_after.map_or(jittered, |after| jittered.max(after))
}

/// The next handed-over rows; never ready without a receiver (a second `run`).
async fn recv_fresh(
    receiver: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Handover>>,
) -> Option<Handover> {
    match receiver {
        Some(rx) => {
            let mut batches = Vec::new();
            rx.recv_many(&mut batches, 64).await;
            let room = batches.iter().map(|(_, room)| room).sum();
            let rows: Vec<FreshRow> = batches.into_iter().flat_map(|(rows, _)| rows).collect();
            (!rows.is_empty()).then_some((rows, room))
        }
        None => std::future::pending().await,
    }
}

/// Handed-over rows grouped by contact, each group in order.
fn by_contact(rows: Vec<FreshRow>) -> Vec<Vec<FreshRow>> {
    let mut groups: Vec<Vec<FreshRow>> = Vec::new();
    let mut slot: HashMap<i64, usize> = HashMap::new();
    for row in rows {
        let at = *slot.entry(row.row.contact_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(row);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let s = OutboxSettings {
            max_attempts: 8,
            retry_base_ms: 100,
            retry_max_ms: 1000,
            unconfirmed_wait_ms: 30_000,
        };
        for _ in 0..50 {
            let first = backoff(&s, 1, None);
            assert!(
                (50..=100).contains(&(first.as_millis() as u64)),
                "{first:?}"
            );
            let third = backoff(&s, 3, None);
            assert!(
                (200..=400).contains(&(third.as_millis() as u64)),
                "{third:?}"
            );
            let late = backoff(&s, 30, None);
            assert!(
                (500..=1000).contains(&(late.as_millis() as u64)),
                "{late:?}"
            );
            let told = backoff(&s, 1, Some(Duration::from_secs(5)));
            assert_eq!(told, Duration::from_secs(5));
        }
    }

    #[test]
    fn permanent_errors_get_named_reasons() {
        let api = |code| SendError::Api {
            http_status: 400,
            code,
            subcode: None,
            message: String::new(),
            details: None,
            fbtrace_id: None,
            retry_after: None,
        };
        assert_eq!(permanent_reason(&api(131026)), "undeliverable");
        assert_eq!(permanent_reason(&api(131050)), "marketing_stopped_by_user");
        assert_eq!(permanent_reason(&api(131049)), "ecosystem_engagement_limit");
        assert_eq!(permanent_reason(&api(132015)), "template_not_approved");
        assert_eq!(permanent_reason(&api(999_999)), "permanent_error");
    }
}
