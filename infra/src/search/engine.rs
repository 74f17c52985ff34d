//! One embedded search index on local disk (tantivy), whatever the catalog: opening it with its
//! single-writer lock, rebuilding it when it is missing, unreadable or of another schema,
//! committing with the stream sequence in the commit's payload, and the query pieces every
//! catalog's search is made of (every word must match, one typo per long word, the last word
//! as a prefix, exact matches above typos).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, DfaWrapper, EmptyQuery, FuzzyTermQuery, Occur,
    Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, Term};
use tokio::sync::watch;

use eshop_projections::search::Word;

use super::answers::AnswerCache;

/// The tokenizer of exact, any-case keyword fields (an author to filter on, a title to search
/// inside).
pub const KEYWORD: &str = "keyword";
/// The name of the lock file inside an index directory.
const LOCK_FILE: &str = "eshop.lock";
/// Memory the writer buffers before it writes a segment.
const WRITER_BUDGET_BYTES: usize = 48 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "the search index at {0} is in use by another eshop process (one writer per directory): \
         stop it, or give this process its own directory with ESHOP_SEARCH_DIR"
    )]
    InUse(PathBuf),
    #[error("search index at {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("the search index is closed")]
    Closed,
}

/// What a commit's payload records.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    stream_sequence: u64,
}

pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    /// `None` once closed.
    writer: Mutex<Option<IndexWriter>>,
    committed: AtomicU64,
    commits: watch::Sender<u64>,
    rebuilt: bool,
    /// Held while the index is open: the single-writer lock.
    lock: File,
    word_queries: WordQueries,
}

fn io_error(dir: &Path) -> impl FnOnce(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

/// Empties `dir` but for the lock file.
fn clear(dir: &Path) -> Result<(), SearchError> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_error(dir))?;
    }
    Ok(())
}

fn register_tokenizers(index: &Index) {
    index.tokenizers().register(
        KEYWORD,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}

/// The index in `dir` and the stream sequence its last commit reached, if it can be read and
/// has `schema`.
fn open_existing(dir: &Path, schema: &Schema) -> Result<(Index, u64), String> {
    let index = Index::open_in_dir(dir).map_err(|error| error.to_string())?;
    if index.schema() != *schema {
        return Err("it was built with another schema".into());
    }
    let metas = index.load_metas().map_err(|error| error.to_string())?;
    let sequence = match metas.payload {
        Some(payload) => {
            serde_json::from_str::<Payload>(&payload)
                .map_err(|error| format!("unreadable commit payload: {error}"))?
                .stream_sequence
        }
        None => 0,
    };
    // Opening every segment proves the files are there and readable.
    let _reader: IndexReader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(|error: tantivy::TantivyError| error.to_string())?;
    Ok((index, sequence))
}

impl SearchIndex {
    /// Opens the index in `dir` (creating the directory), taking its single-writer lock. An
    /// index that is missing, unreadable or of another schema is started afresh (`rebuilt()`):
    /// the stream fills it again.
    pub fn open(dir: &Path, schema: Schema) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io_error(dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SearchError::InUse(dir.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error(dir)(error)),
        }
        let has_meta = dir.join("meta.json").exists();
        let (index, committed, rebuilt) = match open_existing(dir, &schema) {
            Ok((index, sequence)) => (index, sequence, false),
            Err(reason) => {
                if has_meta {
                    tracing::warn!(dir = %dir.display(), reason, "the search index cannot be used; rebuilding it from the stream");
                } else {
                    tracing::info!(dir = %dir.display(), "no search index yet; building it from the stream");
                }
                clear(dir)?;
                (Index::create_in_dir(dir, schema)?, 0, true)
            }
        };
        register_tokenizers(&index);
        let writer = match index.writer_with_num_threads(1, WRITER_BUDGET_BYTES) {
            Ok(writer) => writer,
            Err(tantivy::TantivyError::LockFailure(..)) => {
                return Err(SearchError::InUse(dir.to_path_buf()))
            }
            Err(error) => return Err(error.into()),
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let (commits, _) = watch::channel(committed);
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            reader,
            writer: Mutex::new(Some(writer)),
            committed: AtomicU64::new(committed),
            commits,
            rebuilt,
            lock,
            word_queries: WordQueries::new(WORDS_KEPT),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// True when this index was started afresh at open.
    pub fn rebuilt(&self) -> bool {
        self.rebuilt
    }

    /// The stream sequence of the last event the searchable index holds.
    pub fn committed_sequence(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Changes with every commit (to wait for a version to become searchable).
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The query for `words` over `fields` as `searcher` (one of this index's) holds them; see
    /// `WordQueries::query`.
    pub fn words_query(
        &self,
        searcher: &Searcher,
        fields: &[Weighted],
        words: &[Word],
    ) -> Result<Box<dyn Query>, SearchError> {
        self.word_queries.query(searcher, fields, words)
    }

    /// The writer (`None` once the index is closed).
    pub fn writer(&self) -> MutexGuard<'_, Option<IndexWriter>> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets another process (or another start of this one) write to the directory: drops the
    /// writer (waiting for its merges) and releases the lock. Searches still answer.
    pub fn close(&self) {
        drop(self.writer().take());
        let _ = self.lock.unlock();
    }

    /// Commits what the writer holds as reaching `stream_sequence` and makes it searchable.
    /// Blocking (it syncs files): call it off the async threads.
    pub fn commit(
        &self,
        writer: &mut IndexWriter,
        stream_sequence: u64,
    ) -> Result<(), SearchError> {
        let mut prepared = writer.prepare_commit()?;
        let payload = serde_json::to_string(&Payload { stream_sequence }).unwrap_or_default();
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        self.committed.store(stream_sequence, Ordering::Release);
        self.commits.send_replace(stream_sequence);
        Ok(())
    }
}

/// How much each field weighs in a catalog's ranking.
#[derive(Debug, Clone, Copy)]
pub struct Weighted {
    pub field: Field,
    pub boost: f32,
}

/// Below an exact match's BM25 score: a typo's or a prefix's constant score, times the field's
/// weight, so exact matches rank above typos.
const LOOSE_SCORE: f32 = 0.05;

/// Words whose forms are kept per searcher generation at most (a commit starts over).
const WORDS_KEPT: usize = 10_000;

/// What one word matches in one field, as the term dictionaries of one searcher hold it.
#[derive(Debug)]
struct FieldForms {
    /// The word itself is a term of the field.
    exact: bool,
    loose: LooseForms,
}

#[derive(Debug)]
enum LooseForms {
    /// The word matches only as typed (short, a number, or not the last word).
    Unwanted,
    /// Its typo and prefix forms in the field other than itself (maybe none).
    Listed(Vec<String>),
    /// More than `MAX_LOOSE_FORMS`: the automaton is queried instead.
    TooMany,
}

/// Builds word queries, keeping each word's looked-up forms while the index stays at one
/// searcher generation: the same word searched again before the next commit is not looked up
/// in every segment's dictionaries again (a selective search's main cost). A new generation
/// starts over, so a form a commit adds is never missed.
pub struct WordQueries {
    forms: AnswerCache<Vec<FieldForms>>,
}

impl WordQueries {
    /// Keeps the forms of up to `kept` words (0: every word is looked up each time).
    pub fn new(kept: usize) -> Self {
        Self {
            forms: AnswerCache::new(kept),
        }
    }

    /// The query for `words` over `fields`, as the terms `searcher`'s index holds: every word
    /// must match in one of the fields, exactly (BM25, times the field's weight), by prefix
    /// (the last word) or with one typo (words of 5+ letters).
    ///
    /// Each word's typo and prefix forms are looked up in the term dictionaries first, and only
    /// the forms other than the word itself are queried loosely. A word spelled right and
    /// complete (most words of most searches) is then one posting list per field that holds
    /// it, which an intersection skips through, instead of a union with a fuzzy twin that
    /// scores every document of both (the union's buffer is refilled on each seek).
    pub fn query(
        &self,
        searcher: &Searcher,
        fields: &[Weighted],
        words: &[Word],
    ) -> Result<Box<dyn Query>, SearchError> {
        let generation = searcher.generation().generation_id();
        let mut musts: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(words.len());
        for word in words {
            let forms = self
                .forms
                .get_or_search(generation, &forms_key(fields, word), || {
                    look_up_forms(searcher, fields, word)
                })?;
            let mut shoulds: Vec<Box<dyn Query>> = fields
                .iter()
                .zip(forms.iter())
                .flat_map(|(weighted, forms)| field_queries(weighted, word, forms))
                .collect();
            let clause: Box<dyn Query> = match shoulds.len() {
                // No form of this word anywhere: nothing matches every word.
                0 => return Ok(Box::new(EmptyQuery)),
                1 => shoulds.pop().unwrap_or_else(|| Box::new(EmptyQuery)),
                _ => Box::new(BooleanQuery::new(
                    shoulds
                        .into_iter()
                        .map(|query| (Occur::Should, query))
                        .collect(),
                )),
            };
            musts.push((Occur::Must, clause));
        }
        Ok(match musts.len() {
            0 => Box::new(EmptyQuery),
            1 => musts.pop().map_or_else(
                || Box::new(EmptyQuery) as Box<dyn Query>,
                |(_, query)| query,
            ),
            _ => Box::new(BooleanQuery::new(musts)),
        })
    }
}

/// What a word's forms depend on: the fields looked in, how loosely it matches, its text.
fn forms_key(fields: &[Weighted], word: &Word) -> String {
    let mut key = String::with_capacity(word.text.len() + 4 * fields.len() + 3);
    for weighted in fields {
        key.push_str(&weighted.field.field_id().to_string());
        key.push(',');
    }
    key.push(if word.prefix { 'p' } else { '-' });
    key.push(if word.typo { 't' } else { '-' });
    key.push(':');
    key.push_str(&word.text);
    key
}

/// `word`'s forms in each of `fields`, looked up in every segment's term dictionary.
fn look_up_forms(
    searcher: &Searcher,
    fields: &[Weighted],
    word: &Word,
) -> Result<Vec<FieldForms>, SearchError> {
    let Some(first) = fields.first() else {
        return Ok(Vec::new());
    };
    // The automaton reads the word's text only: one serves every field.
    let automaton = loose_query(word, first.field)
        .as_ref()
        .map(FuzzyTermQuery::automaton)
        .transpose()?;
    fields
        .iter()
        .map(|weighted| {
            let exact = Term::from_field_text(weighted.field, &word.text);
            let loose = match &automaton {
                None => LooseForms::Unwanted,
                Some(automaton) => {
                    match loose_forms(searcher, weighted.field, automaton, &exact)? {
                        Some(forms) => LooseForms::Listed(forms),
                        None => LooseForms::TooMany,
                    }
                }
            };
            Ok(FieldForms {
                exact: searcher.doc_freq(&exact)? > 0,
                loose,
            })
        })
        .collect()
}

/// The queries a word's `forms` in one field make: the exact word (BM25, times the field's
/// weight), and its loose forms at a constant score below it.
fn field_queries(weighted: &Weighted, word: &Word, forms: &FieldForms) -> Vec<Box<dyn Query>> {
    let mut queries: Vec<Box<dyn Query>> = Vec::with_capacity(2);
    if forms.exact {
        let exact = Term::from_field_text(weighted.field, &word.text);
        queries.push(Box::new(BoostQuery::new(
            Box::new(TermQuery::new(exact, IndexRecordOption::WithFreqs)),
            weighted.boost,
        )));
    }
    let loose: Box<dyn Query> = match &forms.loose {
        LooseForms::Unwanted => return queries,
        LooseForms::Listed(listed) if listed.is_empty() => return queries,
        LooseForms::Listed(listed) => Box::new(BooleanQuery::new(
            listed
                .iter()
                .map(|form| {
                    let term = Term::from_field_text(weighted.field, form);
                    let form = TermQuery::new(term, IndexRecordOption::Basic);
                    (Occur::Should, Box::new(form) as Box<dyn Query>)
                })
                .collect(),
        )),
        // Too many to list (a prefix of a letter or two): the automaton itself, which matches
        // the word too (an exact match then scores this as well).
        LooseForms::TooMany => match loose_query(word, weighted.field) {
            Some(query) => Box::new(query),
            None => return queries,
        },
    };
    queries.push(Box::new(ConstScoreQuery::new(
        loose,
        LOOSE_SCORE * weighted.boost,
    )));
    queries
}

/// What a word also matches in `field` beyond itself: its prefix's continuations (the last
/// word) and its one-typo neighbours (long words).
fn loose_query(word: &Word, field: Field) -> Option<FuzzyTermQuery> {
    let term = Term::from_field_text(field, &word.text);
    match (word.prefix, word.typo) {
        (true, typo) => Some(FuzzyTermQuery::new_prefix(term, u8::from(typo), true)),
        (false, true) => Some(FuzzyTermQuery::new(term, 1, true)),
        (false, false) => None,
    }
}

/// Loose forms of a word listed term by term at most; beyond, the automaton is queried.
const MAX_LOOSE_FORMS: usize = 64;

/// The terms of `field` in every segment that `automaton` accepts, but `exact`; `None` when
/// there are more than `MAX_LOOSE_FORMS`.
fn loose_forms(
    searcher: &Searcher,
    field: Field,
    automaton: &DfaWrapper,
    exact: &Term,
) -> Result<Option<Vec<String>>, SearchError> {
    let mut forms = BTreeSet::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field)?;
        let mut stream = inverted
            .terms()
            .search(automaton)
            .into_stream()
            .map_err(tantivy::TantivyError::from)?;
        while stream.advance() {
            if stream.key() == exact.serialized_value_bytes() {
                continue;
            }
            // A text field's terms are its tokens' UTF-8.
            if let Ok(text) = std::str::from_utf8(stream.key()) {
                forms.insert(text.to_owned());
            }
            if forms.len() > MAX_LOOSE_FORMS {
                return Ok(None);
            }
        }
    }
    Ok(Some(forms.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use tantivy::collector::{Count, TopDocs};
    use tantivy::schema::{Value, STORED, TEXT};
    use tantivy::TantivyDocument;

    use super::*;

    fn word(text: &str, typo: bool, prefix: bool) -> Word {
        Word {
            text: text.into(),
            typo,
            prefix,
        }
    }

    /// An empty in-RAM index of one stored title, its writer, and the title as searched.
    fn title_index() -> (Index, IndexWriter, Field, [Weighted; 1]) {
        let mut builder = Schema::builder();
        let title = builder.add_text_field("title", TEXT | STORED);
        let index = Index::create_in_ram(builder.build());
        let writer = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("writer");
        let fields = [Weighted {
            field: title,
            boost: 1.0,
        }];
        (index, writer, title, fields)
    }

    /// The titles `words` finds among `titles`, best first.
    fn titles_found(titles: &[&str], words: &[Word]) -> Vec<String> {
        titles_found_in(&[titles], words)
    }

    /// The same over an index of one segment per list of titles.
    fn titles_found_in(segments: &[&[&str]], words: &[Word]) -> Vec<String> {
        let (index, mut writer, title, fields) = title_index();
        for titles in segments {
            for text in *titles {
                let mut doc = TantivyDocument::new();
                doc.add_text(title, text);
                writer.add_document(doc).expect("added");
            }
            writer.commit().expect("committed");
        }
        let searcher = index.reader().expect("reader").searcher();
        let query = WordQueries::new(0)
            .query(&searcher, &fields, words)
            .expect("query");
        let top = searcher
            .search(&*query, &TopDocs::with_limit(1000).order_by_score())
            .expect("searched");
        top.into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address).expect("doc");
                doc.get_first(title)
                    .and_then(|value| value.as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn one_typo_and_a_prefix_match_below_the_exact_word() {
        let titles = ["dargon", "dragon", "dragonfly", "wagon"];
        assert_eq!(
            titles_found(&titles, &[word("dragon", true, false)]),
            ["dragon", "dargon"]
        );
        let mut prefixed = titles_found(&titles, &[word("drag", false, true)]);
        prefixed.sort();
        assert_eq!(prefixed, ["dragon", "dragonfly"]);
        assert_eq!(
            titles_found(&titles, &[word("dragon", false, false)]),
            ["dragon"]
        );
        assert_eq!(
            titles_found(&titles, &[word("dragoon", false, false)]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn typo_and_prefix_forms_are_found_in_every_segment() {
        // "dargon" is only in the second segment, "dragonfly" only in the first.
        let segments: [&[&str]; 2] = [&["dragon", "dragonfly"], &["dargon", "wagon"]];
        assert_eq!(
            titles_found_in(&segments, &[word("dragon", true, false)]),
            ["dragon", "dargon"]
        );
        let mut prefixed = titles_found_in(&segments, &[word("dr", false, true)]);
        prefixed.sort();
        assert_eq!(prefixed, ["dragon", "dragonfly"]);
    }

    #[test]
    fn a_prefix_of_many_forms_finds_them_all() {
        // More forms than are listed one by one: the automaton itself is queried.
        let numbers: Vec<String> = (1..=200).map(|n| n.to_string()).collect();
        let titles: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let found = titles_found(&titles, &[word("1", false, true)]);
        assert_eq!(found.len(), 111);
        assert_eq!(found[0], "1", "the exact word first");
        assert!(found.iter().all(|title| title.starts_with('1')));
    }

    #[test]
    fn forms_kept_for_one_commit_never_hide_a_word_the_next_one_adds() {
        let (index, mut writer, title, fields) = title_index();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .expect("reader");
        let queries = WordQueries::new(10);
        let count = |words: &[Word]| {
            let searcher = reader.searcher();
            let query = queries.query(&searcher, &fields, words).expect("query");
            searcher.search(&*query, &Count).expect("counted")
        };
        let mut add = |text: &str| {
            let mut doc = TantivyDocument::new();
            doc.add_text(title, text);
            writer.add_document(doc).expect("added");
            writer.commit().expect("committed");
            reader.reload().expect("reloaded");
        };
        add("dragon");
        let dragon = [word("dragon", true, false)];
        let wagon = [word("wagon", true, false)];
        let dra = [word("dra", false, true)];
        assert_eq!((count(&dragon), count(&wagon), count(&dra)), (1, 0, 1));
        // Kept: asked again at the same commit.
        assert_eq!((count(&dragon), count(&wagon), count(&dra)), (1, 0, 1));
        // Later commits add the word, a typo of another and a continuation of a prefix.
        add("wagon");
        add("dargon");
        add("drake");
        assert_eq!((count(&dragon), count(&wagon), count(&dra)), (2, 1, 2));
    }

    #[test]
    fn a_word_in_no_field_matches_nothing() {
        let titles = ["dragon", "wagon"];
        assert!(titles_found(
            &titles,
            &[word("dragon", true, false), word("zebra", true, false)]
        )
        .is_empty());
    }
}
