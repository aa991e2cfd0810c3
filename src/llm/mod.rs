//! Language-model providers: Gemini embeddings for long-term memory retrieval.

pub mod embeddings;
