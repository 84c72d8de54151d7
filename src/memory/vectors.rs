//! Memories' embeddings: encoded for the store, searched in memory.
//!
//! An embedding is kept as one signed byte per dimension (the unit vector
//! times 127): 384 bytes for e5-small instead of 1,536, and a dot product in
//! integers that the compiler vectorises. The rounding moves a cosine by
//! about 0.01, far less than what tells a related memory from another.
//!
//! [`Index`] holds every memory's embedding in one flat array, loaded from
//! the store once and then kept in step: memories this process keeps are
//! read as they come (by number), and a change by another Workly (`workly
//! memory forget`, say) makes it reload everything, which SQLite's
//! `data_version` tells.

use crate::llm::LlmError;
use crate::llm::embed::Embedder;
use crate::store::memories::NewMemory;
use crate::store::{Store, StoreError};

/// The scale of an encoded component: 1.0 is 127.
const SCALE: f32 = 127.0;

/// `vector` (unit length) encoded for the store.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().map(|value| (value * SCALE).round().clamp(-127.0, 127.0) as i8 as u8).collect()
}

/// The embeddings of memories' words `texts`, by `embedder`, encoded for
/// the store.
pub fn of_memories(embedder: &Embedder, texts: &[&str]) -> Result<Vec<Vec<u8>>, LlmError> {
    Ok(embedder.embed(texts)?.iter().map(|embedding| encode(embedding)).collect())
}

/// Gives the new `memories` their embeddings, with `embedder` when there is
/// one. A memory without its embedding is still found by its words and
/// gets one at the next start (see `History::set_embedder`), so a failure
/// is logged: what the memories come with must be kept whatever.
pub fn give(embedder: Option<&Embedder>, memories: &mut [NewMemory]) {
    let Some(embedder) = embedder.filter(|_| !memories.is_empty()) else { return };
    let texts: Vec<&str> = memories.iter().map(|memory| memory.content.as_str()).collect();
    match of_memories(embedder, &texts) {
        Ok(vectors) => {
            for (memory, vector) in memories.iter_mut().zip(vectors) {
                memory.vector = Some(vector);
            }
        }
        Err(error) => tracing::warn!("cannot embed the new memories: {error}"),
    }
}

/// Every memory's embedding, for nearest-neighbour search.
#[derive(Debug, Default)]
pub struct Index {
    ids: Vec<i64>,
    values: Vec<i8>,
    dimensions: usize,
    /// The store's `data_version` when it was last read whole; none before that.
    version: Option<i64>,
    /// Embeddings of ordinary statements (see [`BACKGROUND`]), encoded: the
    /// level a message's cosines sit at when nothing answers it.
    background: Vec<i8>,
}

/// Ordinary first-person statements, about nothing in particular, the same
/// in English then in French. A message's cosines with those of its own
/// language (the half it sits nearer) tell how high its cosines sit when
/// nothing answers it, which a handful of memories cannot tell.
pub const BACKGROUND: &[&str] = &[
    "I like going for walks.",
    "My friend lives nearby.",
    "I have a meeting on Monday.",
    "I work in an office.",
    "I don't like loud noises.",
    "My brother has a car.",
    "I'm from a small town.",
    "I enjoy reading in the evening.",
    "J'aime me promener.",
    "Mon ami habite à côté.",
    "J'ai une réunion lundi.",
    "Je travaille dans un bureau.",
    "Je n'aime pas le bruit.",
    "Mon frère a une voiture.",
    "Je viens d'une petite ville.",
    "J'aime lire le soir.",
];

impl Index {
    /// Brings the index in step with `store`: everything again if another
    /// connection changed the database (or on first use), else the
    /// memories kept since it was last read.
    pub fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        let version = store.data_version()?;
        if self.version != Some(version) {
            self.ids.clear();
            self.values.clear();
            self.version = Some(version);
        }
        let after = self.ids.last().copied().unwrap_or(0);
        for (id, vector) in store.memory_vectors(after)? {
            if self.dimensions == 0 {
                self.dimensions = vector.len();
            }
            // A vector of another length came from another model: it cannot be compared.
            if vector.len() == self.dimensions {
                self.ids.push(id);
                self.values.extend(vector.iter().map(|&byte| byte as i8));
            }
        }
        Ok(())
    }

    /// Makes the next [`Index::refresh`] read everything again: after this
    /// process rewrote an embedding it had read (an edit), which reading only
    /// the memories kept since would miss.
    pub fn invalidate(&mut self) {
        self.version = None;
    }

    /// Sets the embeddings of [`BACKGROUND`] (unit vectors, as the embedding
    /// model gives them).
    pub fn set_background(&mut self, vectors: &[Vec<f32>]) {
        self.background = vectors.iter().flat_map(|vector| encode(vector)).map(|byte| byte as i8).collect();
    }

    /// How many embeddings it holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `limit` memories nearest `query` (a unit vector), nearest first,
    /// with their cosines: the `at_least` nearest, and past them those that
    /// stand out, with a cosine at least `spread` standard deviations above
    /// the mean cosine of `query` with every other memory and the background
    /// statements of its language.
    ///
    /// Why relative: e5's cosines crowd high, and how high depends on the
    /// language and the message (French sits higher than English), so a
    /// fixed floor lets chit-chat recall everything in one language and
    /// nothing in the other. A memory that answers the message often stands
    /// out from the rest, whatever their level. The background statements
    /// make "the rest" when there are only a few memories (two cosines have
    /// no spread to stand out from). But a question asked in other words
    /// than its memory often leaves it only among the nearest few, which
    /// `at_least` is for (see [`crate::memory::recall::asks_about_the_person`]).
    pub fn nearest(&self, query: &[f32], limit: usize, at_least: usize, spread: f32) -> Vec<(i64, f32)> {
        if self.dimensions == 0 || query.len() != self.dimensions {
            return Vec::new();
        }
        let query: Vec<i32> = encode(query).into_iter().map(|byte| i32::from(byte as i8)).collect();
        let cosine = |row: &[i8]| {
            let dot: i32 = row.iter().zip(&query).map(|(&value, &wanted)| i32::from(value) * wanted).sum();
            dot as f32 / (SCALE * SCALE)
        };
        let cosines: Vec<f32> = self.values.chunks_exact(self.dimensions).map(cosine).collect();
        let background: Vec<f32> = self.background.chunks_exact(self.dimensions).map(cosine).collect();
        // The half in the message's language: the other sits lower and would
        // widen the spread the message must stand out from.
        let (english, french) = background.split_at(background.len() / 2);
        let mean_of = |half: &[f32]| half.iter().sum::<f32>() / half.len().max(1) as f32;
        let background = if mean_of(french) > mean_of(english) { french } else { english };
        let count = (cosines.len() + background.len()) as f32;
        let sum: f32 = cosines.iter().chain(background).sum();
        let squares: f32 = cosines.iter().chain(background).map(|cosine| cosine * cosine).sum();
        // How far `cosine` stands above the others, in their standard
        // deviations: itself left out, or with few memories the one that
        // answers would pull the mean up to itself.
        let stands_out = |cosine: f32| {
            let others = count - 1.0;
            if others < 1.0 {
                // Nothing to stand out from: the one memory is the nearest.
                return true;
            }
            let mean = (sum - cosine) / others;
            let deviation = ((squares - cosine * cosine) / others - mean * mean).max(0.0).sqrt();
            cosine - mean >= spread * deviation
        };
        let mut best: Vec<(i64, f32)> = Vec::with_capacity(limit + 1);
        for (index, &cosine) in cosines.iter().enumerate() {
            if best.len() == limit && best.last().is_some_and(|last| cosine <= last.1) {
                continue;
            }
            let at = best.partition_point(|kept| kept.1 >= cosine);
            best.insert(at, (self.ids[index], cosine));
            best.truncate(limit);
        }
        // The nearer a memory, the more it stands out: past the first
        // `at_least`, the rest of the nearest either all stand out or end
        // where the first one does not.
        let standing = best.iter().skip(at_least).take_while(|(_, cosine)| stands_out(*cosine)).count();
        best.truncate(at_least.min(best.len()) + standing);
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|value| value * value).sum::<f32>().sqrt();
        values.iter().map(|value| value / norm).collect()
    }

    fn index(vectors: &[Vec<f32>]) -> Index {
        let mut index = Index { dimensions: vectors[0].len(), ..Index::default() };
        for (id, vector) in vectors.iter().enumerate() {
            index.ids.push(id as i64 + 1);
            index.values.extend(encode(vector).iter().map(|&byte| byte as i8));
        }
        index
    }

    #[test]
    fn the_nearest_come_first_above_the_floor() {
        let vectors = [unit(&[1.0, 0.0, 0.0]), unit(&[0.8, 0.6, 0.0]), unit(&[0.0, 0.0, 1.0]), unit(&[0.6, 0.8, 0.0])];
        let index = index(&vectors);
        let found = index.nearest(&unit(&[1.0, 0.1, 0.0]), 2, 0, -10.0);
        assert_eq!(found.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
        assert!((found[0].1 - 0.995).abs() < 0.02, "{found:?}");
        let all = index.nearest(&unit(&[1.0, 0.1, 0.0]), 10, 0, -10.0);
        assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2, 4, 3]);
        // Cosines about 0.99, 0.86, 0.68 and 0.10: mean 0.66, deviation 0.34.
        assert_eq!(index.nearest(&unit(&[1.0, 0.1, 0.0]), 10, 0, 0.5).len(), 2, "those that stand out");
        // The nearest few come whether they stand out or not.
        let nearest_two = index.nearest(&unit(&[1.0, 0.1, 0.0]), 10, 2, 10.0);
        assert_eq!(nearest_two.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(index.nearest(&unit(&[1.0, 0.1, 0.0]), 10, 3, 0.5).len(), 3, "two stand out, a third is near");
        assert!(index.nearest(&[1.0, 0.0], 10, 2, 0.0).is_empty(), "another model's query matches nothing");
    }

    #[test]
    fn the_index_follows_the_store() {
        use crate::store::memories::{MemoryKind, NewMemory};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("workly.db")).unwrap();
        let memory = |content: &str, vector: &[f32]| NewMemory {
            vector: Some(encode(&unit(vector))),
            ..NewMemory::given(MemoryKind::Fact, content)
        };
        store.add_memories(&[memory("north", &[1.0, 0.0]), memory("east", &[0.0, 1.0])]).unwrap();
        let mut index = Index::default();
        index.refresh(&store).unwrap();
        assert_eq!(index.len(), 2);
        let north = index.nearest(&[1.0, 0.0], 1, 0, -10.0)[0].0;
        // Kept since: read on the next refresh.
        store.add_memories(&[memory("north-east", &[1.0, 1.0])]).unwrap();
        index.refresh(&store).unwrap();
        assert_eq!(index.len(), 3);
        // Rewritten by this connection: seen once the index is told.
        store.edit_memory(north, "south", Some(&encode(&[0.0, -1.0]))).unwrap();
        index.invalidate();
        index.refresh(&store).unwrap();
        assert_ne!(index.nearest(&[1.0, 0.0], 1, 0, -10.0)[0].0, north);
        // Changed by another connection: seen without being told.
        Store::open(&dir.path().join("workly.db")).unwrap().forget_all_memories().unwrap();
        index.refresh(&store).unwrap();
        assert!(index.is_empty());
    }

    #[test]
    fn encoding_keeps_the_cosine_within_a_hundredth() {
        let a = unit(&(0..384).map(|i| ((i * 7919) % 97) as f32 - 48.0).collect::<Vec<_>>());
        let b = unit(&(0..384).map(|i| ((i * 104_729) % 89) as f32 - 44.0).collect::<Vec<_>>());
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let found = index(&[b]).nearest(&a, 1, 0, 0.0)[0].1;
        assert!((found - exact).abs() < 0.01, "{found} vs {exact}");
    }
}
