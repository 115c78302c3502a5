//! insurebot: a self-hosted WhatsApp chatbot server for insurers.
#![forbid(unsafe_code)]

pub mod engine;
