//! The template registry: which message templates the server knows, in which languages, with
//! which parameters and buttons, and whether each is APPROVED right now.
//!
//! Three sources keep it current, all writing the shared `message_templates` table so every
//! instance agrees:
//! - the registry file (`flows/templates/templates.yaml`, its format in
//!   [`crate::engine::templates_file`], which the flow linter checks against too), loaded at
//!   start: it defines the
//!   templates the flows name, their parameter names and the insurer's `essential` flag, and
//!   gives a status only to templates the table does not know yet;
//! - `insurebot templates sync`, which reads the Graph API's template list;
//! - `message_template_status_update` webhooks (and Cloud API errors 132015/132016), which
//!   take a PAUSED or DISABLED template out of use at once.
//!
//! The sender reads the status from the table at the moment of sending, so a pause recorded by
//! any instance stops the next send everywhere.
//!
//! Each WhatsApp Business Account (WABA) has its own templates: a number sends only what is
//! approved in its own WABA (`Settings::waba_of`). So every row belongs to one WABA, the file
//! is seeded into each, sync reads each WABA's list into its rows, and a status update
//! changes the rows of the WABA it came from. The empty WABA id is the one registry of a
//! deployment that names no WABA (the sandbox).

use std::collections::HashSet;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;

use crate::engine::templates_file::{
    APPROVED, ButtonKind, FileError, OtpType, ParamFormat, TemplateButton, TemplateDef,
};
use crate::store::entities::message_template;
use crate::whatsapp::client::{CloudApiClient, RemoteTemplate, SendError};
use crate::whatsapp::inbound::TemplateStatusUpdate;
use crate::whatsapp::outbound::{OutboundBody, TemplateComponent, TemplateParameter};

/// A problem with the registry file, the table or the Graph API's list.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("template list from the Cloud API: {0}")]
    Api(#[from] SendError),
}

/// A template in one language as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateInfo {
    /// The WhatsApp Business Account it is registered in.
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub essential: bool,
    pub parameter_format: ParamFormat,
    pub params: Vec<String>,
    pub buttons: Vec<TemplateButton>,
    pub reason: Option<String>,
}

impl TemplateInfo {
    fn from_row(row: message_template::Model) -> Self {
        TemplateInfo {
            parameter_format: if row.parameter_format == "NAMED" {
                ParamFormat::Named
            } else {
                ParamFormat::Positional
            },
            params: serde_json::from_str(&row.params).unwrap_or_default(),
            buttons: serde_json::from_str(&row.buttons).unwrap_or_default(),
            waba_id: row.waba_id,
            name: row.name,
            language: row.language,
            category: row.category,
            status: row.status,
            essential: row.essential,
            reason: row.reason,
        }
    }

    pub fn is_approved(&self) -> bool {
        self.status == APPROVED
    }
}

/// Why a template cannot be sent; `code` is what the outbox row's `reason` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: crate::store::entities::outbox::Reason,
    pub detail: String,
}

/// Writes the file's templates into the table, once for each WABA of `wabas` (the
/// deployment's, the first number's first: [`crate::config::Settings::wabas`]). Definitions
/// (category, parameters, buttons, `essential`) follow the file; a status is written only for
/// templates the table does not know, because sync and webhooks own it afterwards (a PAUSED
/// template stays paused across restarts).
///
/// Rows from before templates were kept per WABA (WABA `''`) become the first WABA's when it
/// has none yet: they are what that deployment synced from its one WABA.
///
/// # Errors
/// Database errors.
pub async fn seed<C: ConnectionTrait>(
    db: &C,
    defs: &[TemplateDef],
    wabas: &[String],
    now: i64,
) -> Result<usize, DbErr> {
    if let Some(first) = wabas.first().filter(|w| !w.is_empty()) {
        let has_own = message_template::Entity::find()
            .filter(message_template::Column::WabaId.eq(first))
            .one(db)
            .await?
            .is_some();
        if !has_own {
            message_template::Entity::update_many()
                .col_expr(message_template::Column::WabaId, Expr::value(first))
                .filter(message_template::Column::WabaId.eq(""))
                .exec(db)
                .await?;
        }
    }
    let mut n = 0;
    for waba in wabas {
        n += seed_one(db, defs, waba, now).await?;
    }
    Ok(n)
}

async fn seed_one<C: ConnectionTrait>(
    db: &C,
    defs: &[TemplateDef],
    waba: &str,
    now: i64,
) -> Result<usize, DbErr> {
    let mut n = 0;
    for def in defs {
        for language in &def.languages {
            let row = message_template::ActiveModel {
                id: NotSet,
                waba_id: Set(waba.to_owned()),
                name: Set(def.name.clone()),
                language: Set(language.clone()),
                category: Set(def.category.as_str().to_owned()),
                status: Set(def.status.clone()),
                essential: Set(def.essential),
                parameter_format: Set(def.parameter_format.as_str().to_owned()),
                params: Set(to_json(&def.params)),
                buttons: Set(to_json(&def.buttons)),
                meta_id: Set(None),
                reason: Set(None),
                source: Set("file".to_owned()),
                updated_at: Set(now),
            };
            // Update first, insert if absent: the definition follows the file, the status stays
            // whatever sync or a webhook made it. DO NOTHING (on any unique key) lets two
            // instances starting together both succeed.
            let updated = message_template::Entity::update_many()
                .col_expr(
                    message_template::Column::Category,
                    Expr::value(def.category.as_str()),
                )
                .col_expr(
                    message_template::Column::Essential,
                    Expr::value(def.essential),
                )
                .col_expr(
                    message_template::Column::ParameterFormat,
                    Expr::value(def.parameter_format.as_str()),
                )
                .col_expr(
                    message_template::Column::Params,
                    Expr::value(to_json(&def.params)),
                )
                .col_expr(
                    message_template::Column::Buttons,
                    Expr::value(to_json(&def.buttons)),
                )
                .filter(message_template::Column::WabaId.eq(waba))
                .filter(message_template::Column::Name.eq(&def.name))
                .filter(message_template::Column::Language.eq(language))
                .exec(db)
                .await?;
            if updated.rows_affected == 0 {
                message_template::Entity::insert(row)
                    .on_conflict(OnConflict::new().do_nothing().to_owned())
                    .exec_without_returning(db)
                    .await?;
            }
            n += 1;
        }
    }
    Ok(n)
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

/// The template `name` of the WABA `waba` in `language`, or in the nearest language the
/// table has: `hi_IN` matches `hi` and the other way round (WhatsApp Manager lets insurers
/// approve either). Another WABA's copy is never returned: a number may send only its own
/// WABA's templates.
///
/// # Errors
/// Database errors.
pub async fn lookup<C: ConnectionTrait>(
    db: &C,
    waba: &str,
    name: &str,
    language: &str,
) -> Result<Option<TemplateInfo>, DbErr> {
    let rows = message_template::Entity::find()
        .filter(message_template::Column::WabaId.eq(waba))
        .filter(message_template::Column::Name.eq(name))
        .order_by_asc(message_template::Column::Language)
        .all(db)
        .await?;
    Ok(nearest_language(rows, language))
}

/// The template `name` in `language` (or the nearest) in whichever WABA has it, the first by
/// WABA id: for what the insurer decides in the registry file and is the same in every
/// WABA (its category and `essential` flag), never for what may be sent.
///
/// # Errors
/// Database errors.
pub async fn definition<C: ConnectionTrait>(
    db: &C,
    name: &str,
    language: &str,
) -> Result<Option<TemplateInfo>, DbErr> {
    let rows = message_template::Entity::find()
        .filter(message_template::Column::Name.eq(name))
        .order_by_asc(message_template::Column::WabaId)
        .order_by_asc(message_template::Column::Language)
        .all(db)
        .await?;
    Ok(nearest_language(rows, language))
}

/// The row in `language`, else in its base language, else in any variant of it.
fn nearest_language(rows: Vec<message_template::Model>, language: &str) -> Option<TemplateInfo> {
    let base = |l: &str| l.split(['_', '-']).next().unwrap_or(l).to_ascii_lowercase();
    let wanted = base(language);
    let best = rows
        .iter()
        .position(|r| r.language == language)
        .or_else(|| rows.iter().position(|r| r.language == wanted))
        .or_else(|| rows.iter().position(|r| base(&r.language) == wanted));
    best.map(|i| TemplateInfo::from_row(rows[i].clone()))
}

/// Every template of every WABA in every language, by WABA, name and language (for the CLI
/// and the API).
///
/// # Errors
/// Database errors.
pub async fn all<C: ConnectionTrait>(db: &C) -> Result<Vec<TemplateInfo>, DbErr> {
    Ok(message_template::Entity::find()
        .order_by_asc(message_template::Column::WabaId)
        .order_by_asc(message_template::Column::Name)
        .order_by_asc(message_template::Column::Language)
        .all(db)
        .await?
        .into_iter()
        .map(TemplateInfo::from_row)
        .collect())
}

/// Sets the status of `name` in `language` (all languages when `None`) in the WABA `waba`
/// (every WABA when `None`: a status update that named none); returns how many rows changed.
///
/// # Errors
/// Database errors.
#[allow(clippy::too_many_arguments)]
pub async fn set_status<C: ConnectionTrait>(
    db: &C,
    waba: Option<&str>,
    name: &str,
    language: Option<&str>,
    status: &str,
    reason: Option<&str>,
    source: &str,
    now: i64,
) -> Result<u64, DbErr> {
    let mut update = message_template::Entity::update_many()
        .col_expr(message_template::Column::Status, Expr::value(status))
        .col_expr(
            message_template::Column::Reason,
            Expr::value(reason.map(str::to_owned)),
        )
        .col_expr(message_template::Column::Source, Expr::value(source))
        .col_expr(message_template::Column::UpdatedAt, Expr::value(now))
        .filter(message_template::Column::Name.eq(name));
    if let Some(language) = language {
        update = update.filter(message_template::Column::Language.eq(language));
    }
    if let Some(waba) = waba {
        update = update.filter(message_template::Column::WabaId.eq(waba));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// Applies a `message_template_status_update` webhook. PAUSED, DISABLED, REJECTED and the
/// like take the template out of use at once; REINSTATED and UNARCHIVED bring it back; FLAGGED
/// only warns (the template is still sendable, but at risk of a pause).
/// It changes the template of the WABA the webhook's entry names, not another WABA's copy.
///
/// # Errors
/// Database errors.
pub async fn apply_status_update<C: ConnectionTrait>(
    db: &C,
    update: &TemplateStatusUpdate,
    now: i64,
) -> Result<u64, DbErr> {
    let event = update.event.to_ascii_uppercase();
    let status = match event.as_str() {
        "FLAGGED" => {
            tracing::warn!(template = %update.name, "template flagged: it may be paused soon");
            return Ok(0);
        }
        "REINSTATED" | "UNARCHIVED" => APPROVED,
        other => other,
    };
    // The entry's WABA when the registry keeps it; else (a deployment that names no WABA, or
    // a webhook from one it does not know) every WABA's copy: a pause is not missed.
    let waba = match update.waba_id.as_deref() {
        Some(w) => message_template::Entity::find()
            .filter(message_template::Column::WabaId.eq(w))
            .one(db)
            .await?
            .map(|_| w),
        None => None,
    };
    let changed = set_status(
        db,
        waba,
        &update.name,
        update.language.as_deref(),
        status,
        update.reason.as_deref().filter(|r| *r != "NONE"),
        "webhook",
        now,
    )
    .await?;
    if changed == 0 {
        tracing::info!(template = %update.name, language = ?update.language, %status,
            "status update for a template the registry does not know; run `insurebot templates sync`");
    } else if status != APPROVED {
        tracing::warn!(template = %update.name, language = ?update.language, %status,
            "template taken out of use");
    }
    Ok(changed)
}

/// Turns a template choice into the Cloud API body, or says why it cannot go.
///
/// # Errors
/// A [`Refusal`]: `template_not_approved` (with the status), or `template_params` when the
/// caller gave a different number of parameters than the template has (Meta would answer
/// 132000).
pub fn render(info: &TemplateInfo, params: &[String]) -> Result<OutboundBody, Refusal> {
    if !info.is_approved() {
        return Err(Refusal {
            code: crate::store::entities::outbox::Reason::TemplateNotApproved,
            detail: if info.waba_id.is_empty() {
                format!(
                    "template {} ({}) is {}, only APPROVED templates may be sent",
                    info.name, info.language, info.status
                )
            } else {
                format!(
                    "template {} ({}) is {} in WABA {}, the WhatsApp Business Account of the number it leaves from; only APPROVED templates may be sent",
                    info.name, info.language, info.status, info.waba_id
                )
            },
        });
    }
    if params.len() != info.params.len() {
        return Err(Refusal {
            code: crate::store::entities::outbox::Reason::TemplateParams,
            detail: format!(
                "template {} takes {} parameters, {} were given",
                info.name,
                info.params.len(),
                params.len()
            ),
        });
    }
    let mut components = Vec::new();
    if !params.is_empty() {
        let parameters = params
            .iter()
            .zip(&info.params)
            .map(|(value, name)| TemplateParameter::Text {
                name: (info.parameter_format == ParamFormat::Named).then(|| name.clone()),
                // Meta refuses an empty parameter (132000-style); a dash keeps the message
                // readable when a slot was never filled.
                text: if value.trim().is_empty() {
                    "-".to_owned()
                } else {
                    value.clone()
                },
            })
            .collect();
        components.push(TemplateComponent::Body { parameters });
    }
    for (index, button) in info.buttons.iter().enumerate() {
        let index = u8::try_from(index).unwrap_or(u8::MAX);
        match (button.kind, &button.payload, params.first()) {
            (ButtonKind::QuickReply, Some(payload), _) => {
                components.push(TemplateComponent::QuickReply {
                    index,
                    payload: payload.clone(),
                });
            }
            // Copy-code and one-tap buttons carry the code itself, the template's only
            // variable (reference §4.2a).
            (ButtonKind::Otp, _, Some(code)) => {
                components.push(TemplateComponent::UrlButton {
                    index,
                    text: code.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(OutboundBody::Template {
        name: info.name.clone(),
        language: info.language.clone(),
        components,
    })
}

/// What a sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub seen: usize,
    pub added: usize,
    pub updated: usize,
    /// Templates the registry has that the Graph API no longer lists (marked DELETED).
    pub missing: usize,
}

/// Reads every template of the WhatsApp Business Account `waba_id` and writes their status
/// into that WABA's rows (another WABA's rows are left alone). Templates the table does not
/// know are added (their parameter names are taken from the body text); templates the table
/// has but Meta no longer lists are marked `DELETED`.
///
/// # Errors
/// Cloud API or database errors.
pub async fn sync<C: ConnectionTrait>(
    db: &C,
    client: &CloudApiClient,
    waba_id: &str,
    now: i64,
) -> Result<SyncReport, TemplateError> {
    let remote = client.list_templates(waba_id).await?;
    let mut report = SyncReport {
        seen: remote.len(),
        ..SyncReport::default()
    };
    let mut listed = HashSet::new();
    for t in &remote {
        listed.insert((t.name.clone(), t.language.clone()));
        let existing = message_template::Entity::find()
            .filter(message_template::Column::WabaId.eq(waba_id))
            .filter(message_template::Column::Name.eq(&t.name))
            .filter(message_template::Column::Language.eq(&t.language))
            .one(db)
            .await?;
        let status = t.status.to_ascii_uppercase();
        match existing {
            Some(row) => {
                let mut update = message_template::ActiveModel {
                    id: Set(row.id),
                    status: Set(status),
                    meta_id: Set(t.id.clone()),
                    reason: Set(t.rejected_reason.clone().filter(|r| r != "NONE")),
                    source: Set("sync".to_owned()),
                    updated_at: Set(now),
                    ..Default::default()
                };
                if let Some(c) = &t.category {
                    update.category = Set(c.to_ascii_uppercase());
                }
                message_template::Entity::update(update).exec(db).await?;
                report.updated += 1;
            }
            None => {
                let (format, params) = body_params(t);
                let row = message_template::ActiveModel {
                    id: NotSet,
                    waba_id: Set(waba_id.to_owned()),
                    name: Set(t.name.clone()),
                    language: Set(t.language.clone()),
                    category: Set(t
                        .category
                        .clone()
                        .unwrap_or_else(|| "UTILITY".to_owned())
                        .to_ascii_uppercase()),
                    status: Set(status),
                    essential: Set(false),
                    parameter_format: Set(format.as_str().to_owned()),
                    params: Set(to_json(&params)),
                    buttons: Set(to_json(&remote_buttons(t))),
                    meta_id: Set(t.id.clone()),
                    reason: Set(t.rejected_reason.clone().filter(|r| r != "NONE")),
                    source: Set("sync".to_owned()),
                    updated_at: Set(now),
                };
                message_template::Entity::insert(row)
                    .exec_without_returning(db)
                    .await?;
                report.added += 1;
            }
        }
    }
    let rows = message_template::Entity::find()
        .filter(message_template::Column::WabaId.eq(waba_id))
        .all(db)
        .await?;
    for row in rows {
        if !listed.contains(&(row.name.clone(), row.language.clone())) && row.status != "DELETED" {
            set_status(
                db,
                Some(waba_id),
                &row.name,
                Some(&row.language),
                "DELETED",
                Some("not in the Cloud API's template list"),
                "sync",
                now,
            )
            .await?;
            report.missing += 1;
        }
    }
    Ok(report)
}

/// Parameter names from a listed template's BODY text: `{{1}}`, `{{2}}` → `1`, `2`;
/// `{{policy_number}}` → `policy_number`.
fn body_params(t: &RemoteTemplate) -> (ParamFormat, Vec<String>) {
    let text = t
        .components
        .iter()
        .find(|c| c.get("type").and_then(|v| v.as_str()) == Some("BODY"))
        .and_then(|c| c.get("text"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_owned();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 2..];
    }
    let named = t
        .parameter_format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("NAMED"))
        || names.iter().any(|n| !n.chars().all(|c| c.is_ascii_digit()));
    if named {
        (ParamFormat::Named, names)
    } else {
        names.sort_by_key(|n| n.parse::<u32>().unwrap_or(u32::MAX));
        (ParamFormat::Positional, names)
    }
}

fn remote_buttons(t: &RemoteTemplate) -> Vec<TemplateButton> {
    t.components
        .iter()
        .filter(|c| c.get("type").and_then(|v| v.as_str()) == Some("BUTTONS"))
        .flat_map(|c| {
            c.get("buttons")
                .and_then(|b| b.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|b| {
            let otp_type = |t: &str| match t.to_ascii_uppercase().as_str() {
                "ONE_TAP" => OtpType::OneTap,
                _ => OtpType::CopyCode,
            };
            let url = b.get("url").and_then(|u| u.as_str()).unwrap_or("");
            let (kind, otp) = match b.get("type")?.as_str()? {
                "QUICK_REPLY" => (ButtonKind::QuickReply, None),
                "OTP" => (
                    ButtonKind::Otp,
                    Some(otp_type(
                        b.get("otp_type").and_then(|t| t.as_str()).unwrap_or(""),
                    )),
                ),
                // Meta lists an authentication template's code button as a URL button to
                // its own OTP page.
                "URL" if url.contains("whatsapp.com/otp/") => (
                    ButtonKind::Otp,
                    Some(otp_type(if url.contains("ONE_TAP") {
                        "ONE_TAP"
                    } else {
                        ""
                    })),
                ),
                "URL" => (ButtonKind::Url, None),
                "PHONE_NUMBER" => (ButtonKind::PhoneNumber, None),
                _ => return None,
            };
            Some(TemplateButton {
                kind,
                text: b.get("text")?.as_str()?.to_owned(),
                payload: None,
                otp_type: otp,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::templates_file::{Category, FileError, load_file, parse_file};

    fn info(status: &str, format: ParamFormat) -> TemplateInfo {
        TemplateInfo {
            waba_id: String::new(),
            name: "claim_status_update".into(),
            language: "hi".into(),
            category: "UTILITY".into(),
            status: status.into(),
            essential: true,
            parameter_format: format,
            params: vec!["claim_number".into(), "claim_stage".into()],
            buttons: vec![TemplateButton {
                kind: ButtonKind::QuickReply,
                text: "Menu".into(),
                payload: Some("menu".into()),
                otp_type: None,
            }],
            reason: None,
        }
    }

    #[test]
    fn the_shipped_registry_file_is_valid_and_covers_the_flows() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/templates/templates.yaml");
        let defs = load_file(&path).unwrap();
        for (name, params) in [
            ("policy_summary", 3),
            ("claim_status_update", 2),
            ("premium_due_reminder", 3),
            ("agent_unavailable", 0),
        ] {
            let def = defs.iter().find(|d| d.name == name).expect(name);
            assert_eq!(def.params.len(), params, "{name}");
            assert_eq!(def.languages, ["en", "hi", "ta"], "{name}");
            assert_eq!(def.status, APPROVED);
        }
    }

    #[test]
    fn a_malformed_registry_names_the_template() {
        let err = parse_file(
            Path::new("t.yaml"),
            "templates:\n  - { name: Bad-Name, category: UTILITY, languages: [en] }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("'Bad-Name'"), "{err}");
        let err = parse_file(
            Path::new("t.yaml"),
            "templates:\n  - { name: x, category: PROMO, languages: [en] }\n",
        )
        .unwrap_err();
        assert!(matches!(err, FileError::Parse { .. }), "{err}");
    }

    #[test]
    fn render_fills_positional_and_named_parameters_and_quick_reply_payloads() {
        let params = vec!["CLM-123456".to_owned(), "Under review".to_owned()];
        let OutboundBody::Template { components, .. } =
            render(&info(APPROVED, ParamFormat::Positional), &params).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            components,
            vec![
                TemplateComponent::Body {
                    parameters: vec![
                        TemplateParameter::Text {
                            name: None,
                            text: "CLM-123456".into()
                        },
                        TemplateParameter::Text {
                            name: None,
                            text: "Under review".into()
                        },
                    ]
                },
                TemplateComponent::QuickReply {
                    index: 0,
                    payload: "menu".into()
                },
            ]
        );
        let OutboundBody::Template { components, .. } =
            render(&info(APPROVED, ParamFormat::Named), &params).unwrap()
        else {
            panic!()
        };
        let TemplateComponent::Body { parameters } = &components[0] else {
            panic!()
        };
        assert!(
            matches!(&parameters[1], TemplateParameter::Text { name: Some(n), .. } if n == "claim_stage")
        );
    }

    #[test]
    fn render_refuses_a_template_that_is_not_approved_or_gets_wrong_parameters() {
        let r = render(&info("PAUSED", ParamFormat::Positional), &[]).unwrap_err();
        assert_eq!(r.code, "template_not_approved");
        assert!(r.detail.contains("PAUSED"), "{}", r.detail);
        let r = render(
            &info(APPROVED, ParamFormat::Positional),
            &["only one".to_owned()],
        )
        .unwrap_err();
        assert_eq!(r.code, "template_params");
    }

    // OTP
    #[test]
    fn an_authentication_template_has_meta_s_fixed_shape_and_its_button_carries_the_code() {
        let otp = |extra: &str| {
            format!(
                "templates:\n  - {{ name: otp_code, category: AUTHENTICATION, languages: [en]{extra} }}\n"
            )
        };
        let ok = ", params: [code], buttons: [{ type: OTP, otp_type: COPY_CODE, text: Copy code }]";
        let defs = parse_file(Path::new("t.yaml"), &otp(ok)).unwrap();
        assert_eq!(defs[0].buttons[0].otp_type, Some(OtpType::CopyCode));
        for (bad, says) in [
            (", params: [code]", "exactly one button, of type OTP"),
            (
                ", buttons: [{ type: OTP, otp_type: ONE_TAP, text: Autofill }]",
                "exactly one body variable",
            ),
            (
                ", params: [code], buttons: [{ type: OTP, text: Copy code }]",
                "needs otp_type",
            ),
            (
                ", params: [code], buttons: [{ type: URL, text: Site }]",
                "exactly one button, of type OTP",
            ),
        ] {
            let err = parse_file(Path::new("t.yaml"), &otp(bad)).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        let err = parse_file(
            Path::new("t.yaml"),
            "templates:\n  - { name: x, category: UTILITY, languages: [en], buttons: [{ type: OTP, otp_type: COPY_CODE, text: C }] }\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AUTHENTICATION templates only"),
            "{err}"
        );

        let info = TemplateInfo {
            waba_id: String::new(),
            name: "otp_code".into(),
            language: "en".into(),
            category: "AUTHENTICATION".into(),
            status: APPROVED.into(),
            essential: true,
            parameter_format: ParamFormat::Positional,
            params: vec!["code".into()],
            buttons: defs[0].buttons.clone(),
            reason: None,
        };
        let OutboundBody::Template { components, .. } = render(&info, &["482913".into()]).unwrap()
        else {
            panic!("not a template");
        };
        assert_eq!(
            components,
            [
                TemplateComponent::Body {
                    parameters: vec![TemplateParameter::Text {
                        name: None,
                        text: "482913".into()
                    }]
                },
                TemplateComponent::UrlButton {
                    index: 0,
                    text: "482913".into()
                },
            ]
        );
        // The shipped registry has it, in every shipped language.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/templates/templates.yaml");
        let shipped = load_file(&path).unwrap();
        let def = shipped.iter().find(|d| d.name == "otp_code").unwrap();
        assert_eq!(def.category, Category::Authentication);
        assert_eq!(def.languages, ["en", "hi", "ta"]);
    }

    #[test]
    fn body_parameters_are_read_from_the_listed_text() {
        let t = |text: &str| RemoteTemplate {
            id: None,
            name: "x".into(),
            language: "en".into(),
            status: "APPROVED".into(),
            category: None,
            parameter_format: None,
            rejected_reason: None,
            components: vec![serde_json::json!({"type": "BODY", "text": text})],
        };
        assert_eq!(
            body_params(&t("Claim {{2}} of {{1}} is {{2}}")),
            (ParamFormat::Positional, vec!["1".into(), "2".into()])
        );
        assert_eq!(
            body_params(&t("Hello {{customer_name}}")),
            (ParamFormat::Named, vec!["customer_name".into()])
        );
    }
}
