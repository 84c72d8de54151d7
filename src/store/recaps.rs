//! Recaps in the store: for each conversation, a summary of the turns that
//! left the context window, so that a long conversation keeps its thread
//! and not only the quotes recall brings back.
//!
//! A conversation has at most one recap. It covers its messages up to one
//! (`through`); the messages after that which are out of the window are
//! the next to fold into it. Forgetting a memory said in a conversation
//! drops that conversation's recap, which may have kept its words: the next
//! one is written from the messages as they are now.

use super::{ConversationRef, Store, StoreError, count, now_ms, role_from};
use crate::llm::Role;
use rusqlite::{OptionalExtension, params};

/// A conversation's recap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recap {
    /// The summary.
    pub content: String,
    /// The last message it covers.
    pub through: i64,
}

/// A message waiting to be folded into its conversation's recap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecapped {
    /// Its number in the store.
    pub id: i64,
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// Tokens in `content`.
    pub token_count: usize,
}

impl Store {
    /// `conversation`'s recap, if it has one.
    pub fn recap(&self, conversation: &ConversationRef) -> Result<Option<Recap>, StoreError> {
        self.connection
            .prepare_cached("SELECT content, through_message_id FROM recaps WHERE conversation_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([conversation.id], |row| Ok(Recap { content: row.get(0)?, through: row.get(1)? }))
                    .optional()
            })
            .map_err(|error| self.error(error))
    }

    /// Makes `recap` `conversation`'s recap, written from `previous` (the
    /// recap it had, if any) and the messages `folded`, if both are still as
    /// they were read: a memory forgotten meanwhile changed a message or
    /// dropped the recap, and a recap written from the words it had must
    /// not be kept. Returns whether it was kept.
    pub fn set_recap(
        &mut self,
        conversation: &ConversationRef,
        previous: Option<&Recap>,
        folded: &[Unrecapped],
        recap: &Recap,
    ) -> Result<bool, StoreError> {
        self.write(|transaction| {
            let current: Option<(String, i64)> = transaction
                .query_row(
                    "SELECT content, through_message_id FROM recaps WHERE conversation_id = ?1",
                    [conversation.id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if current != previous.map(|recap| (recap.content.clone(), recap.through)) {
                return Ok(false);
            }
            for message in folded {
                let content: Option<String> = transaction
                    .query_row("SELECT content FROM messages WHERE id = ?1", [message.id], |row| row.get(0))
                    .optional()?;
                if content.as_deref() != Some(message.content.as_str()) {
                    return Ok(false);
                }
            }
            transaction.execute(
                "INSERT OR REPLACE INTO recaps (conversation_id, content, through_message_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![conversation.id, recap.content, recap.through, now_ms()],
            )?;
            Ok(true)
        })
    }

    /// The oldest messages of `conversation`, at most `limit`, that its
    /// recap does not cover yet and that are not among its `in_window`
    /// newest (those the model still sees), oldest first.
    pub fn unrecapped(
        &self,
        conversation: &ConversationRef,
        in_window: usize,
        limit: usize,
    ) -> Result<Vec<Unrecapped>, StoreError> {
        let sql = "SELECT id, role, content, token_count FROM messages
            WHERE conversation_id = ?1
              AND id > coalesce((SELECT through_message_id FROM recaps WHERE conversation_id = ?1), 0)
              AND id NOT IN (SELECT id FROM messages WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2)
            ORDER BY id LIMIT ?3";
        let mut statement = self.connection.prepare_cached(sql).map_err(|error| self.error(error))?;
        let bound = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        statement
            .query_map(params![conversation.id, bound(in_window), bound(limit)], |row| {
                Ok(Unrecapped {
                    id: row.get(0)?,
                    role: role_from(row.get_ref(1)?.as_str()?),
                    content: row.get(2)?,
                    token_count: count(row, 3)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|error| self.error(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewMessage;

    fn store_with(exchanges: usize) -> (tempfile::TempDir, Store, ConversationRef) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("workly.db")).unwrap();
        let conversation = store.open_conversation("c").unwrap();
        for index in 0..exchanges {
            let (user, reply) = (format!("message {index}"), format!("reply {index}"));
            store.append_exchange(&conversation, &NewMessage::new(&user, 3), &NewMessage::new(&reply, 3)).unwrap();
        }
        (dir, store, conversation)
    }

    #[test]
    fn the_messages_out_of_the_window_and_past_the_recap_come_oldest_first() {
        let (_dir, mut store, conversation) = store_with(5);
        assert_eq!(store.recap(&conversation).unwrap(), None);
        let waiting = store.unrecapped(&conversation, 4, 100).unwrap();
        let contents: Vec<&str> = waiting.iter().map(|message| message.content.as_str()).collect();
        assert_eq!(contents, ["message 0", "reply 0", "message 1", "reply 1", "message 2", "reply 2"]);
        assert_eq!((waiting[0].role, waiting[1].role, waiting[0].token_count), (Role::User, Role::Assistant, 3));
        assert_eq!(store.unrecapped(&conversation, 4, 2).unwrap().len(), 2);
        assert!(store.unrecapped(&conversation, 10, 100).unwrap().is_empty());
        let recap = Recap { content: "They said hello.".to_owned(), through: waiting[3].id };
        assert!(store.set_recap(&conversation, None, &waiting[..4], &recap).unwrap());
        assert_eq!(store.recap(&conversation).unwrap().as_ref(), Some(&recap));
        let waiting = store.unrecapped(&conversation, 4, 100).unwrap();
        assert_eq!(
            waiting.iter().map(|message| message.content.as_str()).collect::<Vec<_>>(),
            ["message 2", "reply 2"]
        );
        let newer = Recap { content: "They said hello twice.".to_owned(), through: waiting[1].id };
        // Written from another recap than the one kept: refused.
        assert!(!store.set_recap(&conversation, None, &waiting, &newer).unwrap());
        assert!(store.set_recap(&conversation, Some(&recap), &waiting, &newer).unwrap());
        assert_eq!(store.recap(&conversation).unwrap(), Some(newer));
        assert!(store.unrecapped(&conversation, 4, 100).unwrap().is_empty());
    }

    #[test]
    fn a_recap_written_from_words_changed_meanwhile_is_not_kept() {
        let (_dir, mut store, conversation) = store_with(4);
        let mut waiting = store.unrecapped(&conversation, 2, 100).unwrap();
        waiting[0].content = "what it said before a forget".to_owned();
        let recap = Recap { content: "They said hello.".to_owned(), through: waiting[5].id };
        assert!(!store.set_recap(&conversation, None, &waiting, &recap).unwrap());
        assert_eq!(store.recap(&conversation).unwrap(), None);
    }

    #[test]
    fn a_recap_goes_with_its_conversation() {
        let (_dir, mut store, conversation) = store_with(2);
        let recap = Recap { content: "Hello.".to_owned(), through: 1 };
        assert!(store.set_recap(&conversation, None, &[], &recap).unwrap());
        store.delete_conversation("c").unwrap();
        let left: i64 = store.connection.query_row("SELECT count(*) FROM recaps", [], |row| row.get(0)).unwrap();
        assert_eq!(left, 0);
    }
}
