//! The consent gate: whether a message the composer decided on may go to a contact, given
//! what the contact agreed to. Called by [`composer::consent_gate`](crate::messaging::composer::consent_gate)
//! at queue time and again at send time (consent may change in between).
//!
//! The rules, in order:
//! 1. **Marketing** (a campaign, or any MARKETING template) needs a recorded marketing opt-in,
//!    no marketing stop in WhatsApp itself, and stays under the per-contact frequency cap
//!    (`consent.marketing_cap` per `consent.marketing_cap_days`, counting campaign messages
//!    sent in the period plus those queued before this one).
//! 2. An **essential template** (marked by the insurer in the template registry, e.g. an update
//!    on a claim the contact filed) goes whatever the contact said, unless the caller itself
//!    called the notification non-essential. An essential notification going free-form inside
//!    the window needs its template fallback to be essential too: the caller's flag alone is
//!    not enough.
//! 3. After an **opt-out** (of everything, or of the message's scope: `service` for
//!    notifications, replies and agents, `reminders` for the configured reminder kinds) nothing
//!    else goes, except a **reply to a message the contact has just sent**: a free-form reply or
//!    agent message whose `in_reply_to` is this contact's message, still inside its 24-hour
//!    window (minus the margin), and either the contact's latest message or received after the
//!    opt-out. "They wrote to us" — and the STOP confirmation itself is such a reply.
//! 4. With `consent.require_opt_in`, a non-essential notification also needs a recorded
//!    opt-in of its scope (unknown is not enough).

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};

use crate::consent::{ConsentPolicy, ConsentState};
use crate::messaging::composer::{Composer, Purpose, TemplateChoice};
use crate::messaging::templates::{self, TemplateInfo};
use crate::store::entities::outbox::{Reason, State as OutboxState};
use crate::store::entities::{contact, inbound_message, outbox};

/// What the gate is asked about.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    pub contact: &'a contact::Model,
    pub purpose: &'a Purpose,
    /// The template going out; `None` when the message goes free-form.
    pub template: Option<&'a TemplateInfo>,
    /// The intent's template fallback (consulted for an essential notification going free-form).
    pub fallback: Option<&'a TemplateChoice>,
    /// The inbound message this answers.
    pub in_reply_to: Option<i64>,
    /// The outbox row being sent; `None` at queue time.
    pub row_id: Option<i64>,
    /// The contact's consent, when the caller has read it in the same transaction.
    pub known_state: Option<&'a ConsentState>,
    /// Unix ms.
    pub now: i64,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny {
        /// One of the `consent_*` reasons.
        reason: Reason,
        detail: String,
    },
}

fn deny(reason: Reason, detail: impl Into<String>) -> Result<Verdict, DbErr> {
    Ok(Verdict::Deny {
        reason,
        detail: detail.into(),
    })
}

/// Applies the rules above.
///
/// # Errors
/// Database errors.
pub async fn check<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    input: GateInput<'_>,
) -> Result<Verdict, DbErr> {
    let policy = &composer.consent;
    // A one-time password is what the person just asked for (at the insurer's portal or in
    // this chat): essential, whatever their consent, but only as an authentication template.
    if matches!(input.purpose, Purpose::Otp { .. })
        && input
            .template
            .is_some_and(|t| t.category.eq_ignore_ascii_case("AUTHENTICATION"))
    {
        return Ok(Verdict::Allow);
    }
    let marketing = matches!(input.purpose, Purpose::Campaign { .. })
        || input
            .template
            .is_some_and(|t| t.category.eq_ignore_ascii_case("MARKETING"));
    let caller_says_not_essential = matches!(
        input.purpose,
        Purpose::Notification {
            essential: false,
            ..
        }
    );
    if !marketing && !caller_says_not_essential && input.template.is_some_and(|t| t.essential) {
        return Ok(Verdict::Allow);
    }
    let state = match input.known_state {
        Some(state) => state.clone(),
        None => crate::consent::state_of(db, &policy.hasher, input.contact).await?,
    };
    if marketing {
        return check_marketing(db, policy, &state, input).await;
    }
    let (scope_name, scope) = match input.purpose {
        Purpose::Notification { kind, .. } if policy.reminder_kinds.iter().any(|k| k == kind) => {
            ("reminders", state.reminders)
        }
        _ => ("service", state.service),
    };
    if state.opted_out() || scope == Some(false) {
        if essential_free_form(db, input).await?
            || replied_just(db, composer, &state, input).await?
        {
            return Ok(Verdict::Allow);
        }
        return if state.opted_out() {
            deny(
                Reason::ConsentOptedOut,
                "the contact opted out; only essential templates and replies to the message they just sent may go",
            )
        } else {
            deny(
                Reason::ConsentScopeOptedOut,
                format!("the contact opted out of {scope_name} messages"),
            )
        };
    }
    if scope.is_none()
        && policy.require_opt_in
        && matches!(input.purpose, Purpose::Notification { .. })
        && !essential_free_form(db, input).await?
    {
        return deny(
            Reason::ConsentNoOptIn,
            format!("no {scope_name} opt-in is recorded and consent.require_opt_in is set"),
        );
    }
    Ok(Verdict::Allow)
}

async fn check_marketing<C: ConnectionTrait>(
    db: &C,
    policy: &ConsentPolicy,
    state: &ConsentState,
    input: GateInput<'_>,
) -> Result<Verdict, DbErr> {
    if state.marketing != Some(true) {
        return deny(
            Reason::ConsentNoMarketingOptIn,
            if state.opted_out() {
                "the contact opted out; marketing needs a new marketing opt-in"
            } else {
                "marketing needs a recorded marketing opt-in"
            },
        );
    }
    if state.marketing_stopped_on_whatsapp {
        return deny(
            Reason::ConsentMarketingStopped,
            "the contact stopped marketing messages in WhatsApp (Meta would refuse with 131050)",
        );
    }
    let since = input.now - policy.marketing_cap_ms;
    let mut queued_before = Condition::all().add(outbox::Column::State.eq(OutboxState::Queued));
    if let Some(row) = input.row_id {
        queued_before = queued_before.add(outbox::Column::Id.lt(row));
    }
    let counted = outbox::Entity::find()
        .filter(outbox::Column::ContactId.eq(input.contact.id))
        .filter(outbox::Column::Purpose.eq("campaign"))
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(outbox::Column::State.eq(OutboxState::Sent))
                        .add(outbox::Column::SentAt.gte(since)),
                )
                .add(queued_before),
        )
        .count(db)
        .await?;
    if counted >= u64::from(policy.marketing_cap) {
        return deny(
            Reason::ConsentMarketingCap,
            format!(
                "{counted} marketing message(s) sent or queued in the cap period (cap {})",
                policy.marketing_cap
            ),
        );
    }
    Ok(Verdict::Allow)
}

/// An essential notification going free-form: essential only when its template fallback is
/// marked essential in the registry (the insurer's word, not just the caller's).
async fn essential_free_form<C: ConnectionTrait>(
    db: &C,
    input: GateInput<'_>,
) -> Result<bool, DbErr> {
    let (
        Purpose::Notification {
            essential: true, ..
        },
        None,
        Some(choice),
    ) = (input.purpose, input.template, input.fallback)
    else {
        return Ok(false);
    };
    Ok(templates::definition(db, &choice.name, &choice.language)
        .await?
        .is_some_and(|t| t.essential && !t.category.eq_ignore_ascii_case("MARKETING")))
}

/// A free-form reply (or agent message) to a message this contact has just sent: inside that
/// message's window, and either their latest message or one received after the opt-out.
async fn replied_just<C: ConnectionTrait>(
    db: &C,
    composer: &Composer,
    state: &ConsentState,
    input: GateInput<'_>,
) -> Result<bool, DbErr> {
    let (Purpose::Reply | Purpose::Agent, None, Some(inbound_id)) =
        (input.purpose, input.template, input.in_reply_to)
    else {
        return Ok(false);
    };
    let Some(message) = inbound_message::Entity::find_by_id(inbound_id)
        .one(db)
        .await?
        .filter(|m| m.contact_id == input.contact.id)
    else {
        return Ok(false);
    };
    if !composer.window_open(Some(message.sent_at), input.now) {
        return Ok(false);
    }
    if state
        .opted_out_at
        .is_some_and(|at| message.received_at > at)
    {
        return Ok(true);
    }
    let newer = inbound_message::Entity::find()
        .filter(inbound_message::Column::ContactId.eq(input.contact.id))
        .filter(inbound_message::Column::Id.gt(message.id))
        .count(db)
        .await?;
    Ok(newer == 0)
}
