//! The product catalog's search index: its schema, how a product (with its ratings) becomes a
//! document, and the searches over it (a page with facets and highlights, suggestions, one
//! product's indexed version).

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, ColumnIndex, StrColumn};
use tantivy::index::{SegmentId, SegmentReader};
use tantivy::query::{BooleanQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED, STRING,
};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, TantivyDocument, Term};
use uuid::Uuid;

use eshop_projections::product::ProductRecord;
use eshop_projections::query::{Cursor, Ordering, SortKey, SortValue};
use eshop_projections::search::{
    price_bucket, words, Facets, Highlights, PriceCount, SearchFilter, SearchHit, SearchPage,
    SearchRequest, Suggestion, ValueCount, Word, PRICE_BUCKETS, SUGGESTIONS,
};

use super::answers::AnswerCache;
use super::engine::{SearchError, SearchIndex, Weighted, KEYWORD};

/// The title counts this much more than the description, the author in between.
const TITLE_BOOST: f32 = 3.0;
const AUTHOR_BOOST: f32 = 1.5;
const DESCRIPTION_BOOST: f32 = 1.0;

/// What the index keeps of a product: the record and the sum of its ratings (the count is in
/// the record), so a review changes it without reading the reviews.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Indexed {
    pub record: ProductRecord,
    pub rating_sum: i64,
}

impl Indexed {
    /// A review's rating (replacing `previous`, if any) counted in.
    pub fn rate(&mut self, rating: u8, previous: Option<u8>) {
        self.rating_sum += i64::from(rating) - previous.map_or(0, i64::from);
        if previous.is_none() {
            self.record.rating_count += 1;
        }
        self.record.rating_average = average(self.rating_sum, self.record.rating_count);
    }
}

/// As the read model rounds it: to two decimals, halves away from zero.
fn average(sum: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| {
        let hundredths = (sum * 200 + count) / (2 * count);
        hundredths as f64 / 100.0
    })
}

#[derive(Debug, Clone, Copy)]
pub struct ProductFields {
    id: Field,
    id_hi: Field,
    id_lo: Field,
    title: Field,
    author: Field,
    description: Field,
    title_key: Field,
    author_key: Field,
    category: Field,
    price_cents: Field,
    stock: Field,
    published: Field,
    removed: Field,
    stored: Field,
}

/// Days since 1970-01-01 (the published date as a number to filter on).
fn day(date: chrono::NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - 719_163
}

use chrono::Datelike;

impl ProductFields {
    pub fn schema() -> (Schema, Self) {
        let mut builder = Schema::builder();
        let words = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD)
                .set_index_option(IndexRecordOption::Basic),
        );
        let fields = Self {
            id: builder.add_text_field("id", STRING),
            id_hi: builder.add_u64_field("id_hi", FAST),
            id_lo: builder.add_u64_field("id_lo", FAST),
            title: builder.add_text_field("title", words.clone()),
            author: builder.add_text_field("author", words.clone()),
            description: builder.add_text_field("description", words),
            title_key: builder.add_text_field("title_key", keyword.clone()),
            author_key: builder.add_text_field("author_key", keyword),
            category: builder.add_text_field("category", STRING | FAST),
            price_cents: builder.add_i64_field("price_cents", FAST),
            stock: builder.add_i64_field("stock", FAST),
            published: builder.add_i64_field("published", FAST),
            removed: builder.add_u64_field("removed", FAST),
            stored: builder.add_text_field("stored", STORED),
        };
        (builder.build(), fields)
    }

    fn weighted(&self) -> [Weighted; 3] {
        [
            Weighted {
                field: self.title,
                boost: TITLE_BOOST,
            },
            Weighted {
                field: self.author,
                boost: AUTHOR_BOOST,
            },
            Weighted {
                field: self.description,
                boost: DESCRIPTION_BOOST,
            },
        ]
    }

    pub fn id_term(&self, id: Uuid) -> Term {
        Term::from_field_text(self.id, &id.to_string())
    }

    pub fn document(&self, product: &Indexed) -> TantivyDocument {
        let record = &product.record;
        let (hi, lo) = record.id.as_u64_pair();
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, record.id.to_string());
        doc.add_u64(self.id_hi, hi);
        doc.add_u64(self.id_lo, lo);
        doc.add_text(self.title, &record.title);
        doc.add_text(self.author, &record.author);
        doc.add_text(self.description, &record.description);
        doc.add_text(self.title_key, &record.title);
        doc.add_text(self.author_key, &record.author);
        doc.add_text(self.category, &record.category);
        doc.add_i64(self.price_cents, record.price_cents);
        doc.add_i64(self.stock, record.stock);
        doc.add_i64(self.published, day(record.published_date));
        doc.add_u64(self.removed, u64::from(record.removed));
        doc.add_text(
            self.stored,
            serde_json::to_string(product).unwrap_or_default(),
        );
        doc
    }

    fn read(&self, doc: &TantivyDocument) -> Option<Indexed> {
        let text = doc.get_first(self.stored)?.as_str()?;
        serde_json::from_str(text).ok()
    }
}

/// A `.*text.*` regex of the literal `text` (every character but letters and digits escaped).
fn contains_regex(text: &str) -> String {
    let mut pattern = String::from(".*");
    for ch in text.to_lowercase().chars() {
        if ch.is_alphanumeric() {
            pattern.push(ch);
        } else {
            pattern.push_str(&format!("\\x{{{:x}}}", u32::from(ch)));
        }
    }
    pattern.push_str(".*");
    pattern
}

/// The product catalog over one `SearchIndex`.
pub struct ProductIndex {
    pub index: SearchIndex,
    pub fields: ProductFields,
    /// Suggestions by what was typed, until the next commit.
    suggestions: AnswerCache<Vec<Suggestion>>,
    id_orders: IdOrders,
}

/// Segments whose id order is kept, at most; then the record starts again (merges retire
/// segments over time).
const SEGMENTS_KEPT: usize = 1024;

/// A segment's documents in product id order, the order that breaks ties in relevance. Of two
/// hits with equal scores in a segment the one of higher rank is the better, so a page and the
/// cursor's place are found by rank, and only the kept hits' ids are looked up: reading the two
/// id fields of every tied match was a broad search's largest cost. 20 bytes a document.
struct IdOrder {
    /// Each document's place in `ids`.
    ranks: Vec<u32>,
    /// The segment's product ids, ascending.
    ids: Vec<u128>,
}

impl IdOrder {
    fn of(reader: &SegmentReader) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        let (hi, lo) = (Fast(fast.u64("id_hi")?), Fast(fast.u64("id_lo")?));
        let mut by_id: Vec<(u128, DocId)> = (0..reader.max_doc())
            .map(|doc| {
                (
                    (u128::from(hi.get(doc)) << 64) | u128::from(lo.get(doc)),
                    doc,
                )
            })
            .collect();
        by_id.sort_unstable();
        let mut ranks = vec![0; by_id.len()];
        for (rank, (_, doc)) in (0u32..).zip(&by_id) {
            ranks[*doc as usize] = rank;
        }
        let ids = by_id.into_iter().map(|(id, _)| id).collect();
        Ok(Self { ranks, ids })
    }

    fn rank(&self, doc: DocId) -> u32 {
        self.ranks[doc as usize]
    }

    fn id(&self, rank: u32) -> u128 {
        self.ids[rank as usize]
    }

    /// How many of the segment's ids are below `id`: the ranks below it are those of lower ids.
    fn ranks_below(&self, id: u128) -> u32 {
        u32::try_from(self.ids.partition_point(|known| *known < id)).unwrap_or(u32::MAX)
    }
}

/// The id order of each segment searched, worked out once per segment: segments never change.
#[derive(Default)]
struct IdOrders(Mutex<HashMap<SegmentId, Arc<IdOrder>>>);

impl IdOrders {
    fn of(&self, reader: &SegmentReader) -> tantivy::Result<Arc<IdOrder>> {
        let segment = reader.segment_id();
        if let Some(known) = self.lock().get(&segment) {
            return Ok(Arc::clone(known));
        }
        let order = Arc::new(IdOrder::of(reader)?);
        let mut known = self.lock();
        if known.len() >= SEGMENTS_KEPT {
            known.clear();
        }
        known.insert(segment, Arc::clone(&order));
        Ok(order)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<IdOrder>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Filters checked on each match from the fast fields.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    min_price: Option<i64>,
    max_price: Option<i64>,
    in_stock: Option<bool>,
    published_from: Bound<i64>,
    published_to: Bound<i64>,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            min_price: None,
            max_price: None,
            in_stock: None,
            published_from: Bound::Unbounded,
            published_to: Bound::Unbounded,
        }
    }
}

impl Bounds {
    fn of(filter: &SearchFilter) -> Self {
        let mut from = Bound::Unbounded;
        let mut to = Bound::Unbounded;
        if let Some(date) = filter.published_date {
            from = Bound::Included(day(date));
            to = Bound::Included(day(date));
        }
        if let Some(after) = filter.published_after {
            from = Bound::Excluded(day(after));
        }
        if let Some(before) = filter.published_before {
            to = Bound::Excluded(day(before));
        }
        if let (Some(date), Some(after)) = (filter.published_date, filter.published_after) {
            from = if day(date) > day(after) {
                Bound::Included(day(date))
            } else {
                Bound::Excluded(i64::MAX)
            };
        }
        if let (Some(date), Some(before)) = (filter.published_date, filter.published_before) {
            to = if day(date) < day(before) {
                Bound::Included(day(date))
            } else {
                Bound::Excluded(i64::MIN)
            };
        }
        Self {
            min_price: filter.min_price_cents,
            max_price: filter.max_price_cents,
            in_stock: filter.in_stock,
            published_from: from,
            published_to: to,
        }
    }

    fn by_date(&self) -> bool {
        !matches!(
            (self.published_from, self.published_to),
            (Bound::Unbounded, Bound::Unbounded)
        )
    }

    fn published(&self, value: i64) -> bool {
        let above = match self.published_from {
            Bound::Included(from) => value >= from,
            Bound::Excluded(from) => value > from,
            Bound::Unbounded => true,
        };
        let below = match self.published_to {
            Bound::Included(to) => value <= to,
            Bound::Excluded(to) => value < to,
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// A hit in the relevance order: score, then id, both descending.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    score: Score,
    id: u128,
    address: DocAddress,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    // The better hit first: a higher score, then a higher id.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .score
            .total_cmp(&self.score)
            .then(other.id.cmp(&self.id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

/// A fast field of one value per document, read straight from its values when every
/// document has one (as every product document does).
struct Fast<T>(Column<T>);

impl<T: PartialOrd + Copy + std::fmt::Debug + Default + Send + Sync + 'static> Fast<T> {
    fn get(&self, doc: DocId) -> T {
        match self.0.index {
            ColumnIndex::Full => self.0.values.get_val(doc),
            _ => self.0.first(doc).unwrap_or_default(),
        }
    }
}

/// The best `limit` hits of a segment: offered hits are buffered, and every time the buffer
/// holds twice the limit it is cut back to the best `limit`, whose worst becomes the bar a
/// hit must pass (cheaper than a heap when most hits beat the bar, as when scores tie).
struct TopHits {
    limit: usize,
    buffer: Vec<Ranked>,
    bar: Option<Ranked>,
}

impl TopHits {
    fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            buffer: Vec::with_capacity(2 * limit.max(1)),
            bar: None,
        }
    }

    /// False when a hit of `score` cannot be among the best, whatever its id.
    fn may_keep(&self, score: Score) -> bool {
        self.bar.is_none_or(|bar| score >= bar.score)
    }

    fn offer(&mut self, hit: Ranked) {
        // `Ranked` orders the better hit first.
        if self.bar.is_some_and(|bar| hit >= bar) {
            return;
        }
        self.buffer.push(hit);
        if self.buffer.len() == 2 * self.limit {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let nth = self.limit - 1;
        self.buffer.select_nth_unstable(nth);
        self.buffer.truncate(self.limit);
        self.bar = self.buffer.get(nth).copied();
    }

    /// The best `limit`, best first.
    fn into_best(mut self) -> Vec<Ranked> {
        self.buffer.sort_unstable();
        self.buffer.truncate(self.limit);
        self.buffer
    }
}

/// Collects in one pass: the page after the cursor, the total, and the facet counts.
struct PageCollector<'a> {
    limit: usize,
    after: Option<(Score, u128)>,
    bounds: Bounds,
    facets: bool,
    id_orders: &'a IdOrders,
}

#[derive(Default)]
struct PageFruit {
    top: Vec<Ranked>,
    total: u64,
    categories: HashMap<String, u64>,
    prices: [u64; PRICE_BUCKETS.len()],
}

struct PageSegment {
    segment: SegmentOrdinal,
    /// The cursor's score, and how many of the segment's ids are below its id.
    after: Option<(Score, u32)>,
    bounds: Bounds,
    facets: bool,
    /// `Ranked::id` holds a hit's rank in it until the harvest looks up the kept hits' ids.
    order: Arc<IdOrder>,
    /// None when neither a price bound nor the facets need prices.
    price: Option<Fast<i64>>,
    stock: Fast<i64>,
    published: Fast<i64>,
    /// None when the segment holds no removed product.
    removed: Option<Fast<u64>>,
    category: Option<StrColumn>,
    top: TopHits,
    total: u64,
    /// Matches by the category's term ordinal.
    category_counts: Vec<u64>,
    prices: [u64; PRICE_BUCKETS.len()],
}

impl Collector for PageCollector<'_> {
    type Fruit = PageFruit;
    type Child = PageSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegment> {
        let fast = reader.fast_fields();
        let category = fast.str("category")?;
        let categories = category.as_ref().map_or(0, |column| column.num_terms());
        let prices_wanted =
            self.facets || self.bounds.min_price.is_some() || self.bounds.max_price.is_some();
        let price = if prices_wanted {
            Some(Fast(fast.i64("price_cents")?))
        } else {
            None
        };
        let removed = fast.u64("removed")?;
        let removed = (removed.max_value() > 0).then_some(Fast(removed));
        let order = self.id_orders.of(reader)?;
        Ok(PageSegment {
            segment,
            after: self.after.map(|(score, id)| (score, order.ranks_below(id))),
            bounds: self.bounds,
            facets: self.facets,
            order,
            price,
            stock: Fast(fast.i64("stock")?),
            published: Fast(fast.i64("published")?),
            removed,
            category,
            top: TopHits::new(self.limit),
            total: 0,
            category_counts: vec![0; categories],
            prices: [0; PRICE_BUCKETS.len()],
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<PageFruit>) -> tantivy::Result<PageFruit> {
        let mut merged = PageFruit::default();
        let mut top = TopHits::new(self.limit);
        for fruit in fruits {
            merged.total += fruit.total;
            for (value, count) in fruit.categories {
                *merged.categories.entry(value).or_default() += count;
            }
            for (sum, count) in merged.prices.iter_mut().zip(fruit.prices) {
                *sum += count;
            }
            for hit in fruit.top {
                top.offer(hit);
            }
        }
        merged.top = top.into_best();
        Ok(merged)
    }
}

impl SegmentCollector for PageSegment {
    type Fruit = PageFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self
            .removed
            .as_ref()
            .is_some_and(|removed| removed.get(doc) != 0)
        {
            return;
        }
        // Read only when a bound or a facet needs it: one fast-field read per match.
        let price = self.price.as_ref().map(|price| price.get(doc));
        if let Some(price) = price {
            if self.bounds.min_price.is_some_and(|min| price < min)
                || self.bounds.max_price.is_some_and(|max| price > max)
            {
                return;
            }
        }
        if let Some(wanted) = self.bounds.in_stock {
            if (self.stock.get(doc) > 0) != wanted {
                return;
            }
        }
        if self.bounds.by_date() && !self.bounds.published(self.published.get(doc)) {
            return;
        }
        self.total += 1;
        if self.facets {
            if let Some(count) = self
                .category
                .as_ref()
                .and_then(|column| column.term_ords(doc).next())
                .and_then(|ord| self.category_counts.get_mut(usize::try_from(ord).ok()?))
            {
                *count += 1;
            }
            if let Some(count) = price.and_then(|price| self.prices.get_mut(price_bucket(price))) {
                *count += 1;
            }
        }
        if !self.top.may_keep(score) {
            return;
        }
        let rank = self.order.rank(doc);
        if let Some((after_score, ranks_below)) = self.after {
            // Only a hit after the cursor: a lower score, or the same and a lower id.
            if score > after_score || (score == after_score && rank >= ranks_below) {
                return;
            }
        }
        self.top.offer(Ranked {
            score,
            id: u128::from(rank),
            address: DocAddress::new(self.segment, doc),
        });
    }

    fn harvest(self) -> PageFruit {
        let mut categories = HashMap::new();
        if let Some(column) = &self.category {
            let mut value = String::new();
            let counted = (0u64..)
                .zip(self.category_counts)
                .filter(|(_, count)| *count > 0);
            for (ord, count) in counted {
                value.clear();
                if column.ord_to_str(ord, &mut value).unwrap_or(false) {
                    categories.insert(value.clone(), count);
                }
            }
        }
        let mut top = self.top.into_best();
        for hit in &mut top {
            hit.id = self.order.id(u32::try_from(hit.id).unwrap_or(u32::MAX));
        }
        PageFruit {
            top,
            total: self.total,
            categories,
            prices: self.prices,
        }
    }
}

/// The relevance ordering the index answers (most relevant first).
pub fn relevance() -> Ordering {
    Ordering {
        key: SortKey::Relevance,
        descending: true,
    }
}

impl ProductIndex {
    /// Opens the index in `dir`, keeping up to `suggestions_kept` answers of `suggest`
    /// between two commits (0: none).
    pub fn open(dir: &std::path::Path, suggestions_kept: usize) -> Result<Self, SearchError> {
        let (schema, fields) = ProductFields::schema();
        Ok(Self {
            index: SearchIndex::open(dir, schema)?,
            fields,
            suggestions: AnswerCache::new(suggestions_kept),
            id_orders: IdOrders::default(),
        })
    }

    /// The product as the searchable index holds it.
    pub fn get(&self, id: Uuid) -> Result<Option<Indexed>, SearchError> {
        let searcher = self.index.searcher();
        let query = TermQuery::new(self.fields.id_term(id), IndexRecordOption::Basic);
        let found = searcher.search(
            &query,
            &tantivy::collector::TopDocs::with_limit(1).order_by_score(),
        )?;
        match found.first() {
            Some((_, address)) => {
                let doc: TantivyDocument = searcher.doc(*address)?;
                Ok(self.fields.read(&doc))
            }
            None => Ok(None),
        }
    }

    fn filters(&self, filter: &SearchFilter, into: &mut Vec<(Occur, Box<dyn Query>)>) {
        if let Some(category) = &filter.category {
            into.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.category, category),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(author) = &filter.author {
            into.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.author_key, &author.to_lowercase()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(title) = &filter.title {
            if let Ok(regex) =
                RegexQuery::from_pattern(&contains_regex(title), self.fields.title_key)
            {
                into.push((Occur::Must, Box::new(regex)));
            }
        }
    }

    /// One page of the products matching `request`, most relevant first, with the total and
    /// the facets asked for.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, SearchError> {
        let words = words(&request.text);
        if words.is_empty() {
            return Ok(SearchPage {
                hits: Vec::new(),
                facets: Facets::default(),
                total: 0,
                next_cursor: None,
            });
        }
        let searcher = self.index.searcher();
        let mut clauses = vec![(
            Occur::Must,
            self.index
                .words_query(&searcher, &self.fields.weighted(), &words)?,
        )];
        self.filters(&request.filter, &mut clauses);
        let query = BooleanQuery::new(clauses);
        let after = request
            .after
            .as_ref()
            .and_then(|cursor| match cursor.value {
                SortValue::Rank(score) => Some((score, cursor.id.as_u128())),
                _ => None,
            });
        let collector = PageCollector {
            limit: request.limit.max(1) + 1,
            after,
            bounds: Bounds::of(&request.filter),
            facets: request.facets.category || request.facets.price,
            id_orders: &self.id_orders,
        };
        let fruit = searcher.search(&query, &collector)?;
        let mut hits = Vec::with_capacity(fruit.top.len());
        for ranked in fruit.top.iter().take(request.limit.max(1)) {
            let doc: TantivyDocument = searcher.doc(ranked.address)?;
            if let Some(indexed) = self.fields.read(&doc) {
                hits.push(SearchHit {
                    highlights: Highlights::of(&indexed.record, &words),
                    record: indexed.record,
                    score: ranked.score,
                });
            }
        }
        let next_cursor = (fruit.top.len() > request.limit.max(1))
            .then(|| hits.last())
            .flatten()
            .map(|last| {
                Cursor {
                    ordering: relevance(),
                    value: SortValue::Rank(last.score),
                    id: last.record.id,
                }
                .encode()
            });
        let mut facets = Facets::default();
        if request.facets.category {
            let mut categories: Vec<ValueCount> = fruit
                .categories
                .into_iter()
                .map(|(value, count)| ValueCount { value, count })
                .collect();
            categories.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            facets.category = Some(categories);
        }
        if request.facets.price {
            facets.price = Some(
                PRICE_BUCKETS
                    .iter()
                    .zip(fruit.prices)
                    .map(|((min_cents, max_cents), count)| PriceCount {
                        min_cents: *min_cents,
                        max_cents: *max_cents,
                        count,
                    })
                    .collect(),
            );
        }
        Ok(SearchPage {
            hits,
            facets,
            total: fruit.total,
            next_cursor,
        })
    }

    /// Up to ten products whose titles match what was typed (the last word as a prefix): the
    /// answer kept since the last commit, if the same words were typed since.
    pub fn suggest(&self, typed: &str) -> Result<Vec<Suggestion>, SearchError> {
        let words = words(typed);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let question = words
            .iter()
            .map(|word| match word.prefix {
                true => format!("{}*", word.text),
                false => word.text.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let committed = self.index.committed_sequence();
        let answer = self
            .suggestions
            .get_or_search(committed, &question, || self.suggest_now(&words))?;
        Ok(Vec::clone(&answer))
    }

    /// The suggestions for `words`, searched now.
    fn suggest_now(&self, words: &[Word]) -> Result<Vec<Suggestion>, SearchError> {
        let searcher = self.index.searcher();
        let query = self.index.words_query(
            &searcher,
            &[Weighted {
                field: self.fields.title,
                boost: 1.0,
            }],
            words,
        )?;
        let collector = PageCollector {
            limit: SUGGESTIONS * 2,
            after: None,
            bounds: Bounds::default(),
            facets: false,
            id_orders: &self.id_orders,
        };
        let fruit = searcher.search(&*query, &collector)?;
        let mut suggestions: Vec<Suggestion> = Vec::with_capacity(SUGGESTIONS);
        for ranked in fruit.top {
            let doc: TantivyDocument = searcher.doc(ranked.address)?;
            let Some(indexed) = self.fields.read(&doc) else {
                continue;
            };
            if suggestions
                .iter()
                .any(|seen| seen.title == indexed.record.title)
            {
                continue;
            }
            suggestions.push(Suggestion {
                id: indexed.record.id,
                title: indexed.record.title,
                author: indexed.record.author,
            });
            if suggestions.len() == SUGGESTIONS {
                break;
            }
        }
        Ok(suggestions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::catalog;
    use eshop_projections::search::FacetRequest;

    #[test]
    fn averages_round_like_the_read_model() {
        assert_eq!(average(0, 0), None);
        assert_eq!(average(5, 1), Some(5.0));
        assert_eq!(average(10, 3), Some(3.33));
        assert_eq!(average(5, 3), Some(1.67));
        assert_eq!(average(9, 8), Some(1.13));
    }

    #[test]
    fn the_top_hits_are_the_best_whatever_the_order_offered() {
        let hit = |score: f32, id: u128| Ranked {
            score,
            id,
            address: DocAddress::new(0, 0),
        };
        // Ties on score (ids decide), a better score late, and one worse than every kept hit.
        let mut offered: Vec<Ranked> = (0..50).map(|id| hit(1.0, id)).collect();
        offered.push(hit(2.0, 7));
        offered.push(hit(0.5, 1000));
        let mut top = TopHits::new(4);
        for ranked in &offered {
            if top.may_keep(ranked.score) {
                top.offer(*ranked);
            }
        }
        let best: Vec<(f32, u128)> = top
            .into_best()
            .iter()
            .map(|ranked| (ranked.score, ranked.id))
            .collect();
        assert_eq!(best, [(2.0, 7), (1.0, 49), (1.0, 48), (1.0, 47)]);
    }

    #[test]
    fn tied_hits_page_by_id_whatever_order_a_segment_holds_them_in() {
        let dir = std::env::temp_dir().join(format!("eshop-tied-hits-{}", Uuid::new_v4()));
        let products = ProductIndex::open(&dir, 0).expect("index opens");
        let mut ids: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
        ids.sort();
        // Three segments of the same book: in id order, against it, and in id order below the
        // first.
        let segments = [
            ids[10..20].to_vec(),
            ids[20..30].iter().rev().copied().collect(),
            ids[..10].to_vec(),
        ];
        {
            let mut guard = products.index.writer();
            let writer = guard.as_mut().expect("a writer");
            for (position, segment) in (1u64..).zip(&segments) {
                for id in segment {
                    writer
                        .add_document(products.fields.document(&catalog::indexed(*id, 1)))
                        .expect("added");
                }
                products.index.commit(writer, position).expect("committed");
            }
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = products
                .search(&SearchRequest {
                    text: "crimson river ".into(),
                    filter: Default::default(),
                    limit: 4,
                    after: after.take(),
                    facets: FacetRequest::default(),
                })
                .expect("searched");
            assert!(page.hits.iter().all(|hit| hit.score == page.hits[0].score));
            seen.extend(page.hits.iter().map(|hit| hit.record.id));
            match page.next_cursor {
                Some(cursor) => after = Some(Cursor::decode(&cursor).expect("a cursor")),
                None => break,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        ids.reverse();
        assert_eq!(seen, ids, "every tie in id order, highest first, once");
    }

    #[test]
    fn contains_patterns_escape_everything_but_words() {
        assert_eq!(contains_regex("a.B c"), ".*a\\x{2e}b\\x{20}c.*");
    }
}
