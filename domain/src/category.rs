//! The `category` aggregate: one node of the catalog's category tree (a name, a slug unique
//! among its siblings, an optional parent).
//!
//! A category cannot see its peers, so what depends on them is handed to it: a move carries the
//! path from the root to the new parent (read from the tree), so a move under one's own
//! descendant is refused. Slug uniqueness among siblings is a claim on (parent, slug) written in
//! the appending transaction, so two concurrent creations cannot both take a slug.
//!
//! What is filed in a category is recorded on the category itself: a product is filed
//! (`CategoryProductFiled`) in the same transaction as the product's own event, and a
//! subcategory is attached (`SubcategoryAttached`) right after it is created or moved there.
//! Both append to this stream, so they and a delete are ordered by its version: a delete either
//! sees the product or child and is refused, or comes first, and then filing or attaching is
//! refused as `NotFound`. A delete also carries the counts the read models show, which cover
//! products stored before categories recorded their members.

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::{DeclaresClaims, UniqueClaim};
use crate::values::{bounded_text, InvalidValue};

/// The claim kind of a slug among its siblings.
pub const SLUG_CLAIM: &str = "category_slug";

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

/// Lower-case letters, digits and single hyphens (`science-fiction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let slug = raw.trim().to_string();
        let well_formed = !slug.is_empty()
            && slug.len() <= 100
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-')
            && !slug.contains("--");
        if well_formed {
            Ok(Self(slug))
        } else {
            Err(InvalidValue(
                "must be lower-case letters, digits and single hyphens, like science-fiction"
                    .into(),
            ))
        }
    }

    /// The slug a free-text category name maps to (`Science Fiction` → `science-fiction`), if
    /// it has any letter or digit.
    pub fn from_name(name: &str) -> Option<Self> {
        let mut slug = String::new();
        for c in name.trim().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug: String = slug.trim_end_matches('-').chars().take(100).collect();
        Self::parse(slug.trim_end_matches('-')).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn name(raw: &str) -> Result<String, InvalidValue> {
    bounded_text(raw, 1, 100)
}

/// Where the ids of top-level categories made from a product's free-text category come from.
const TOP_LEVEL_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_52a0_4f0e_4d8e_9a3d_2c61_0e7f_c47a);

/// The id of the top-level category a free-text category names (`Science Fiction` →
/// `science-fiction`): derived from the slug, so every writer that files a product by text
/// meets on the same category, however many run at once.
pub fn top_level_id(slug: &Slug) -> Uuid {
    Uuid::new_v5(&TOP_LEVEL_NAMESPACE, slug.as_str().as_bytes())
}

/// The claimed value of a slug under a parent (none: the top level).
pub fn sibling_key(parent: Option<Uuid>, slug: &str) -> String {
    format!(
        "{}/{slug}",
        parent.map(|id| id.to_string()).unwrap_or_default()
    )
}

#[derive(Debug, Clone, PartialEq)]
pub enum CategoryCommand {
    Create {
        name: String,
        slug: Slug,
        parent: Option<Uuid>,
    },
    Rename {
        name: Option<String>,
        slug: Option<Slug>,
    },
    /// Moves the category under `parent` (none: to the top level). `parent_path` lists the
    /// new parent's ancestors and the parent itself, root first, as the tree shows them.
    Move {
        this: Uuid,
        parent: Option<Uuid>,
        parent_path: Vec<Uuid>,
    },
    /// Deletes the category `this`; refused while it has products or children, by its own
    /// record or by the counts the read models show (`products`, `children`).
    Delete {
        this: Uuid,
        products: u64,
        children: u64,
    },
    /// Records that `product` is filed here (refused once the category is deleted).
    FileProduct { product: Uuid },
    /// Records that `product` left (moved elsewhere or removed).
    UnfileProduct { product: Uuid },
    /// Records that the category `child` now stands under this one.
    AttachSubcategory { child: Uuid },
    /// Records that `child` no longer stands under this one (moved or deleted).
    DetachSubcategory { child: Uuid },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum CategoryEvent {
    CategoryCreated {
        name: String,
        slug: String,
        parent: Option<Uuid>,
    },
    /// A new name or slug; `parent` is where it stands (the slug is unique there).
    CategoryRenamed {
        name: String,
        slug: String,
        parent: Option<Uuid>,
    },
    CategoryMoved {
        parent: Option<Uuid>,
        slug: String,
    },
    /// `id` is the category's own: its claim moves to a value no sibling can hold, so the
    /// slug is free again under the parent.
    CategoryDeleted {
        id: Uuid,
    },
    CategoryProductFiled {
        product_id: Uuid,
    },
    CategoryProductUnfiled {
        product_id: Uuid,
    },
    SubcategoryAttached {
        child_id: Uuid,
    },
    SubcategoryDetached {
        child_id: Uuid,
    },
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CategoryCreated { .. } => "CategoryCreated",
            Self::CategoryRenamed { .. } => "CategoryRenamed",
            Self::CategoryMoved { .. } => "CategoryMoved",
            Self::CategoryDeleted { .. } => "CategoryDeleted",
            Self::CategoryProductFiled { .. } => "CategoryProductFiled",
            Self::CategoryProductUnfiled { .. } => "CategoryProductUnfiled",
            Self::SubcategoryAttached { .. } => "SubcategoryAttached",
            Self::SubcategoryDetached { .. } => "SubcategoryDetached",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for CategoryEvent {
    /// Each event that places the slug claims it under its parent (releasing the former place).
    fn unique_claims(&self) -> Vec<UniqueClaim> {
        match self {
            Self::CategoryCreated { slug, parent, .. }
            | Self::CategoryRenamed { slug, parent, .. }
            | Self::CategoryMoved { slug, parent } => vec![UniqueClaim {
                kind: SLUG_CLAIM,
                value: sibling_key(*parent, slug),
            }],
            Self::CategoryDeleted { id } => vec![UniqueClaim {
                kind: SLUG_CLAIM,
                value: format!("deleted/{id}"),
            }],
            Self::CategoryProductFiled { .. }
            | Self::CategoryProductUnfiled { .. }
            | Self::SubcategoryAttached { .. }
            | Self::SubcategoryDetached { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("the category does not exist")]
    NotFound,
    #[error("a category with this id already exists")]
    AlreadyExists,
    #[error("a category cannot move under itself or one of its descendants")]
    Cycle,
    #[error("the category has {products} products and {children} subcategories")]
    InUse { products: u64, children: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub created: bool,
    pub deleted: bool,
    pub name: String,
    pub slug: String,
    pub parent: Option<Uuid>,
    /// The products and subcategories recorded here (see the module's note).
    #[serde(default)]
    pub products: BTreeSet<Uuid>,
    #[serde(default)]
    pub children: BTreeSet<Uuid>,
}

impl Category {
    pub fn is_listed(&self) -> bool {
        self.created && !self.deleted
    }

    fn decide(&self, command: CategoryCommand) -> Result<Vec<CategoryEvent>, CategoryError> {
        match command {
            CategoryCommand::Create { .. } => {}
            // Letting go of what is not (or no longer) recorded here is nothing to do.
            CategoryCommand::UnfileProduct { .. } | CategoryCommand::DetachSubcategory { .. }
                if !self.is_listed() =>
            {
                return Ok(Vec::new())
            }
            _ if !self.is_listed() => return Err(CategoryError::NotFound),
            _ => {}
        }
        match command {
            CategoryCommand::Create { name, slug, parent } => {
                if self.created {
                    return Err(CategoryError::AlreadyExists);
                }
                Ok(vec![CategoryEvent::CategoryCreated {
                    name,
                    slug: slug.0,
                    parent,
                }])
            }
            CategoryCommand::Rename { name, slug } => {
                let name = name.unwrap_or_else(|| self.name.clone());
                let slug = slug.map_or_else(|| self.slug.clone(), |slug| slug.0);
                if name == self.name && slug == self.slug {
                    return Ok(Vec::new());
                }
                Ok(vec![CategoryEvent::CategoryRenamed {
                    name,
                    slug,
                    parent: self.parent,
                }])
            }
            CategoryCommand::Move {
                this,
                parent,
                parent_path,
            } => {
                if parent == Some(this) || parent_path.contains(&this) {
                    return Err(CategoryError::Cycle);
                }
                if parent == self.parent {
                    return Ok(Vec::new());
                }
                Ok(vec![CategoryEvent::CategoryMoved {
                    parent,
                    slug: self.slug.clone(),
                }])
            }
            CategoryCommand::Delete {
                this,
                products,
                children,
            } => {
                let products = products.max(self.products.len() as u64);
                let children = children.max(self.children.len() as u64);
                if products > 0 || children > 0 {
                    return Err(CategoryError::InUse { products, children });
                }
                Ok(vec![CategoryEvent::CategoryDeleted { id: this }])
            }
            CategoryCommand::FileProduct { product } => Ok(if self.products.contains(&product) {
                Vec::new()
            } else {
                vec![CategoryEvent::CategoryProductFiled {
                    product_id: product,
                }]
            }),
            CategoryCommand::UnfileProduct { product } => Ok(if self.products.contains(&product) {
                vec![CategoryEvent::CategoryProductUnfiled {
                    product_id: product,
                }]
            } else {
                Vec::new()
            }),
            CategoryCommand::AttachSubcategory { child } => Ok(if self.children.contains(&child) {
                Vec::new()
            } else {
                vec![CategoryEvent::SubcategoryAttached { child_id: child }]
            }),
            CategoryCommand::DetachSubcategory { child } => Ok(if self.children.contains(&child) {
                vec![CategoryEvent::SubcategoryDetached { child_id: child }]
            } else {
                Vec::new()
            }),
        }
    }
}

impl Aggregate for Category {
    const TYPE: &'static str = "category";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = CategoryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CategoryEvent::CategoryCreated { name, slug, parent } => {
                self.created = true;
                self.name = name;
                self.slug = slug;
                self.parent = parent;
            }
            CategoryEvent::CategoryRenamed { name, slug, .. } => {
                self.name = name;
                self.slug = slug;
            }
            CategoryEvent::CategoryMoved { parent, .. } => self.parent = parent,
            CategoryEvent::CategoryDeleted { .. } => self.deleted = true,
            CategoryEvent::CategoryProductFiled { product_id } => {
                self.products.insert(product_id);
            }
            CategoryEvent::CategoryProductUnfiled { product_id } => {
                self.products.remove(&product_id);
            }
            CategoryEvent::SubcategoryAttached { child_id } => {
                self.children.insert(child_id);
            }
            CategoryEvent::SubcategoryDetached { child_id } => {
                self.children.remove(&child_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type CategoryTest = TestFramework<Category>;

    const FICTION: Uuid = Uuid::from_u128(1);
    const SCI_FI: Uuid = Uuid::from_u128(2);
    const SPACE_OPERA: Uuid = Uuid::from_u128(3);
    const HISTORY: Uuid = Uuid::from_u128(4);

    fn created(name: &str, slug: &str, parent: Option<Uuid>) -> CategoryEvent {
        CategoryEvent::CategoryCreated {
            name: name.into(),
            slug: slug.into(),
            parent,
        }
    }

    /// Science fiction, under fiction.
    fn sci_fi() -> CategoryEvent {
        created("Science Fiction", "science-fiction", Some(FICTION))
    }

    #[test]
    fn creating_claims_the_slug_among_its_siblings() {
        CategoryTest::with(())
            .given_no_previous_events()
            .when(CategoryCommand::Create {
                name: "Science Fiction".into(),
                slug: Slug::parse("science-fiction").expect("slug"),
                parent: Some(FICTION),
            })
            .then_expect_events(vec![sci_fi()]);
        assert_eq!(
            sci_fi().unique_claims(),
            vec![UniqueClaim {
                kind: SLUG_CLAIM,
                value: format!("{FICTION}/science-fiction"),
            }]
        );
        // The same slug at the top level is another claim.
        assert_ne!(
            created("Science Fiction", "science-fiction", None).unique_claims(),
            sci_fi().unique_claims()
        );
    }

    #[test]
    fn moving_under_itself_or_a_descendant_is_a_cycle() {
        // Science fiction → space opera: moving science fiction under space opera.
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Move {
                this: SCI_FI,
                parent: Some(SPACE_OPERA),
                parent_path: vec![FICTION, SCI_FI, SPACE_OPERA],
            })
            .then_expect_error(CategoryError::Cycle);
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Move {
                this: SCI_FI,
                parent: Some(SCI_FI),
                parent_path: vec![FICTION, SCI_FI],
            })
            .then_expect_error(CategoryError::Cycle);
    }

    #[test]
    fn moving_elsewhere_claims_the_slug_under_the_new_parent() {
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Move {
                this: SCI_FI,
                parent: Some(HISTORY),
                parent_path: vec![HISTORY],
            })
            .then_expect_events(vec![CategoryEvent::CategoryMoved {
                parent: Some(HISTORY),
                slug: "science-fiction".into(),
            }]);
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Move {
                this: SCI_FI,
                parent: None,
                parent_path: vec![],
            })
            .then_expect_events(vec![CategoryEvent::CategoryMoved {
                parent: None,
                slug: "science-fiction".into(),
            }]);
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Move {
                this: SCI_FI,
                parent: Some(FICTION),
                parent_path: vec![FICTION],
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn renaming_records_name_and_slug_where_it_stands() {
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Rename {
                name: Some("SF".into()),
                slug: Some(Slug::parse("sf").expect("slug")),
            })
            .then_expect_events(vec![CategoryEvent::CategoryRenamed {
                name: "SF".into(),
                slug: "sf".into(),
                parent: Some(FICTION),
            }]);
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Rename {
                name: Some("Science Fiction".into()),
                slug: None,
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_product_filed_or_a_child_attached_keeps_the_category_from_being_deleted() {
        let product = Uuid::from_u128(10);
        let filed = CategoryEvent::CategoryProductFiled {
            product_id: product,
        };
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::FileProduct { product })
            .then_expect_events(vec![filed.clone()]);
        // Filed twice (a retried request) is recorded once.
        CategoryTest::with(())
            .given(vec![sci_fi(), filed.clone()])
            .when(CategoryCommand::FileProduct { product })
            .then_expect_events(vec![]);
        // The read models may not show it yet: the category's own record refuses the delete.
        CategoryTest::with(())
            .given(vec![sci_fi(), filed.clone()])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 0,
                children: 0,
            })
            .then_expect_error(CategoryError::InUse {
                products: 1,
                children: 0,
            });
        CategoryTest::with(())
            .given(vec![
                sci_fi(),
                CategoryEvent::SubcategoryAttached {
                    child_id: SPACE_OPERA,
                },
            ])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 0,
                children: 0,
            })
            .then_expect_error(CategoryError::InUse {
                products: 0,
                children: 1,
            });
        // Once the product left and the child moved away, the category can go.
        CategoryTest::with(())
            .given(vec![
                sci_fi(),
                filed,
                CategoryEvent::SubcategoryAttached {
                    child_id: SPACE_OPERA,
                },
                CategoryEvent::CategoryProductUnfiled {
                    product_id: product,
                },
                CategoryEvent::SubcategoryDetached {
                    child_id: SPACE_OPERA,
                },
            ])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 0,
                children: 0,
            })
            .then_expect_events(vec![CategoryEvent::CategoryDeleted { id: SCI_FI }]);
    }

    #[test]
    fn nothing_can_be_filed_in_a_deleted_category() {
        let deleted = vec![sci_fi(), CategoryEvent::CategoryDeleted { id: SCI_FI }];
        CategoryTest::with(())
            .given(deleted.clone())
            .when(CategoryCommand::FileProduct {
                product: Uuid::from_u128(10),
            })
            .then_expect_error(CategoryError::NotFound);
        CategoryTest::with(())
            .given(deleted.clone())
            .when(CategoryCommand::AttachSubcategory { child: SPACE_OPERA })
            .then_expect_error(CategoryError::NotFound);
        // Letting go of something in a deleted category is nothing to do, not an error.
        CategoryTest::with(())
            .given(deleted)
            .when(CategoryCommand::UnfileProduct {
                product: Uuid::from_u128(10),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_category_in_use_cannot_be_deleted() {
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 3,
                children: 0,
            })
            .then_expect_error(CategoryError::InUse {
                products: 3,
                children: 0,
            });
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 0,
                children: 1,
            })
            .then_expect_error(CategoryError::InUse {
                products: 0,
                children: 1,
            });
        CategoryTest::with(())
            .given(vec![sci_fi()])
            .when(CategoryCommand::Delete {
                this: SCI_FI,
                products: 0,
                children: 0,
            })
            .then_expect_events(vec![CategoryEvent::CategoryDeleted { id: SCI_FI }]);
        CategoryTest::with(())
            .given(vec![
                sci_fi(),
                CategoryEvent::CategoryDeleted { id: SCI_FI },
            ])
            .when(CategoryCommand::Rename {
                name: Some("x".into()),
                slug: None,
            })
            .then_expect_error(CategoryError::NotFound);
    }

    #[test]
    fn free_text_categories_map_to_slugs() {
        assert_eq!(
            Slug::from_name("Science Fiction").map(|s| s.0),
            Some("science-fiction".into())
        );
        assert_eq!(
            Slug::from_name("  classics ").map(|s| s.0),
            Some("classics".into())
        );
        assert_eq!(
            Slug::from_name("Kids & Teens!").map(|s| s.0),
            Some("kids-teens".into())
        );
        assert_eq!(Slug::from_name("!!!"), None);
        assert!(Slug::parse("Bad Slug").is_err());
        assert!(Slug::parse("a--b").is_err());
    }
}
