//! Replies by e-mail (issue 21, item 3): the mailbox of `[inbound]`, read over
//! IMAP; each message matched to its dossier and recorded as an exchange.
//!
//! Submodules: `mail` (pure: an e-mail parsed and classified), `quote` (pure:
//! a reply's new text).

mod mail;
mod quote;
