//! Partners: their specs, offer terms and onboarding.
pub mod onboard;
pub mod spec;
