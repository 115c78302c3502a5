//! sea-orm entities, one per table (see `migrations/`). Hand-written queries live beside them
//! in `store/`; every `*_at` field holds Unix milliseconds (UTC).

pub mod agent;
pub mod agent_session;
pub mod campaign;
pub mod campaign_recipient;
pub mod claim;
pub mod consent_log;
pub mod contact;
pub mod conversation;
pub mod flow_hop;
pub mod handoff;
pub mod identity_attempt;
pub mod identity_policy_attempt;
pub mod identity_verification;
pub mod inbound_message;
pub mod login_failure;
pub mod media_file;
pub mod message_status;
pub mod message_template;
pub mod misunderstood_message;
pub mod notification_request;
pub mod otp;
pub mod outbox;
pub mod policy;
pub mod policyholder;
pub mod premium;
pub mod premium_reminder;
pub mod reminder_run;
pub mod reminder_send;
pub mod transcript_view;
