//! (being written)
use super::Result;

pub struct SqliteStore;

impl SqliteStore {
    pub async fn connect(_url: &str) -> Result<Self> {
        Err(super::StoreError::Corrupt("not written yet".into()))
    }
}
