//! Answers kept in memory while the index stays at one commit: the same question asked again
//! before the next commit gets the same answer without searching. Each commit (at most every
//! `ESHOP_SEARCH_COMMIT_MS`) empties the cache, so an answer is never older than what the
//! index holds when it is asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct AnswerCache<V> {
    /// Answers kept at most (0: none kept, every question is searched).
    capacity: usize,
    kept: Mutex<Kept<V>>,
}

struct Kept<V> {
    /// The commit (its stream sequence) every kept answer was searched at or after.
    sequence: u64,
    answers: HashMap<String, Arc<V>>,
}

impl<V> AnswerCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: Mutex::new(Kept {
                sequence: 0,
                answers: HashMap::new(),
            }),
        }
    }

    /// The answer to `question` at the commit `committed` (read before searching, so that what
    /// `search` finds is at least that new): kept from an earlier search at that commit, or
    /// searched now and kept.
    pub fn get_or_search<E>(
        &self,
        committed: u64,
        question: &str,
        search: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if self.capacity == 0 {
            return search().map(Arc::new);
        }
        {
            let mut kept = self.kept();
            if committed > kept.sequence {
                kept.answers.clear();
                kept.sequence = committed;
            }
            // A question that read the commit before the last one is searched, not answered
            // from (nor kept for) the newer commit.
            if let Some(answer) = kept
                .answers
                .get(question)
                .filter(|_| kept.sequence == committed)
            {
                return Ok(Arc::clone(answer));
            }
        }
        // Searched without the lock: questions asked at once do not wait for each other.
        let answer = Arc::new(search()?);
        let mut kept = self.kept();
        if kept.sequence == committed {
            if kept.answers.len() >= self.capacity {
                // Full: start over rather than track what was asked least lately (a commit
                // empties it soon anyway).
                kept.answers.clear();
            }
            kept.answers
                .insert(question.to_string(), Arc::clone(&answer));
        }
        Ok(answer)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept<V>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn ask(cache: &AnswerCache<u32>, committed: u64, question: &str, searches: &Cell<u32>) -> u32 {
        let answer = cache
            .get_or_search::<()>(committed, question, || {
                searches.set(searches.get() + 1);
                Ok(searches.get())
            })
            .expect("answered");
        *answer
    }

    #[test]
    fn an_answer_is_kept_until_the_next_commit() {
        let cache = AnswerCache::new(10);
        let searches = Cell::new(0);
        assert_eq!(ask(&cache, 7, "si", &searches), 1);
        assert_eq!(ask(&cache, 7, "si", &searches), 1);
        assert_eq!(ask(&cache, 7, "gol", &searches), 2);
        // A commit: searched again.
        assert_eq!(ask(&cache, 8, "si", &searches), 3);
        assert_eq!(ask(&cache, 8, "si", &searches), 3);
    }

    #[test]
    fn without_capacity_every_question_is_searched() {
        let cache = AnswerCache::new(0);
        let searches = Cell::new(0);
        assert_eq!(ask(&cache, 7, "si", &searches), 1);
        assert_eq!(ask(&cache, 7, "si", &searches), 2);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = AnswerCache::new(2);
        let searches = Cell::new(0);
        assert_eq!(ask(&cache, 1, "a", &searches), 1);
        assert_eq!(ask(&cache, 1, "b", &searches), 2);
        assert_eq!(ask(&cache, 1, "c", &searches), 3);
        assert_eq!(ask(&cache, 1, "c", &searches), 3);
        assert_eq!(ask(&cache, 1, "a", &searches), 4);
    }

    #[test]
    fn an_answer_searched_across_a_commit_is_not_kept_for_the_new_one() {
        let cache = AnswerCache::new(10);
        let searches = Cell::new(0);
        // Asked at commit 1; commit 2 lands (another question sees it) before it is kept.
        let answer = cache
            .get_or_search::<()>(1, "si", || {
                assert_eq!(ask(&cache, 2, "gol", &searches), 1);
                Ok(99)
            })
            .expect("answered");
        assert_eq!(*answer, 99);
        assert_eq!(ask(&cache, 2, "si", &searches), 2);
    }
}
