//! (being written)
pub struct OfflineRules;
