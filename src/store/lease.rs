//! Row leases: which instance holds a row and until when, in the `lease_owner` and
//! `lease_until` columns of the tables whose rows are claimed (contacts by the pipeline, outbox
//! rows by the sender). Taking a lease stays with each claimer, since their conditions differ
//! (a contact free, expired or already ours; the oldest queued row of each contact); giving
//! one back is the same two NULLs everywhere, and lives here.

use sea_orm::sea_query::Expr;
use sea_orm::{EntityTrait, UpdateMany};

use super::entities::{contact, outbox};

/// A table whose rows carry a lease.
pub trait Leased: EntityTrait {
    /// Who holds the lease (an instance's owner id).
    const LEASE_OWNER: Self::Column;
    /// When the lease ends, Unix ms; past it any instance may claim the row.
    const LEASE_UNTIL: Self::Column;
}

impl Leased for contact::Entity {
    const LEASE_OWNER: contact::Column = contact::Column::LeaseOwner;
    const LEASE_UNTIL: contact::Column = contact::Column::LeaseUntil;
}

impl Leased for outbox::Entity {
    const LEASE_OWNER: outbox::Column = outbox::Column::LeaseOwner;
    const LEASE_UNTIL: outbox::Column = outbox::Column::LeaseUntil;
}

/// Giving leases back as part of an update.
pub trait ReleaseLease {
    /// The update also clears the rows' leases, so the next claim of any instance takes them
    /// at once instead of after the lease's end.
    #[must_use]
    fn release_lease(self) -> Self;
}

impl<E: Leased> ReleaseLease for UpdateMany<E> {
    fn release_lease(self) -> Self {
        self.col_expr(E::LEASE_OWNER, Expr::value(Option::<String>::None))
            .col_expr(E::LEASE_UNTIL, Expr::value(Option::<i64>::None))
    }
}
