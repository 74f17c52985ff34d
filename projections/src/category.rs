//! The `categories` read model: one document per category (name, slug, parent), and the tree
//! built from all of them with each node's path and product count (its descendants' included).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use eshop_domain::category::CategoryEvent;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRecord {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent: Option<Uuid>,
    pub deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

pub fn apply_category_event(
    current: Option<&CategoryRecord>,
    event: &RelayedEvent,
) -> Result<Option<CategoryRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded = event.decode::<CategoryEvent>()?;
    let mut row = match (current, decoded) {
        (None, CategoryEvent::CategoryCreated { name, slug, parent }) => CategoryRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            name,
            slug,
            parent,
            deleted: false,
            created_at: event.recorded_at,
            updated_at: event.recorded_at,
            version: 0,
        },
        (None, _) => return Err(event.unreadable("the category was never created")),
        (Some(_), CategoryEvent::CategoryCreated { .. }) => {
            return Err(event.unreadable("CategoryCreated on an existing category"))
        }
        (Some(current), CategoryEvent::CategoryRenamed { name, slug, .. }) => CategoryRecord {
            name,
            slug,
            ..current.clone()
        },
        (Some(current), CategoryEvent::CategoryMoved { parent, .. }) => CategoryRecord {
            parent,
            ..current.clone()
        },
        (Some(current), CategoryEvent::CategoryDeleted { .. }) => CategoryRecord {
            deleted: true,
            ..current.clone()
        },
        // What is filed here is counted from the products read model and the tree; the
        // category's own record of it only guards deletes. The row takes the version alone.
        (
            Some(current),
            CategoryEvent::CategoryProductFiled { .. }
            | CategoryEvent::CategoryProductUnfiled { .. }
            | CategoryEvent::SubcategoryAttached { .. }
            | CategoryEvent::SubcategoryDetached { .. },
        ) => {
            return Ok(Some(CategoryRecord {
                version: event.sequence,
                ..current.clone()
            }))
        }
    };
    row.updated_at = event.recorded_at;
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for CategoryRecord {
    const NAME: &'static str = "categories";
    const AGGREGATE_TYPE: &'static str = "category";

    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_category_event(current, event)
    }
}

/// One step of a path: a category as breadcrumbs show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Crumb {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

/// A node of the tree as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CategoryNode {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent: Option<Uuid>,
    /// From the top-level category down to this one (itself included).
    pub path: Vec<Crumb>,
    /// Products filed under this category or any of its descendants.
    pub products: u64,
    pub version: u64,
    pub children: Vec<CategoryNode>,
}

/// The live categories with their own (direct) product counts, arranged as a tree.
#[derive(Debug, Clone, Default)]
pub struct CategoryTree {
    records: HashMap<Uuid, CategoryRecord>,
    children: HashMap<Option<Uuid>, Vec<Uuid>>,
    own_products: HashMap<Uuid, u64>,
}

impl CategoryTree {
    /// `records` (deleted ones are left out) and `own_products`: each category's products,
    /// not counting its descendants'.
    pub fn new(
        records: impl IntoIterator<Item = CategoryRecord>,
        own_products: HashMap<Uuid, u64>,
    ) -> Self {
        let records: HashMap<Uuid, CategoryRecord> = records
            .into_iter()
            .filter(|record| !record.deleted)
            .map(|record| (record.id, record))
            .collect();
        let mut children: HashMap<Option<Uuid>, Vec<Uuid>> = HashMap::new();
        for record in records.values() {
            // A parent that is gone (it cannot be, but a tree must not lose nodes): top level.
            let parent = record.parent.filter(|id| records.contains_key(id));
            children.entry(parent).or_default().push(record.id);
        }
        for ids in children.values_mut() {
            ids.sort_by(|a, b| {
                let (a, b) = (&records[a], &records[b]);
                (&a.name, &a.slug, a.id).cmp(&(&b.name, &b.slug, b.id))
            });
        }
        Self {
            records,
            children,
            own_products,
        }
    }

    pub fn get(&self, id: Uuid) -> Option<&CategoryRecord> {
        self.records.get(&id)
    }

    /// The live top-level category with `slug`.
    pub fn top_level(&self, slug: &str) -> Option<&CategoryRecord> {
        self.children
            .get(&None)?
            .iter()
            .map(|id| &self.records[id])
            .find(|record| record.slug == slug)
    }

    /// From the top level down to `id` (itself included); empty when it does not exist. Stops
    /// at a cycle rather than looping (the aggregate refuses them; a race could still make one).
    pub fn path(&self, id: Uuid) -> Vec<Crumb> {
        let mut path = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let Some(record) = self.records.get(&id) else {
                break;
            };
            if path.iter().any(|crumb: &Crumb| crumb.id == id) {
                break;
            }
            path.push(Crumb {
                id,
                name: record.name.clone(),
                slug: record.slug.clone(),
            });
            next = record.parent;
        }
        path.reverse();
        path
    }

    /// `id` and every descendant.
    pub fn subtree(&self, id: Uuid) -> Vec<Uuid> {
        let mut found = Vec::new();
        if !self.records.contains_key(&id) {
            return found;
        }
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            if found.contains(&id) {
                continue;
            }
            found.push(id);
            if let Some(children) = self.children.get(&Some(id)) {
                stack.extend(children.iter().copied());
            }
        }
        found
    }

    /// How many categories stand directly under `id`.
    pub fn child_count(&self, id: Uuid) -> u64 {
        self.children.get(&Some(id)).map_or(0, |c| c.len() as u64)
    }

    /// Products filed directly under `id`.
    pub fn own_products(&self, id: Uuid) -> u64 {
        self.own_products.get(&id).copied().unwrap_or(0)
    }

    /// `id` as a node with its whole subtree.
    pub fn node(&self, id: Uuid) -> Option<CategoryNode> {
        self.records.get(&id)?;
        Some(self.build(id, self.path(id), &mut Vec::new()))
    }

    /// Every top-level category with its subtree.
    pub fn roots(&self) -> Vec<CategoryNode> {
        self.children
            .get(&None)
            .map(|ids| {
                ids.iter()
                    .map(|id| self.build(*id, self.path(*id), &mut Vec::new()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn build(&self, id: Uuid, path: Vec<Crumb>, seen: &mut Vec<Uuid>) -> CategoryNode {
        let record = &self.records[&id];
        seen.push(id);
        let children: Vec<CategoryNode> = self
            .children
            .get(&Some(id))
            .map(|ids| {
                ids.iter()
                    .filter(|child| !seen.contains(child))
                    .copied()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|child| {
                let record = &self.records[&child];
                let mut path = path.clone();
                path.push(Crumb {
                    id: child,
                    name: record.name.clone(),
                    slug: record.slug.clone(),
                });
                self.build(child, path, seen)
            })
            .collect();
        let products = self.own_products(id) + children.iter().map(|c| c.products).sum::<u64>();
        CategoryNode {
            id,
            name: record.name.clone(),
            slug: record.slug.clone(),
            parent: record.parent,
            path,
            products,
            version: record.version,
            children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u128, name: &str, parent: Option<u128>) -> CategoryRecord {
        CategoryRecord {
            id: Uuid::from_u128(id),
            name: name.into(),
            slug: name.to_lowercase(),
            parent: parent.map(Uuid::from_u128),
            deleted: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn counts_include_descendants_and_paths_run_from_the_top() {
        let tree = CategoryTree::new(
            [
                record(1, "Fiction", None),
                record(2, "SF", Some(1)),
                record(3, "Opera", Some(2)),
                record(4, "History", None),
                CategoryRecord {
                    deleted: true,
                    ..record(5, "Gone", Some(1))
                },
            ],
            HashMap::from([(Uuid::from_u128(1), 1), (Uuid::from_u128(3), 2)]),
        );
        let roots = tree.roots();
        assert_eq!(
            roots.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["Fiction", "History"]
        );
        assert_eq!(roots[0].products, 3);
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(roots[0].children[0].products, 2);
        let opera = &roots[0].children[0].children[0];
        assert_eq!(
            opera
                .path
                .iter()
                .map(|c| c.slug.as_str())
                .collect::<Vec<_>>(),
            ["fiction", "sf", "opera"]
        );
        let mut subtree = tree.subtree(Uuid::from_u128(1));
        subtree.sort();
        assert_eq!(subtree, [1, 2, 3].map(Uuid::from_u128));
        assert_eq!(tree.child_count(Uuid::from_u128(1)), 1);
        assert_eq!(
            tree.top_level("history").map(|r| r.id),
            Some(Uuid::from_u128(4))
        );
        assert_eq!(tree.top_level("sf"), None);
    }
}
