//! The flow hops the engine reports ([`Hop`]), stored for the console's flow diagrams and read
//! back as counts. Rows carry flow and state ids and a time, never the contact: a funnel needs
//! how many, not who.

use sea_orm::sea_query::{Condition, Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::engine::model::{FlowId, StateId};
use crate::engine::{Hop, HopTo, StateRef};
use crate::store::entities::flow_hop;

const TO_STATE: &str = "state";
const TO_END: &str = "end";
const TO_AGENT: &str = "agent";

/// The rows of hops that happened at `at` (Unix ms), to [`insert`] with others.
pub fn rows(hops: &[Hop], at: i64) -> Vec<flow_hop::ActiveModel> {
    hops.iter()
        .map(|h| {
            let (kind, to) = match &h.to {
                HopTo::State(s) => (TO_STATE, Some(s)),
                HopTo::End => (TO_END, None),
                HopTo::Agent => (TO_AGENT, None),
            };
            flow_hop::ActiveModel {
                from_flow: Set(h.from.as_ref().map(|f| f.flow.to_string())),
                from_state: Set(h.from.as_ref().map(|f| f.state.to_string())),
                to_kind: Set(kind.to_owned()),
                to_flow: Set(to.map(|s| s.flow.to_string())),
                to_state: Set(to.map(|s| s.state.to_string())),
                at: Set(at),
                ..Default::default()
            }
        })
        .collect()
}

/// Stores hop rows, a whole pipeline batch's in one statement (nothing when there are none).
///
/// # Errors
/// Database errors.
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    rows: Vec<flow_hop::ActiveModel>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    flow_hop::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// A grouped row: from flow, from state, to kind, to flow, to state, how many.
type HopRow = (
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// The hops since `since` (Unix ms) that left or entered `flow`, each with how many times it
/// happened. Rows that no longer parse (ids edited by hand) are skipped.
///
/// # Errors
/// Database errors.
pub async fn counts<C: ConnectionTrait>(
    db: &C,
    flow: &str,
    since: i64,
) -> Result<Vec<(Hop, u64)>, DbErr> {
    use flow_hop::Column as C;
    let rows: Vec<HopRow> = flow_hop::Entity::find()
        .select_only()
        .columns([C::FromFlow, C::FromState, C::ToKind, C::ToFlow, C::ToState])
        .column_as(Expr::from(Func::count(Expr::col(C::Id))), "n")
        .filter(C::At.gte(since))
        .filter(
            Condition::any()
                .add(C::FromFlow.eq(flow))
                .add(C::ToFlow.eq(flow)),
        )
        .group_by(C::FromFlow)
        .group_by(C::FromState)
        .group_by(C::ToKind)
        .group_by(C::ToFlow)
        .group_by(C::ToState)
        .into_tuple()
        .all(db)
        .await?;
    let state = |f: Option<String>, s: Option<String>| -> Option<StateRef> {
        Some(StateRef {
            flow: FlowId::parse(&f?).ok()?,
            state: StateId::parse(&s?).ok()?,
        })
    };
    Ok(rows
        .into_iter()
        .filter_map(|(ff, fs, kind, tf, ts, n)| {
            let to = match kind.as_str() {
                TO_STATE => HopTo::State(state(tf, ts)?),
                TO_END => HopTo::End,
                TO_AGENT => HopTo::Agent,
                _ => return None,
            };
            Some((
                Hop {
                    from: state(ff, fs),
                    to,
                },
                u64::try_from(n).unwrap_or(0),
            ))
        })
        .collect())
}
