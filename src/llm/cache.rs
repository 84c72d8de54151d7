//! Planning KV-cache reuse: which cached tokens a new prompt can keep.
//!
//! The engine remembers the tokens whose keys and values sit in llama.cpp's KV
//! cache (position `i` holds token `cached[i]`). For a new prompt it keeps the
//! longest common prefix, and then, like llama-server's `--cache-reuse`, looks
//! for further runs of the prompt that are still in the cache at a later
//! position: when a conversation drops its oldest turns to fit the context (or
//! a client slides its history window), the remaining turns are shifted down in
//! the cache instead of being evaluated again. Only what is really new is
//! prefilled.
//!
//! The plan is pure data so it can be tested without a model; the engine
//! applies it with `seq_rm` and `seq_add`. This module also plans the context
//! shift used when generation reaches the end of the context, and picks which
//! in-memory snapshot of a conversation start, if any, beats the cache.

/// One edit of the KV cache, in cache positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvEdit {
    /// Remove positions `start..end`.
    Remove {
        /// First position removed.
        start: usize,
        /// One past the last position removed.
        end: usize,
    },
    /// Move positions `start..end` by `delta` (negative: towards the start).
    Shift {
        /// First position moved.
        start: usize,
        /// One past the last position moved.
        end: usize,
        /// How far they move.
        delta: isize,
    },
}

/// What to do with the cache before prefilling a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReusePlan {
    /// Edits, applied in order; the last removes everything from `reused` on.
    pub edits: Vec<KvEdit>,
    /// How many leading prompt tokens are in the cache after the edits.
    pub reused: usize,
    /// How many of those came from shifted chunks rather than the common prefix.
    pub shifted: usize,
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Plans how to turn the cache holding `cached` into one holding a prefix of
/// `prompt`. Runs shorter than `min_chunk` tokens are not worth a shift (a shift
/// also costs a K re-rotation); `min_chunk == 0` disables chunk reuse.
///
/// At least one prompt token is always left to evaluate, because the logits of
/// the last prompt token are needed to sample the reply.
pub fn plan_reuse(cached: &[i32], prompt: &[i32], min_chunk: usize) -> ReusePlan {
    let limit = prompt.len().saturating_sub(1);
    let mut reused = common_prefix(cached, &prompt[..limit]);
    let mut edits = Vec::new();
    let mut shifted = 0;
    if min_chunk > 0 {
        // `head_cached` walks the cache in original positions; everything at or past
        // it has not moved yet. `reused` is where the next matching run goes.
        let mut head_cached = reused;
        while head_cached < cached.len() && reused < limit {
            let run = common_prefix(&cached[head_cached..], &prompt[reused..limit]);
            if run >= min_chunk {
                if head_cached > reused {
                    edits.push(KvEdit::Remove { start: reused, end: head_cached });
                    edits.push(KvEdit::Shift {
                        start: head_cached,
                        end: head_cached + run,
                        delta: reused as isize - head_cached as isize,
                    });
                }
                reused += run;
                shifted += run;
                head_cached += run;
            } else {
                head_cached += 1;
            }
        }
    }
    edits.push(KvEdit::Remove { start: reused, end: usize::MAX });
    ReusePlan { edits, reused, shifted }
}

/// Plans the context shift used when generation fills the context: keep the
/// first `keep` tokens (the system prompt), drop half of the rest, and move the
/// remainder down. Returns the edits and how many tokens were dropped, or `None`
/// when nothing can be dropped.
pub fn plan_context_shift(cached_len: usize, keep: usize) -> Option<(Vec<KvEdit>, usize)> {
    let keep = keep.min(cached_len);
    let discard = (cached_len - keep) / 2;
    if discard == 0 {
        return None;
    }
    Some((
        vec![
            KvEdit::Remove { start: keep, end: keep + discard },
            KvEdit::Shift { start: keep + discard, end: cached_len, delta: -(discard as isize) },
        ],
        discard,
    ))
}

/// Applies `edits` to a position-indexed token list, exactly as the KV cache
/// applies them to its cells. The engine keeps its token list in step with the
/// cache this way, and tests use it to check plans.
pub fn apply_edits(tokens: &mut Vec<i32>, edits: &[KvEdit]) {
    // Cells as (position, token); positions stay sparse while edits are applied.
    // Shifts only ever move cells down to freed positions, so none goes negative.
    let mut cells: Vec<(usize, i32)> = tokens.iter().copied().enumerate().collect();
    for edit in edits {
        match *edit {
            KvEdit::Remove { start, end } => {
                cells.retain(|&(position, _)| !(start..end).contains(&position));
            }
            KvEdit::Shift { start, end, delta } => {
                for cell in cells.iter_mut().filter(|cell| (start..end).contains(&cell.0)) {
                    cell.0 = cell.0.saturating_add_signed(delta);
                }
            }
        }
    }
    cells.sort_by_key(|&(position, _)| position);
    *tokens = cells.into_iter().map(|(_, token)| token).collect();
}

/// The snapshot to load before planning, if one beats the cache: among
/// `snapshots` (each the tokens a saved KV state holds), the one that shares
/// the longest prefix with `prompt` (before its last token, which is always
/// evaluated), when it keeps at least `min_gain` tokens more than the
/// `current` plan. A snapshot may hold more than the prompt shares (a
/// persona's opening, where the prompt's system message goes on with what
/// Kira knows of the person): the plan trims the rest.
pub fn pick_snapshot<'a>(
    snapshots: impl IntoIterator<Item = &'a [i32]>,
    prompt: &[i32],
    current: usize,
    min_gain: usize,
) -> Option<usize> {
    let limit = &prompt[..prompt.len().saturating_sub(1)];
    snapshots
        .into_iter()
        .map(|tokens| common_prefix(tokens, limit))
        .enumerate()
        .filter(|&(_, shared)| shared > 0 && shared >= current + min_gain)
        .max_by_key(|&(_, shared)| shared)
        .map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_snapshot_sharing_the_most_is_picked_when_it_gains() {
        let english: &[i32] = &[1, 2, 3, 4, 5, 6];
        let french: &[i32] = &[1, 2, 7, 8, 9, 10, 11];
        let snapshots = [english, french];
        // A French conversation while the English persona is cached.
        assert_eq!(pick_snapshot(snapshots, &[1, 2, 7, 8, 9, 10, 11, 20, 21], 2, 4), Some(1));
        // The cache already keeps as much, or almost: no restore.
        assert_eq!(pick_snapshot(snapshots, &[1, 2, 7, 8, 9, 10, 11, 20, 21], 7, 4), None);
        assert_eq!(pick_snapshot(snapshots, &[1, 2, 7, 8, 9, 10, 11, 20, 21], 4, 4), None);
        // A prompt that shares part of a snapshot keeps that part, if it gains enough.
        assert_eq!(pick_snapshot(snapshots, &[1, 2, 3, 4, 99, 100], 0, 1), Some(0));
        assert_eq!(pick_snapshot(snapshots, &[1, 2, 3, 4, 99, 100], 2, 4), None);
        assert_eq!(pick_snapshot(snapshots, english, 0, 1), Some(0));
        assert_eq!(pick_snapshot(snapshots, &[5, 1, 2], 0, 1), None);
        // The longest matching one wins.
        let longer: &[i32] = &[1, 2, 3, 4, 5, 6, 12];
        assert_eq!(pick_snapshot([english, longer], &[1, 2, 3, 4, 5, 6, 12, 13], 0, 1), Some(1));
        assert_eq!(pick_snapshot([&[][..]], &[1, 2], 0, 0), None);
    }

    #[test]
    fn appended_turn_reuses_the_whole_cache() {
        let cached = [1, 2, 3, 4, 5];
        let prompt = [1, 2, 3, 4, 5, 6, 7];
        let plan = plan_reuse(&cached, &prompt, 0);
        assert_eq!(plan.reused, 5);
        assert_eq!(plan.edits, vec![KvEdit::Remove { start: 5, end: usize::MAX }]);
    }

    #[test]
    fn identical_prompt_still_evaluates_its_last_token() {
        let plan = plan_reuse(&[1, 2, 3], &[1, 2, 3], 4);
        assert_eq!(plan.reused, 2);
    }

    #[test]
    fn diverging_prompt_trims_the_tail() {
        let plan = plan_reuse(&[1, 2, 3, 4], &[1, 2, 9, 9, 9], 0);
        assert_eq!(plan.reused, 2);
        assert_eq!(plan.edits, vec![KvEdit::Remove { start: 2, end: usize::MAX }]);
    }

    #[test]
    fn dropped_oldest_turn_is_shifted_not_recomputed() {
        // system [1,1], turn A [2,2,2], turn B [3,3,3,3], then a new turn [4,4]
        let cached = [1, 1, 2, 2, 2, 3, 3, 3, 3];
        let prompt = [1, 1, 3, 3, 3, 3, 4, 4];
        let plan = plan_reuse(&cached, &prompt, 2);
        assert_eq!(plan.reused, 6);
        assert_eq!(plan.shifted, 4);
        let mut tokens = cached.to_vec();
        apply_edits(&mut tokens, &plan.edits);
        assert_eq!(tokens, prompt[..6]);
    }

    #[test]
    fn context_shift_keeps_the_system_prompt() {
        let (edits, dropped) = plan_context_shift(10, 2).unwrap();
        assert_eq!(dropped, 4);
        let mut tokens: Vec<i32> = (0..10).collect();
        apply_edits(&mut tokens, &edits);
        assert_eq!(tokens, vec![0, 1, 6, 7, 8, 9]);
        assert!(plan_context_shift(3, 2).is_none());
    }

    proptest! {
        /// Whatever the cache and prompt, applying the plan leaves exactly the
        /// first `reused` prompt tokens in the cache, at positions 0..reused.
        #[test]
        fn plan_leaves_a_prefix_of_the_prompt(
            cached in proptest::collection::vec(0i32..4, 0..40),
            prompt in proptest::collection::vec(0i32..4, 1..40),
            min_chunk in 0usize..5,
        ) {
            let plan = plan_reuse(&cached, &prompt, min_chunk);
            prop_assert!(plan.reused < prompt.len());
            let mut tokens = cached.clone();
            apply_edits(&mut tokens, &plan.edits);
            prop_assert_eq!(&tokens[..], &prompt[..plan.reused]);
        }

        /// Chunk reuse never keeps less than the plain common prefix.
        #[test]
        fn chunk_reuse_only_adds(
            cached in proptest::collection::vec(0i32..3, 0..30),
            prompt in proptest::collection::vec(0i32..3, 1..30),
        ) {
            let plain = plan_reuse(&cached, &prompt, 0).reused;
            prop_assert!(plan_reuse(&cached, &prompt, 2).reused >= plain);
        }
    }
}
