//! Full-text search: an embedded index per process (tantivy, on local disk), fed by the event
//! stream like any read model. `engine` is what every catalog shares (the directory and its
//! lock, commits with the stream sequence, the word queries); `products` is the product
//! catalog over it; `builder` feeds it from the stream.

pub mod answers;
pub mod builder;
pub mod engine;
pub mod products;

pub use builder::{ProductSearch, SearchSettings};
pub use engine::{SearchError, SearchIndex};
pub use products::{Indexed, ProductIndex};
