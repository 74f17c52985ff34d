//! Full-text search, the pure part: how a shopper's words are read (every word must match, one
//! typo per word of 5+ letters, the last word as a prefix), how matches are highlighted, and
//! the request and answer shapes. The index itself (tantivy) is in `eshop-infra::search`; any
//! catalog with full-text search uses both.

use serde::{Deserialize, Serialize};

use crate::product::ProductRecord;
use crate::query::Cursor;

/// Tokens longer than this (in bytes) are neither indexed nor searched.
pub const MAX_TOKEN_BYTES: usize = 40;
/// Words of at least this many letters may carry one typo (a token with digits carries none:
/// a number one digit off, a year or a model, names another thing).
pub const TYPO_MIN_CHARS: usize = 5;
/// Words a search takes at most (the rest are ignored).
pub const MAX_WORDS: usize = 8;
/// Suggestions answered at most.
pub const SUGGESTIONS: usize = 10;

/// One word of a search, as the index compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Lowercased, as the index stores its tokens.
    pub text: String,
    /// One edit (insertion, deletion, substitution or transposition) is allowed.
    pub typo: bool,
    /// Matches any token it begins (the word being typed).
    pub prefix: bool,
}

/// The tokens of a text as the index sees them: runs of letters and digits, lowercased,
/// without the overlong ones. The index's tokenizer (tantivy's simple tokenizer, lowercaser and
/// long-token filter) splits and folds exactly this way.
pub fn tokens(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    let mut start = None;
    let mut spans = Vec::new();
    for (at, ch) in text.char_indices() {
        match (ch.is_alphanumeric(), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                spans.push((from, at));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        spans.push((from, text.len()));
    }
    spans.into_iter().filter_map(move |(from, to)| {
        let token = text[from..to].to_lowercase();
        (token.len() < MAX_TOKEN_BYTES).then_some((from, to, token))
    })
}

/// The words of a search: every one must match; the last is a prefix when the text does not
/// end with a separator (the shopper is still typing it).
pub fn words(query: &str) -> Vec<Word> {
    let mut words: Vec<Word> = tokens(query)
        .take(MAX_WORDS)
        .map(|(_, _, text)| Word {
            typo: text.chars().count() >= TYPO_MIN_CHARS && text.chars().all(char::is_alphabetic),
            text,
            prefix: false,
        })
        .collect();
    let still_typing = query.chars().last().is_some_and(char::is_alphanumeric);
    if let (Some(last), true) = (words.last_mut(), still_typing) {
        last.prefix = true;
    }
    words
}

/// How a token matched a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    Typo,
    Prefix,
    Exact,
}

impl Word {
    pub fn matches(&self, token: &str) -> Option<Match> {
        if token == self.text {
            return Some(Match::Exact);
        }
        if self.prefix && token.starts_with(&self.text) {
            return Some(Match::Prefix);
        }
        if !self.typo {
            return None;
        }
        let within = if self.prefix {
            // A typo in what was typed so far: compare with the token's beginnings of about
            // the same length.
            let typed = self.text.chars().count();
            (typed.saturating_sub(1)..=typed + 1).any(|length| {
                let head: String = token.chars().take(length).collect();
                one_edit_apart(&self.text, &head)
            })
        } else {
            one_edit_apart(&self.text, token)
        };
        within.then_some(Match::Typo)
    }
}

/// At most one insertion, deletion, substitution or transposition of neighbours apart.
pub fn one_edit_apart(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if long.len() - short.len() > 1 {
        return false;
    }
    let first = short
        .iter()
        .zip(long.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(short.len());
    if short.len() == long.len() {
        let substituted = short[first + 1..] == long[first + 1..];
        let transposed = first + 1 < short.len()
            && short[first] == long[first + 1]
            && short[first + 1] == long[first]
            && short[first + 2..] == long[first + 2..];
        substituted || transposed
    } else {
        short[first..] == long[first + 1..]
    }
}

/// `text` with every character that means something in HTML escaped.
pub fn escape_html(text: &str, into: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => into.push_str("&amp;"),
            '<' => into.push_str("&lt;"),
            '>' => into.push_str("&gt;"),
            '"' => into.push_str("&quot;"),
            '\'' => into.push_str("&#39;"),
            other => into.push(other),
        }
    }
}

/// `text` HTML-escaped with each token that matches a word inside `<mark>`…`</mark>`, or `None`
/// when nothing matched. With `window`, only about that many characters around the first
/// match are kept (an ellipsis marks what was cut).
pub fn highlight(text: &str, words: &[Word], window: Option<usize>) -> Option<String> {
    let marks: Vec<(usize, usize)> = tokens(text)
        .filter(|(_, _, token)| words.iter().any(|word| word.matches(token).is_some()))
        .map(|(from, to, _)| (from, to))
        .collect();
    let first = marks.first()?.0;
    let (from, to) = match window {
        Some(window) => {
            let before = window / 4;
            let from = text[..first]
                .char_indices()
                .rev()
                .nth(before.saturating_sub(1))
                .map_or(0, |(at, _)| at);
            let to = text[from..]
                .char_indices()
                .nth(window)
                .map_or(text.len(), |(at, _)| from + at);
            (from, to)
        }
        None => (0, text.len()),
    };
    let mut out = String::with_capacity(text.len() + marks.len() * 13);
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for (start, end) in marks {
        if start < at || end > to {
            continue;
        }
        escape_html(&text[at..start], &mut out);
        out.push_str("<mark>");
        escape_html(&text[start..end], &mut out);
        out.push_str("</mark>");
        at = end;
    }
    escape_html(&text[at..to], &mut out);
    if to < text.len() {
        out.push('…');
    }
    Some(out)
}

/// A catalog search: the words, the filters, the page and the facets wanted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRequest {
    pub text: String,
    pub filter: SearchFilter,
    pub limit: usize,
    /// After this hit (relevance ordering: score, then id, both descending).
    pub after: Option<Cursor>,
    pub facets: FacetRequest,
}

/// Every filter the product list takes, besides the search itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    /// Title contains (any case).
    pub title: Option<String>,
    /// Author equals (any case).
    pub author: Option<String>,
    pub published_date: Option<chrono::NaiveDate>,
    pub published_after: Option<chrono::NaiveDate>,
    pub published_before: Option<chrono::NaiveDate>,
    pub category: Option<String>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    pub in_stock: Option<bool>,
}

impl From<&crate::query::ProductFilter> for SearchFilter {
    fn from(filter: &crate::query::ProductFilter) -> Self {
        Self {
            title: filter.title.clone(),
            author: filter.author.clone(),
            published_date: filter.published_date,
            published_after: filter.published_after,
            published_before: filter.published_before,
            category: filter.category.clone(),
            min_price_cents: filter.min_price_cents,
            max_price_cents: filter.max_price_cents,
            in_stock: filter.in_stock,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FacetRequest {
    pub category: bool,
    pub price: bool,
}

/// The price ranges the price facet counts in (inclusive bounds, in cents; the last is open),
/// so a client can pass a bucket back as `min_price_cents`/`max_price_cents`.
pub const PRICE_BUCKETS: [(i64, Option<i64>); 5] = [
    (0, Some(999)),
    (1000, Some(2499)),
    (2500, Some(4999)),
    (5000, Some(9999)),
    (10000, None),
];

/// The bucket a price counts in.
pub fn price_bucket(price_cents: i64) -> usize {
    PRICE_BUCKETS
        .iter()
        .rposition(|(min, _)| price_cents >= *min)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PriceCount {
    pub min_cents: i64,
    pub max_cents: Option<i64>,
    pub count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Facets {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Vec<ValueCount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Vec<PriceCount>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Highlights {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Characters of the description kept around its first match.
pub const DESCRIPTION_WINDOW: usize = 160;

impl Highlights {
    pub fn of(record: &ProductRecord, words: &[Word]) -> Self {
        Self {
            title: highlight(&record.title, words, None),
            description: highlight(&record.description, words, Some(DESCRIPTION_WINDOW)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub record: ProductRecord,
    pub score: f32,
    pub highlights: Highlights,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub facets: Facets,
    pub total: u64,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Suggestion {
    pub id: uuid::Uuid,
    pub title: String,
    pub author: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_is_a_prefix_while_it_is_typed() {
        let read = words("Dargon Fi");
        assert_eq!(read.len(), 2);
        assert!(read[0].typo && !read[0].prefix);
        assert!(!read[1].typo && read[1].prefix);
        assert_eq!(read[1].text, "fi");
        assert!(!words("dragon ").last().expect("a word").prefix);
    }

    #[test]
    fn one_typo_for_long_words_only() {
        let dargon = &words("dargon ")[0];
        assert_eq!(dargon.matches("dragon"), Some(Match::Typo));
        assert_eq!(dargon.matches("dragons"), None);
        let cat = &words("cta ")[0];
        assert_eq!(cat.matches("cat"), None);
        let number = &words("42170 ")[0];
        assert_eq!(number.matches("42171"), None);
        assert_eq!(words("r2d2d2 ")[0].matches("r2d2d3"), None);
        assert!(one_edit_apart("dragon", "dragn"));
        assert!(one_edit_apart("dragon", "drahon"));
        assert!(one_edit_apart("dragon", "dragoon"));
        assert!(!one_edit_apart("dragon", "dargno"));
        assert_eq!(words("dragon")[0].matches("dragonfly"), Some(Match::Prefix));
        assert_eq!(words("drgaon")[0].matches("dragonfly"), Some(Match::Typo));
    }

    #[test]
    fn highlights_mark_matches_and_escape_the_rest() {
        let marked =
            highlight("<b>Dragon</b> & \"dragons\"", &words("dragon "), None).expect("a match");
        assert_eq!(
            marked,
            // "dragons" is one typo from "dragon": the index finds it, so it is marked too.
            "&lt;b&gt;<mark>Dragon</mark>&lt;/b&gt; &amp; &quot;<mark>dragons</mark>&quot;"
        );
        assert_eq!(highlight("nothing here", &words("dragon"), None), None);
        let long = format!("{} dragon {}", "word ".repeat(100), "tail ".repeat(100));
        let cut = highlight(&long, &words("dragon"), Some(40)).expect("a match");
        assert!(cut.starts_with('…') && cut.ends_with('…'));
        assert!(cut.contains("<mark>dragon</mark>"));
    }

    #[test]
    fn prices_fall_in_their_bucket() {
        assert_eq!(price_bucket(0), 0);
        assert_eq!(price_bucket(999), 0);
        assert_eq!(price_bucket(1000), 1);
        assert_eq!(price_bucket(1_000_000), 4);
    }
}
