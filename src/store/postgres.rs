//! (being written)
use super::Result;

pub struct PgStore;

impl PgStore {
    pub async fn connect(_url: &str) -> Result<Self> {
        Err(super::StoreError::Corrupt("not written yet".into()))
    }
}
