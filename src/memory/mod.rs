//! Kira's long-term memory of the person: facts found in what they say
//! ([`extract`]: by rules, and by the chat model where the rules find none),
//! kept in the store with where they were said and their
//! embedding ([`vectors`]), and recalled into the prompt when a new message
//! touches them, by its words and by its meaning ([`recall`]). A long
//! conversation's turns that left the context window are summed up in its
//! recap ([`recap`]).
//!
//! Everything stays in the person's data directory; `workly memory` lists,
//! searches, edits, exports and forgets what is kept, and `--no-memory`
//! turns it off.

pub mod dates;
pub mod extract;
pub mod recall;
pub mod recap;
pub mod vectors;
