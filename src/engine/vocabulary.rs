//! The closed lists of values flows and locales speak about: products, policy statuses, claim
//! stages, premium states. Every locale translates each value (checked by [`super::i18n`]), and
//! the insurer's data is mapped onto them on import; they live here, at the bottom, so the pure
//! engine needs nothing from the insurer layer above it.

/// Product lines a policy may belong to.
pub const PRODUCTS: &[&str] = &["health", "motor", "life", "travel", "home", "other"];
/// Policy statuses (the insurer's own words map onto these on import).
pub const POLICY_STATUSES: &[&str] = &[
    "active",
    "grace",
    "lapsed",
    "matured",
    "expired",
    "cancelled",
    "surrendered",
];
/// Claim stages, from intimation to closure.
pub const CLAIM_STAGES: &[&str] = &[
    "intimated",
    "documents_pending",
    "under_review",
    "approved",
    "settled",
    "rejected",
    "closed",
];
/// Stages after which nothing more happens to a claim.
pub const CLOSED_CLAIM_STAGES: &[&str] = &["settled", "rejected", "closed"];
/// Premium instalment states.
pub const PREMIUM_STATUSES: &[&str] = &["due", "paid"];
