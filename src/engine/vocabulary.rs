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
/// What happened, as a claim intimation names it (issue 18). Each product offers its own
/// few ([`loss_types_for`]), so a motor policy is not asked about hospitalisation.
pub const LOSS_TYPES: &[&str] = &[
    "accident",
    "theft",
    "hospitalisation",
    "illness",
    "fire",
    "flood",
    "death",
    "disability",
    "baggage_loss",
    "trip_cancellation",
    "other",
];

/// The loss types a claim on `product` may be about, in the order they are offered; an
/// unknown product gets the generic ones. At most ten (one list message).
pub fn loss_types_for(product: &str) -> &'static [&'static str] {
    match product {
        "health" => &["hospitalisation", "illness", "accident", "other"],
        "motor" => &["accident", "theft", "fire", "flood", "other"],
        "life" => &["death", "disability", "illness", "other"],
        "travel" => &[
            "illness",
            "accident",
            "baggage_loss",
            "trip_cancellation",
            "other",
        ],
        "home" => &["fire", "flood", "theft", "other"],
        _ => &["accident", "theft", "fire", "other"],
    }
}

/// Premium instalment states.
pub const PREMIUM_STATUSES: &[&str] = &["due", "paid"];
