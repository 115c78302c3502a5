//! The flow actions of `engine::actions::Action`, one method each, with exactly the outcomes
//! and result fields that catalogue declares. Each reads the contact from the runner, never
//! from `args`; each that reveals policy data first checks a live verification for that policy.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::{Value, json};

use crate::engine::actions::Action;
use crate::money::Paise;
use crate::privacy::mask;
use crate::store::entities::{contact, premium_reminder};

use super::identity::{self, Failure, Method, PolicyCheck};
use super::model::{self, Policy};
use super::source::DocumentFile;
use super::{ActionResult, Attachment, Insurer, InsurerError};
use crate::engine::media_slot::{FileKind, MediaRef};
use crate::whatsapp::outbound::OutboundMediaKind;
use crate::whatsapp::outbound::limits::{validate_file, validate_filename};

/// Most rows a WhatsApp list message can hold.
const MAX_LIST_ROWS: usize = 10;

type Result<T> = std::result::Result<T, InsurerError>;

/// One action call: who asks, with what, when, on which transaction.
pub(crate) struct Ctx<'a, C> {
    pub insurer: &'a Insurer,
    pub db: &'a C,
    pub contact: &'a contact::Model,
    pub args: &'a Value,
    pub now: DateTime<Utc>,
}

fn verified(customer_name: &str) -> ActionResult {
    ActionResult::new(
        "verified",
        json!({ "verified": true, "customer_name": customer_name }),
    )
}

/// A link a policyholder may be sent: an absolute https URL with a host.
fn is_https_link(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

fn unverified(outcome: &str) -> ActionResult {
    ActionResult::new(outcome, json!({ "verified": false }))
}

impl<C: ConnectionTrait> Ctx<'_, C> {
    fn now_ms(&self) -> i64 {
        self.now.timestamp_millis()
    }

    fn ttl_ms(&self) -> i64 {
        let minutes = i64::try_from(self.insurer.settings.verification_ttl_minutes).unwrap_or(30);
        minutes.saturating_mul(60_000)
    }

    /// A slot passed as an argument, as text (numbers too: a policy "number" may be digits).
    fn arg(&self, name: &str) -> Option<String> {
        match self.args.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The contact's phone for logs: masked, never in clear.
    fn masked_contact(&self) -> String {
        crate::privacy::mask_opt(self.contact.wa_id.as_deref())
    }

    /// The policy number in `arg`, if the contact is verified for it right now.
    async fn authorized_number(&self, arg: &str) -> Result<Option<String>> {
        let Some(number) = self
            .arg(arg)
            .and_then(|s| model::normalize_policy_number(&s))
        else {
            return Ok(None);
        };
        let ok = identity::is_verified(
            self.db,
            self.contact.id,
            &number,
            self.now_ms(),
            self.ttl_ms(),
        )
        .await?;
        Ok(ok.then_some(number))
    }

    /// The policy in `arg`, if the contact is verified for it and it exists.
    async fn authorized_policy(&self, arg: &str) -> Result<Option<Policy>> {
        match self.authorized_number(arg).await? {
            Some(number) => Ok(self.insurer.source.policy(&number).await?),
            None => Ok(None),
        }
    }

    /// `identity.check`: verified by the registered number, or by an earlier check still valid.
    pub async fn identity_check(&self) -> Result<ActionResult> {
        let now_ms = self.now_ms();
        // wa_id is already the full international number; the Indian 10-digit heuristic of
        // normalize_phone must not be applied to it (a 10-digit foreign number would change).
        let mobile: Option<String> = self
            .contact
            .wa_id
            .as_deref()
            .map(|w| w.chars().filter(char::is_ascii_digit).collect())
            .filter(|d: &String| d.len() >= 8);
        if let Some(mobile) = mobile {
            let policies = self.insurer.source.policies_for_mobile(&mobile).await?;
            for p in &policies {
                identity::record_verification(
                    self.db,
                    self.contact.id,
                    &p.policy_number,
                    Method::RegisteredNumber,
                    now_ms,
                )
                .await?;
            }
            if let Some(first) = policies.first() {
                return Ok(verified(&first.holder_name));
            }
        }
        let numbers =
            identity::verified_policies(self.db, self.contact.id, now_ms, self.ttl_ms()).await?;
        for number in numbers {
            if let Some(p) = self.insurer.source.policy(&number).await? {
                return Ok(verified(&p.holder_name));
            }
        }
        if identity::locked_until(self.db, self.contact.id, now_ms)
            .await?
            .is_some()
        {
            return Ok(unverified("locked"));
        }
        Ok(unverified("not_registered"))
    }

    /// `identity.verify_dob`: policy number + the holder's date of birth; failures count per
    /// contact and per policy number (see [`identity`]), and either can lock.
    pub async fn identity_verify_dob(&self) -> Result<ActionResult> {
        let now_ms = self.now_ms();
        let settings = &self.insurer.settings;
        if identity::locked_until(self.db, self.contact.id, now_ms)
            .await?
            .is_some()
        {
            tracing::warn!(
                contact = %self.masked_contact(),
                "identity verification attempted while locked out"
            );
            return Ok(unverified("locked"));
        }
        let number = self
            .arg("policy_number")
            .and_then(|s| model::normalize_policy_number(&s));
        let dob = self.arg("dob").and_then(|s| model::parse_date(&s));
        let policy_masked = mask(number.as_deref().unwrap_or(""));
        let policy_rules = identity::LockoutRules::per_policy(settings);
        // Counted before the check, so that contacts trying one policy at once cannot make
        // more checks than the limit between them; any number as typed, known or not.
        let reservation = match &number {
            Some(number) => {
                Some(identity::reserve_policy_check(self.db, number, now_ms, &policy_rules).await?)
            }
            None => None,
        };
        if let Some(PolicyCheck::Locked(until)) = reservation {
            tracing::warn!(
                contact = %self.masked_contact(),
                policy = %policy_masked,
                locked_until_ms = until,
                "identity verification attempted while the policy is locked"
            );
            return Ok(unverified("locked"));
        }
        let policy = match (&number, dob) {
            (Some(number), Some(_)) => self.insurer.source.policy(number).await?,
            _ => None,
        };
        // An unknown policy and a wrong date answer the same: nobody learns which numbers exist.
        let matched = policy.filter(|p| Some(p.holder_dob) == dob);
        self.settle_attempt(reservation.as_ref(), matched, Method::Dob, "mismatch")
            .await
    }

    /// Settles a verification attempt (by date of birth or one-time password) whose policy
    /// check was reserved as `reservation`: a `matched` policy verifies the contact for it and
    /// clears its failures; anything else counts a failure per contact and per policy, either
    /// of which may lock (`locked`), else the answer is `failed`.
    async fn settle_attempt(
        &self,
        reservation: Option<&PolicyCheck>,
        matched: Option<Policy>,
        method: Method,
        failed: &str,
    ) -> Result<ActionResult> {
        let now_ms = self.now_ms();
        let settings = &self.insurer.settings;
        let policy_rules = identity::LockoutRules::per_policy(settings);
        let policy_masked = match reservation {
            Some(PolicyCheck::Reserved { policy_number, .. }) => mask(policy_number),
            _ => mask(""),
        };
        let by_policy = match reservation {
            Some(r) => {
                identity::settle_policy_check(self.db, r, matched.is_some(), now_ms, &policy_rules)
                    .await?
            }
            None => None,
        };
        if let Some(p) = matched {
            identity::record_verification(
                self.db,
                self.contact.id,
                &p.policy_number,
                method,
                now_ms,
            )
            .await?;
            identity::clear_failures(self.db, self.contact.id, now_ms).await?;
            return Ok(verified(&p.holder_name));
        }
        let by_contact = identity::record_failure(
            self.db,
            self.contact.id,
            now_ms,
            &identity::LockoutRules::per_contact(settings),
        )
        .await?;
        match (by_contact, by_policy) {
            (Failure::Counted(failures), None | Some(Failure::Counted(_))) => {
                tracing::info!(
                    contact = %self.masked_contact(),
                    policy = %policy_masked,
                    method = method.as_str(),
                    failures,
                    policy_failures = ?by_policy,
                    "identity verification failed"
                );
                Ok(unverified(failed))
            }
            (contact, policy) => {
                tracing::warn!(
                    contact = %self.masked_contact(),
                    policy = %policy_masked,
                    method = method.as_str(),
                    contact_outcome = ?contact,
                    policy_outcome = ?policy,
                    "identity verification failed too often: locked out"
                );
                Ok(unverified("locked"))
            }
        }
    }

    // OTP
    /// `identity.send_otp`: a one-time password to the mobile registered on the policy, for a
    /// contact writing from another number. The registered number never reaches the chat. A
    /// policy that does not exist or has no mobile answers `sent` as well (with a reference
    /// to no code, so nothing verifies): typing policy numbers reveals nothing. Each
    /// contact may ask `otp.per_phone_max` codes per `otp.per_phone_window_minutes`, like each
    /// registered number may receive that many.
    pub async fn identity_send_otp(&self) -> Result<ActionResult> {
        let Some(otp) = self.insurer.otp.as_deref() else {
            return Ok(ActionResult::bare("unavailable"));
        };
        if identity::locked_until(self.db, self.contact.id, self.now_ms())
            .await?
            .is_some()
        {
            return Ok(unverified("locked"));
        }
        let Some(number) = self
            .arg("policy_number")
            .and_then(|s| model::normalize_policy_number(&s))
        else {
            return Ok(ActionResult::error());
        };
        let s = &otp.settings;
        let window_ms = i64::from(s.per_phone_window_minutes) * 60_000;
        let asked = otp
            .chat_requests_since(self.db, self.contact.id, otp.now_ms() - window_ms)
            .await?;
        if asked >= u64::from(s.per_phone_max) {
            tracing::info!(contact = %self.masked_contact(), "one-time password refused: too many asked from this contact");
            return Ok(ActionResult::bare("limited"));
        }
        let mobile = self
            .insurer
            .source
            .policy(&number)
            .await?
            .and_then(|p| p.mobile)
            // The registered mobile as the insurer's data stores it (often without +91).
            .and_then(|m| crate::phone::PhoneNumber::from_export(&m).ok())
            .map(crate::phone::PhoneNumber::into_string);
        let Some(mobile) = mobile else {
            tracing::info!(
                contact = %self.masked_contact(),
                policy = %mask(&number),
                "no one-time password sent: no such policy or no registered mobile (answered as sent)"
            );
            let nothing = format!("otp_{}", uuid::Uuid::new_v4().simple());
            return Ok(ActionResult::new("sent", json!({ "otp_ref": nothing })));
        };
        let request = crate::otp::IssueRequest {
            purpose: crate::otp::CHAT_PURPOSE,
            phone: &mobile,
            language: None,
            origin: crate::otp::Origin::Chat,
            requester: Some((self.contact.id, &number)),
            idempotency: None,
            number: None,
        };
        match otp.issue(self.db, request).await {
            Ok(issued) => Ok(ActionResult::new("sent", json!({ "otp_ref": issued.id }))),
            Err(crate::otp::IssueError::RateLimited(limit)) => {
                tracing::info!(contact = %self.masked_contact(), %limit, "one-time password refused by a limit");
                Ok(ActionResult::bare("limited"))
            }
            Err(crate::otp::IssueError::Template(problem)) => {
                tracing::warn!(%problem, "one-time password cannot be sent: the authentication template is not usable");
                Ok(ActionResult::bare("unavailable"))
            }
            Err(crate::otp::IssueError::Db(e)) => Err(e.into()),
        }
    }

    /// `identity.verify_otp`: the code the contact typed, against the one `identity.send_otp`
    /// sent for this contact and policy. Wrong codes count like wrong dates of birth (per
    /// contact and per policy, with the same lockouts) and against the code's own attempts;
    /// an expired code counts nothing and offers a new one.
    pub async fn identity_verify_otp(&self) -> Result<ActionResult> {
        let Some(otp) = self.insurer.otp.as_deref() else {
            return Ok(ActionResult::error());
        };
        if identity::locked_until(self.db, self.contact.id, self.now_ms())
            .await?
            .is_some()
        {
            return Ok(unverified("locked"));
        }
        let number = self
            .arg("policy_number")
            .and_then(|s| model::normalize_policy_number(&s));
        let code = self.arg("otp_code").unwrap_or_default();
        // Only a code this contact asked for, for this very policy.
        let row = match self.arg("otp_ref") {
            Some(id) => otp.get(self.db, &id).await?.filter(|r| {
                r.requester_contact_id == Some(self.contact.id)
                    && r.policy_number.is_some()
                    && r.policy_number == number
            }),
            None => None,
        };
        if let Some(r) = &row
            && r.state == crate::otp::RowState::Pending.as_str()
            && otp.now_ms() >= r.expires_at
        {
            return Ok(unverified("expired"));
        }
        let reservation = match &number {
            Some(n) => Some(
                identity::reserve_policy_check(
                    self.db,
                    n,
                    self.now_ms(),
                    &identity::LockoutRules::per_policy(&self.insurer.settings),
                )
                .await?,
            ),
            None => None,
        };
        if let Some(PolicyCheck::Locked(_)) = reservation {
            return Ok(unverified("locked"));
        }
        let outcome = match &row {
            Some(r) => otp.verify(self.db, &r.id, &code).await?.map(|v| v.outcome),
            None => None,
        };
        let matched = match (outcome, &number) {
            (Some(crate::otp::VerifyOutcome::Verified), Some(n)) => {
                self.insurer.source.policy(n).await?
            }
            _ => None,
        };
        let mut result = self
            .settle_attempt(reservation.as_ref(), matched, Method::Otp, "wrong")
            .await?;
        // The typed code is tried once: it does not stay in the conversation's slots.
        if let Some(data) = result.data.as_object_mut() {
            data.insert("otp_code".into(), json!(""));
        }
        Ok(result)
    }

    /// `policy.list`: the policies the contact is verified for.
    pub async fn policy_list(&self) -> Result<ActionResult> {
        let numbers =
            identity::verified_policies(self.db, self.contact.id, self.now_ms(), self.ttl_ms())
                .await?;
        let mut policies = Vec::with_capacity(numbers.len());
        for number in numbers {
            if let Some(p) = self.insurer.source.policy(&number).await? {
                policies.push(p);
            }
        }
        let rows: Vec<Value> = policies
            .iter()
            .take(MAX_LIST_ROWS)
            .map(|p| {
                json!({ "policy_id": p.policy_number, "plan": p.plan, "policy_number": p.policy_number })
            })
            .collect();
        Ok(match policies.as_slice() {
            [] => ActionResult::new("none", json!({ "policies": [], "policy_count": 0 })),
            [only] => ActionResult::new(
                "one",
                json!({ "policies": rows, "policy_count": 1, "policy_id": only.policy_number }),
            ),
            many => ActionResult::new(
                "many",
                json!({ "policies": rows, "policy_count": many.len() }),
            ),
        })
    }

    /// `policy.details`: the summary of one policy the contact is verified for.
    pub async fn policy_details(&self) -> Result<ActionResult> {
        let Some(p) = self.authorized_policy("policy_id").await? else {
            return Ok(ActionResult::bare("not_found"));
        };
        let premiums = self.insurer.source.premiums(&p.policy_number).await?;
        let next_due = premiums
            .iter()
            .filter(|i| i.status == "due")
            .map(|i| i.due_date)
            .min();
        Ok(ActionResult::new(
            "found",
            json!({
                "policy_number": p.policy_number,
                "plan": p.plan,
                // Codes, not English: the engine shows them in the contact's language
                // (`value-…` messages); a code it does not know is shown as sent.
                "policy_status": p.status,
                "policy_type": p.product,
                "sum_assured": Paise::new(p.sum_assured_paise).rupees(),
                // "-" rather than null: a missing fluent argument would show its raw name.
                "next_due_date": next_due.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            }),
        ))
    }

    /// The claim numbered in `claim_number`, if it is on a policy the contact is verified for
    /// right now; any other claim is `None`, as if it did not exist.
    async fn authorized_claim(&self) -> Result<Option<model::Claim>> {
        let Some(number) = self
            .arg("claim_number")
            .and_then(|s| model::normalize_claim_number(&s))
        else {
            return Ok(None);
        };
        let verified =
            identity::verified_policies(self.db, self.contact.id, self.now_ms(), self.ttl_ms())
                .await?;
        // Without any verification there is nothing the contact may see: no lookup at all.
        if verified.is_empty() {
            return Ok(None);
        }
        let Some(claim) = self.insurer.source.claim(&number).await? else {
            return Ok(None);
        };
        if !verified.contains(&claim.policy_number) {
            tracing::info!(
                contact = %self.masked_contact(),
                "claim lookup refused: the claim is on a policy the contact is not verified for"
            );
            return Ok(None);
        }
        Ok(Some(claim))
    }

    /// `claim.status`: a claim on a policy the contact is verified for, by claim number.
    pub async fn claim_status(&self) -> Result<ActionResult> {
        let Some(claim) = self.authorized_claim().await? else {
            return Ok(ActionResult::bare("not_found"));
        };
        // Documents the contact can send right here: the flow offers "Send documents".
        let outcome = if claim.pending_documents > 0 {
            "documents_pending"
        } else {
            "found"
        };
        // Always set, empty without a letter: a letter of the claim looked up before must not
        // be sent again for this one.
        let letter: Vec<Value> = self
            .claim_letter_file(&claim.claim_number)
            .await?
            .into_iter()
            .map(|file| file.to_value())
            .collect();
        Ok(ActionResult::new(
            outcome,
            json!({
                "claim_stage": claim.stage,
                "claim_updated_date": claim.updated_date.to_string(),
                "pending_documents": claim.pending_documents,
                "claim_letter": letter,
            }),
        ))
    }

    /// The claim's letter from the source, checked and kept in the media store, as the file
    /// reference a flow's `send_files:` sends; `None` without a store or a letter, or with a
    /// file WhatsApp would refuse (logged).
    async fn claim_letter_file(&self, claim_number: &str) -> Result<Option<MediaRef>> {
        if self.insurer.media.is_none() {
            return Ok(None);
        }
        let Some(file) = self.insurer.source.claim_letter(claim_number).await? else {
            return Ok(None);
        };
        Ok(self
            .keep_document(file, "claim letter")
            .await
            .map(|(stored, file)| MediaRef {
                sha256: stored.sha256,
                mime: file.mime_type,
                kind: FileKind::Document,
                file_name: Some(file.filename),
                caption: None,
            }))
    }

    /// A source's document checked against WhatsApp's document limits and kept in the media
    /// store; `None` (logged, `what` names it) when WhatsApp would refuse it or the store
    /// would not take it.
    async fn keep_document(
        &self,
        file: DocumentFile,
        what: &str,
    ) -> Option<(crate::media::store::Stored, DocumentFile)> {
        let store = self.insurer.media.as_ref()?;
        let checked = validate_file(
            OutboundMediaKind::Document,
            &file.mime_type,
            file.bytes.len() as u64,
        )
        .and_then(|()| validate_filename("document.filename", &file.filename));
        if let Err(e) = checked {
            tracing::warn!(error = %e, "{what} cannot go as a WhatsApp document");
            return None;
        }
        match crate::media::uploads::store_bytes(store, file.bytes.clone()).await {
            Ok(stored) => Some((stored, file)),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "{what} could not be kept in the media store");
                None
            }
        }
    }

    /// `claim.list_open`: the claims still being worked on, on every policy the contact is
    /// verified for, most recently updated first (a list message holds the first ten).
    pub async fn claim_list_open(&self) -> Result<ActionResult> {
        let verified =
            identity::verified_policies(self.db, self.contact.id, self.now_ms(), self.ttl_ms())
                .await?;
        if verified.is_empty() {
            return Ok(ActionResult::bare("unverified"));
        }
        let mut open = Vec::new();
        for number in &verified {
            let claims = self.insurer.source.claims(number).await?;
            // Sources answer about the policy asked for (the HTTP source refuses anything
            // else); checked again here because this list must never carry another policy.
            open.extend(
                claims
                    .into_iter()
                    .filter(|c| c.policy_number == *number && c.is_open()),
            );
        }
        open.sort_by(|a, b| {
            b.updated_date
                .cmp(&a.updated_date)
                .then_with(|| a.claim_number.cmp(&b.claim_number))
        });
        let fields = |c: &model::Claim| {
            json!({
                "claim_number": c.claim_number,
                "claim_stage": c.stage,
                "claim_updated_date": c.updated_date.to_string(),
                "pending_documents": c.pending_documents,
            })
        };
        let rows: Vec<Value> = open.iter().take(MAX_LIST_ROWS).map(fields).collect();
        Ok(match open.as_slice() {
            [] => ActionResult::new("none", json!({ "claims": [], "claim_count": 0 })),
            [only] => {
                let mut data = fields(only);
                data["claims"] = Value::Array(rows);
                data["claim_count"] = json!(1);
                ActionResult::new("one", data)
            }
            many => ActionResult::new("many", json!({ "claims": rows, "claim_count": many.len() })),
        })
    }

    /// `policy.document`: the document of a policy the contact is verified for: the file
    /// itself when the source holds one and a media store is configured (`sent`, with an
    /// attachment the runner sends), else the link (`found`), else `no_document`.
    pub async fn policy_document(&self) -> Result<ActionResult> {
        let Some(p) = self.authorized_policy("policy_id").await? else {
            return Ok(ActionResult::bare("not_found"));
        };
        let mut data = json!({ "policy_number": p.policy_number, "plan": p.plan });
        if let Some(attachment) = self.policy_document_file(&p.policy_number).await? {
            let mut result = ActionResult::new("sent", data);
            result.attachment = Some(attachment);
            return Ok(result);
        }
        match p.document_url.as_deref().filter(|u| is_https_link(u)) {
            Some(url) => {
                data["document_url"] = json!(url);
                Ok(ActionResult::new("found", data))
            }
            None => {
                if p.document_url.is_some() {
                    // Imports accept https links only; this came from an insurer API. The
                    // link itself is not logged: it may carry an access token.
                    tracing::warn!(
                        "policy document link is not an https URL; answered as no document"
                    );
                }
                Ok(ActionResult::new("no_document", data))
            }
        }
    }

    /// The policy's schedule from the source, checked against WhatsApp's document limits and
    /// kept in the media store; `None` without a store, without a file, or with a file
    /// WhatsApp would refuse (logged: the link answer is better than a failed send).
    async fn policy_document_file(&self, number: &str) -> Result<Option<Attachment>> {
        if self.insurer.media.is_none() {
            return Ok(None);
        }
        let Some(file) = self.insurer.source.policy_document(number).await? else {
            return Ok(None);
        };
        // Not kept: the link answer is used instead.
        let Some((stored, file)) = self.keep_document(file, "policy document").await else {
            return Ok(None);
        };
        Ok(Some(Attachment {
            kind: OutboundMediaKind::Document,
            stored,
            mime_type: file.mime_type,
            filename: file.filename,
            caption: Some("policy-document-caption"),
            source: "policy_document",
        }))
    }

    /// `premium.due`: the next unpaid instalment, when due soon or overdue, with a pay link.
    pub async fn premium_due(&self) -> Result<ActionResult> {
        // Not verified (e.g. expired mid-flow): "error" (sorry + agent), never a wrong
        // "nothing is due".
        let Some(p) = self.authorized_policy("policy_id").await? else {
            return Ok(ActionResult::error());
        };
        let premiums = self.insurer.source.premiums(&p.policy_number).await?;
        let horizon = self.insurer.today(self.now)
            + Duration::days(i64::from(self.insurer.settings.premium_due_window_days));
        let next = premiums
            .iter()
            .filter(|i| i.status == "due")
            .min_by_key(|i| i.due_date);
        match next {
            Some(i) if i.due_date <= horizon => {
                let link = self.insurer.pay_links.link(
                    &p.policy_number,
                    i.due_date,
                    i.amount_paise,
                    self.now,
                );
                Ok(ActionResult::new(
                    "due",
                    json!({
                        "policy_number": p.policy_number,
                        "premium_amount": Paise::new(i.amount_paise).rupees(),
                        "due_date": i.due_date.to_string(),
                        "pay_link": link,
                    }),
                ))
            }
            _ => Ok(ActionResult::bare("not_due")),
        }
    }

    /// `premium.remind_later`: records a reminder a few days before the due date.
    pub async fn premium_remind_later(&self) -> Result<ActionResult> {
        let Some(number) = self.authorized_number("policy_id").await? else {
            return Ok(ActionResult::error());
        };
        let Some(due) = self.arg("due_date").and_then(|s| model::parse_date(&s)) else {
            return Ok(ActionResult::error());
        };
        let tomorrow = self.insurer.today(self.now) + Duration::days(1);
        let before = due - Duration::days(i64::from(self.insurer.settings.remind_days_before));
        let remind_on = before.max(tomorrow);
        let row = premium_reminder::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            contact_id: Set(self.contact.id),
            policy_number: Set(number),
            due_date: Set(due.to_string()),
            remind_on: Set(remind_on.to_string()),
            created_at: Set(self.now_ms()),
            sent_at: Set(None),
        };
        premium_reminder::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    premium_reminder::Column::ContactId,
                    premium_reminder::Column::PolicyNumber,
                    premium_reminder::Column::DueDate,
                ])
                .update_columns([
                    premium_reminder::Column::RemindOn,
                    premium_reminder::Column::CreatedAt,
                    premium_reminder::Column::SentAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(self.db)
            .await?;
        Ok(ActionResult::new(
            "scheduled",
            json!({ "remind_date": remind_on.to_string() }),
        ))
    }
}

/// Longest description kept from a claim intimation (the flow asks for at most 500; an
/// insurer API should not get a novel because a flow was edited).
const MAX_DESCRIPTION_CHARS: usize = 1000;

// Claims from the chat (issue 18). Writes go through the turn's transaction (see
// `PolicySource::intimate_claim`), hence a concrete connection type.
impl Ctx<'_, sea_orm::DatabaseTransaction> {
    /// Runs `action` by its method here. Exhaustive: an action added to the engine's catalogue
    /// does not build until it has one, beside the others.
    pub async fn run(&self, action: Action) -> Result<ActionResult> {
        match action {
            Action::IdentityCheck => self.identity_check().await,
            Action::IdentityVerifyDob => self.identity_verify_dob().await,
            Action::IdentitySendOtp => self.identity_send_otp().await,
            Action::IdentityVerifyOtp => self.identity_verify_otp().await,
            Action::PolicyList => self.policy_list().await,
            Action::PolicyDetails => self.policy_details().await,
            Action::ClaimStatus => self.claim_status().await,
            Action::ClaimListOpen => self.claim_list_open().await,
            Action::PolicyDocument => self.policy_document().await,
            Action::PremiumDue => self.premium_due().await,
            Action::PremiumRemindLater => self.premium_remind_later().await,
            Action::ClaimLossTypes => self.claim_loss_types().await,
            Action::ClaimIntimate => self.claim_intimate().await,
            Action::ClaimAttachDocuments => self.claim_attach_documents().await,
        }
    }

    /// `claim.loss_types`: what can have happened, by the product of a policy the contact is
    /// verified for.
    pub async fn claim_loss_types(&self) -> Result<ActionResult> {
        let Some(p) = self.authorized_policy("policy_id").await? else {
            return Ok(ActionResult::bare("not_found"));
        };
        let rows: Vec<Value> = crate::engine::vocabulary::loss_types_for(&p.product)
            .iter()
            .map(|t| json!({ "loss_type": t }))
            .collect();
        Ok(ActionResult::new(
            "listed",
            json!({
                "policy_number": p.policy_number,
                "plan": p.plan,
                "policy_type": p.product,
                "loss_types": rows,
            }),
        ))
    }

    /// The files of `claim_files` that this contact really sent and the store kept (a slot
    /// is the engine's, but a reference names a file by hash alone: it is checked against
    /// the contact's own `media_files` rows), with the link the insurer fetches each by.
    async fn claim_files(&self) -> Result<Option<Vec<super::model::ClaimFile>>> {
        use crate::engine::media_slot::MediaRef;
        use crate::store::entities::media_file;
        use sea_orm::{ColumnTrait, QueryFilter};
        let refs = MediaRef::list(self.args.get("claim_files"));
        if refs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let kept: std::collections::HashSet<String> = media_file::Entity::find()
            .filter(media_file::Column::ContactId.eq(self.contact.id))
            .filter(media_file::Column::State.eq(media_file::State::Stored))
            .filter(media_file::Column::Sha256.is_in(refs.iter().map(|r| r.sha256.clone())))
            .all(self.db)
            .await?
            .into_iter()
            .filter_map(|r| r.sha256)
            .collect();
        let mut files = Vec::with_capacity(refs.len());
        for file in refs.into_iter().filter(|r| kept.contains(&r.sha256)) {
            let (url, expires) = match self.insurer.file_links.link(&file.sha256, self.now) {
                Some(link) => link,
                // The embedded tables need no link; an insurer API cannot get the file
                // without one.
                None if self.insurer.settings.source == crate::config::PolicySourceKind::Http => {
                    tracing::warn!(
                        "claim files cannot reach the insurer: insurer.http.file_link_base is not set"
                    );
                    return Ok(None);
                }
                None => (String::new(), self.now),
            };
            files.push(super::model::ClaimFile {
                file,
                contact_id: self.contact.id,
                url,
                link_expires_at: expires.to_rfc3339(),
            });
        }
        Ok(Some(files))
    }

    /// `claim.intimate`: a new claim (first notice of loss) on a policy the contact is
    /// verified for, with what happened, when (not in the future), the description and files.
    pub async fn claim_intimate(&self) -> Result<ActionResult> {
        let Some(p) = self.authorized_policy("policy_id").await? else {
            return Ok(ActionResult::bare("not_found"));
        };
        let today = self.insurer.today(self.now);
        let loss_type = self
            .arg("loss_type")
            .filter(|t| crate::engine::vocabulary::LOSS_TYPES.contains(&t.as_str()));
        let loss_date = self
            .arg("loss_date")
            .and_then(|d| model::parse_date(&d))
            .filter(|d| *d <= today);
        let description: String = self
            .arg("loss_description")
            .unwrap_or_default()
            .trim()
            .chars()
            .take(MAX_DESCRIPTION_CHARS)
            .collect();
        let (Some(loss_type), Some(loss_date)) = (loss_type, loss_date) else {
            // The flow validated both; a slot that is not one is a flow bug, not the contact's.
            tracing::warn!("claim intimation refused: loss type or date missing or invalid");
            return Ok(ActionResult::error());
        };
        let Some(files) = self.claim_files().await? else {
            return Ok(ActionResult::error());
        };
        let claim = model::NewClaim {
            policy_number: p.policy_number.clone(),
            loss_type,
            loss_date,
            description,
            filed_date: today,
            files,
            contact_id: self.contact.id,
        };
        let created = self.insurer.source.intimate_claim(self.db, &claim).await?;
        record_documents(self.db, &created.claim_number, &claim.files).await?;
        tracing::info!(
            contact = %self.masked_contact(),
            policy = %mask(&p.policy_number),
            files = claim.files.len(),
            "claim intimated"
        );
        Ok(ActionResult::new(
            "intimated",
            json!({ "claim_number": created.claim_number, "claim_stage": created.stage }),
        ))
    }

    /// `claim.attach_documents`: the files of `claim_files` for a claim on a policy the
    /// contact is verified for; `no_files` when none came.
    pub async fn claim_attach_documents(&self) -> Result<ActionResult> {
        let not_found = ActionResult::bare("not_found");
        let Some(claim) = self.authorized_claim().await? else {
            return Ok(not_found);
        };
        let number = claim.claim_number;
        let Some(files) = self.claim_files().await? else {
            return Ok(ActionResult::error());
        };
        if files.is_empty() {
            return Ok(ActionResult::bare("no_files"));
        }
        let today = self.insurer.today(self.now);
        if !self
            .insurer
            .source
            .attach_documents(self.db, &number, &files, today)
            .await?
        {
            return Ok(not_found);
        }
        record_documents(self.db, &number, &files).await?;
        tracing::info!(
            contact = %self.masked_contact(),
            files = files.len(),
            "claim documents attached"
        );
        Ok(ActionResult::new(
            "attached",
            json!({ "documents_attached": files.len() }),
        ))
    }
}

/// The `claim_documents` rows for `files` sent for `claim_number`, whichever source took the
/// claim: what erasure finds the contact's claim files by, what keeps them in the media store
/// after the chat's media rows are purged, and what the signed file route serves (an insurer
/// API fetches the files by their links).
async fn record_documents(
    txn: &sea_orm::DatabaseTransaction,
    claim_number: &str,
    files: &[model::ClaimFile],
) -> std::result::Result<(), sea_orm::DbErr> {
    use crate::store::entities::claim_document;
    use sea_orm::ActiveValue::NotSet;
    let now = crate::store::now_ms();
    let rows: Vec<claim_document::ActiveModel> = files
        .iter()
        .map(|f| claim_document::ActiveModel {
            id: NotSet,
            claim_number: Set(claim_number.to_owned()),
            contact_id: Set(f.contact_id),
            sha256: Set(f.file.sha256.clone()),
            mime_type: Set(f.file.mime.clone()),
            kind: Set(f.file.kind.as_str().to_owned()),
            file_name: Set(f.file.file_name.clone()),
            created_at: Set(now),
        })
        .collect();
    if !rows.is_empty() {
        claim_document::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
