//! PLACEHOLDER until the chat-targets branch merges.
