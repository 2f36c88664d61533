//! The reply address of a message about a dossier, when `[inbound]` is on
//! (issue 21, item 3): the plus address of the replies' mailbox with the
//! dossier's token (`suivi-aides+<token>@region.fr`), so that a reply finds its
//! dossier; its Message-ID, kept with the alerts or the exchange it carries,
//! finds it too (`In-Reply-To`, `References`). A message about several dossiers
//! (a digest) is answered to the mailbox itself; messages about no dossier
//! (sign-in, the administrators') keep `smtp.reply_to`.

use chrono::Utc;
use lettre::message::Mailbox;

use super::Inner;

impl Inner {
    /// The `Reply-To` of a message about `dossiers` (row ids) when `[inbound]`
    /// is on: `None` when it is off (the caller keeps its own).
    ///
    /// # Errors
    /// When the store fails, or gives no random bytes for a new token.
    pub(super) async fn thread_reply_to(
        &self,
        dossiers: &[i64],
    ) -> anyhow::Result<Option<Mailbox>> {
        let Some(address) = self.config.thread_address.clone() else {
            return Ok(None);
        };
        let mut unique = dossiers.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let [dossier] = unique[..] else {
            return Ok(crate::value::mailbox(&address).ok());
        };
        let token = self
            .store
            .call(move |s| s.thread_token(dossier, Utc::now()))
            .await??;
        Ok(crate::config::thread_address(&address, &token))
    }
}
